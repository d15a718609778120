// The struct layouts nodevisor declares, checked against the kernel's own header: a C program
// built here prints sizeof/offsetof from <linux/kvm.h>, so a wrong offset cannot hide.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { zeroRegs, type Sregs } from '../hypervisor/x86-state.js';
import { KVM_DIRTY_GFN_SIZE } from './dirty-ring.js';
import * as K from './ioctls.js';
import { KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_SINGLESTEP, KVM_GUESTDBG_USE_SW_BP, msrFilterRanges } from './kvm.js';
import {
  decodeRegs, decodeSregs, encodeRegs, encodeSregs, KVM_CPUID_ENTRY2_SIZE, KVM_FPU_SIZE, KVM_IRQ_ROUTING_ENTRY_SIZE, KVM_LAPIC_STATE_SIZE,
  KVM_MSR_ENTRY_SIZE, KVM_REGS_SIZE, KVM_RUN, REGS_RIP, KVM_SEGMENT_SIZE, KVM_SYNC_X86_REGS, KVM_SYNC_X86_SREGS, KVM_SREGS_SIZE, KVM_USERSPACE_MEMORY_REGION_SIZE, SREGS,
} from './structs.js';

const PROBE = `
#include <stdio.h>
#include <stddef.h>
#include <linux/kvm.h>
#define S(t) printf(#t " %zu\\n", sizeof(struct t));
#define O(t, f) printf(#t "." #f " %zu\\n", offsetof(struct t, f));
#define I(n) printf(#n " %lu\\n", (unsigned long)(n));
#define V(n) printf("value." #n " %lu\\n", (unsigned long)(n));
int main(void) {
  S(kvm_regs) S(kvm_sregs) S(kvm_segment) S(kvm_userspace_memory_region) S(kvm_cpuid_entry2)
  S(kvm_msr_entry) S(kvm_lapic_state) S(kvm_fpu) S(kvm_irq_routing_entry) O(kvm_irq_routing_entry, u.irqchip.pin)
  O(kvm_regs, rip) O(kvm_regs, rflags)
  O(kvm_sregs, gdt) O(kvm_sregs, idt) O(kvm_sregs, cr0) O(kvm_sregs, cr2) O(kvm_sregs, cr3) O(kvm_sregs, cr4)
  O(kvm_sregs, cr8) O(kvm_sregs, efer) O(kvm_sregs, apic_base) O(kvm_sregs, interrupt_bitmap)
  O(kvm_run, immediate_exit) O(kvm_run, exit_reason) O(kvm_run, ready_for_interrupt_injection) O(kvm_run, if_flag)
  O(kvm_run, flags) O(kvm_run, cr8) O(kvm_run, apic_base) O(kvm_run, io)
  O(kvm_run, kvm_valid_regs) O(kvm_run, s.regs.regs) O(kvm_run, s.regs.sregs) V(KVM_SYNC_X86_REGS) V(KVM_SYNC_X86_SREGS)
  O(kvm_run, io.size) O(kvm_run, io.port) O(kvm_run, io.count) O(kvm_run, io.data_offset)
  O(kvm_run, mmio.phys_addr) O(kvm_run, mmio.data) O(kvm_run, mmio.len) O(kvm_run, mmio.is_write)
  O(kvm_run, internal.suberror) O(kvm_run, internal.ndata) O(kvm_run, internal.data)
  O(kvm_run, fail_entry.cpu) O(kvm_run, system_event.type) O(kvm_run, system_event.ndata)
  O(kvm_run, debug.arch.pc) O(kvm_run, debug.arch.dr6) O(kvm_run, debug.arch.dr7)
  O(kvm_run, msr.error) O(kvm_run, msr.reason) O(kvm_run, msr.index) O(kvm_run, msr.data) O(kvm_run, notify.flags)
#ifdef KVM_EXIT_MEMORY_FAULT /* Linux 6.8+; the build host's headers may be older */
  O(kvm_run, memory_fault.flags) O(kvm_run, memory_fault.gpa) O(kvm_run, memory_fault.size)
#endif
  S(kvm_enable_cap) S(kvm_msr_filter) S(kvm_msr_filter_range) O(kvm_msr_filter, ranges) O(kvm_msr_filter_range, bitmap)
  S(kvm_dirty_gfn)
  I(KVM_RUN) I(KVM_GET_REGS) I(KVM_SET_REGS) I(KVM_GET_SREGS) I(KVM_SET_SREGS) I(KVM_SET_USER_MEMORY_REGION)
  I(KVM_CREATE_VCPU) I(KVM_CREATE_VM) I(KVM_GET_SUPPORTED_CPUID) I(KVM_SET_CPUID2) I(KVM_GET_MSRS) I(KVM_SET_MSRS)
  I(KVM_IRQ_LINE) I(KVM_CREATE_PIT2) I(KVM_GET_IRQCHIP) I(KVM_SET_IRQCHIP) I(KVM_GET_PIT2) I(KVM_SET_PIT2)
  I(KVM_GET_LAPIC) I(KVM_SET_LAPIC) I(KVM_GET_FPU) I(KVM_SET_FPU) I(KVM_SET_SIGNAL_MASK) I(KVM_SET_MP_STATE)
  I(KVM_GET_VCPU_EVENTS) I(KVM_SET_VCPU_EVENTS) I(KVM_GET_XCRS) I(KVM_SET_XCRS) I(KVM_TRANSLATE)
  I(KVM_SET_IDENTITY_MAP_ADDR) I(KVM_SET_GSI_ROUTING) I(KVM_SET_TSS_ADDR) I(KVM_ENABLE_CAP) I(KVM_GET_XSAVE) I(KVM_NMI)
  I(KVM_X86_SET_MSR_FILTER) I(KVM_RESET_DIRTY_RINGS) I(KVM_SET_GUEST_DEBUG)
  S(kvm_guest_debug) V(KVM_GUESTDBG_ENABLE) V(KVM_GUESTDBG_SINGLESTEP) V(KVM_GUESTDBG_USE_SW_BP)
  return 0;
}`;

function probeKernelHeader(): Map<string, number> {
  const dir = mkdtempSync(join(tmpdir(), 'nodevisor-structs-'));
  try {
    writeFileSync(join(dir, 'probe.c'), PROBE);
    execFileSync('gcc', ['-o', join(dir, 'probe'), join(dir, 'probe.c')]);
    const out = execFileSync(join(dir, 'probe'), { encoding: 'utf8' });
    return new Map(out.trim().split('\n').map((l) => {
      const [k, v] = l.split(' ');
      return [k!, Number(v)];
    }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('struct sizes, offsets and ioctl numbers match <linux/kvm.h>', () => {
  const h = probeKernelHeader();
  assert.equal(h.get('kvm_regs'), KVM_REGS_SIZE);
  assert.equal(h.get('kvm_regs.rip'), REGS_RIP);
  assert.equal(h.get('kvm_regs.rflags'), 136);
  assert.equal(h.get('kvm_sregs'), KVM_SREGS_SIZE);
  assert.equal(h.get('kvm_segment'), KVM_SEGMENT_SIZE);
  assert.equal(h.get('kvm_userspace_memory_region'), KVM_USERSPACE_MEMORY_REGION_SIZE);
  assert.equal(h.get('kvm_cpuid_entry2'), KVM_CPUID_ENTRY2_SIZE);
  assert.equal(h.get('kvm_msr_entry'), KVM_MSR_ENTRY_SIZE);
  assert.equal(h.get('kvm_lapic_state'), KVM_LAPIC_STATE_SIZE);
  assert.equal(h.get('kvm_fpu'), KVM_FPU_SIZE);
  assert.equal(h.get('kvm_irq_routing_entry'), KVM_IRQ_ROUTING_ENTRY_SIZE);
  assert.equal(h.get('kvm_irq_routing_entry.u.irqchip.pin'), 20);
  for (const [field, off] of Object.entries(SREGS)) {
    if (field === 'segments') continue;
    const cname = field === 'apicBase' ? 'apic_base' : field === 'interruptBitmap' ? 'interrupt_bitmap' : field;
    assert.equal(h.get(`kvm_sregs.${cname}`), off, `kvm_sregs.${cname}`);
  }
  assert.equal(h.get('kvm_run.immediate_exit'), KVM_RUN.immediateExit);
  assert.equal(h.get('kvm_run.exit_reason'), KVM_RUN.exitReason);
  assert.equal(h.get('kvm_run.ready_for_interrupt_injection'), KVM_RUN.readyForInterruptInjection);
  assert.equal(h.get('kvm_run.if_flag'), KVM_RUN.ifFlag);
  assert.equal(h.get('kvm_run.flags'), KVM_RUN.flags);
  assert.equal(h.get('kvm_run.cr8'), KVM_RUN.cr8);
  assert.equal(h.get('kvm_run.apic_base'), KVM_RUN.apicBase);
  assert.equal(h.get('kvm_run.kvm_valid_regs'), KVM_RUN.validRegs);
  assert.equal(h.get('kvm_run.s.regs.regs'), KVM_RUN.syncRegs);
  assert.equal(h.get('kvm_run.s.regs.sregs'), KVM_RUN.syncSregs);
  assert.equal(h.get('value.KVM_SYNC_X86_REGS'), KVM_SYNC_X86_REGS);
  assert.equal(h.get('value.KVM_SYNC_X86_SREGS'), KVM_SYNC_X86_SREGS);
  const u = KVM_RUN.exit;
  assert.equal(h.get('kvm_run.io'), u);
  // The exit decoder's offsets (src/vcpu/exit.ts) are relative to the union.
  const rel: Record<string, number> = {
    'io.size': 1, 'io.port': 2, 'io.count': 4, 'io.data_offset': 8, 'mmio.phys_addr': 0, 'mmio.data': 8,
    'mmio.len': 16, 'mmio.is_write': 20, 'internal.suberror': 0, 'internal.ndata': 4, 'internal.data': 8,
    'fail_entry.cpu': 8, 'system_event.type': 0, 'system_event.ndata': 4, 'debug.arch.pc': 8, 'debug.arch.dr6': 16,
    'debug.arch.dr7': 24, 'msr.error': 0, 'msr.reason': 8, 'msr.index': 12, 'msr.data': 16, 'notify.flags': 0,
  };
  // memory_fault shares the union's start; check it when the installed headers have it.
  if (h.has('kvm_run.memory_fault.gpa')) Object.assign(rel, { 'memory_fault.flags': 0, 'memory_fault.gpa': 8, 'memory_fault.size': 16 });
  assert.equal(h.get('kvm_enable_cap'), 104);
  assert.equal(h.get('kvm_msr_filter'), K.KVM_MSR_FILTER_SIZE);
  assert.equal(h.get('kvm_msr_filter.ranges'), 8);
  assert.equal(h.get('kvm_msr_filter_range'), 24);
  assert.equal(h.get('kvm_msr_filter_range.bitmap'), 16);
  assert.equal(h.get('kvm_dirty_gfn'), KVM_DIRTY_GFN_SIZE);
  for (const [f, off] of Object.entries(rel)) assert.equal(h.get(`kvm_run.${f}`), u + off, `kvm_run.${f}`);
  for (const [name, nr] of Object.entries(K)) {
    if (typeof nr !== 'number' || !h.has(name)) continue;
    assert.equal(nr, h.get(name), name);
  }
  assert.ok([...h.keys()].filter((k) => k.startsWith('KVM_')).every((k) => k in K), 'every probed ioctl is declared');
});

test('regs and sregs survive an encode/decode round trip', () => {
  const r = zeroRegs();
  r.rip = 0xffffffff81000000n;
  r.r15 = 0x1234n;
  r.rsi = 0x7000n;
  const rb = encodeRegs(r);
  assert.equal(new DataView(rb.buffer).getBigUint64(128, true), r.rip);
  assert.deepEqual(decodeRegs(rb), r);
  const seg = { base: 0n, limit: 0xffffffff, selector: 0x10, type: 11, present: 1, dpl: 0, db: 0, s: 1, l: 1, g: 1, avl: 0, unusable: 0 };
  const s: Sregs = {
    cs: seg, ds: { ...seg, selector: 0x18, type: 3, l: 0, db: 1 }, es: seg, fs: seg, gs: seg, ss: seg, tr: { ...seg, s: 0 },
    ldt: { ...seg, unusable: 1 }, gdt: { base: 0x500n, limit: 31 }, idt: { base: 0n, limit: 0 },
    cr0: 0x80000011n, cr2: 0n, cr3: 0x9000n, cr4: 0x20n, cr8: 0n, efer: 0x500n, apicBase: 0xfee00900n,
    interruptBitmap: [0n, 1n, 0n, 1n << 63n],
  };
  const sb = encodeSregs(s);
  assert.equal(new DataView(sb.buffer).getBigUint64(SREGS.cr3, true), 0x9000n);
  assert.deepEqual(decodeSregs(sb), s);
});

test('kvm_guest_debug: 72 bytes, and the control bits', () => {
  const h = probeKernelHeader();
  assert.equal(h.get('kvm_guest_debug'), 72);
  assert.equal(h.get('KVM_SET_GUEST_DEBUG'), K.KVM_SET_GUEST_DEBUG);
  assert.equal(h.get('value.KVM_GUESTDBG_ENABLE'), KVM_GUESTDBG_ENABLE);
  assert.equal(h.get('value.KVM_GUESTDBG_SINGLESTEP'), KVM_GUESTDBG_SINGLESTEP);
  assert.equal(h.get('value.KVM_GUESTDBG_USE_SW_BP'), KVM_GUESTDBG_USE_SW_BP);
});

test('MSR filter ranges: one per kind and cluster, at most 65536 MSRs wide; a clear bit denies', () => {
  const hv = Array.from({ length: 6 }, (_, i) => ({ index: 0x40000100 + i, read: true, write: true }));
  const ranges = msrFilterRanges([...hv, { index: 0x174, read: false, write: true }, { index: 0x176, read: false, write: true }]);
  assert.deepEqual(ranges.map((r) => [r.flags, r.base.toString(16), r.nmsrs]), [
    [1, '40000100', 6], [2, '174', 3], [2, '40000100', 6],
  ]);
  assert.deepEqual([...ranges[1]!.bitmap], [0b1111_1010], '0x174 and 0x176 denied, 0x175 allowed');
  assert.deepEqual(msrFilterRanges([]), []);
});
