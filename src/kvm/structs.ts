/**
 * Layouts of the KVM structures nodevisor passes through ioctls, declared once and tested
 * against the kernel's sizes and offsets (<linux/kvm.h>, x86-64).
 */
import { REG_NAMES, SEGMENT_NAMES, type Regs, type Segment, type Sregs } from '../hypervisor/x86-state.js';

export const KVM_REGS_SIZE = 144;
export const KVM_SREGS_SIZE = 312;
export const KVM_SEGMENT_SIZE = 24;
export const KVM_USERSPACE_MEMORY_REGION_SIZE = 32;
export const KVM_CPUID_ENTRY2_SIZE = 40;
export const KVM_MSR_ENTRY_SIZE = 16;
export const KVM_LAPIC_STATE_SIZE = 1024;
export const KVM_FPU_SIZE = 416;

/** struct kvm_sregs offsets. */
/** Offset of rip in struct kvm_regs (sixteen u64 registers before it). */
export const REGS_RIP = 128;

export const SREGS = {
  segments: 0, gdt: 192, idt: 208, cr0: 224, cr2: 232, cr3: 240, cr4: 248, cr8: 256, efer: 264,
  apicBase: 272, interruptBitmap: 280,
} as const;

/** struct kvm_run: the header and the exit union (which starts at 32). */
export const KVM_RUN = {
  requestInterruptWindow: 0,
  immediateExit: 1,
  exitReason: 8,
  readyForInterruptInjection: 12,
  ifFlag: 13,
  flags: 14,
  cr8: 16,
  apicBase: 24,
  exit: 32,
  /** u64 kvm_valid_regs: KVM_SYNC_X86_* KVM stores into `s` at every exit. */
  validRegs: 288,
  /** struct kvm_sync_regs s: kvm_regs, then kvm_sregs. */
  syncRegs: 304,
  syncSregs: 304 + 144,
} as const;

export const KVM_SYNC_X86_REGS = 1;
export const KVM_SYNC_X86_SREGS = 2;

function dv(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

export function encodeRegs(r: Regs, out = new Uint8Array(KVM_REGS_SIZE)): Uint8Array {
  const v = dv(out);
  REG_NAMES.forEach((name, i) => v.setBigUint64(i * 8, BigInt.asUintN(64, r[name]), true));
  return out;
}

export function decodeRegs(b: Uint8Array): Regs {
  const v = dv(b);
  const r = {} as Regs;
  REG_NAMES.forEach((name, i) => { r[name] = v.getBigUint64(i * 8, true); });
  return r;
}

function encodeSegment(v: DataView, off: number, s: Segment): void {
  v.setBigUint64(off, s.base, true);
  v.setUint32(off + 8, s.limit >>> 0, true);
  v.setUint16(off + 12, s.selector, true);
  const bytes = [s.type, s.present, s.dpl, s.db, s.s, s.l, s.g, s.avl, s.unusable, 0];
  bytes.forEach((x, i) => v.setUint8(off + 14 + i, x));
}

function decodeSegment(v: DataView, off: number): Segment {
  return {
    base: v.getBigUint64(off, true),
    limit: v.getUint32(off + 8, true),
    selector: v.getUint16(off + 12, true),
    type: v.getUint8(off + 14),
    present: v.getUint8(off + 15),
    dpl: v.getUint8(off + 16),
    db: v.getUint8(off + 17),
    s: v.getUint8(off + 18),
    l: v.getUint8(off + 19),
    g: v.getUint8(off + 20),
    avl: v.getUint8(off + 21),
    unusable: v.getUint8(off + 22),
  };
}

export function encodeSregs(s: Sregs, out = new Uint8Array(KVM_SREGS_SIZE)): Uint8Array {
  const v = dv(out);
  SEGMENT_NAMES.forEach((name, i) => encodeSegment(v, SREGS.segments + i * KVM_SEGMENT_SIZE, s[name]));
  v.setBigUint64(SREGS.gdt, s.gdt.base, true);
  v.setUint16(SREGS.gdt + 8, s.gdt.limit, true);
  v.setBigUint64(SREGS.idt, s.idt.base, true);
  v.setUint16(SREGS.idt + 8, s.idt.limit, true);
  v.setBigUint64(SREGS.cr0, s.cr0, true);
  v.setBigUint64(SREGS.cr2, s.cr2, true);
  v.setBigUint64(SREGS.cr3, s.cr3, true);
  v.setBigUint64(SREGS.cr4, s.cr4, true);
  v.setBigUint64(SREGS.cr8, s.cr8, true);
  v.setBigUint64(SREGS.efer, s.efer, true);
  v.setBigUint64(SREGS.apicBase, s.apicBase, true);
  s.interruptBitmap.forEach((w, i) => v.setBigUint64(SREGS.interruptBitmap + i * 8, w, true));
  return out;
}

export function decodeSregs(b: Uint8Array): Sregs {
  const v = dv(b);
  const seg = (i: number): Segment => decodeSegment(v, SREGS.segments + i * KVM_SEGMENT_SIZE);
  const q = (off: number): bigint => v.getBigUint64(off, true);
  return {
    cs: seg(0), ds: seg(1), es: seg(2), fs: seg(3), gs: seg(4), ss: seg(5), tr: seg(6), ldt: seg(7),
    gdt: { base: q(SREGS.gdt), limit: v.getUint16(SREGS.gdt + 8, true) },
    idt: { base: q(SREGS.idt), limit: v.getUint16(SREGS.idt + 8, true) },
    cr0: q(SREGS.cr0), cr2: q(SREGS.cr2), cr3: q(SREGS.cr3), cr4: q(SREGS.cr4), cr8: q(SREGS.cr8),
    efer: q(SREGS.efer), apicBase: q(SREGS.apicBase),
    interruptBitmap: [0, 1, 2, 3].map((i) => q(SREGS.interruptBitmap + i * 8)) as Sregs['interruptBitmap'],
  };
}

export function encodeMemoryRegion(slot: number, flags: number, gpa: number, size: number, hostAddress: bigint): Uint8Array {
  const out = new Uint8Array(KVM_USERSPACE_MEMORY_REGION_SIZE);
  const v = dv(out);
  v.setUint32(0, slot, true);
  v.setUint32(4, flags, true);
  v.setBigUint64(8, BigInt(gpa), true);
  v.setBigUint64(16, BigInt(size), true);
  v.setBigUint64(24, hostAddress, true);
  return out;
}

export interface CpuidEntryData {
  function: number; index: number; flags: number; eax: number; ebx: number; ecx: number; edx: number;
}

/** struct kvm_cpuid2 with room for `capacity` entries. */
export function encodeCpuid2(entries: readonly CpuidEntryData[], capacity = entries.length): Uint8Array {
  const out = new Uint8Array(8 + capacity * KVM_CPUID_ENTRY2_SIZE);
  const v = dv(out);
  v.setUint32(0, Math.max(entries.length, capacity), true);
  entries.forEach((e, i) => {
    const o = 8 + i * KVM_CPUID_ENTRY2_SIZE;
    [e.function, e.index, e.flags, e.eax, e.ebx, e.ecx, e.edx].forEach((x, j) => v.setUint32(o + j * 4, x >>> 0, true));
  });
  return out;
}

export function decodeCpuid2(b: Uint8Array): CpuidEntryData[] {
  const v = dv(b);
  const n = v.getUint32(0, true);
  const out: CpuidEntryData[] = [];
  for (let i = 0; i < n; i++) {
    const o = 8 + i * KVM_CPUID_ENTRY2_SIZE;
    const u = (j: number): number => v.getUint32(o + j * 4, true);
    out.push({ function: u(0), index: u(1), flags: u(2), eax: u(3), ebx: u(4), ecx: u(5), edx: u(6) });
  }
  return out;
}

export interface MsrEntry {
  index: number;
  data: bigint;
}

export function encodeMsrs(entries: readonly MsrEntry[]): Uint8Array {
  const out = new Uint8Array(8 + entries.length * KVM_MSR_ENTRY_SIZE);
  const v = dv(out);
  v.setUint32(0, entries.length, true);
  entries.forEach((e, i) => {
    v.setUint32(8 + i * 16, e.index >>> 0, true);
    v.setBigUint64(8 + i * 16 + 8, BigInt.asUintN(64, e.data), true);
  });
  return out;
}

export function decodeMsrs(b: Uint8Array, count: number): MsrEntry[] {
  const v = dv(b);
  const out: MsrEntry[] = [];
  for (let i = 0; i < count; i++) out.push({ index: v.getUint32(8 + i * 16, true), data: v.getBigUint64(8 + i * 16 + 8, true) });
  return out;
}

export const KVM_IRQ_ROUTING_ENTRY_SIZE = 48;
export const KVM_IRQ_ROUTING_IRQCHIP = 1;
export const KVM_IRQCHIP_PIC_MASTER = 0;
export const KVM_IRQCHIP_PIC_SLAVE = 1;
export const KVM_IRQCHIP_IOAPIC = 2;

export interface IrqRoute {
  gsi: number;
  irqchip: number;
  pin: number;
}

/** struct kvm_irq_routing with irqchip entries. */
export function encodeIrqRouting(routes: readonly IrqRoute[]): Uint8Array {
  const out = new Uint8Array(8 + routes.length * KVM_IRQ_ROUTING_ENTRY_SIZE);
  const v = dv(out);
  v.setUint32(0, routes.length, true);
  routes.forEach((r, i) => {
    const o = 8 + i * KVM_IRQ_ROUTING_ENTRY_SIZE;
    v.setUint32(o, r.gsi, true);
    v.setUint32(o + 4, KVM_IRQ_ROUTING_IRQCHIP, true);
    v.setUint32(o + 16, r.irqchip, true);
    v.setUint32(o + 20, r.pin, true);
  });
  return out;
}
