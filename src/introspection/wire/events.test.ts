import { test } from 'node:test';
import assert from 'node:assert/strict';

import { assertEveryByteAccountedFor, sampleRegs, sampleSregs, sregsPadding } from '../testing/wire-samples.js';
import { KvmiError } from './errors.js';
import {
  decodeEvent, decodeEventReply, decodeEventReplyData, encodeEvent, encodeEventReply, eventDataSize, eventReplyDataSize,
  type EventDataMap,
} from './events.js';
import { dialect, KVMI_EVENTS, type KvmiEventName } from './ids.js';
import { KVMI_EVENT_COMMON_SIZE, type VcpuSnapshot } from './vcpu-state.js';

const v7 = dialect('v7');

const state: VcpuSnapshot = {
  mode: 8, view: 0, regs: sampleRegs(), sregs: sampleSregs(),
  msrs: {
    sysenterCs: 0x10n, sysenterEsp: 0x2000n, sysenterEip: 0x3000n, efer: 0xd01n, star: 0x23001000000000n,
    lstar: 0xffff_ffff_8100_0000n, cstar: 0n, pat: 0x0007_0406_0007_0406n, shadowGs: 0xffff_8880_0000_0000n,
  },
};

const DATA: EventDataMap = {
  UNHOOK: null,
  CR: { cr: 4, oldValue: 0x6f0n, newValue: 0x3706f0n },
  MSR: { msr: 0xc000_0082, oldValue: 1n, newValue: 2n },
  XSETBV: null,
  BREAKPOINT: { gpa: 0x1234n, insnLength: 1 },
  HYPERCALL: null,
  PF: { gva: 0xffff_8000_0000_1000n, gpa: 0x1000n, access: 2, view: 0 },
  TRAP: { vector: 14, errorCode: 2, cr2: 0xdeadn },
  DESCRIPTOR: { descriptor: 1, write: true },
  CREATE_VCPU: null,
  PAUSE_VCPU: null,
  SINGLESTEP: { failed: false },
  CPUID: { function: 7, index: 0, insnLength: 2 },
};

test('the event common part is 544 bytes with the fields where KVMI puts them', () => {
  assert.equal(KVMI_EVENT_COMMON_SIZE, 544);
  const p = encodeEvent(v7, { vcpu: 3, event: 'BREAKPOINT', state, data: DATA.BREAKPOINT });
  assert.equal(p.length, 544 + 16);
  const v = new DataView(p.buffer);
  assert.equal(v.getUint16(0, true), 544, 'size');
  assert.equal(v.getUint16(2, true), 3, 'vcpu');
  assert.equal(v.getUint8(4), 4, 'event');
  assert.equal(v.getUint8(8), 8, 'mode');
  assert.equal(v.getBigUint64(16 + 16 * 8, true), state.regs.rip, 'regs.rip at 16 + 128');
  assert.equal(v.getBigUint64(160 + 240, true), state.sregs.cr3, 'sregs.cr3 at 160 + 240');
  assert.equal(v.getBigUint64(472, true), 0x10n, 'sysenter_cs at 472');
  assert.equal(v.getBigUint64(472 + 8 * 8, true), state.msrs.shadowGs, 'shadow_gs last');
  assert.equal(v.getBigUint64(544, true), 0x1234n, 'breakpoint gpa after the common part');
});

test('every event round-trips in both dialects', () => {
  for (const name of ['v7', 'rfc-v5'] as const) {
    const d = dialect(name);
    for (const event of d.events()) {
      const p = encodeEvent(d, { vcpu: 1, event, state, data: DATA[event] } as Parameters<typeof encodeEvent>[1]);
      assert.equal(p.length, KVMI_EVENT_COMMON_SIZE + eventDataSize(event));
      const back = decodeEvent(d, p);
      assert.equal(back.event, event);
      assert.equal(back.eventId, d.eventId(event));
      assert.deepEqual(back.state, state);
      assert.deepEqual(back.data, DATA[event], `${name} ${event}`);
    }
  }
});

test('event bytes are fields or checked padding', () => {
  for (const event of KVMI_EVENTS) {
    const enc = (m: ReturnType<typeof decodeEvent>): Uint8Array =>
      encodeEvent(v7, { vcpu: m.vcpu, event: m.event, state: m.state, data: m.data } as Parameters<typeof encodeEvent>[1]);
    const p = encodeEvent(v7, { vcpu: 1, event, state, data: DATA[event] } as Parameters<typeof encodeEvent>[1]);
    // Bytes 0 (size) and 4 (event id) change the framing itself; they are checked separately.
    const ignore = new Set([0, 1, 4, ...sregsPadding(160)]);
    assertEveryByteAccountedFor(`${event} event`, p, (b) => decodeEvent(v7, b), enc, ignore);
  }
});

test('a larger common part is skipped; shorter specific data is zero-filled, longer is ignored', () => {
  const p = encodeEvent(v7, { vcpu: 0, event: 'MSR', state, data: DATA.MSR });
  const grown = new Uint8Array(p.length + 8);
  grown.set(p.subarray(0, 544));
  grown.set(p.subarray(544), 552);
  new DataView(grown.buffer).setUint16(0, 552, true);
  assert.deepEqual(decodeEvent(v7, grown).data, DATA.MSR);
  const short = decodeEvent(v7, p.subarray(0, 544 + 4));
  assert.deepEqual(short.data, { msr: 0xc000_0082, oldValue: 0n, newValue: 0n });
  const long = new Uint8Array(p.length + 16);
  long.set(p);
  assert.deepEqual(decodeEvent(v7, long).data, DATA.MSR);
  const tooSmall = Uint8Array.from(p);
  new DataView(tooSmall.buffer).setUint16(0, 100, true);
  assert.throws(() => decodeEvent(v7, tooSmall), KvmiError);
  const unknown = Uint8Array.from(p);
  unknown[4] = 12; // no event 12 in v7
  assert.throws(() => decodeEvent(v7, unknown), KvmiError);
});

test('event replies: common part, reply data sizes, round trips', () => {
  assert.equal(eventReplyDataSize('MSR'), 8);
  assert.equal(eventReplyDataSize('CR'), 8);
  assert.equal(eventReplyDataSize('PF'), 272);
  for (const e of ['BREAKPOINT', 'PAUSE_VCPU', 'SINGLESTEP', 'CREATE_VCPU'] as KvmiEventName[]) assert.equal(eventReplyDataSize(e), 0);

  const msr = encodeEventReply(v7, { vcpu: 1, action: 0, event: 'MSR', data: { newValue: 0x42n } });
  assert.equal(msr.length, 16 + 8);
  const r = decodeEventReply(msr);
  assert.deepEqual({ vcpu: r.vcpu, action: r.action, eventId: r.eventId }, { vcpu: 1, action: 0, eventId: 2 });
  assert.deepEqual(decodeEventReplyData('MSR', r.rest), { newValue: 0x42n });

  const ctxData = Uint8Array.from({ length: 256 }, (_, i) => i);
  const pf = { ctxAddr: 0x1000n, ctxSize: 16, singlestep: true, repComplete: false, ctxData };
  const pfReply = encodeEventReply(v7, { vcpu: 0, action: 1, event: 'PF', data: pf });
  assert.equal(pfReply.length, 16 + 272);
  assert.deepEqual(decodeEventReplyData('PF', decodeEventReply(pfReply).rest), pf);
  assertEveryByteAccountedFor('PF reply data', pfReply.subarray(16), (b) => decodeEventReplyData('PF', b),
    (x) => encodeEventReply(v7, { vcpu: 0, action: 1, event: 'PF', data: x }).subarray(16));
  assert.throws(() => decodeEventReplyData('MSR', new Uint8Array(7)), KvmiError);

  const bp = encodeEventReply(v7, { vcpu: 2, action: 1, event: 'BREAKPOINT' });
  assertEveryByteAccountedFor('reply common part', bp, (b) => decodeEventReply(b), (x) => {
    const out = new Uint8Array(16);
    const v = new DataView(out.buffer);
    v.setUint16(0, x.vcpu, true);
    v.setUint8(8, x.action);
    v.setUint8(9, x.eventId);
    return out;
  });
});

test('the RFC v5 dialect numbers messages as its headers do and shares the layouts', () => {
  const v5 = dialect('rfc-v5');
  assert.equal(v5.eventMessage, 23);
  assert.equal(v5.eventReplyMessage, 24);
  assert.equal(v5.commandId('GET_VERSION'), 1);
  assert.equal(v5.commandId('GET_REGISTERS'), 6);
  assert.equal(v5.commandId('CONTROL_VM_EVENTS'), 28);
  assert.equal(v5.commandId('PAUSE_VCPU'), undefined, 'v5 has no PAUSE_VCPU');
  assert.equal(v5.eventId('SINGLESTEP'), undefined);
  assert.equal(v7.commandId('VCPU_CONTROL_SINGLESTEP'), 63);
  assert.equal(v7.command(39), 'QUERY_PHYSICAL');
  assert.equal(v7.command(30), undefined);
  assert.equal(v7.eventId('CPUID'), 13);
});
