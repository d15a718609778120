import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Chardev } from './chardev.js';
import { openChardev } from './open.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

function tempDir(): { dir: string; [Symbol.dispose](): void } {
  const dir = mkdtempSync(join(tmpdir(), 'nodevisor-sock-'));
  return { dir, [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}

async function client(path: string): Promise<Socket> {
  const sock = connect(path);
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  return sock;
}

/** Reads from `sock` until `want` bytes have arrived. */
function receive(sock: Socket, want: number): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    const onData = (d: Buffer): void => {
      got += d.toString();
      if (got.length >= want) {
        sock.off('data', onData);
        resolve(got);
      }
    };
    sock.on('data', onData);
  });
}

function nextInput(dev: Chardev): Promise<string> {
  return new Promise((resolve) => dev.onInput((b) => resolve(Buffer.from(b).toString())));
}

test('server, wait=off: output is dropped until a client comes, then flows both ways', async () => {
  using tmp = tempDir();
  const path = join(tmp.dir, 'serial.sock');
  const dev = await openChardev({ kind: 'unix', path, server: true, wait: false });
  try {
    assert.ok(lstatSync(path).isSocket());
    dev.write(enc('lost'));
    const c = await client(path);
    // Let the server take the connection before writing.
    await new Promise((r) => setTimeout(r, 50));
    const received = receive(c, 5);
    dev.write(enc('hello'));
    await dev.flush();
    assert.equal(await received, 'hello');
    const input = nextInput(dev);
    c.write('typed');
    assert.equal(await input, 'typed');
    c.destroy();
  } finally {
    await dev.close();
  }
  assert.equal(existsSync(path), false, 'socket file removed on close');
});

test('server, wait=on: opening waits for the first client and says so', async () => {
  using tmp = tempDir();
  const path = join(tmp.dir, 'wait.sock');
  const lines: string[] = [];
  const opening = openChardev({ kind: 'unix', path, server: true, wait: true }, { log: (l) => lines.push(l) });
  let opened = false;
  void opening.then(() => {
    opened = true;
  });
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(opened, false);
  assert.deepEqual(lines, [`info: nodevisor waiting for connection on: disconnected:unix:${path},server=on`]);
  const c = await client(path);
  const dev = await opening;
  const received = receive(c, 2);
  dev.write(enc('ok'));
  assert.equal(await received, 'ok');
  c.destroy();
  await dev.close();
});

test('one client at a time: the second is served when the first leaves', async () => {
  using tmp = tempDir();
  const path = join(tmp.dir, 'one.sock');
  const dev = await openChardev({ kind: 'unix', path, server: true, wait: false });
  try {
    const first = await client(path);
    await new Promise((r) => setTimeout(r, 50));
    const second = await client(path);
    let secondGot = '';
    second.on('data', (d: Buffer) => (secondGot += d.toString()));
    const firstGot = receive(first, 1);
    dev.write(enc('1'));
    assert.equal(await firstGot, '1');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(secondGot, '');
    first.destroy();
    await new Promise((r) => setTimeout(r, 50));
    dev.write(enc('2'));
    await dev.flush();
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(secondGot, '2');
    second.destroy();
  } finally {
    await dev.close();
  }
});

test('a stale socket is replaced; a regular file is refused and kept', async () => {
  using tmp = tempDir();
  const stale = join(tmp.dir, 'stale.sock');
  // A crashed owner: killed while listening, so its socket file stays with nobody behind it.
  const script = `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`;
  spawnSync(process.execPath, ['-e', script]);
  assert.ok(lstatSync(stale).isSocket());
  const dev = await openChardev({ kind: 'unix', path: stale, server: true, wait: false });
  await dev.close();

  const regular = join(tmp.dir, 'notes.txt');
  writeFileSync(regular, 'keep me');
  await assert.rejects(openChardev({ kind: 'unix', path: regular, server: true, wait: false }), {
    code: 'ERR_SYSCALL',
    message: `'${regular}' exists and is not a socket: refusing to replace it`,
  });
  assert.ok(lstatSync(regular).isFile());
});

test('the socket is created with the umask respected', async () => {
  using tmp = tempDir();
  const path = join(tmp.dir, 'mask.sock');
  const saved = process.umask(0o077);
  try {
    const dev = await openChardev({ kind: 'unix', path, server: true, wait: false });
    assert.equal(lstatSync(path).mode & 0o077, 0);
    await dev.close();
  } finally {
    process.umask(saved);
  }
});

test('client mode connects, and reports QEMU\'s message when nobody listens', async () => {
  using tmp = tempDir();
  const path = join(tmp.dir, 'peer.sock');
  // qemu-system-x86_64 -serial unix:/tmp/nosock:
  //   ... Failed to connect to '/tmp/nosock': No such file or directory
  await assert.rejects(openChardev({ kind: 'unix', path, server: false, wait: true }), {
    message: `Failed to connect to '${path}': No such file or directory`,
  });
  const peers: Socket[] = [];
  const srv = createServer((s) => peers.push(s));
  await new Promise<void>((r) => srv.listen(path, r));
  const dev = await openChardev({ kind: 'unix', path, server: false, wait: true });
  await new Promise((r) => setTimeout(r, 50));
  const peer = peers[0];
  assert.ok(peer !== undefined);
  const got = receive(peer, 3);
  dev.write(enc('abc'));
  assert.equal(await got, 'abc');
  await dev.close();
  await new Promise<void>((r) => srv.close(() => r()));
});
