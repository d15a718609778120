import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  cookieHash, decodeHello, decodeToolReply, encodeHello, encodeToolReply, formatUuid, HELLO_SIZE, parseUuid,
  SizedStructReader, toolAuthenticated, toolHandshake, vmHandshake, type Hello,
} from './handshake.js';
import { IntrospectionError } from './wire/errors.js';

const UUID = '12345678-9abc-def0-0123-456789abcdef';
const hello: Hello = { uuid: parseUuid(UUID), startTime: 1_700_000_000_123n, name: 'guest-1' };

test('the hello is 96 bytes: size, uuid, padding, start time, NUL-terminated name', () => {
  const b = encodeHello(hello);
  assert.equal(b.length, HELLO_SIZE);
  const v = new DataView(b.buffer);
  assert.equal(v.getUint32(0, true), 96);
  assert.equal(formatUuid(b.subarray(4, 20)), UUID);
  assert.equal(v.getUint32(20, true), 0);
  assert.equal(v.getBigInt64(24, true), 1_700_000_000_123n);
  assert.equal(Buffer.from(b.subarray(32, 40)).toString(), 'guest-1\0');
  assert.deepEqual(decodeHello(b), hello);
});

test('names are cut to 63 bytes on a character boundary; missing uuids are zeros', () => {
  const long = `${'é'.repeat(40)}`; // 80 bytes of UTF-8
  const back = decodeHello(encodeHello({ ...hello, name: long }));
  assert.equal(back.name, 'é'.repeat(31), '62 bytes: the 32nd é would split');
  assert.deepEqual(parseUuid(undefined), new Uint8Array(16));
  assert.throws(() => parseUuid('not-a-uuid'), IntrospectionError);
});

test('a shorter hello reads as zeros past its end; a longer one is cut at 96 bytes', () => {
  const full = encodeHello(hello);
  const short = Uint8Array.from(full.subarray(0, 32));
  new DataView(short.buffer).setUint32(0, 32, true);
  assert.deepEqual(decodeHello(short), { ...hello, name: '' });
  const long = new Uint8Array(200);
  long.set(full);
  long.fill(0x41, 96);
  assert.deepEqual(decodeHello(long), hello);
});

test('struct reader: split, glued to the next message, and the size limits', () => {
  const r = new SizedStructReader('x', 32, 65536);
  const full = encodeHello(hello);
  const glued = Buffer.concat([full, Uint8Array.of(1, 2, 3)]);
  assert.equal(r.push(glued.subarray(0, 2)), undefined);
  assert.equal(r.push(glued.subarray(2, 50)), undefined);
  const done = r.push(glued.subarray(50));
  assert.deepEqual(done?.struct, full);
  assert.deepEqual([...(done?.rest ?? [])], [1, 2, 3]);
  const size = (n: number): Uint8Array => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, n, true);
    return b;
  };
  assert.throws(() => new SizedStructReader('x', 32, 65536).push(size(31)), IntrospectionError);
  assert.throws(() => new SizedStructReader('x', 32, 65536).push(size(65537)), IntrospectionError);
  assert.equal(new SizedStructReader('x', 32, 65536).push(size(65536)), undefined, 'waits for 64 KiB');
});

test('the tool proves the secret with SHA-1; without a key anything goes', () => {
  const secret = new TextEncoder().encode('s3cret');
  const reply = encodeToolReply(secret);
  assert.equal(reply.length, 24);
  assert.equal(new DataView(reply.buffer).getUint32(0, true), 24);
  assert.deepEqual(decodeToolReply(reply).cookieHash, new Uint8Array(createHash('sha1').update('s3cret').digest()));
  assert.deepEqual(cookieHash(secret), decodeToolReply(reply).cookieHash);
  assert.ok(toolAuthenticated(decodeToolReply(reply), secret));
  assert.ok(!toolAuthenticated(decodeToolReply(encodeToolReply(new TextEncoder().encode('other'))), secret));
  assert.ok(!toolAuthenticated(decodeToolReply(encodeToolReply()), secret));
  assert.ok(toolAuthenticated(decodeToolReply(encodeToolReply()), undefined));
});

async function pair(): Promise<{ vm: net.Socket; tool: net.Socket; done(): void }> {
  const dir = mkdtempSync(join(tmpdir(), 'nodevisor-kvmi-'));
  const path = join(dir, 'hs.sock');
  const server = net.createServer();
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const vm = net.connect(path);
  const tool = await accepted;
  return {
    vm, tool,
    done: () => {
      vm.destroy();
      tool.destroy();
      server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

test('both sides over a socket: the key matches, and bytes after the answer are kept', async () => {
  const p = await pair();
  try {
    const key = new TextEncoder().encode('k');
    const toolSide = toolHandshake(p.tool, { secret: 'k' }).then((r) => {
      p.tool.write(Uint8Array.of(9, 9)); // the first command, right after the answer
      return r;
    });
    const rest = await vmHandshake(p.vm, hello, { key, timeoutMs: 2000 });
    const { hello: seen } = await toolSide;
    assert.deepEqual(seen, hello);
    // The first command may arrive with the answer or just after it.
    const got = rest.length > 0 ? rest : await new Promise<Buffer>((resolve) => {
      p.vm.once('data', resolve);
      p.vm.resume();
    });
    assert.deepEqual([...got], [9, 9]);
  } finally {
    p.done();
  }
});

test('a wrong key, a silent tool and a tool that hangs up fail the VM side', async () => {
  {
    const p = await pair();
    try {
      void toolHandshake(p.tool, { secret: 'wrong' }).catch(() => undefined);
      await assert.rejects(vmHandshake(p.vm, hello, { key: new TextEncoder().encode('right') }),
        (e: unknown) => e instanceof IntrospectionError && e.code === 'ERR_KVMI_AUTH');
    } finally {
      p.done();
    }
  }
  {
    const p = await pair();
    try {
      await assert.rejects(vmHandshake(p.vm, hello, { timeoutMs: 50 }),
        (e: unknown) => e instanceof IntrospectionError && e.code === 'ERR_KVMI_TIMEOUT');
    } finally {
      p.done();
    }
  }
  {
    const p = await pair();
    try {
      p.tool.end();
      await assert.rejects(vmHandshake(p.vm, hello, { timeoutMs: 2000 }),
        (e: unknown) => e instanceof IntrospectionError && e.code === 'ERR_KVMI_CLOSED');
    } finally {
      p.done();
    }
  }
  {
    const p = await pair();
    try {
      const huge = new Uint8Array(4);
      new DataView(huge.buffer).setUint32(0, 1 << 20, true);
      p.tool.write(huge);
      await assert.rejects(vmHandshake(p.vm, hello, { timeoutMs: 2000 }),
        (e: unknown) => e instanceof IntrospectionError && e.code === 'ERR_KVMI_HANDSHAKE');
    } finally {
      p.done();
    }
  }
});
