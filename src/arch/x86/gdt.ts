import type { Segment } from '../../hypervisor/x86-state.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import { BOOT_GDT, BOOT_IDT } from './layout.js';

/** Selectors of the boot GDT. Linux's boot protocol fixes __BOOT_CS and __BOOT_DS. */
export const BOOT_TSS_SELECTOR = 0x08;
export const BOOT_CS = 0x10;
export const BOOT_DS = 0x18;
export const BOOT_GDT_ENTRIES = 4;

/** Descriptor access bytes: present | s | type (flags in the high nibble of the 16-bit value). */
const CODE64 = 0xa09b; //  G, L, P, S, type 0xb (execute/read, accessed)
const CODE32 = 0xc09b; //  G, D, P, S, type 0xb
const DATA = 0xc093; //    G, B, P, S, type 0x3 (read/write, accessed)
// 0x08 is free in Linux's boot GDT; TR points there because KVM wants a busy TSS in TR.
const TSS = 0x008b; //     P, type 0xb (busy 64-bit TSS), system segment

/** An 8-byte segment descriptor from (flags, base, limit) in the usual packed form. */
export function gdtEntry(flags: number, base: number, limit: number): bigint {
  const b = BigInt(base >>> 0);
  const l = BigInt(limit & 0xfffff);
  const f = BigInt(flags & 0xf0ff);
  return ((b & 0xff000000n) << 32n) | ((f & 0xf0ffn) << 40n) | ((l & 0xf0000n) << 32n)
    | ((b & 0x00ffffffn) << 16n) | (l & 0xffffn);
}

/** The kvm_segment that matches a descriptor, as the CPU would cache it after loading `selector`. */
export function segmentFromEntry(selector: number, entry: bigint): Segment {
  const base = ((entry >> 16n) & 0xffffffn) | (((entry >> 56n) & 0xffn) << 24n);
  const rawLimit = Number((entry & 0xffffn) | (((entry >> 48n) & 0xfn) << 16n));
  const g = Number((entry >> 55n) & 1n);
  return {
    base,
    // kvm_segment.limit is in bytes: expand page-granular limits.
    limit: g ? ((rawLimit << 12) | 0xfff) >>> 0 : rawLimit,
    selector,
    type: Number((entry >> 40n) & 0xfn),
    s: Number((entry >> 44n) & 1n),
    dpl: Number((entry >> 45n) & 3n),
    present: Number((entry >> 47n) & 1n),
    avl: Number((entry >> 52n) & 1n),
    l: Number((entry >> 53n) & 1n),
    db: Number((entry >> 54n) & 1n),
    g,
    unusable: 0,
  };
}

export type BootMode = 'long' | 'protected';

/** The boot GDT for a mode: null, TSS, flat code at 0x10, flat data at 0x18. */
export function bootGdt(mode: BootMode): bigint[] {
  return [
    0n,
    gdtEntry(TSS, 0, 0x67),
    gdtEntry(mode === 'long' ? CODE64 : CODE32, 0, 0xfffff),
    gdtEntry(DATA, 0, 0xfffff),
  ];
}

/** Writes the boot GDT at BOOT_GDT and an empty IDT at BOOT_IDT; returns the GDT entries. */
export function writeBootGdt(mem: GuestMemory, mode: BootMode): bigint[] {
  const gdt = bootGdt(mode);
  gdt.forEach((e, i) => mem.writeU64(BOOT_GDT + i * 8, e));
  mem.writeU64(BOOT_IDT, 0n);
  return gdt;
}
