import { test } from 'node:test';
import assert from 'node:assert/strict';

import { pagingMode, translateGva, type PagingState, type PhysicalReader } from './gva.js';
import { PageTableBuilder } from './testing/page-tables.js';

const RAM = 0x40_0000; // 4 MiB is plenty for tables

function memory(): { ram: Uint8Array; read: PhysicalReader } {
  const ram = new Uint8Array(RAM);
  const read: PhysicalReader = (gpa, size) => (gpa + BigInt(size) <= BigInt(RAM) ? ram.slice(Number(gpa), Number(gpa) + size) : undefined);
  return { ram, read };
}

const PG = 0x8000_0001n; // CR0.PG | PE
const PAE = 0x20n;
const PSE = 0x10n;
const LA57 = 0x1000n;
const LMA = 0x500n; // EFER.LME | LMA

test('paging modes follow CR0.PG, CR4.PAE, EFER.LMA and CR4.LA57', () => {
  const s = (cr0: bigint, cr4: bigint, efer: bigint): PagingState => ({ cr0, cr3: 0n, cr4, efer });
  assert.equal(pagingMode(s(1n, 0n, 0n)), 'none');
  assert.equal(pagingMode(s(PG, 0n, 0n)), '32-bit');
  assert.equal(pagingMode(s(PG, PAE, 0n)), 'pae');
  assert.equal(pagingMode(s(PG, PAE, LMA)), '4-level');
  assert.equal(pagingMode(s(PG, PAE | LA57, LMA)), '5-level');
});

test('without paging, linear addresses are physical (32 bits)', () => {
  const { read } = memory();
  const s = { cr0: 1n, cr3: 0n, cr4: 0n, efer: 0n };
  assert.equal(translateGva(0x1234n, s, read), 0x1234n);
  assert.equal(translateGva(0x1_0000_1234n, s, read), 0x1234n);
});

test('32-bit paging: 4 KiB pages, and 4 MiB pages with PSE (PSE-36 high bits)', () => {
  const { ram, read } = memory();
  const t = new PageTableBuilder(ram, '32-bit', 0x10_0000n);
  t.map(0xc010_2000n, 0x0003_4000n);
  t.map(0x8000_0000n, 0x20_0000_0000n + 0x40_0000n, 22n);
  const s = { cr0: PG, cr3: t.root, cr4: PSE, efer: 0n };
  assert.equal(translateGva(0xc010_2abcn, s, read), 0x3_4abcn);
  assert.equal(translateGva(0x8012_3456n, s, read), 0x20_0052_3456n, 'PDE bits 20:13 are physical bits 39:32');
  assert.equal(translateGva(0xc010_3000n, s, read), undefined, 'no PTE');
  assert.equal(translateGva(0x1000n, s, read), undefined, 'no PDE');
  // Without CR4.PSE the PS bit is ignored and the entry points to a page table.
  assert.notEqual(translateGva(0x8012_3456n, { ...s, cr4: 0n }, read), 0x20_0052_3456n);
});

test('PAE paging: 4 KiB and 2 MiB pages, PDPTEs from CR3 bits 31:5', () => {
  const { ram, read } = memory();
  const t = new PageTableBuilder(ram, 'pae', 0x10_0000n);
  t.map(0xc000_1000n, 0x7000n);
  t.map(0x4020_0000n, 0x1_2340_0000n & ~0x1f_ffffn, 21n);
  const s = { cr0: PG, cr3: t.root, cr4: PAE, efer: 0n };
  assert.equal(translateGva(0xc000_1fffn, s, read), 0x7fffn);
  assert.equal(translateGva(0x4021_2345n, s, read), (0x1_2340_0000n & ~0x1f_ffffn) | 0x1_2345n);
  assert.equal(translateGva(0x8000_0000n, s, read), undefined, 'PDPTE not present');
  t.unmapAt(0xc000_1000n, 12n);
  assert.equal(translateGva(0xc000_1000n, s, read), undefined, 'PTE cleared');
});

test('4-level paging: 4 KiB, 2 MiB and 1 GiB pages; non-canonical addresses do not translate', () => {
  const { ram, read } = memory();
  const t = new PageTableBuilder(ram, '4-level', 0x10_0000n);
  t.map(0xffff_8000_0000_1000n, 0x5000n);
  t.map(0xffff_ffff_8020_0000n, 0x20_0000n, 21n);
  t.map(0x0000_7f00_4000_0000n, 0x1_c000_0000n, 30n);
  // A PML4 entry with PCID bits in CR3's low 12 bits must not disturb the walk.
  const s = { cr0: PG, cr3: t.root | 0x5n, cr4: PAE, efer: LMA };
  assert.equal(translateGva(0xffff_8000_0000_1234n, s, read), 0x5234n);
  assert.equal(translateGva(0xffff_ffff_8021_0000n, s, read), 0x21_0000n);
  assert.equal(translateGva(0x0000_7f00_7fff_fff8n, s, read), 0x1_ffff_fff8n);
  assert.equal(translateGva(0x0000_8000_0000_1000n, s, read), undefined, 'non-canonical');
  assert.equal(translateGva(0xffff_8000_0000_2000n, s, read), undefined, 'next page unmapped');
  assert.equal(translateGva(-0x7fff_ffff_f000n, s, read), 0x5000n, 'negative numbers are taken as 64-bit addresses');
  t.unmapAt(0xffff_ffff_8020_0000n, 21n);
  assert.equal(translateGva(0xffff_ffff_8021_0000n, s, read), undefined, 'large page cleared');
});

test('5-level paging: 57-bit addresses and large pages', () => {
  const { ram, read } = memory();
  const t = new PageTableBuilder(ram, '5-level', 0x10_0000n);
  t.map(0xff12_3456_789a_b000n, 0x9000n);
  t.map(0x00ff_0000_0000_0000n, 0x4000_0000n, 30n);
  const s = { cr0: PG, cr3: t.root, cr4: PAE | LA57, efer: LMA };
  assert.equal(translateGva(0xff12_3456_789a_bcdfn, s, read), 0x9cdfn);
  assert.equal(translateGva(0x00ff_0000_0000_0010n, s, read), 0x4000_0010n);
  assert.equal(translateGva(0x0100_0000_0000_0000n, s, read), undefined, 'non-canonical with 57 bits');
  // The same tables read as 4-level paging give something else entirely.
  assert.notEqual(translateGva(0xff12_3456_789a_bcdfn, { ...s, cr4: PAE }, read), 0x9cdfn);
});

test('a table outside RAM makes the walk fail, not throw', () => {
  const { ram, read } = memory();
  const t = new PageTableBuilder(ram, '4-level', 0x10_0000n);
  t.map(0x1000n, 0x2000n);
  const s = { cr0: PG, cr3: 0x7fff_f000n, cr4: PAE, efer: LMA };
  assert.equal(translateGva(0x1000n, s, read), undefined);
});
