// The QMP socket on a real VM: run states, events, errors and exits as QEMU 7.2 has them.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { ChildProcess } from 'node:child_process';
import { QmpClient } from '../src/qmp/client.js';
import { guest } from '../src/testing/kvm-guests.js';
import { runNodevisor, type RunResult } from '../src/testing/run-cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'nodevisor-qmp-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;

interface Session {
  qmp: QmpClient;
  child: ChildProcess;
  done: Promise<RunResult>;
  sock: string;
}

async function boot(args: string[]): Promise<Session> {
  const sock = join(tmp, `q${n++}.sock`);
  let child: ChildProcess | undefined;
  const done = runNodevisor([...args, '-m', '64', '-display', 'none', '-serial', 'null', '-qmp', `unix:${sock},server=on,wait=off`], {
    timeoutMs: 30_000, onSpawn: (c) => { child = c; },
  });
  for (let i = 0; i < 200 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 25));
  const qmp = await QmpClient.connect(sock);
  await qmp.negotiate();
  return { qmp, child: child!, done, sock };
}

/** The client's parser builds null-prototype objects; compare plain data. */
const plain = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;
const exec = async <T = unknown>(q: QmpClient, cmd: string, args?: Record<string, unknown>): Promise<T> => plain(await q.execute<T>(cmd, args));

const names = (evs: Array<{ event: string }>): string[] => evs.map((e) => e.event);

async function nextEvents(qmp: QmpClient, count: number): Promise<Array<{ event: string; data?: unknown }>> {
  const out: Array<{ event: string; data?: unknown }> = [];
  for await (const e of qmp.events()) {
    out.push(plain(e));
    if (out.length === count) break;
  }
  return out;
}

test('-S, cont, stop, system_reset, quit: states, events and exit as QEMU', async () => {
  const s = await boot(['-kernel', guest('hlt'), '-S', '-smp', '2']);
  assert.deepEqual(await exec(s.qmp, 'query-status'), { status: 'prelaunch', singlestep: false, running: false });
  await exec(s.qmp, 'cont');
  assert.deepEqual(await exec(s.qmp, 'query-status'), { status: 'running', singlestep: false, running: true });
  await exec(s.qmp, 'stop');
  assert.deepEqual(await exec(s.qmp, 'query-status'), { status: 'paused', singlestep: false, running: false });
  await exec(s.qmp, 'cont');
  await exec(s.qmp, 'system_reset');
  const cpus = await s.qmp.execute<Array<{ 'cpu-index': number; 'thread-id': number }>>('query-cpus-fast');
  assert.deepEqual(cpus.map((c) => c['cpu-index']), [0, 1]);
  for (const c of cpus) assert.ok(existsSync(`/proc/${s.child.pid}/task/${c['thread-id']}`), 'thread-id is a real vCPU thread');
  assert.deepEqual(await exec(s.qmp, 'query-kvm'), { enabled: true, present: true });
  assert.deepEqual(await exec(s.qmp, 'inject-nmi'), {});
  await exec(s.qmp, 'quit');
  const evs: Array<{ event: string; data?: unknown }> = [];
  for await (const e of s.qmp.events()) evs.push(plain(e));
  // The NMI meets a guest without an IDT: it triple-faults, which may show as a guest RESET
  // before quit lands (QEMU does the same). Everything else is fixed.
  const nmiResets = evs.slice(4, -1);
  for (const e of nmiResets) assert.deepEqual(e, { ...e, event: 'RESET', data: { guest: true, reason: 'guest-reset' } });
  assert.deepEqual(names(evs.slice(0, 4)), ['RESUME', 'STOP', 'RESUME', 'RESET']);
  assert.deepEqual(evs[3]!.data, { guest: false, reason: 'host-qmp-system-reset' });
  assert.deepEqual(evs.at(-1), { ...evs.at(-1), event: 'SHUTDOWN', data: { guest: false, reason: 'host-qmp-quit' } });
  const r = await s.done;
  assert.equal(r.code, 0);
  assert.equal(existsSync(s.sock), false, 'the socket file is removed on exit');
});

test('guest reset with -no-reboot: SHUTDOWN {guest: true, reason: guest-reset}, exit 0', async () => {
  const s = await boot(['-kernel', guest('reset'), '-S', '-no-reboot']);
  await exec(s.qmp, 'cont');
  const evs = await nextEvents(s.qmp, 2);
  assert.deepEqual(names(evs), ['RESUME', 'SHUTDOWN']);
  assert.deepEqual(evs[1]!.data, { guest: true, reason: 'guest-reset' });
  assert.equal((await s.done).code, 0);
});

test('-no-shutdown: the VM stops in shutdown; cont needs a reset; system_reset goes to prelaunch', async () => {
  const s = await boot(['-kernel', guest('reset'), '-S', '-no-reboot', '-no-shutdown']);
  await exec(s.qmp, 'cont');
  const evs = await nextEvents(s.qmp, 3);
  assert.deepEqual(names(evs), ['RESUME', 'SHUTDOWN', 'STOP']);
  assert.equal((await exec<{ status: string }>(s.qmp, 'query-status')).status, 'shutdown');
  await assert.rejects(s.qmp.execute('cont'), { class: 'GenericError', desc: 'Resetting the Virtual Machine is required' });
  await exec(s.qmp, 'system_reset');
  // -no-reboot makes system_reset a shutdown too: SHUTDOWN, and the VM stays in shutdown.
  const after = await nextEvents(s.qmp, 1);
  assert.deepEqual(after[0], { ...after[0], event: 'SHUTDOWN', data: { guest: false, reason: 'host-qmp-system-reset' } });
  await exec(s.qmp, 'quit');
  assert.equal((await s.done).code, 0);
});

test('a KVM internal error: STOP, status internal-error, cont refused, the process stays', async () => {
  const s = await boot(['-kernel', guest('triplefault'), '-S']);
  await exec(s.qmp, 'cont');
  const evs = await nextEvents(s.qmp, 2);
  assert.deepEqual(names(evs), ['RESUME', 'STOP']);
  assert.deepEqual(await exec(s.qmp, 'query-status'), { status: 'internal-error', singlestep: false, running: false });
  await assert.rejects(s.qmp.execute('cont'), { class: 'GenericError', desc: 'Resetting the Virtual Machine is required' });
  s.child.kill('SIGTERM');
  const last = await nextEvents(s.qmp, 1);
  assert.deepEqual(last[0]!.data, { guest: false, reason: 'host-signal' });
  const r = await s.done;
  assert.equal(r.code, 0);
  assert.match(r.stderr, /KVM internal error\. Suberror: 1/);
  assert.match(r.stderr, /nodevisor: terminating on signal 15\n/);
});
