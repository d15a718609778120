/**
 * Guest-virtual → guest-physical translation by walking the guest's page tables in guest
 * memory, for VCPU_TRANSLATE_GVA and breakpoint addresses. KVM_TRANSLATE would do it only in
 * the vCPU's thread; walking here needs nothing but CR0/CR3/CR4/EFER and RAM. Only presence
 * is checked (as KVM does for introspection lookups), not the access rights.
 *
 * Paging modes (SDM vol. 3, ch. 4): off (linear = physical), 32-bit (4 KiB pages, 4 MiB with
 * CR4.PSE), PAE (3 levels, 2 MiB pages), 4-level (EFER.LMA; 1 GiB and 2 MiB pages) and
 * 5-level (CR4.LA57).
 */
export interface PagingState {
  cr0: bigint;
  cr3: bigint;
  cr4: bigint;
  efer: bigint;
}

export type PhysicalReader = (gpa: bigint, size: number) => Uint8Array | undefined;

export type PagingMode = 'none' | '32-bit' | 'pae' | '4-level' | '5-level';

const CR0_PG = 1n << 31n;
const CR4_PSE = 1n << 4n;
const CR4_PAE = 1n << 5n;
const CR4_LA57 = 1n << 12n;
const EFER_LMA = 1n << 10n;

const PRESENT = 1n;
const PAGE_SIZE_BIT = 1n << 7n; // PS: this entry maps a large page
/** Bits 51:12 of an entry: the next table or the page (MAXPHYADDR is at most 52). */
const ADDRESS_MASK = 0x000f_ffff_ffff_f000n;

export function pagingMode(s: PagingState): PagingMode {
  if ((s.cr0 & CR0_PG) === 0n) return 'none';
  if ((s.cr4 & CR4_PAE) === 0n) return '32-bit';
  if ((s.efer & EFER_LMA) === 0n) return 'pae';
  return (s.cr4 & CR4_LA57) !== 0n ? '5-level' : '4-level';
}

function entry(read: PhysicalReader, gpa: bigint, size: 4 | 8): bigint | undefined {
  const b = read(gpa, size);
  if (b === undefined || b.length !== size) return undefined;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return size === 8 ? v.getBigUint64(0, true) : BigInt(v.getUint32(0, true));
}

const bits = (x: bigint, lo: bigint, n: bigint): bigint => (x >> lo) & ((1n << n) - 1n);

/** Whether `gva` is canonical for a linear address width of `width` bits. */
function canonical(gva: bigint, width: bigint): boolean {
  const top = gva >> (width - 1n);
  return top === 0n || top === (1n << (65n - width)) - 1n;
}

function walk32(gva: bigint, s: PagingState, read: PhysicalReader): bigint | undefined {
  const va = gva & 0xffff_ffffn;
  const pde = entry(read, (s.cr3 & 0xffff_f000n) + bits(va, 22n, 10n) * 4n, 4);
  if (pde === undefined || (pde & PRESENT) === 0n) return undefined;
  if ((pde & PAGE_SIZE_BIT) !== 0n && (s.cr4 & CR4_PSE) !== 0n) {
    // A 4 MiB page; PSE-36 puts physical bits 39:32 in PDE bits 20:13.
    const base = (pde & 0xffc0_0000n) | (bits(pde, 13n, 8n) << 32n);
    return base | (va & 0x3f_ffffn);
  }
  const pte = entry(read, (pde & 0xffff_f000n) + bits(va, 12n, 10n) * 4n, 4);
  if (pte === undefined || (pte & PRESENT) === 0n) return undefined;
  return (pte & 0xffff_f000n) | (va & 0xfffn);
}

/**
 * The levels below the top one, shared by PAE, 4-level and 5-level paging: `table` is the
 * physical address of a table indexed by gva bits [shift+8 : shift].
 */
function walkFrom(gva: bigint, table: bigint, shift: bigint, read: PhysicalReader, largeAllowed: (shift: bigint) => boolean): bigint | undefined {
  for (;;) {
    const e = entry(read, table + bits(gva, shift, 9n) * 8n, 8);
    if (e === undefined || (e & PRESENT) === 0n) return undefined;
    if (shift === 12n) return (e & ADDRESS_MASK) | (gva & 0xfffn);
    if ((e & PAGE_SIZE_BIT) !== 0n && largeAllowed(shift)) {
      const pageMask = (1n << shift) - 1n;
      return (e & ADDRESS_MASK & ~pageMask) | (gva & pageMask);
    }
    table = e & ADDRESS_MASK;
    shift -= 9n;
  }
}

function walkPae(gva: bigint, s: PagingState, read: PhysicalReader): bigint | undefined {
  const va = gva & 0xffff_ffffn;
  // The four PDPTEs sit at CR3 bits 31:5; a PDPTE never maps a page in PAE mode.
  const pdpte = entry(read, (s.cr3 & 0xffff_ffe0n) + bits(va, 30n, 2n) * 8n, 8);
  if (pdpte === undefined || (pdpte & PRESENT) === 0n) return undefined;
  return walkFrom(va, pdpte & ADDRESS_MASK, 21n, read, (shift) => shift === 21n);
}

/** 1 GiB (PDPTE) and 2 MiB (PDE) pages; PS is reserved higher up. */
const longModeLarge = (shift: bigint): boolean => shift === 30n || shift === 21n;

/** The guest-physical address `gva` maps to in the given paging state, or undefined when it is not mapped. */
export function translateGva(gva: bigint, s: PagingState, read: PhysicalReader): bigint | undefined {
  const va = BigInt.asUintN(64, gva);
  switch (pagingMode(s)) {
    case 'none':
      return va & 0xffff_ffffn;
    case '32-bit':
      return walk32(va, s, read);
    case 'pae':
      return walkPae(va, s, read);
    case '4-level':
      if (!canonical(va, 48n)) return undefined;
      return walkFrom(va, s.cr3 & ADDRESS_MASK, 39n, read, longModeLarge);
    case '5-level':
      if (!canonical(va, 57n)) return undefined;
      return walkFrom(va, s.cr3 & ADDRESS_MASK, 48n, read, longModeLarge);
  }
}
