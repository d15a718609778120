import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, writeFile, readFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { spawnSync } from 'node:child_process';

import { NodevisorError } from '../errors.js';
import { QmpClient } from './client.js';
import { machineCommands } from './commands-machine.js';
import { nodevisorQmpVersion } from './commands-core.js';
import { defineCommand } from './dispatcher.js';
import { FakeMachine } from './fake-machine.js';
import { QmpServer } from './server.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function withServer(
  fn: (ctx: { server: QmpServer; path: string; dir: string; machine: FakeMachine; logs: string[] }) => Promise<void>,
  options: { maxOutputBytes?: number } = {},
): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'qmp-test-'));
  const path = join(dir, 'qmp.sock');
  const machine = new FakeMachine();
  const logs: string[] = [];
  const version = nodevisorQmpVersion();
  const server = new QmpServer({
    commands: {
      ...machineCommands(machine, version),
      'x-slow': defineCommand({ args: { ms: { type: 'int' } }, handler: async (a) => (await sleep(Number(a.ms)), a.ms) }),
      'x-oob': defineCommand({ args: {}, oob: true, handler: () => 'oob' }),
    },
    log: (m) => logs.push(m),
    ...options,
  });
  machine.emit = (e) => server.broadcast(e);
  try {
    await server.listen({ kind: 'unix', path, server: true, wait: false });
    await fn({ server, path, dir, machine, logs });
  } finally {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** A raw connection collecting lines. */
function raw(path: string) {
  const socket = net.connect(path);
  const lines: string[] = [];
  let buf = '';
  socket.on('data', (d: Buffer) => {
    buf += d.toString('latin1');
    let i;
    // Every QMP line ends in "\r\n", as QEMU's monitor writes them.
    while ((i = buf.indexOf('\r\n')) !== -1) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 2);
    }
  });
  socket.on('error', () => undefined);
  const waitLines = async (n: number, ms = 3000) => {
    const end = Date.now() + ms;
    while (lines.length < n && Date.now() < end) await sleep(5);
    assert.ok(lines.length >= n, `wanted ${n} lines, got ${JSON.stringify(lines)}`);
    return lines;
  };
  return { socket, lines, waitLines };
}

test('greeting, negotiation and replies over a unix socket', async () => {
  await withServer(async ({ path }) => {
    const c = raw(path);
    await c.waitLines(1);
    assert.match(
      c.lines[0] ?? '',
      /^\{"QMP": \{"version": \{"qemu": \{"micro": 0, "minor": 2, "major": 7\}, "package": "nodevisor [^"]+"\}, "capabilities": \["oob"\]\}\}$/,
    );
    // Split across writes, glued, with a parse error in between.
    c.socket.write('{"execute":"query-st');
    await sleep(20);
    c.socket.write('atus"}{"execute":"qmp_capabilities"}@\n{"execute":"query-status","id":7}');
    await c.waitLines(5);
    assert.deepEqual(c.lines.slice(1), [
      `{"error": {"class": "CommandNotFound", "desc": "Expecting capabilities negotiation with 'qmp_capabilities'"}}`,
      '{"return": {}}',
      `{"error": {"class": "GenericError", "desc": "JSON parse error, stray '@'"}}`,
      '{"return": {"status": "prelaunch", "singlestep": false, "running": false}, "id": 7}',
    ]);
    c.socket.destroy();
  });
});

test('replies keep request order even when handlers take different times', async () => {
  await withServer(async ({ path }) => {
    const c = raw(path);
    c.socket.write('{"execute":"qmp_capabilities"}\n');
    c.socket.write('{"execute":"x-slow","arguments":{"ms":60},"id":1}{"execute":"x-slow","arguments":{"ms":1},"id":2}{"execute":"query-name","id":3}');
    await c.waitLines(5);
    assert.deepEqual(c.lines.slice(2), ['{"return": 60, "id": 1}', '{"return": 1, "id": 2}', '{"return": {}, "id": 3}']);
    c.socket.destroy();
  });
});

test('pipelined requests in one write, synchronous and asynchronous handlers mixed: replies in order', async () => {
  await withServer(async ({ path }) => {
    const c = raw(path);
    await c.waitLines(1);
    c.socket.write('{"execute":"qmp_capabilities"}\n');
    await c.waitLines(2);
    const requests: string[] = [];
    const expected: string[] = [];
    for (let i = 0; i < 60; i++) {
      if (i % 10 === 5) {
        requests.push(`{"execute":"x-slow","arguments":{"ms":2},"id":${i}}`);
        expected.push(`{"return": 2, "id": ${i}}`);
      } else if (i % 10 === 7) {
        requests.push(`{"execute":"query-status","id":${i},}`);
        expected.push('{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}');
      } else {
        requests.push(`{"execute":"query-status","id":${i}}`);
        expected.push(`{"return": {"status": "prelaunch", "singlestep": false, "running": false}, "id": ${i}}`);
      }
    }
    // Glued in one write, and then again split in two writes in the middle of a request.
    const text = requests.join('');
    c.socket.write(text);
    await c.waitLines(2 + expected.length);
    const half = text.length >> 1;
    c.socket.write(text.slice(0, half));
    await sleep(10);
    c.socket.write(text.slice(half));
    await c.waitLines(2 + 2 * expected.length);
    assert.deepEqual(c.lines.slice(2), [...expected, ...expected]);
    c.socket.destroy();
  });
});

test('an out-of-band request is answered ahead of the in-band requests queued before it', async () => {
  await withServer(async ({ path }) => {
    const c = raw(path);
    c.socket.write('{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}\n');
    await c.waitLines(2);
    c.socket.write('{"execute":"x-slow","arguments":{"ms":50},"id":1}{"execute":"query-name","id":2}{"exec-oob":"x-oob","id":3}');
    await c.waitLines(5);
    assert.deepEqual(c.lines.slice(2), ['{"return": "oob", "id": 3}', '{"return": 50, "id": 1}', '{"return": {}, "id": 2}']);
    c.socket.destroy();
  });
});

test('two clients: events only after negotiation, in order, to both', async () => {
  await withServer(async ({ server, path }) => {
    const a = await QmpClient.connect(path);
    const b = await QmpClient.connect(path);
    await a.negotiate();
    server.broadcast({ event: 'STOP' }); // b has not negotiated: it never sees this one
    await b.negotiate();
    await a.execute('cont');
    server.broadcast({ event: 'WATCHDOG', data: { action: 'pause' } });
    await a.execute('system_reset');
    const names = async (c: QmpClient, n: number) => {
      const out: string[] = [];
      for await (const e of c.events()) {
        out.push(e.event);
        if (out.length === n) break;
      }
      return out;
    };
    assert.deepEqual(await names(a, 4), ['STOP', 'RESUME', 'WATCHDOG', 'RESET']);
    assert.deepEqual(await names(b, 3), ['RESUME', 'WATCHDOG', 'RESET']);
    await a.close();
    await b.close();
  });
});

test('a client that disconnects mid-message or mid-command does not disturb the server', async () => {
  await withServer(async ({ server, path }) => {
    const c1 = raw(path);
    await c1.waitLines(1);
    c1.socket.write('{"execute":"qmp_capabilities"}\n{"execute":"query-stat');
    await c1.waitLines(2);
    c1.socket.destroy();
    const c2 = raw(path);
    await c2.waitLines(1);
    c2.socket.write('{"execute":"qmp_capabilities"}{"execute":"x-slow","arguments":{"ms":50}}');
    await c2.waitLines(2);
    c2.socket.destroy(); // while x-slow runs
    await sleep(100);
    const c3 = await QmpClient.connect(path);
    await c3.negotiate();
    assert.deepEqual({ ...(await c3.execute<object>('query-status')) }, { running: false, singlestep: false, status: 'prelaunch' });
    assert.equal(server.clientCount, 1);
    await c3.close();
  });
});

test('a client that never reads is dropped; the others still get every event', async () => {
  await withServer(
    async ({ server, path, logs }) => {
      const lazy = raw(path);
      lazy.socket.write('{"execute":"qmp_capabilities"}\n');
      await lazy.waitLines(2);
      lazy.socket.pause(); // stops reading: the kernel buffers fill, then ours
      const good = await QmpClient.connect(path);
      await good.negotiate();
      const total = 20000;
      let received = 0;
      const counting = (async () => {
        for await (const e of good.events()) {
          if (e.event === 'WATCHDOG' && ++received === total) break;
        }
      })();
      for (let i = 0; i < total; i++) {
        server.broadcast({ event: 'WATCHDOG', data: { action: 'none' } });
        // Pace the events so that the reading client keeps up (it shares our event loop).
        while (i - received > 200) await sleep(1);
      }
      await counting;
      assert.equal(received, total);
      assert.equal(server.clientCount, 1);
      assert.equal(logs.length, 1);
      assert.match(logs[0] ?? '', /QMP client dropped/);
      lazy.socket.destroy();
      await good.close();
    },
    { maxOutputBytes: 64 * 1024 },
  );
});

test('100 clients connecting at once', async () => {
  await withServer(async ({ path, server }) => {
    const clients = await Promise.all(Array.from({ length: 100 }, () => QmpClient.connect(path)));
    await Promise.all(clients.map((c) => c.negotiate()));
    const statuses = await Promise.all(clients.map((c) => c.execute<{ status: string }>('query-status')));
    assert.ok(statuses.every((s) => s.status === 'prelaunch'));
    assert.equal(server.clientCount, 100);
    server.broadcast({ event: 'POWERDOWN' });
    const got = await Promise.all(clients.map((c) => c.waitForEvent('POWERDOWN')));
    assert.equal(got.length, 100);
    await Promise.all(clients.map((c) => c.close()));
  });
});

test('socket files: umask respected, removed on close, regular files and live sockets refused, stale sockets replaced', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'qmp-files-'));
  try {
    const path = join(dir, 'q.sock');
    const old = process.umask(0o077);
    const server = new QmpServer({ log: () => undefined });
    try {
      await server.listen({ kind: 'unix', path });
    } finally {
      process.umask(old);
    }
    assert.equal((await stat(path)).mode & 0o077, 0, 'no access for group or others under umask 077');
    // A second server on the same live socket is refused.
    const other = new QmpServer({ log: () => undefined });
    await assert.rejects(other.listen({ kind: 'unix', path }), /Address already in use/);
    // The client sees the server end cleanly on close().
    const c = await QmpClient.connect(path);
    await server.close();
    await assert.rejects(stat(path), /ENOENT/);
    await assert.rejects(c.execute('query-version'), /closed/);

    // A regular file is never replaced.
    const file = join(dir, 'not-a-socket');
    await writeFile(file, 'precious');
    await assert.rejects(
      new QmpServer({ log: () => undefined }).listen({ kind: 'unix', path: file }),
      (e: unknown) => e instanceof NodevisorError && /not a socket/.test(e.message),
    );
    assert.equal(await readFile(file, 'utf8'), 'precious');

    // A stale socket (nobody listening) is replaced.
    const stale = join(dir, 'stale.sock');
    // A process killed while listening leaves its socket file behind.
    spawnSync(process.execPath, [
      '-e',
      `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`,
    ]);
    assert.ok((await stat(stale)).isSocket());
    const fresh = new QmpServer({ log: () => undefined });
    await fresh.listen({ kind: 'unix', path: stale });
    const c2 = await QmpClient.connect(stale);
    assert.equal(c2.greeting.QMP.version.qemu.minor, 2);
    await c2.close();
    await fresh.close();
    await rm(stale, { force: true });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('tcp and stdio listeners; stdio offers no oob', async () => {
  const server = new QmpServer({ log: () => undefined });
  const addr = await server.listen({ kind: 'tcp', host: '127.0.0.1', port: 0 });
  assert.equal(addr.kind, 'tcp');
  const c = await QmpClient.connect({ host: '127.0.0.1', port: addr.kind === 'tcp' ? addr.port : 0 });
  await c.negotiate(['oob']);
  assert.deepEqual(Object.keys(await c.execute<object>('query-version')), ['qemu', 'package']);
  await c.close();
  const input = new PassThrough();
  const output = new PassThrough();
  let text = '';
  output.on('data', (d: Buffer) => (text += d.toString()));
  await server.listen({ kind: 'stdio', input, output });
  input.write('{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}\n');
  await sleep(20);
  assert.ok(text.endsWith('\r\n'));
  const lines = text.trim().split('\r\n');
  assert.match(lines[0] ?? '', /"capabilities": \[\]\}\}$/);
  assert.equal(lines[1], `{"error": {"class": "GenericError", "desc": "Capability 'oob' not available"}}`);
  await server.close();
  assert.equal(server.clientCount, 0);
});
