import type { GuestMemory } from '../../memory/guest-memory.js';
import { PDE_START, PDPTE_START, PML4_START } from './layout.js';

const PTE_PRESENT = 0x1n;
const PTE_RW = 0x2n;
const PTE_PS = 0x80n; // in a PD entry: maps a 2 MiB page
const PAGE_SIZE = 0x1000;
const PD_COUNT = 4; // one page directory per GiB: identity-maps the first 4 GiB
const ENTRIES = 512;

/**
 * Identity page tables for the boot CPU: PML4[0] → PDPT, PDPT[0..3] → four PDs of 2 MiB pages.
 * The 64-bit boot protocol needs the kernel, boot_params and command line mapped 1:1.
 */
export function writeIdentityPageTables(mem: GuestMemory): void {
  mem.fill(PML4_START, PAGE_SIZE);
  mem.fill(PDPTE_START, PAGE_SIZE);
  mem.writeU64(PML4_START, BigInt(PDPTE_START) | PTE_PRESENT | PTE_RW);
  for (let d = 0; d < PD_COUNT; d++) {
    const pd = PDE_START + d * PAGE_SIZE;
    mem.writeU64(PDPTE_START + d * 8, BigInt(pd) | PTE_PRESENT | PTE_RW);
    for (let i = 0; i < ENTRIES; i++) {
      const addr = (BigInt(d) << 30n) | (BigInt(i) << 21n);
      mem.writeU64(pd + i * 8, addr | PTE_PRESENT | PTE_RW | PTE_PS);
    }
  }
}
