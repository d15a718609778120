import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  assertEveryByteAccountedFor, assertExactSize, sampleRegs, sampleSregs, sregsPadding,
} from '../testing/wire-samples.js';
import { LAYOUTS, type LaidOutCommand, type Layout } from './commands.js';
import { KvmiError } from './errors.js';

interface Sample {
  req: unknown;
  rep: unknown;
  /** Variable-length replies: no exact size to check. */
  variableReply?: boolean;
  replyIgnore?: Set<number>;
}

const SAMPLES: Record<LaidOutCommand, Sample> = {
  GET_VERSION: { req: null, rep: { version: 1, features: { spp: false, vmfunc: true, eptp: false, ve: true } } },
  CHECK_COMMAND: { req: { id: 27 }, rep: null },
  CHECK_EVENT: { req: { id: 11 }, rep: null },
  GET_GUEST_INFO: { req: null, rep: { vcpuCount: 4 } },
  GET_VCPU_INFO: { req: { vcpu: 3 }, rep: { tscSpeed: 2_400_000_000n } },
  PAUSE_VCPU: { req: { vcpu: 1, wait: true }, rep: null },
  CONTROL_VM_EVENTS: { req: { event: 9, enable: true }, rep: null },
  CONTROL_EVENTS: { req: { vcpu: 2, event: 4, enable: true }, rep: null },
  CONTROL_CR: { req: { vcpu: 0, enable: true, register: 4 }, rep: null },
  CONTROL_MSR: { req: { vcpu: 1, enable: false, register: 0xc000_0082 }, rep: null },
  GET_REGISTERS: {
    req: { vcpu: 1, msrs: [0x174, 0xc000_0080] },
    rep: {
      mode: 8, regs: sampleRegs(), sregs: sampleSregs(),
      msrs: [{ index: 0x174, value: 0x10n }, { index: 0xc000_0080, value: 0xd01n }],
    },
    replyIgnore: sregsPadding(8 + 144),
  },
  SET_REGISTERS: { req: { vcpu: 1, regs: sampleRegs(3n) }, rep: null },
  GET_CPUID: { req: { vcpu: 0, function: 7, index: 0 }, rep: { eax: 1, ebx: 2, ecx: 3, edx: 0xffff_ffff } },
  GET_XSAVE: { req: { vcpu: 0 }, rep: Uint8Array.from({ length: 64 }, (_, i) => i), variableReply: true },
  READ_PHYSICAL: { req: { gpa: 0x1000n, size: 5n }, rep: Uint8Array.of(1, 2, 3, 4, 5) },
  WRITE_PHYSICAL: { req: { gpa: 0x2000n, data: Uint8Array.of(9, 8, 7) }, rep: null },
  INJECT_EXCEPTION: { req: { vcpu: 1, vector: 14, errorCode: 2, address: 0xffff_8000_dead_0000n }, rep: null },
  GET_PAGE_ACCESS: { req: { view: 0, gpas: [0x1000n, 0x2000n, 0x3000n] }, rep: [7, 5, 7] },
  SET_PAGE_ACCESS: {
    req: { view: 0, entries: [{ gpa: 0x1000n, access: 5 }, { gpa: 0x2000n, access: 7 }] },
    rep: null,
  },
  CONTROL_CMD_RESPONSE: { req: { enable: false, now: true }, rep: null },
  GET_MAX_GFN: { req: null, rep: { gfn: 0x4_0000n } },
  VCPU_TRANSLATE_GVA: { req: { vcpu: 0, gva: 0xffff_8000_0000_1234n }, rep: { gpa: 0x5234n } },
  VCPU_GET_XCR: { req: { vcpu: 1, xcr: 0 }, rep: { value: 7n } },
  QUERY_PHYSICAL: { req: { gpa: 0x1234n }, rep: { start: 0n, size: 0x100_0000n, type: 'ram' } },
  VCPU_CONTROL_SINGLESTEP: { req: { vcpu: 1, enable: true }, rep: null },
};

const layout = (c: LaidOutCommand): Layout<unknown, unknown> => LAYOUTS[c] as Layout<unknown, unknown>;

test('every request and reply layout round-trips', () => {
  for (const [command, s] of Object.entries(SAMPLES) as Array<[LaidOutCommand, Sample]>) {
    const l = layout(command);
    const req = l.encodeRequest(s.req);
    assert.deepEqual(l.decodeRequest(req), s.req, `${command} request`);
    const rep = l.encodeReply(s.rep);
    assert.deepEqual(l.decodeReply(rep, s.req), s.rep, `${command} reply`);
  }
});

test('the layouts have the sizes of the KVMI structures', () => {
  const size = (c: LaidOutCommand): number => layout(c).encodeRequest(SAMPLES[c].req).length;
  assert.equal(size('GET_VERSION'), 0);
  assert.equal(size('CHECK_COMMAND'), 8);
  assert.equal(size('GET_VCPU_INFO'), 8);
  assert.equal(size('PAUSE_VCPU'), 16);
  assert.equal(size('CONTROL_VM_EVENTS'), 8);
  assert.equal(size('CONTROL_EVENTS'), 16);
  assert.equal(size('CONTROL_MSR'), 16);
  assert.equal(size('GET_REGISTERS'), 16 + 4 * 2);
  assert.equal(size('SET_REGISTERS'), 152);
  assert.equal(size('GET_CPUID'), 16);
  assert.equal(size('READ_PHYSICAL'), 16);
  assert.equal(size('WRITE_PHYSICAL'), 16 + 3);
  assert.equal(size('INJECT_EXCEPTION'), 24);
  assert.equal(size('SET_PAGE_ACCESS'), 8 + 16 * 2);
  assert.equal(size('GET_PAGE_ACCESS'), 8 + 8 * 3);
  assert.equal(size('CONTROL_CMD_RESPONSE'), 8);
  assert.equal(size('VCPU_TRANSLATE_GVA'), 16);
  assert.equal(size('VCPU_GET_XCR'), 16);
  assert.equal(size('VCPU_CONTROL_SINGLESTEP'), 16);
  const reply = (c: LaidOutCommand): number => layout(c).encodeReply(SAMPLES[c].rep).length;
  assert.equal(reply('GET_VERSION'), 16);
  assert.equal(reply('GET_GUEST_INFO'), 16);
  assert.equal(reply('GET_VCPU_INFO'), 8);
  assert.equal(reply('GET_REGISTERS'), 472 + 16 * 2, 'mode, pad, regs, sregs, kvm_msrs + n entries');
  assert.equal(reply('GET_CPUID'), 16);
  assert.equal(reply('GET_MAX_GFN'), 8);
  assert.equal(reply('VCPU_TRANSLATE_GVA'), 8);
});

test('every byte of every layout is a field or zero-checked padding', () => {
  for (const [command, s] of Object.entries(SAMPLES) as Array<[LaidOutCommand, Sample]>) {
    const l = layout(command);
    assertEveryByteAccountedFor(`${command} request`, l.encodeRequest(s.req), (b) => l.decodeRequest(b), (x) => l.encodeRequest(x));
    assertEveryByteAccountedFor(`${command} reply`, l.encodeReply(s.rep), (b) => l.decodeReply(b, s.req), (x) => l.encodeReply(x), s.replyIgnore);
  }
});

test('a byte more or less is invalid', () => {
  for (const [command, s] of Object.entries(SAMPLES) as Array<[LaidOutCommand, Sample]>) {
    const l = layout(command);
    assertExactSize(`${command} request`, l.encodeRequest(s.req), (b) => l.decodeRequest(b));
    if (!s.variableReply) assertExactSize(`${command} reply`, l.encodeReply(s.rep), (b) => l.decodeReply(b, s.req));
  }
});

test('counted layouts must carry exactly their count', () => {
  const isInvalid = (e: unknown): boolean => e instanceof KvmiError && e.code === 'EINVAL';
  const gr = LAYOUTS.GET_REGISTERS.encodeRequest({ vcpu: 0, msrs: [1, 2, 3] });
  assert.throws(() => LAYOUTS.GET_REGISTERS.decodeRequest(gr.subarray(0, 16 + 8)), isInvalid);
  const wp = LAYOUTS.WRITE_PHYSICAL.encodeRequest({ gpa: 0n, data: new Uint8Array(10) });
  new DataView(wp.buffer).setBigUint64(8, 11n, true);
  assert.throws(() => LAYOUTS.WRITE_PHYSICAL.decodeRequest(wp), isInvalid, 'size field larger than the data');
  // A GET_REGISTERS reply must hold exactly the MSRs asked for (libkvmi rejects anything else).
  const rep = LAYOUTS.GET_REGISTERS.encodeReply({ mode: 8, regs: sampleRegs(), sregs: sampleSregs(), msrs: [] });
  assert.throws(() => LAYOUTS.GET_REGISTERS.decodeReply(rep, { vcpu: 0, msrs: [0x174] }), isInvalid);
  assert.throws(() => LAYOUTS.READ_PHYSICAL.decodeReply(new Uint8Array(4), { gpa: 0n, size: 5n }), isInvalid);
});
