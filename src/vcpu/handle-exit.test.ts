// Exit handling driven with made-up exits: every path, no KVM needed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Bus } from '../bus/bus.js';
import type { BusDevice } from '../devices/device.js';
import { KVM_RUN } from '../kvm/structs.js';
import { ExitDecoder, type VcpuExit } from './exit.js';
import { KVM_EXIT, KVM_MEMORY_EXIT_FLAG_PRIVATE, KVM_MSR_EXIT_REASON, KVM_NOTIFY_CONTEXT_INVALID, KVM_SYSTEM_EVENT } from './exit-reason.js';
import { describeExit } from './exit-report.js';
import { handleExit, type ExitContext } from './handle-exit.js';

class Port implements BusDevice {
  log: string[] = [];
  read(offset: number, data: Uint8Array): void {
    this.log.push(`r${offset}/${data.length}`);
    data.fill(0x40 + offset);
  }
  write(offset: number, data: Uint8Array): void {
    this.log.push(`w${offset}=${[...data].join(',')}`);
  }
}

const NO_MSRS = { read: (): undefined => undefined, write: (): boolean => false };

function context(): { ctx: ExitContext; port: Port; mem: Port; held: () => number; calls: string[] } {
  const pio = new Bus('pio');
  const mmio = new Bus('mmio');
  const port = new Port();
  const mem = new Port();
  pio.insert(port, 0x3f8, 8, 'com1');
  mmio.insert(mem, 0xd0000000, 0x1000, 'mmio dev');
  let depth = 0;
  const calls: string[] = [];
  const ctx: ExitContext = {
    pio, mmio,
    lock: () => { depth++; calls.push('lock'); },
    unlock: () => { depth--; calls.push('unlock'); },
    msrs: NO_MSRS,
    answer: { answerRdmsr: () => undefined, answerWrmsr: () => undefined },
    notifyVmexit: 'run',
  };
  return { ctx, port, mem, held: () => depth, calls };
}

test('port I/O reaches the device under the lock; an in fills the run page data', () => {
  const { ctx, port, held, calls } = context();
  const data = new Uint8Array(1);
  assert.deepEqual(handleExit({ reason: 'io', out: false, port: 0x3fd, size: 1, count: 1, data }, ctx), { kind: 'continue' });
  assert.equal(data[0], 0x45);
  handleExit({ reason: 'io', out: true, port: 0x3f8, size: 1, count: 1, data: Uint8Array.of(65) }, ctx);
  assert.deepEqual(port.log, ['r5/1', 'w0=65']);
  assert.equal(held(), 0);
  assert.deepEqual(calls, ['lock', 'unlock', 'lock', 'unlock']);
});

test('rep outs/ins: count elements back to back, one lock for all of them', () => {
  const { ctx, port, calls } = context();
  handleExit({ reason: 'io', out: true, port: 0x3f8, size: 1, count: 3, data: Uint8Array.of(1, 2, 3) }, ctx);
  const data = new Uint8Array(4);
  handleExit({ reason: 'io', out: false, port: 0x3fa, size: 2, count: 2, data }, ctx);
  assert.deepEqual(port.log, ['w0=1', 'w0=2', 'w0=3', 'r2/2', 'r2/2']);
  assert.deepEqual([...data], [0x42, 0x42, 0x42, 0x42]);
  assert.deepEqual(calls, ['lock', 'unlock', 'lock', 'unlock']);
});

test('unclaimed port and MMIO reads are all ones and never fatal', () => {
  const { ctx } = context();
  const data = new Uint8Array(4);
  assert.deepEqual(handleExit({ reason: 'io', out: false, port: 0x1234, size: 4, count: 1, data }, ctx), { kind: 'continue' });
  assert.deepEqual([...data], [0xff, 0xff, 0xff, 0xff]);
  const m = new Uint8Array(8);
  assert.deepEqual(handleExit({ reason: 'mmio', gpa: 0xfeb00000, isWrite: false, data: m }, ctx), { kind: 'continue' });
  assert.ok(m.every((b) => b === 0xff));
  assert.equal(ctx.pio.unclaimedReads + ctx.mmio.unclaimedReads, 2);
});

test('MMIO goes to the device at its offset', () => {
  const { ctx, mem } = context();
  handleExit({ reason: 'mmio', gpa: 0xd0000010, isWrite: true, data: Uint8Array.of(9, 8) }, ctx);
  assert.deepEqual(mem.log, ['w16=9,8']);
});

test('machine-level exits become actions for the vCPU loop', () => {
  const { ctx } = context();
  const cases: Array<[VcpuExit, string]> = [
    [{ reason: 'hlt' }, 'halt'],
    [{ reason: 'intr' }, 'continue'],
    [{ reason: 'irq-window-open' }, 'continue'],
    [{ reason: 'shutdown' }, 'reset'],
    [{ reason: 'system-event', type: KVM_SYSTEM_EVENT.RESET, data: [] }, 'reset'],
    [{ reason: 'system-event', type: KVM_SYSTEM_EVENT.SHUTDOWN, data: [] }, 'shutdown'],
    [{ reason: 'system-event', type: KVM_SYSTEM_EVENT.CRASH, data: [] }, 'guest-panic'],
    [{ reason: 'system-event', type: 99, data: [] }, 'internal-error'],
    [{ reason: 'internal-error', suberror: 1, data: [1n] }, 'internal-error'],
    [{ reason: 'fail-entry', hardwareEntryFailureReason: 0x80000021n, cpu: 0 }, 'internal-error'],
    [{ reason: 'unhandled', exitReason: 200, hardwareExitReason: 0n }, 'internal-error'],
    [{ reason: 'debug', exception: 1, pc: 0n, dr6: 0n, dr7: 0n }, 'debug'],
  ];
  for (const [exit, kind] of cases) assert.equal(handleExit(exit, ctx).kind, kind, exit.reason);
  assert.deepEqual(handleExit({ reason: 'shutdown' }, ctx), { kind: 'reset', reason: 'guest-reset' });
});

test('user-space MSRs: ours are answered in the run page, any other gets #GP and one warning key', () => {
  const { ctx } = context();
  const answers: string[] = [];
  const msrCtx: ExitContext = {
    ...ctx,
    msrs: { read: (i) => (i === 0x40000105 ? 1n << 63n : undefined), write: (i, v) => i === 0x40000100 && v === 5n },
    answer: { answerRdmsr: (v) => answers.push(`rd ${String(v)}`), answerWrmsr: (ok) => answers.push(`wr ${ok}`) },
  };
  assert.deepEqual(handleExit({ reason: 'x86-rdmsr', index: 0x40000105, msrReason: KVM_MSR_EXIT_REASON.FILTER }, msrCtx), { kind: 'continue' });
  assert.deepEqual(handleExit({ reason: 'x86-wrmsr', index: 0x40000100, value: 5n, msrReason: KVM_MSR_EXIT_REASON.FILTER }, msrCtx), { kind: 'continue' });
  const rd = handleExit({ reason: 'x86-rdmsr', index: 0x1234, msrReason: KVM_MSR_EXIT_REASON.UNKNOWN }, msrCtx);
  assert.equal(rd.kind, 'warn');
  assert.match(rd.kind === 'warn' ? rd.message : '', /rdmsr of MSR 0x1234 \(unknown to KVM\).*#GP/);
  const wr = handleExit({ reason: 'x86-wrmsr', index: 0x1234, value: 1n, msrReason: KVM_MSR_EXIT_REASON.FILTER }, msrCtx);
  assert.equal(wr.kind === 'warn' && wr.key, 'wrmsr:4660');
  assert.deepEqual(answers, [`rd ${1n << 63n}`, 'wr true', 'rd undefined', 'wr false']);
});

test('notify exits: run warns and continues; internal-error or an invalid context stops the VM', () => {
  const { ctx } = context();
  const valid = handleExit({ reason: 'notify', flags: 0 }, ctx);
  assert.equal(valid.kind, 'warn');
  assert.equal(valid.kind === 'warn' && valid.key, 'notify');
  const invalid = handleExit({ reason: 'notify', flags: KVM_NOTIFY_CONTEXT_INVALID }, ctx);
  assert.equal(invalid.kind, 'internal-error');
  assert.match(invalid.kind === 'internal-error' ? invalid.why ?? '' : '', /invalid context/);
  const strict = handleExit({ reason: 'notify', flags: 0 }, { ...ctx, notifyVmexit: 'internal-error' });
  assert.equal(strict.kind, 'internal-error');
});

test('memory faults stop the VM; bus locks warn; a full dirty ring is harvested', () => {
  const { ctx } = context();
  assert.equal(handleExit({ reason: 'memory-fault', gpa: 0x1000n, size: 0x1000n, flags: 0n }, ctx).kind, 'internal-error');
  assert.equal(handleExit({ reason: 'bus-lock' }, ctx).kind, 'warn');
  assert.equal(handleExit({ reason: 'dirty-ring-full' }, ctx).kind, 'harvest-dirty-ring');
});

test('every KVM exit number decodes to a handled exit, and the report names what happened', () => {
  const { ctx } = context();
  const run = new Uint8Array(0x2000);
  const view = new DataView(run.buffer);
  const decoder = new ExitDecoder(view, run);
  for (let n = 0; n <= KVM_EXIT.MEMORY_FAULT + 2; n++) {
    run.fill(0);
    view.setUint32(KVM_RUN.exitReason, n, true);
    if (n === KVM_EXIT.IO) view.setBigUint64(KVM_RUN.exit + 8, 0x1000n, true);
    const exit = decoder.decode();
    const action = handleExit(exit, ctx);
    assert.ok(action.kind.length > 0, `exit ${n}`);
    if (action.kind === 'internal-error') {
      const text = describeExit(action.exit, action.why).join('\n');
      assert.ok(text.length > 10, `exit ${n} has a report`);
      if (exit.reason === 'unhandled') assert.match(text, new RegExp(n === 0 ? 'unknown exit, hardware reason' : `${n}`));
    }
  }
  const memFault = describeExit({ reason: 'memory-fault', gpa: 0xfee00000n, size: 8n, flags: KVM_MEMORY_EXIT_FLAG_PRIVATE });
  assert.match(memFault[0]!, /gpa 0xfee00000 size 0x8 \(private memory/);
  assert.match(describeExit({ reason: 'unhandled', exitReason: 13, hardwareExitReason: 0n })[0]!, /another architecture/);
  assert.match(describeExit({ reason: 'unhandled', exitReason: 3, hardwareExitReason: 0n })[0]!, /KVM_EXIT_HYPERCALL.*never enables/);
  assert.match(describeExit({ reason: 'unhandled', exitReason: 77, hardwareExitReason: 0n })[0]!, /unknown exit reason 77/);
  assert.match(describeExit({ reason: 'internal-error', suberror: 3, data: [1n] }).join('\n'), /Suberror: 3[\s\S]*deliver an event/);
});

test('introspection: debug exits become breakpoint and single-step actions only when asked for', () => {
  const { ctx } = context();
  const bp = { reason: 'debug', exception: 3, pc: 0x1234n, dr6: 0n, dr7: 0n } as const;
  const db = { reason: 'debug', exception: 1, pc: 0x1235n, dr6: 0x4000n, dr7: 0n } as const;
  assert.equal(handleExit(bp, ctx).kind, 'debug', 'nobody asked: unexpected');
  assert.equal(handleExit(db, ctx).kind, 'debug');
  const both = { ...ctx, debug: { breakpoints: true, singleStep: true } };
  assert.deepEqual(handleExit(bp, both), { kind: 'breakpoint', gva: 0x1234n, emulated: false });
  assert.deepEqual(handleExit(db, both), { kind: 'singlestep' });
  const bpOnly = { ...ctx, debug: { breakpoints: true, singleStep: false } };
  assert.equal(handleExit(db, bpOnly).kind, 'debug', 'a #DB without single-stepping is not an event');
});

test('introspection: an emulation failure on an INT3 is a breakpoint while breakpoints are intercepted (PVM)', () => {
  const { ctx } = context();
  const emu: VcpuExit = { reason: 'internal-error', suberror: 1, data: [] };
  let probes = 0;
  const at = (gva: bigint | null) => (): bigint | null => { probes++; return gva; };
  assert.equal(handleExit(emu, { ...ctx, int3AtRip: at(0x1000n) }).kind, 'internal-error', 'not intercepted');
  assert.equal(probes, 0, 'guest memory is not looked at unless breakpoints are on');
  const on = { ...ctx, debug: { breakpoints: true, singleStep: false } };
  assert.deepEqual(handleExit(emu, { ...on, int3AtRip: at(0x1000n) }), { kind: 'breakpoint', gva: 0x1000n, emulated: true });
  assert.equal(handleExit(emu, { ...on, int3AtRip: at(null) }).kind, 'internal-error', 'another instruction failed');
  assert.equal(handleExit({ reason: 'internal-error', suberror: 3, data: [] }, { ...on, int3AtRip: at(0x1000n) }).kind, 'internal-error');
});

test('introspection: a filtered WRMSR of an MSR the VMM does not own waits for the tool, unanswered', () => {
  const { ctx } = context();
  const answers: string[] = [];
  const msrCtx: ExitContext = {
    ...ctx,
    msrs: { read: () => undefined, write: (i) => i === 0x40000100, owns: (i) => i >= 0x40000100 && i <= 0x40000105 },
    answer: { answerRdmsr: (v) => answers.push(`rd ${String(v)}`), answerWrmsr: (ok) => answers.push(`wr ${ok}`) },
  };
  assert.deepEqual(handleExit({ reason: 'x86-wrmsr', index: 0x174, value: 0x10n, msrReason: KVM_MSR_EXIT_REASON.FILTER }, msrCtx),
    { kind: 'msr-write', index: 0x174, value: 0x10n });
  assert.deepEqual(answers, [], 'the exit is answered after the reply');
  assert.deepEqual(handleExit({ reason: 'x86-wrmsr', index: 0x40000100, value: 1n, msrReason: KVM_MSR_EXIT_REASON.FILTER }, msrCtx), { kind: 'continue' });
  assert.deepEqual(answers, ['wr true'], 'ours are handled as before');
  // Not filtered (KVM does not know it): #GP as before, never an event.
  assert.equal(handleExit({ reason: 'x86-wrmsr', index: 0x174, value: 0n, msrReason: KVM_MSR_EXIT_REASON.UNKNOWN }, msrCtx).kind, 'warn');
});

test('introspection: an MMIO write inside RAM hit a write-protected page: not stored, a ram-write action', () => {
  const { ctx, mem } = context();
  const ram = { ...ctx, isRam: (gpa: number, length: number): boolean => gpa >= 0x1000 && gpa + length <= 0x100000 };
  const data = Uint8Array.of(1, 2, 3, 4);
  const action = handleExit({ reason: 'mmio', gpa: 0x5000, isWrite: true, data }, ram);
  assert.deepEqual(action, { kind: 'ram-write', gpa: 0x5000, data: Uint8Array.of(1, 2, 3, 4) });
  data[0] = 9;
  assert.equal(action.kind === 'ram-write' ? action.data[0] : -1, 1, 'a copy: the run page may change meanwhile');
  // Devices are untouched; device MMIO is as before.
  handleExit({ reason: 'mmio', gpa: 0xd0000000, isWrite: true, data: Uint8Array.of(7) }, ram);
  assert.deepEqual(mem.log, ['w0=7']);
  assert.equal(handleExit({ reason: 'mmio', gpa: 0x5000, isWrite: false, data: new Uint8Array(4) }, ram).kind, 'continue');
});
