// The nodevisor program connects to a listening introspection tool as the command line says
// (-chardev socket + -object secret + -object introspection + -accel kvm,introspection=),
// authenticates with the secret, and serves KVMI; a tool with the wrong secret is refused.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { listen } from '../src/introspection/client.js';
import { QmpClient } from '../src/qmp/client.js';
import { guest } from '../src/testing/kvm-guests.js';
import { runNodevisor } from '../src/testing/run-cli.js';

const UUID = '12345678-9abc-def0-1234-56789abcdef0';

function args(path: string, key = 'hunter2'): string[] {
  return [
    '-kernel', guest('hlt'), '-m', '64', '-smp', '2', '-display', 'none', '-name', 'inspected', '-uuid', UUID,
    '-chardev', `socket,id=kvmi0,path=${path}`, '-object', `secret,id=key0,data=${key}`,
    '-object', 'introspection,id=intro0,chardev=kvmi0,key=key0', '-accel', 'kvm,introspection=intro0',
  ];
}

test('nodevisor connects to the tool, proves the secret, and the tool inspects the guest', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nodevisor-kvmi-'));
  const path = join(dir, 'tool.sock');
  const listener = await listen(path, { secret: new TextEncoder().encode('hunter2') });
  try {
    let killed = false;
    const run = runNodevisor(args(path), {
      timeoutMs: 30_000,
      onSpawn: (child) => {
        void (async () => {
          const vm = await listener.accept();
          assert.equal(vm.uuid, UUID);
          assert.equal(vm.name, 'inspected');
          assert.deepEqual(await vm.getGuestInfo(), { vcpuCount: 2 });
          const bytes = await vm.readPhysical(0x100000n, 16);
          assert.equal(bytes.length, 16);
          await vm.close();
          killed = true;
          child.kill('SIGTERM');
        })().catch((e: unknown) => { console.error(e); child.kill('SIGKILL'); });
      },
    });
    const r = await run;
    assert.equal(killed, true, `the tool did not finish: ${r.stderr}`);
    assert.equal(r.code, 0, r.stderr);
  } finally {
    await listener.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a tool that cannot prove the secret is refused and logged; the guest runs on uninspected', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nodevisor-kvmi-'));
  const path = join(dir, 'tool.sock');
  const listener = await listen(path, { secret: new TextEncoder().encode('wrong') });
  try {
    const r = await runNodevisor(args(path), { timeoutMs: 30_000, untilStderr: /runs uninspected\n/ });
    assert.match(r.stderr, /introspection: .*cookie hash does not match the secret/);
    // The VM was not taken down: it ends only because the test stops it.
    assert.match(r.stderr, /terminating on signal 15/);
    assert.equal(r.code, 0);
  } finally {
    await listener.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('on a signal the tool is sent UNHOOK before the VM goes, and nodevisor waits for it to let go', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nodevisor-kvmi-'));
  const path = join(dir, 'tool.sock');
  const listener = await listen(path, { secret: new TextEncoder().encode('hunter2') });
  try {
    const seen: string[] = [];
    const r = await runNodevisor(args(path), {
      timeoutMs: 30_000,
      onSpawn: (child) => {
        void (async () => {
          const vm = await listener.accept();
          await vm.controlVmEvents('UNHOOK', true);
          child.kill('SIGTERM');
          for await (const e of vm.events()) {
            seen.push(e.event);
            if (e.event === 'UNHOOK') {
              // Still inspectable while unhooking: the vCPUs are there until the tool lets go.
              assert.deepEqual(await vm.getGuestInfo(), { vcpuCount: 2 });
              seen.push('read after UNHOOK');
              await vm.close();
            }
          }
        })().catch((e: unknown) => { seen.push(`error: ${String(e)}`); });
      },
    });
    assert.deepEqual(seen, ['UNHOOK', 'read after UNHOOK']);
    assert.equal(r.code, 0, r.stderr);
  } finally {
    await listener.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('QMP x-introspection-unhook detaches the tool; the VM runs on uninspected', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nodevisor-kvmi-'));
  const path = join(dir, 'tool.sock');
  const qmpPath = join(dir, 'qmp.sock');
  const listener = await listen(path, { secret: new TextEncoder().encode('hunter2') });
  try {
    const seen: string[] = [];
    const r = await runNodevisor([...args(path), '-qmp', `unix:${qmpPath},server=on,wait=off`], {
      timeoutMs: 30_000,
      onSpawn: () => {
        void (async () => {
          const vm = await listener.accept();
          await vm.controlVmEvents('UNHOOK', true);
          // The QMP socket may come up just after the introspection connection.
          let qmp: QmpClient | undefined;
          for (let i = 0; qmp === undefined; i++) {
            qmp = await QmpClient.connect(qmpPath, 10_000).catch((e: unknown) => {
              if (i > 100) throw e;
              return new Promise<undefined>((res) => setTimeout(() => res(undefined), 50));
            });
          }
          await qmp.negotiate();
          await assert.rejects(qmp.execute('x-introspection-unhook', { id: 'nope' }), /Introspection object 'nope' not found/);
          const reply = qmp.execute('x-introspection-unhook', { id: 'intro0' });
          for await (const e of vm.events()) {
            seen.push(e.event);
            if (e.event === 'UNHOOK') await vm.close();
          }
          assert.deepEqual({ ...(await reply as object) }, {});
          assert.deepEqual({ ...(await qmp.execute('query-status') as object) }, { running: true, singlestep: false, status: 'running' });
          seen.push('running');
          await qmp.execute('quit');
          await qmp.close();
        })().catch((e: unknown) => { seen.push(`error: ${String(e)}`); });
      },
    });
    assert.deepEqual(seen, ['UNHOOK', 'running']);
    assert.equal(r.code, 0, r.stderr);
  } finally {
    await listener.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
