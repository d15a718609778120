/**
 * Random, mutated and glued messages thrown at the VM side, and random messages thrown at the
 * client. The session must never throw, never hang, answer every command it keeps reading,
 * in order, with well-formed replies (or close the connection), and leave the target clean:
 * no vCPU blocked, no vCPU paused, no hook left. Seeded, so failures reproduce.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { listen } from './client.js';
import { encodeHello, parseUuid } from './handshake.js';
import { KvmiSession, type SessionTransport } from './session.js';
import { FakeTarget, type EventOutcome } from './testing/fake-target.js';
import { prng } from '../testing/prng.js';
import { sampleRegs } from './testing/wire-samples.js';
import { LAYOUTS } from './wire/commands.js';
import { KVMI_ERRNO } from './wire/errors.js';
import { encodeEvent, encodeEventReply } from './wire/events.js';
import { FrameReader } from './wire/frame-reader.js';
import { decodeReply, encodeMessage, encodeReply, KVMI_MAX_PAYLOAD, type Frame } from './wire/header.js';
import { dialect, KVMI_EVENTS, type KvmiCommand, type KvmiEventName } from './wire/ids.js';
import { zeroSnapshot } from './wire/vcpu-state.js';

const v7 = dialect('v7');
const EVENT_SAMPLES: ReadonlyArray<[KvmiEventName, unknown]> = [
  ['BREAKPOINT', { gpa: 0x1000n, insnLength: 1 }],
  ['MSR', { msr: 0x174, oldValue: 1n, newValue: 2n }],
  ['PF', { gva: 0n, gpa: 0x5000n, access: 2, view: 0 }],
  ['PAUSE_VCPU', null],
  ['UNHOOK', null],
  ['SINGLESTEP', { failed: false }],
];
const ERRNOS = new Set<number>([0, ...Object.values(KVMI_ERRNO).map((n) => -n)]);

type Rand = () => number;
const pick = <T>(rand: Rand, xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
const int = (rand: Rand, n: number): number => Math.floor(rand() * n);
const bytes = (rand: Rand, n: number): Uint8Array => Uint8Array.from({ length: n }, () => int(rand, 256));

/** A well-formed request of a random command, with random (often out-of-range) fields. */
function validRequest(rand: Rand): { command: KvmiCommand; payload: Uint8Array } {
  const vcpu = pick(rand, [0, 1, 1, 2, 65535]);
  const gpa = pick(rand, [0x1000n, 0x3ff8n, 0xf_f000n, 0x10_0000n, 0xfffc_1000n, 0xffff_ffff_ffff_f000n]);
  const event = int(rand, 15);
  const enable = rand() < 0.7;
  const gen: Partial<Record<keyof typeof LAYOUTS, () => Uint8Array>> = {
    GET_VERSION: () => LAYOUTS.GET_VERSION.encodeRequest(null),
    CHECK_COMMAND: () => LAYOUTS.CHECK_COMMAND.encodeRequest({ id: int(rand, 70) }),
    CHECK_EVENT: () => LAYOUTS.CHECK_EVENT.encodeRequest({ id: int(rand, 16) }),
    GET_GUEST_INFO: () => LAYOUTS.GET_GUEST_INFO.encodeRequest(null),
    GET_VCPU_INFO: () => LAYOUTS.GET_VCPU_INFO.encodeRequest({ vcpu }),
    PAUSE_VCPU: () => LAYOUTS.PAUSE_VCPU.encodeRequest({ vcpu, wait: rand() < 0.5 }),
    CONTROL_VM_EVENTS: () => LAYOUTS.CONTROL_VM_EVENTS.encodeRequest({ event, enable }),
    CONTROL_EVENTS: () => LAYOUTS.CONTROL_EVENTS.encodeRequest({ vcpu, event, enable }),
    CONTROL_CR: () => LAYOUTS.CONTROL_CR.encodeRequest({ vcpu, enable, register: 3 }),
    CONTROL_MSR: () => LAYOUTS.CONTROL_MSR.encodeRequest({ vcpu, enable, register: pick(rand, [0x174, 0xc000_0082, 0x830, 0x4000_0000]) }),
    GET_REGISTERS: () => LAYOUTS.GET_REGISTERS.encodeRequest({ vcpu, msrs: Array.from({ length: int(rand, 4) }, () => pick(rand, [0x174, 0xc000_0080, 0x4000_0000])) }),
    SET_REGISTERS: () => LAYOUTS.SET_REGISTERS.encodeRequest({ vcpu, regs: sampleRegs() }),
    GET_CPUID: () => LAYOUTS.GET_CPUID.encodeRequest({ vcpu, function: pick(rand, [0, 7, 0x4000_0000]), index: 0 }),
    GET_XSAVE: () => LAYOUTS.GET_XSAVE.encodeRequest({ vcpu }),
    READ_PHYSICAL: () => LAYOUTS.READ_PHYSICAL.encodeRequest({ gpa, size: pick(rand, [0n, 1n, 8n, 4096n, 8176n, 8177n, 1n << 63n]) }),
    WRITE_PHYSICAL: () => LAYOUTS.WRITE_PHYSICAL.encodeRequest({ gpa, data: bytes(rand, int(rand, 32)) }),
    INJECT_EXCEPTION: () => LAYOUTS.INJECT_EXCEPTION.encodeRequest({ vcpu, vector: int(rand, 40), errorCode: 0, address: gpa }),
    GET_PAGE_ACCESS: () => LAYOUTS.GET_PAGE_ACCESS.encodeRequest({ view: int(rand, 2), gpas: [gpa, 0x2000n] }),
    SET_PAGE_ACCESS: () => LAYOUTS.SET_PAGE_ACCESS.encodeRequest({ view: int(rand, 2), entries: [{ gpa, access: int(rand, 16) }, { gpa: 0x5000n, access: 5 }] }),
    CONTROL_CMD_RESPONSE: () => LAYOUTS.CONTROL_CMD_RESPONSE.encodeRequest({ enable: rand() < 0.6, now: rand() < 0.5 }),
    GET_MAX_GFN: () => LAYOUTS.GET_MAX_GFN.encodeRequest(null),
    VCPU_TRANSLATE_GVA: () => LAYOUTS.VCPU_TRANSLATE_GVA.encodeRequest({ vcpu, gva: gpa }),
    VCPU_GET_XCR: () => LAYOUTS.VCPU_GET_XCR.encodeRequest({ vcpu, xcr: int(rand, 2) }),
    QUERY_PHYSICAL: () => LAYOUTS.QUERY_PHYSICAL.encodeRequest({ gpa }),
    VCPU_CONTROL_SINGLESTEP: () => LAYOUTS.VCPU_CONTROL_SINGLESTEP.encodeRequest({ vcpu, enable }),
  };
  const command = pick(rand, Object.keys(gen)) as keyof typeof gen;
  return { command, payload: gen[command]!() };
}

function mutate(rand: Rand, p: Uint8Array): Uint8Array {
  const r = rand();
  if (r < 0.4 && p.length > 0) {
    const out = Uint8Array.from(p);
    for (let i = 1 + int(rand, 3); i > 0; i--) out[int(rand, out.length)] = int(rand, 256);
    return out;
  }
  if (r < 0.7) return p.subarray(0, int(rand, p.length + 1));
  const out = new Uint8Array(p.length + 1 + int(rand, 16));
  out.set(p);
  return out;
}

/** One message (or garbage) of the fuzzed stream. */
function randomChunk(rand: Rand, seq: () => number): Uint8Array {
  const r = rand();
  if (r < 0.72) {
    const { command, payload } = validRequest(rand);
    return encodeMessage(v7.commandId(command)!, seq(), rand() < 0.25 ? mutate(rand, payload) : payload);
  }
  if (r < 0.82) return encodeMessage(int(rand, 70), seq(), bytes(rand, int(rand, 40))); // any id
  if (r < 0.86) {
    // An event reply, usually for nothing outstanding.
    const event = pick(rand, KVMI_EVENTS);
    return encodeMessage(v7.eventReplyMessage, rand() < 0.5 ? int(rand, 4) : seq(),
      encodeEventReply(v7, { vcpu: int(rand, 3), action: int(rand, 4), event } as Parameters<typeof encodeEventReply>[1]));
  }
  if (r < 0.95) return encodeMessage(27, seq(), LAYOUTS.CONTROL_CMD_RESPONSE.encodeRequest({ enable: rand() < 0.8, now: rand() < 0.5 }));
  if (r < 0.99) return bytes(rand, 1 + int(rand, 12)); // raw garbage: may break the framing
  const h = new Uint8Array(8); // a header announcing too much
  new DataView(h.buffer).setUint16(2, KVMI_MAX_PAYLOAD + 1 + int(rand, 100), true);
  return h;
}

class MemoryTransport implements SessionTransport {
  readonly writes: Uint8Array[] = [];
  closed = false;
  write(b: Uint8Array): void {
    assert.ok(!this.closed, 'no write after close');
    this.writes.push(Uint8Array.from(b));
  }
  close(): void {
    this.closed = true;
  }
}

/** The replies the stream asks for, in order, following the CONTROL_CMD_RESPONSE rules. */
function expectedReplies(frames: Frame[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let on = true;
  for (const f of frames) {
    if (f.id === v7.eventReplyMessage) continue;
    if (f.id === v7.eventMessage) break; // the session closes there
    if (f.id === 27) {
      const p = f.payload;
      const valid = p.length === 8 && (p[0] ?? 9) <= 1 && (p[1] ?? 9) <= 1 && p.subarray(2).every((b) => b === 0);
      if (valid && p[1] === 1) on = p[0] === 1;
      if (on) out.push([f.id, f.seq]);
      if (valid && p[1] === 0) on = p[0] === 1;
      continue;
    }
    if (on) out.push([f.id, f.seq]);
  }
  return out;
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: hung`)), ms))),
  ]);
}

test('fuzzed streams: no throw, no hang, replies in order or a close, a clean target after', async () => {
  const rand = prng(0x6b766d69);
  let replies = 0;
  let closes = 0;
  for (let round = 0; round < 300; round++) {
    const target = new FakeTarget(2);
    const wire = new MemoryTransport();
    const session = new KvmiSession(target, wire, { log: () => undefined });
    session.start();
    let n = 1;
    const seq = (): number => n++;
    const input = Buffer.concat(Array.from({ length: 1 + int(rand, 25) }, () => randomChunk(rand, seq)));
    const raised: Array<Promise<EventOutcome>> = [];
    for (let at = 0; at < input.length; ) {
      const step = 1 + int(rand, rand() < 0.5 ? 8 : 400);
      const chunk = input.subarray(at, at + step);
      assert.doesNotThrow(() => session.receive(chunk), `round ${round}`);
      at += step;
      if (rand() < 0.1) raised.push(target.breakpoint(int(rand, 2), 0x1000n, 0x1000n));
      if (rand() < 0.05) raised.push(target.msrWrite(int(rand, 2), 0x174, 1n));
      if (rand() < 0.05) raised.push(target.pageWrite(int(rand, 2), 0x5000n));
      if (rand() < 0.3) await new Promise((r) => setImmediate(r));
    }
    await within(session.idle(), 2000, `round ${round} idle`);
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));

    // What the session read, parsed the same way (stopping where the framing broke).
    let frames: Frame[];
    try {
      frames = new FrameReader().push(input);
    } catch {
      frames = [];
      const r2 = new FrameReader();
      for (let i = 0; i < input.length; i++) {
        try {
          frames.push(...r2.push(input.subarray(i, i + 1)));
        } catch {
          break;
        }
      }
    }
    const got: Array<[number, number]> = [];
    for (const w of wire.writes) {
      const fs = new FrameReader().push(w);
      assert.equal(fs.length, 1, 'one message per write');
      const f = fs[0]!;
      if (f.id === v7.eventMessage) continue;
      const { err, data } = decodeReply(f.payload);
      assert.ok(ERRNOS.has(err), `round ${round}: error ${err}`);
      if (err !== 0) assert.equal(data.length, 0);
      got.push([f.id, f.seq]);
      replies++;
    }
    const want = expectedReplies(frames);
    assert.deepEqual(got, want.slice(0, got.length), `round ${round}: replies out of order or unasked`);
    if (!session.closed) assert.equal(got.length, want.length, `round ${round}: a command went unanswered`);
    else closes++;

    await within(session.close('round over'), 2000, `round ${round} close`);
    const outcomes = await within(Promise.all(raised), 2000, `round ${round}: a vCPU stayed blocked`);
    assert.ok(outcomes.every((o) => ['continue', 'retry', 'crash'].includes(o.action)));
    assert.equal(target.sink, null);
    assert.ok(target.vcpus.every((v) => !v.held), `round ${round}: a vCPU stayed paused`);
    assert.equal(target.breakpointIntercepts.size + target.singleStepping.size + target.msrIntercepts.size + target.writeProtected.size, 0,
      `round ${round}: hooks left: ${target.calls.join('; ')}`);
  }
  assert.ok(replies > 1000, `only ${replies} replies: the generator is too timid`);
  assert.ok(closes > 20 && closes < 290, `${closes} closes: the generator is unbalanced`);
});

test('fuzzed VMs: the client never throws out, and a broken VM ends in a closed connection', async () => {
  const rand = prng(0xc11e47);
  const dir = mkdtempSync(join(tmpdir(), 'nodevisor-kvmi-fuzz-'));
  const path = join(dir, 'tool.sock');
  const listener = await listen(path);
  try {
    for (let round = 0; round < 40; round++) {
      const sock = net.connect(path);
      await new Promise<void>((resolve) => sock.once('connect', () => resolve()));
      const reader = new FrameReader();
      let stage = 0;
      sock.on('data', (chunk: Buffer) => {
        if (stage === 0) {
          stage = 1; // the 24-byte tool answer; the GET_VERSION may be glued to it
          chunk = chunk.subarray(24);
        }
        for (const f of reader.push(chunk)) {
          if (f.id === 2 && stage === 1) {
            stage = 2;
            sock.write(encodeReply(2, f.seq, 0, LAYOUTS.GET_VERSION.encodeReply({ version: 1, features: { spp: false, vmfunc: false, eptp: false, ve: false } })));
          }
        }
      });
      sock.on('error', () => undefined);
      sock.write(encodeHello({ uuid: parseUuid(undefined), startTime: 0n, name: `fuzz${round}` }));
      const vm = await within(listener.accept(), 2000, 'accept');
      const events = (async () => {
        for await (const e of vm.events()) await e.reply('continue').catch(() => undefined);
      })();
      const pending = [vm.getGuestInfo(), vm.readPhysical(0, 4), vm.getRegisters(0)].map((p) => p.catch(() => undefined));
      const parts: Uint8Array[] = [];
      for (let i = 1 + int(rand, 6); i > 0; i--) {
        const r = rand();
        if (r < 0.4) {
          const [event, data] = pick(rand, EVENT_SAMPLES);
          const payload = encodeEvent(v7, { vcpu: 0, event, state: zeroSnapshot(), data } as Parameters<typeof encodeEvent>[1]);
          parts.push(encodeMessage(1, int(rand, 100), rand() < 0.5 ? mutate(rand, payload) : payload));
        } else if (r < 0.7) {
          parts.push(encodeMessage(pick(rand, [5, 17, 13, 99]), 2 + int(rand, 4), bytes(rand, int(rand, 20))));
        } else {
          parts.push(bytes(rand, 1 + int(rand, 30)));
        }
      }
      sock.write(Buffer.concat(parts));
      await new Promise((r) => setTimeout(r, 5));
      sock.end();
      await within(vm.closed, 2000, `round ${round}: the client noticed the end`);
      await within(Promise.all(pending), 2000, `round ${round}: commands settled`);
      await within(events, 2000, `round ${round}: the event stream ended`);
      sock.destroy();
    }
  } finally {
    await listener.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
