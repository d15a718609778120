import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Regs, Segment, Sregs } from '../../hypervisor/x86-state.js';
import {
  codeWindow, formatCodeBytes, formatInternalError, formatRegisterDump, segmentFlags,
} from './register-dump.js';
import { QEMU_INTERNAL_ERROR_32, QEMU_INTERNAL_ERROR_64 } from './fixtures/qemu-internal-error.js';

/** kvm_segment from the fields QEMU printed (the inverse of its get_seg). */
function seg(selector: number, base: bigint, limit: number, flags: number): Segment {
  return {
    selector, base, limit, type: (flags >> 8) & 0xf, present: (flags >> 15) & 1, dpl: (flags >> 13) & 3,
    db: (flags >> 22) & 1, s: (flags >> 12) & 1, l: (flags >> 21) & 1, g: (flags >> 23) & 1,
    avl: (flags >> 20) & 1, unusable: 0,
  };
}

function sregs(over: Partial<Sregs>): Sregs {
  const data = seg(0x10, 0n, 0xffffffff, 0x00c09300);
  return {
    cs: data, ds: data, es: data, fs: data, gs: data, ss: data,
    ldt: seg(0, 0n, 0xffff, 0x8200), tr: seg(0, 0n, 0xffff, 0x8b00),
    gdt: { base: 0n, limit: 0 }, idt: { base: 0n, limit: 0x3ff },
    cr0: 0n, cr2: 0n, cr3: 0n, cr4: 0n, cr8: 0n, efer: 0n, apicBase: 0xfee00900n,
    interruptBitmap: [0n, 0n, 0n, 0n], ...over,
  };
}

function codeLine(expected: string): { bytes: number[]; ripIndex: number } {
  const line = expected.split('\n').find((l) => l.startsWith('Code='));
  assert.ok(line);
  const parts = line.slice(5).split(' ');
  return {
    bytes: parts.map((p) => parseInt(p.replace(/[<>]/g, ''), 16)),
    ripIndex: parts.findIndex((p) => p.startsWith('<')),
  };
}

void test('64-bit dump matches QEMU 7.2 after lock cmpxchg16b fails under PVM', () => {
  const regs: Regs = {
    rax: 0x1122334455667788n, rbx: 0x8877665544332211n, rcx: 0x0123456789abcdefn,
    rdx: 0xfedcba9876543210n, rsi: 0x5555n, rdi: 0xaaaan, rbp: 0x1234n, rsp: 0x80000n,
    r8: 8n, r9: 9n, r10: 10n, r11: 11n, r12: 12n, r13: 13n, r14: 14n, r15: 15n,
    rip: 0x1000edn, rflags: 0x487n,
  };
  const s = sregs({
    cs: seg(0x08, 0n, 0xffffffff, 0x00a09b00), gdt: { base: 0x100110n, limit: 0x17 },
    cr0: 0x80000011n, cr3: 0x10000n, cr4: 0x20n, efer: 0x500n,
  });
  const data = [1n, 0x00250cc70f48f00fn, 0x90909090f4001001n, 0x1000n, 0n, 0n, 0n, 0n];
  const code = codeLine(QEMU_INTERNAL_ERROR_64);
  assert.deepEqual(codeWindow(regs.rip, 0n), { start: regs.rip - 20n, ripIndex: 20 });
  const text = [formatInternalError(1, data), formatRegisterDump(regs, s),
    formatCodeBytes(Uint8Array.from(code.bytes), code.ripIndex)].join('\n') + '\n';
  assert.equal(text, QEMU_INTERNAL_ERROR_64);
});

void test('32-bit dump matches QEMU 7.2 after xrstor fails under PVM', () => {
  const regs: Regs = {
    rax: 0xdeadbeefn, rbx: 0x11111111n, rcx: 0x22222222n, rdx: 0x33333333n,
    rsi: 0x44444444n, rdi: 0x55555555n, rbp: 0x66666666n, rsp: 0x7ff00n,
    r8: 0n, r9: 0n, r10: 0n, r11: 0n, r12: 0n, r13: 0n, r14: 0n, r15: 0n,
    rip: 0x100028n, rflags: 0x6n,
  };
  const s = sregs({ cs: seg(0x08, 0n, 0xffffffff, 0x00c09b00), gdt: { base: 0xcb118n, limit: 0x27 }, cr0: 0x11n });
  const data = [1n, 0x000020002dae0f0fn, 0xf4n, 0x1000n, 0n, 0n, 0n, 0n];
  const code = codeLine(QEMU_INTERNAL_ERROR_32);
  const text = [formatInternalError(1, data), formatRegisterDump(regs, s),
    formatCodeBytes(code.bytes, code.ripIndex)].join('\n') + '\n';
  assert.equal(text, QEMU_INTERNAL_ERROR_32);
});

void test('real mode: no descriptor text, and 16-bit data segments say DS16 in protected mode', () => {
  const realSeg = seg(0xf000, 0xf0000n, 0xffff, 0x9300);
  const real = formatRegisterDump({ ...sregsRegs(), rip: 0xfff0n }, sregs({ cs: realSeg, ss: realSeg }));
  assert.match(real, /^CS =f000 000f0000 0000ffff 00009300$/m);
  const pm = formatRegisterDump(sregsRegs(), sregs({ cr0: 1n, ds: seg(0x18, 0n, 0xffff, 0x9200) }));
  assert.match(pm, /^DS =0018 00000000 0000ffff 00009200 DPL=0 DS16 \[-W-\]$/m);
  assert.match(pm, /^TR =0000 00000000 0000ffff 00008b00 DPL=0 TSS32-busy$/m);
});

void test('unusable segment has no flags; CPL comes from SS.DPL; HLT/II/SMM/A20 options', () => {
  assert.equal(segmentFlags({ ...seg(0, 0n, 0, 0x9300), unusable: 1 }), 0);
  const ss = seg(0x2b, 0n, 0xffffffff, 0x00cff300);
  const text = formatRegisterDump({ ...sregsRegs(), rflags: 0x2n }, sregs({ cr0: 1n, ss }),
    { halted: true, interruptShadow: true, smm: true, a20: false });
  assert.match(text, /EFL=00000002 \[-------\] CPL=3 II=1 A20=0 SMM=1 HLT=1\n/);
});

void test('code bytes that cannot be read print as ??', () => {
  assert.equal(formatCodeBytes([0x90, null, 0xf4], 1), 'Code=90 <??> f4');
  assert.deepEqual(codeWindow(5n, 0xf0000n), { start: 0xf0000n, ripIndex: 5 });
});

void test('internal errors other than emulation failure print no "emulation failure"', () => {
  assert.equal(formatInternalError(3, []), 'KVM internal error. Suberror: 3');
});

function sregsRegs(): Regs {
  return {
    rax: 0n, rbx: 0n, rcx: 0n, rdx: 0n, rsi: 0n, rdi: 0n, rsp: 0n, rbp: 0n,
    r8: 0n, r9: 0n, r10: 0n, r11: 0n, r12: 0n, r13: 0n, r14: 0n, r15: 0n, rip: 0n, rflags: 2n,
  };
}
