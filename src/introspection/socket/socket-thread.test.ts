/**
 * The KVMI socket thread at the byte level: a raw tool on a real unix socket against
 * connectIntrospection + a FakeTarget whose RAM is mapped like a VM's. What the thread
 * answers itself (READ_PHYSICAL of RAM) must be exactly what the session would answer, in
 * order with everything the session answers, and it must never answer what the session
 * would refuse.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { connectIntrospection, type IntrospectionLink } from '../connect.js';
import { toolHandshake } from '../handshake.js';
import { FAKE_RAM_SIZE, FakeTarget } from '../testing/fake-target.js';
import { readOwnReply } from './own-reply.js';
import { LAYOUTS } from '../wire/commands.js';
import { errorNumber } from '../wire/errors.js';
import { encodeEventReply } from '../wire/events.js';
import { FrameReader } from '../wire/frame-reader.js';
import { decodeReply, encodeMessage, KVMI_MAX_REPLY_DATA, type Frame } from '../wire/header.js';
import { dialect, type KvmiAction, type KvmiCommand } from '../wire/ids.js';

const v7 = dialect('v7');

interface RawTool {
  target: FakeTarget;
  link: IntrospectionLink;
  logs: string[];
  socket: net.Socket;
  closed: Promise<void>;
  send(...messages: Uint8Array[]): void;
  /** The next `n` frames from the VM. */
  frames(n: number): Promise<Frame[]>;
  [Symbol.asyncDispose](): Promise<void>;
}

async function rawTool(): Promise<RawTool> {
  const dir = mkdtempSync(join(tmpdir(), 'nodevisor-kvmi-thread-'));
  const path = join(dir, 'tool.sock');
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const target = new FakeTarget(2, { mappedRam: true });
  const logs: string[] = [];
  const link = connectIntrospection({ id: 'kvmi0', path, handshakeTimeoutMs: 2000, unhookTimeoutMs: 500, dialect: 'v7' }, target,
    { startTime: 0 }, { log: (l, m) => logs.push(`${l}: ${m}`) });
  const socket = await accepted;
  const { rest } = await toolHandshake(socket);
  const reader = new FrameReader();
  const got: Frame[] = [...reader.push(rest)];
  let wake: () => void = () => undefined;
  socket.on('data', (d: Buffer) => {
    got.push(...reader.push(d));
    wake();
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.resume();
  return {
    target, link, logs, socket, closed,
    send: (...messages) => socket.write(Buffer.concat(messages)),
    async frames(n) {
      const deadline = Date.now() + 5000;
      while (got.length < n) {
        if (Date.now() > deadline) throw new Error(`${got.length} of ${n} frames within 5 s`);
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 50);
        });
      }
      return got.splice(0, n);
    },
    async [Symbol.asyncDispose]() {
      socket.destroy();
      await link.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

let seq = 1000;
const command = (name: KvmiCommand, payload: Uint8Array): Uint8Array => encodeMessage(v7.commandId(name)!, ++seq, payload);
const readPhysical = (gpa: number, size: number): Uint8Array => command('READ_PHYSICAL', LAYOUTS.READ_PHYSICAL.encodeRequest({ gpa: BigInt(gpa), size: BigInt(size) }));
const writePhysical = (gpa: number, data: Uint8Array): Uint8Array => command('WRITE_PHYSICAL', LAYOUTS.WRITE_PHYSICAL.encodeRequest({ gpa: BigInt(gpa), data }));

test('READ_PHYSICAL of RAM is answered by the socket thread, as the session answers it; other reads reach the session', async () => {
  await using t = await rawTool();
  for (let i = 0; i < 4096; i++) t.target.ram[0x2000 + i] = (i * 13) & 0xff;
  t.send(readPhysical(0x2000, 4096), readPhysical(FAKE_RAM_SIZE - KVMI_MAX_REPLY_DATA, KVMI_MAX_REPLY_DATA));
  const [a, b] = await t.frames(2);
  assert.deepEqual([a!.id, a!.seq, a!.size], [v7.commandId('READ_PHYSICAL'), seq - 1, 8 + 4096]);
  assert.deepEqual(decodeReply(a!.payload), { err: 0, data: t.target.ram.slice(0x2000, 0x3000) });
  assert.equal(b!.size, 8 + KVMI_MAX_REPLY_DATA, 'the largest reply');
  assert.equal(t.target.physicalReads, 0, 'no read went through the session');

  // Not RAM, too large, empty: the session's errors.
  t.send(readPhysical(FAKE_RAM_SIZE - 1, 2), readPhysical(0, KVMI_MAX_REPLY_DATA + 1), readPhysical(0, 0));
  const errors = (await t.frames(3)).map((f) => decodeReply(f.payload).err);
  assert.deepEqual(errors, [errorNumber('ENOENT'), errorNumber('EINVAL'), errorNumber('EINVAL')]);
  assert.equal(t.target.physicalReads, 1, 'the session read (and refused) the range past RAM');
});

test('a READ_PHYSICAL right behind a WRITE_PHYSICAL in one write sees the written bytes, replies in order', async () => {
  await using t = await rawTool();
  const batch: Uint8Array[] = [];
  for (let i = 0; i < 50; i++) batch.push(writePhysical(0x4000, Uint8Array.of(i, i + 1, i + 2)), readPhysical(0x4000, 3));
  t.send(...batch);
  const frames = await t.frames(100);
  for (let i = 0; i < 50; i++) {
    const w = frames[2 * i]!;
    const r = frames[2 * i + 1]!;
    assert.equal(w.id, v7.commandId('WRITE_PHYSICAL'), `reply ${2 * i} answers the write`);
    assert.deepEqual(decodeReply(r.payload).data, Uint8Array.of(i, i + 1, i + 2), `read ${i} after write ${i}`);
  }
});

test('replies written straight from guest RAM, then queued behind a full socket: every byte arrives, in order', async () => {
  await using t = await rawTool();
  for (let i = 0; i < FAKE_RAM_SIZE; i++) t.target.ram[i] = (i * 7 + (i >> 12)) & 0xff;
  t.socket.pause(); // the socket fills: writes are refused (EAGAIN) and the replies queued as copies
  const n = 300;
  const reads: Uint8Array[] = [];
  for (let i = 0; i < n; i++) reads.push(readPhysical((i * 4096) % (FAKE_RAM_SIZE - 8192), KVMI_MAX_REPLY_DATA));
  t.send(...reads);
  await new Promise((r) => setTimeout(r, 200));
  t.socket.resume();
  const frames = await t.frames(n);
  frames.forEach((f, i) => {
    const gpa = (i * 4096) % (FAKE_RAM_SIZE - 8192);
    assert.equal(f.seq, seq - n + 1 + i, `reply ${i} in order`);
    assert.deepEqual(decodeReply(f.payload).data, t.target.ram.slice(gpa, gpa + KVMI_MAX_REPLY_DATA), `reply ${i} intact`);
  });
});

test('with replies switched off, a READ_PHYSICAL closes the connection instead of being answered', async () => {
  await using t = await rawTool();
  t.send(command('CONTROL_CMD_RESPONSE', LAYOUTS.CONTROL_CMD_RESPONSE.encodeRequest({ enable: false, now: true })), readPhysical(0, 16));
  await t.closed;
  assert.ok(t.logs.some((l) => l.includes('protocol violation')), t.logs.join('\n'));
});

test('a header announcing more than 8184 bytes closes the connection', async () => {
  await using t = await rawTool();
  const bad = new Uint8Array(8);
  new DataView(bad.buffer).setUint16(2, 8185, true);
  t.send(readPhysical(0, 8));
  const [r] = await t.frames(1);
  assert.equal(decodeReply(r!.payload).err, 0, 'the read before it is answered');
  t.send(bad);
  await t.closed;
  assert.ok(t.logs.some((l) => l.includes('protocol violation') && l.includes('8185')), t.logs.join('\n'));
});

test('a tool that sends reads and never takes the replies: bounded memory, the main thread unaffected, a clean end', async () => {
  await using t = await rawTool();
  t.socket.pause();
  const before = process.memoryUsage().rss;
  const reads: Uint8Array[] = [];
  for (let i = 0; i < 20_000; i++) reads.push(readPhysical(0, KVMI_MAX_REPLY_DATA)); // 160 MB of replies
  t.send(...reads);
  // The main thread keeps its pace meanwhile.
  let lateMs = 0;
  for (let i = 0; i < 20; i++) {
    const at = performance.now();
    await new Promise((r) => setTimeout(r, 10));
    lateMs = Math.max(lateMs, performance.now() - at - 10);
  }
  const grown = (process.memoryUsage().rss - before) / (1 << 20);
  assert.ok(grown < 64, `RSS grew by ${grown.toFixed(0)} MiB`);
  assert.ok(lateMs < 500, `a 10 ms timer came ${lateMs.toFixed(0)} ms late`);
  t.socket.destroy();
  await t.link.stopped; // no reconnect: the link stops once the session and its thread are done
  assert.equal(t.link.session, undefined, 'the session ended when the tool went');
});

test('a reply to a vCPU\'s own event that names another event closes the connection and releases the vCPU', async () => {
  await using t = await rawTool();
  t.send(command('CONTROL_EVENTS', LAYOUTS.CONTROL_EVENTS.encodeRequest({ vcpu: 0, event: v7.eventId('BREAKPOINT')!, enable: true })));
  assert.equal(decodeReply((await t.frames(1))[0]!.payload).err, 0);
  const hit = t.target.sendOwnEvent(0, { event: 'BREAKPOINT', gpa: 0x1000n, insnLength: 1 });
  assert.ok(hit !== undefined, 'enabled: the vCPU sends it itself');
  const [ev] = await t.frames(1);
  assert.equal(ev!.id, v7.eventMessage);
  // Right vCPU and seq, wrong event: the socket thread leaves it to the session, which closes.
  t.send(encodeMessage(v7.eventReplyMessage, ev!.seq, encodeEventReply(v7, { vcpu: 0, action: 0, event: 'SINGLESTEP' })));
  await t.closed;
  assert.equal(await hit, 'continue');
  assert.ok(t.logs.some((l) => l.includes('protocol violation') && l.includes('names event')), t.logs.join('\n'));
});

/** A vCPU that may send breakpoints itself, once the socket thread offers the reading side. */
async function ownReader(t: RawTool): Promise<void> {
  t.send(command('CONTROL_EVENTS', LAYOUTS.CONTROL_EVENTS.encodeRequest({ vcpu: 0, event: v7.eventId('BREAKPOINT')!, enable: true })));
  assert.equal(decodeReply((await t.frames(1))[0]!.payload).err, 0);
  const deadline = Date.now() + 5000;
  while (!t.target.eventSlots.offersReading) {
    if (Date.now() > deadline) throw new Error('the socket thread never offered the reading side');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Bytes handed to the kernel before the blocking readOwnReply runs on this thread. */
const written = (t: RawTool, bytes: Uint8Array): Promise<void> => new Promise((resolve) => t.socket.write(bytes, () => resolve()));

/** vCPU `vcpu` sends a breakpoint event itself, taking the reading side if it can; the event as the tool got it. */
async function breakpointOut(t: RawTool, vcpu = 0): Promise<{ hit: Promise<KvmiAction>; ev: Frame }> {
  const hit = t.target.sendOwnEvent(vcpu, { event: 'BREAKPOINT', gpa: 0x1000n, insnLength: 1 }, true);
  assert.ok(hit !== undefined, 'enabled: the vCPU sends it itself');
  const [ev] = await t.frames(1);
  return { hit, ev: ev! };
}

/** The tool's reply to breakpoint event `ev` of vCPU `vcpu`: action 0 CONTINUE, 1 RETRY. */
const breakpointReply = (ev: Frame, vcpu: number, action: number): Uint8Array =>
  encodeMessage(v7.eventReplyMessage, ev.seq, encodeEventReply(v7, { vcpu, action, event: 'BREAKPOINT' }));

test('a vCPU reads the reply to its own event itself, then hands the socket back: the next command is answered', async () => {
  await using t = await rawTool();
  await ownReader(t);
  const { hit, ev } = await breakpointOut(t);
  assert.equal(t.target.eventSlots.reading(0), true, 'the vCPU took the reading side as it sent');
  await written(t, breakpointReply(ev, 0, 1));
  assert.equal(readOwnReply(t.target.eventSlots, 0, 0, 2000), true, 'answered by the vCPU');
  assert.equal(t.target.eventSlots.reading(0), false);
  assert.equal(await hit, 'retry');
  t.send(readPhysical(0x2000, 16));
  const [r] = await t.frames(1);
  assert.equal(decodeReply(r!.payload).err, 0, 'the socket thread reads again');
});

test('a command ahead of the reply: the vCPU leaves both to the socket thread, in order', async () => {
  await using t = await rawTool();
  await ownReader(t);
  const { hit, ev } = await breakpointOut(t);
  assert.equal(t.target.eventSlots.reading(0), true);
  t.target.ram.set([9, 8, 7], 0x3000);
  await written(t, Buffer.concat([readPhysical(0x3000, 3), breakpointReply(ev, 0, 0)]));
  assert.equal(readOwnReply(t.target.eventSlots, 0, 0, 2000), false, 'not its reply first: handed back');
  const [r] = await t.frames(1);
  assert.deepEqual([...decodeReply(r!.payload).data], [9, 8, 7]);
  assert.equal(await hit, 'continue', 'the socket thread answered the vCPU');
});

test('a tool slower than the vCPU waits, or gone, leaves the reply to the socket thread or the session', async () => {
  await using t = await rawTool();
  await ownReader(t);
  const first = await breakpointOut(t);
  assert.equal(t.target.eventSlots.reading(0), true);
  const start = performance.now();
  assert.equal(readOwnReply(t.target.eventSlots, 0, 0, 20), false, 'no reply within 20 ms');
  assert.ok(performance.now() - start >= 19, 'it waited');
  t.send(breakpointReply(first.ev, 0, 1));
  assert.equal(await first.hit, 'retry', 'the socket thread answered the late reply');

  while (!t.target.eventSlots.offersReading) await new Promise((resolve) => setTimeout(resolve, 5));
  const second = await breakpointOut(t);
  assert.equal(t.target.eventSlots.reading(0), true);
  t.socket.destroy();
  await t.closed;
  assert.equal(readOwnReply(t.target.eventSlots, 0, 0, 2000), false, 'the connection closed');
  assert.equal(await second.hit, 'continue', 'the session ended and released the vCPU');
});

test('part of a reply when the vCPU stops waiting: the bytes it read go back to the socket thread, which completes the frame', async () => {
  await using t = await rawTool();
  await ownReader(t);
  const { hit, ev } = await breakpointOut(t);
  assert.equal(t.target.eventSlots.reading(0), true);
  const reply = breakpointReply(ev, 0, 1);
  await written(t, reply.subarray(0, 10));
  assert.equal(readOwnReply(t.target.eventSlots, 0, 0, 20), false, 'the rest did not come in time');
  t.send(reply.subarray(10));
  assert.equal(await hit, 'retry', 'the socket thread put the two parts together');
  t.send(readPhysical(0x2000, 4));
  assert.equal(decodeReply((await t.frames(1))[0]!.payload).err, 0, 'and the stream is intact');
});

test('two vCPUs\' events out, the other one\'s reply first: the reading vCPU hands it over, both get their answers', async () => {
  await using t = await rawTool();
  t.send(command('CONTROL_EVENTS', LAYOUTS.CONTROL_EVENTS.encodeRequest({ vcpu: 1, event: v7.eventId('BREAKPOINT')!, enable: true })));
  assert.equal(decodeReply((await t.frames(1))[0]!.payload).err, 0);
  await ownReader(t);
  const a = await breakpointOut(t, 0);
  const b = await breakpointOut(t, 1);
  assert.equal(t.target.eventSlots.reading(0), true);
  assert.equal(t.target.eventSlots.reading(1), false, 'one reader at a time');
  await written(t, Buffer.concat([breakpointReply(b.ev, 1, 1), breakpointReply(a.ev, 0, 0)]));
  assert.equal(readOwnReply(t.target.eventSlots, 0, 0, 2000), false, 'vCPU 1\'s reply came first');
  assert.equal(await b.hit, 'retry');
  assert.equal(await a.hit, 'continue');
});
