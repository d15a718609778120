import type { BootCpuState, Segment, Sregs } from '../../hypervisor/x86-state.js';
import { zeroRegs } from '../../hypervisor/x86-state.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import {
  BOOT_CS, BOOT_DS, BOOT_GDT_ENTRIES, BOOT_TSS_SELECTOR, segmentFromEntry, writeBootGdt,
  type BootMode,
} from './gdt.js';
import { BOOT_GDT, BOOT_IDT, BOOT_STACK, PML4_START } from './layout.js';
import { writeIdentityPageTables } from './page-tables.js';

export const X86_CR0_PE = 0x1n;
export const X86_CR0_ET = 0x10n;
export const X86_CR0_NE = 0x20n;
export const X86_CR0_PG = 0x80000000n;
export const X86_CR4_PAE = 0x20n;
export const EFER_LME = 0x100n;
export const EFER_LMA = 0x400n;

function segmentSregs(mem: GuestMemory, mode: BootMode): Partial<Sregs> {
  const gdt = writeBootGdt(mem, mode);
  const seg = (sel: number): Segment => segmentFromEntry(sel, gdt[sel >> 3]!);
  const data = seg(BOOT_DS);
  return {
    cs: seg(BOOT_CS),
    ds: data, es: { ...data }, fs: { ...data }, gs: { ...data }, ss: { ...data },
    tr: seg(BOOT_TSS_SELECTOR),
    gdt: { base: BigInt(BOOT_GDT), limit: BOOT_GDT_ENTRIES * 8 - 1 },
    // An empty IDT: any exception before the kernel loads its own is a triple fault, visibly.
    idt: { base: BigInt(BOOT_IDT), limit: 0 },
  };
}

/**
 * The boot CPU for Linux's 64-bit boot protocol: long mode, identity paging of the first
 * 4 GiB, CS = __BOOT_CS (64-bit), data segments = __BOOT_DS, interrupts off, RSI = boot_params.
 */
export function longModeEntry(mem: GuestMemory, rip: number, rsi: number): BootCpuState {
  writeIdentityPageTables(mem);
  const regs = zeroRegs();
  regs.rip = BigInt(rip);
  regs.rsi = BigInt(rsi);
  regs.rsp = BigInt(BOOT_STACK);
  regs.rbp = BigInt(BOOT_STACK);
  regs.rflags = 2n;
  return {
    regs,
    sregs: {
      ...segmentSregs(mem, 'long'),
      cr0: X86_CR0_PE | X86_CR0_ET | X86_CR0_NE | X86_CR0_PG,
      cr3: BigInt(PML4_START),
      cr4: X86_CR4_PAE,
      efer: EFER_LME | EFER_LMA,
    },
  };
}

/**
 * The boot CPU for a PVH entry: 32-bit flat protected mode, paging off, CS/DS as Linux's boot
 * GDT, EBX = the hvm_start_info address.
 */
export function protectedModeEntry(mem: GuestMemory, eip: number, ebx: number): BootCpuState {
  const regs = zeroRegs();
  regs.rip = BigInt(eip);
  regs.rbx = BigInt(ebx);
  regs.rflags = 2n;
  return {
    regs,
    sregs: {
      ...segmentSregs(mem, 'protected'),
      cr0: X86_CR0_PE | X86_CR0_ET,
      cr3: 0n,
      cr4: 0n,
      efer: 0n,
    },
  };
}

/**
 * The boot CPU resuming from ACPI S3 at the FACS firmware waking vector, as the BIOS hands
 * over: real mode, CS = vector >> 4, IP = vector & 0xF, everything else as after a reset.
 */
export function realModeWakeEntry(wakingVector: number): BootCpuState {
  const regs = zeroRegs();
  regs.rip = BigInt(wakingVector & 0xf);
  regs.rflags = 2n;
  const selector = (wakingVector >>> 4) & 0xffff;
  const seg = { limit: 0xffff, present: 1, dpl: 0, db: 0, s: 1, l: 0, g: 0, avl: 0, unusable: 0 };
  const data = { ...seg, base: 0n, selector: 0, type: 3 };
  return {
    regs,
    sregs: {
      cs: { ...seg, base: BigInt(selector << 4), selector, type: 0xb },
      ds: data, es: data, fs: data, gs: data, ss: data,
      cr0: X86_CR0_ET, cr3: 0n, cr4: 0n, efer: 0n,
    },
  };
}
