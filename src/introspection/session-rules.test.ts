/**
 * The session's protocol discipline at the byte level, with an in-memory transport: which
 * messages get replies, batches, size and padding checks, and what closes the connection.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { KvmiSession, MAX_PENDING_PAUSES, type SessionTransport } from './session.js';
import { FakeTarget } from './testing/fake-target.js';
import { sampleRegs } from './testing/wire-samples.js';
import { LAYOUTS } from './wire/commands.js';
import { decodeEvent, encodeEventReply } from './wire/events.js';
import { FrameReader } from './wire/frame-reader.js';
import { decodeReply, encodeMessage, KVMI_MAX_PAYLOAD, type Frame } from './wire/header.js';
import { dialect, type DialectName, type KvmiCommand } from './wire/ids.js';

const v7 = dialect('v7');

class MemoryTransport implements SessionTransport {
  readonly writes: Uint8Array[] = [];
  closed = false;
  write(bytes: Uint8Array): void {
    this.writes.push(Uint8Array.from(bytes));
  }
  close(): void {
    this.closed = true;
  }
  /** Every write, parsed on its own: each must be exactly one whole message. */
  frames(): Frame[] {
    return this.writes.map((w) => {
      const frames = new FrameReader().push(w);
      assert.equal(frames.length, 1, 'one message per write');
      return frames[0]!;
    });
  }
  replies(): Frame[] {
    return this.frames().filter((f) => f.id !== v7.eventMessage);
  }
  events(): Frame[] {
    return this.frames().filter((f) => f.id === v7.eventMessage);
  }
}

function harness(target = new FakeTarget(2), d: DialectName = 'v7') {
  const wire = new MemoryTransport();
  const logs: string[] = [];
  const session = new KvmiSession(target, wire, { dialect: d, log: (l, m) => logs.push(`${l}: ${m}`) });
  session.start();
  let seq = 100;
  const send = (command: KvmiCommand | number, payload: Uint8Array = new Uint8Array(0), s = ++seq): Uint8Array => {
    const id = typeof command === 'number' ? command : dialect(d).commandId(command)!;
    return encodeMessage(id, s, payload);
  };
  return { target, wire, logs, session, send };
}

async function settle(s: KvmiSession): Promise<void> {
  for (let i = 0; i < 5; i++) {
    await s.idle();
    await new Promise((r) => setImmediate(r));
  }
}

const err = (f: Frame | undefined): number => decodeReply(f!.payload).err;
const cmdResponse = (enable: boolean, now: boolean): Uint8Array => LAYOUTS.CONTROL_CMD_RESPONSE.encodeRequest({ enable, now });
const pause = (vcpu: number, wait = true): Uint8Array => LAYOUTS.PAUSE_VCPU.encodeRequest({ vcpu, wait });

test('a reply echoes the id and seq of its command', async () => {
  const h = harness();
  h.session.receive(h.send('GET_GUEST_INFO', undefined, 0xdead_beef));
  h.session.receive(h.send(200, undefined, 7));
  await settle(h.session);
  const [a, b] = h.wire.replies();
  assert.deepEqual([a!.id, a!.seq, err(a)], [5, 0xdead_beef, 0]);
  assert.deepEqual([b!.id, b!.seq, err(b)], [200, 7, -1000], 'unknown id: -ENOSYS');
  assert.equal(b!.payload.length, 8, 'an error reply is the error code alone');
});

test('libkvmi\'s pause-all batch gets exactly one reply, to the last message', async () => {
  const h = harness();
  const batch = Buffer.concat([
    h.send('CONTROL_CMD_RESPONSE', cmdResponse(false, true), 1),
    h.send('PAUSE_VCPU', pause(0), 2),
    h.send('PAUSE_VCPU', pause(1), 3),
    h.send('CONTROL_CMD_RESPONSE', cmdResponse(true, true), 4),
  ]);
  h.session.receive(batch);
  await settle(h.session);
  assert.deepEqual(h.wire.replies().map((f) => [f.seq, err(f)]), [[4, 0]]);
  const events = h.wire.events().map((f) => decodeEvent(v7, f.payload));
  assert.deepEqual(events.map((e) => `${e.event} ${e.vcpu}`).sort(), ['PAUSE_VCPU 0', 'PAUSE_VCPU 1']);
  assert.ok(h.target.vcpus.every((v) => v.held));
});

test('CONTROL_CMD_RESPONSE: `now` decides whether the switch governs its own reply', async () => {
  const h = harness();
  h.session.receive(h.send('CONTROL_CMD_RESPONSE', cmdResponse(false, false), 1)); // answered, then off
  h.session.receive(h.send('CONTROL_EVENTS', LAYOUTS.CONTROL_EVENTS.encodeRequest({ vcpu: 0, event: 4, enable: true }), 2));
  h.session.receive(h.send('CONTROL_CMD_RESPONSE', cmdResponse(true, false), 3)); // not answered, then on
  h.session.receive(h.send('CONTROL_CMD_RESPONSE', Uint8Array.of(2, 0, 0, 0, 0, 0, 0, 0), 4)); // invalid: EINVAL, no change
  h.session.receive(h.send('CONTROL_CMD_RESPONSE', Uint8Array.of(0, 1, 0, 0, 0, 0, 1, 0), 5)); // padding: EINVAL
  h.session.receive(h.send('GET_GUEST_INFO', undefined, 6));
  await settle(h.session);
  assert.deepEqual(h.wire.replies().map((f) => [f.seq, err(f)]), [[1, 0], [4, -22], [5, -22], [6, 0]]);
  assert.ok(h.target.breakpointIntercepts.has(0), 'the silent command was carried out');
});

test('an event reply batch (SET_REGISTERS + EVENT_REPLY) runs in order, silently', async () => {
  const h = harness();
  h.session.receive(h.send('CONTROL_EVENTS', LAYOUTS.CONTROL_EVENTS.encodeRequest({ vcpu: 1, event: 4, enable: true })));
  await settle(h.session);
  const hit = h.target.breakpoint(1, 0x1000n, 0x1000n);
  await settle(h.session);
  const [ev] = h.wire.events();
  const regs = { ...sampleRegs(), rip: 0x4242n };
  h.session.receive(Buffer.concat([
    h.send('CONTROL_CMD_RESPONSE', cmdResponse(false, true)),
    h.send('SET_REGISTERS', LAYOUTS.SET_REGISTERS.encodeRequest({ vcpu: 1, regs })),
    encodeMessage(v7.eventReplyMessage, ev!.seq, encodeEventReply(v7, { vcpu: 1, action: 1, event: 'BREAKPOINT' })),
    h.send('CONTROL_CMD_RESPONSE', cmdResponse(true, false)),
  ]));
  assert.deepEqual(await hit, { action: 'retry' });
  await settle(h.session);
  assert.equal(h.wire.replies().length, 1, 'only the CONTROL_EVENTS before the batch');
  assert.equal(h.target.vcpus[1]!.regs.rip, 0x4242n, 'registers set before the vCPU was released');
  const order = h.target.calls.filter((c) => c.startsWith('setRegisters'));
  assert.deepEqual(order, ['setRegisters 1']);
});

test('with replies off, a command that must answer closes the connection', async () => {
  for (const [what, command, payload] of [
    ['a data command', 'GET_GUEST_INFO', new Uint8Array(0)],
    ['an unknown id', 250, new Uint8Array(0)],
    ['an unsupported command', 'CONTROL_CR', new Uint8Array(16)],
  ] as const) {
    const h = harness();
    h.session.receive(h.send('CONTROL_CMD_RESPONSE', cmdResponse(false, true)));
    h.session.receive(h.send(command, payload));
    await settle(h.session);
    assert.ok(h.wire.closed, what);
    assert.equal(h.wire.replies().length, 0, what);
    await h.session.ended;
  }
});

test('bad sizes and non-zero padding are EINVAL; the connection stays', async () => {
  const h = harness();
  const good = LAYOUTS.GET_CPUID.encodeRequest({ vcpu: 0, function: 0, index: 0 });
  const longer = new Uint8Array(good.length + 1);
  longer.set(good);
  const padded = Uint8Array.from(good);
  padded[3] = 1; // vcpu header padding
  h.session.receive(h.send('GET_CPUID', good.subarray(0, 12), 1));
  h.session.receive(h.send('GET_CPUID', longer, 2));
  h.session.receive(h.send('GET_CPUID', padded, 3));
  h.session.receive(h.send('GET_VERSION', Uint8Array.of(0), 4));
  h.session.receive(h.send('PAUSE_VCPU', Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0), 5)); // wait = 2
  h.session.receive(h.send('GET_CPUID', good, 6));
  await settle(h.session);
  assert.deepEqual(h.wire.replies().map((f) => [f.seq, err(f)]), [[1, -22], [2, -22], [3, -22], [4, -22], [5, -22], [6, 0]]);
  assert.ok(!h.wire.closed);
});

test('a header announcing more than 8184 bytes closes the connection', async () => {
  const h = harness();
  const header = new Uint8Array(8);
  new DataView(header.buffer).setUint16(2, KVMI_MAX_PAYLOAD + 1, true);
  h.session.receive(header);
  await h.session.ended;
  assert.ok(h.wire.closed);
  assert.ok(h.logs.some((l) => /protocol violation/.test(l)));
});

test('event replies that do not match the outstanding event close the connection and release the vCPU', async () => {
  const variants: Array<[string, (seq: number) => Uint8Array]> = [
    ['wrong seq', (seq) => encodeMessage(0, seq + 1, encodeEventReply(v7, { vcpu: 0, action: 0, event: 'BREAKPOINT' }))],
    ['wrong vCPU', (seq) => encodeMessage(0, seq, encodeEventReply(v7, { vcpu: 1, action: 0, event: 'BREAKPOINT' }))],
    ['wrong event', (seq) => encodeMessage(0, seq, encodeEventReply(v7, { vcpu: 0, action: 0, event: 'PF' }).subarray(0, 16))],
    ['extra data', (seq) => encodeMessage(0, seq, encodeEventReply(v7, { vcpu: 0, action: 0, event: 'MSR' }))],
    ['unknown action', (seq) => encodeMessage(0, seq, encodeEventReply(v7, { vcpu: 0, action: 7, event: 'BREAKPOINT' }))],
    ['padding', (seq) => {
      const p = encodeEventReply(v7, { vcpu: 0, action: 0, event: 'BREAKPOINT' });
      p[12] = 1;
      return encodeMessage(0, seq, p);
    }],
    ['no event outstanding', () => encodeMessage(0, 999, encodeEventReply(v7, { vcpu: 0, action: 0, event: 'BREAKPOINT' }))],
  ];
  for (const [what, reply] of variants) {
    const h = harness();
    h.session.receive(h.send('CONTROL_EVENTS', LAYOUTS.CONTROL_EVENTS.encodeRequest({ vcpu: 0, event: 4, enable: true })));
    await settle(h.session);
    const hit = h.target.breakpoint(0, 0x1000n, 0x1000n);
    await settle(h.session);
    const [ev] = h.wire.events();
    assert.ok(ev !== undefined);
    h.session.receive(reply(ev.seq));
    assert.deepEqual(await hit, { action: 'continue' }, what);
    await h.session.ended;
    assert.ok(h.wire.closed, what);
    assert.equal(h.target.breakpointIntercepts.size, 0, what);
  }
});

test('an action KVMI does not define for the event is logged and taken as CONTINUE', async () => {
  const h = harness();
  h.session.receive(h.send('CONTROL_EVENTS', LAYOUTS.CONTROL_EVENTS.encodeRequest({ vcpu: 0, event: 2, enable: true })));
  h.session.receive(h.send('CONTROL_MSR', LAYOUTS.CONTROL_MSR.encodeRequest({ vcpu: 0, enable: true, register: 0x174 })));
  await settle(h.session);
  const write = h.target.msrWrite(0, 0x174, 5n);
  await settle(h.session);
  const [ev] = h.wire.events();
  h.session.receive(encodeMessage(0, ev!.seq, encodeEventReply(v7, { vcpu: 0, action: 1, event: 'MSR', data: { newValue: 6n } })));
  assert.deepEqual(await write, { action: 'continue', newValue: 6n });
  assert.ok(h.logs.some((l) => /retry is not defined for MSR/.test(l)));
  assert.ok(!h.wire.closed);
});

test('one event at a time per vCPU, PAUSE_VCPU last; other vCPUs are not held up', async () => {
  const h = harness();
  for (const vcpu of [0, 1]) {
    h.session.receive(h.send('CONTROL_EVENTS', LAYOUTS.CONTROL_EVENTS.encodeRequest({ vcpu, event: 4, enable: true })));
  }
  await settle(h.session);
  const first = h.target.breakpoint(0, 0x1000n, 0x1000n);
  await settle(h.session);
  h.session.receive(h.send('PAUSE_VCPU', pause(0, false)));
  await settle(h.session);
  const second = h.target.breakpoint(0, 0x2000n, 0x2000n);
  const other = h.target.breakpoint(1, 0x3000n, 0x3000n);
  await settle(h.session);
  let events = h.wire.events().map((f) => ({ seq: f.seq, ...decodeEvent(v7, f.payload) }));
  assert.deepEqual(events.map((e) => `${e.event} ${e.vcpu}`), ['BREAKPOINT 0', 'BREAKPOINT 1']);
  const answer = (e: { seq: number; vcpu: number; event: 'BREAKPOINT' | 'PAUSE_VCPU' }): void =>
    h.session.receive(encodeMessage(0, e.seq, encodeEventReply(v7, { vcpu: e.vcpu, action: 0, event: e.event })));
  answer(events[0] as { seq: number; vcpu: number; event: 'BREAKPOINT' });
  await first;
  await settle(h.session);
  events = h.wire.events().map((f) => ({ seq: f.seq, ...decodeEvent(v7, f.payload) }));
  assert.equal(`${events[2]!.event} ${events[2]!.vcpu}`, 'BREAKPOINT 0', 'the breakpoint before the pause');
  answer(events[2] as { seq: number; vcpu: number; event: 'BREAKPOINT' });
  await second;
  await settle(h.session);
  events = h.wire.events().map((f) => ({ seq: f.seq, ...decodeEvent(v7, f.payload) }));
  assert.equal(`${events[3]!.event} ${events[3]!.vcpu}`, 'PAUSE_VCPU 0');
  assert.ok(h.target.vcpus[0]!.held);
  answer(events[3] as { seq: number; vcpu: number; event: 'PAUSE_VCPU' });
  answer(events[1] as { seq: number; vcpu: number; event: 'BREAKPOINT' });
  await other;
  await settle(h.session);
  assert.ok(!h.target.vcpus[0]!.held);
});

test('PAUSE_VCPU: wait=1 answers once the vCPU is out, and the number of owed events is bounded', async () => {
  const h = harness();
  h.target.pauseDelayMs = 30;
  const started = Date.now();
  h.session.receive(h.send('PAUSE_VCPU', pause(1, true), 1));
  await settle(h.session);
  assert.equal(h.wire.replies().length, 1);
  assert.ok(Date.now() - started >= 25, 'not before the vCPU stopped');
  h.target.pauseDelayMs = 0;
  for (let i = 1; i < MAX_PENDING_PAUSES; i++) h.session.receive(h.send('PAUSE_VCPU', pause(1, false)));
  h.session.receive(h.send('PAUSE_VCPU', pause(1, false), 9999));
  await settle(h.session);
  const last = h.wire.replies().at(-1);
  assert.deepEqual([last!.seq, err(last)], [9999, -16], 'EBUSY');
  assert.equal(h.wire.events().length, 1, 'one PAUSE_VCPU event at a time');
  await h.session.close('test over');
  assert.ok(!h.target.vcpus[1]!.held, 'released at the end');
});

test('GET_REGISTERS replies are exactly 472 + 16n bytes; too many MSRs is E2BIG', async () => {
  const h = harness();
  h.session.receive(h.send('GET_REGISTERS', LAYOUTS.GET_REGISTERS.encodeRequest({ vcpu: 0, msrs: [0x174, 0x175, 0x176] }), 1));
  h.session.receive(h.send('GET_REGISTERS', LAYOUTS.GET_REGISTERS.encodeRequest({ vcpu: 0, msrs: Array(482).fill(0x174) }), 2));
  await settle(h.session);
  const [a, b] = h.wire.replies();
  assert.equal(a!.payload.length, 8 + 472 + 16 * 3);
  assert.equal(err(b), -7);
});

test('the RFC v5 numbering: ids from the seed, same answers', async () => {
  const h = harness(new FakeTarget(1), 'rfc-v5');
  h.session.receive(h.send(3, undefined, 1)); // GET_GUEST_INFO
  h.session.receive(h.send(2, undefined, 2)); // CHECK_COMMAND in v7, nothing in v5
  h.session.receive(h.send(27, undefined, 3)); // PAUSE_ALL_VCPUS
  await settle(h.session);
  assert.deepEqual(h.wire.replies().map((f) => [f.id, f.seq, err(f)]), [[3, 1, 0], [2, 2, -1000], [27, 3, -95]]);
});

test('the session never writes after it ended, and ignores input after it', async () => {
  const h = harness();
  await h.session.close('done');
  h.session.receive(h.send('GET_VERSION'));
  await settle(h.session);
  assert.equal(h.wire.writes.length, 0);
  assert.deepEqual(await h.target.breakpoint(0, 0n, 0n), { action: 'continue' });
});
