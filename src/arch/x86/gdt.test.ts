import assert from 'node:assert/strict';
import { test } from 'node:test';
import { testMemory } from '../../memory/guest-memory.js';
import { bootGdt, gdtEntry, segmentFromEntry, writeBootGdt } from './gdt.js';
import { BOOT_GDT, BOOT_IDT } from './layout.js';

void test('gdtEntry packs descriptors as the CPU reads them', () => {
  assert.equal(gdtEntry(0xa09b, 0, 0xfffff), 0x00af9b000000ffffn);
  assert.equal(gdtEntry(0xc093, 0, 0xfffff), 0x00cf93000000ffffn);
  assert.equal(gdtEntry(0xc09b, 0, 0xfffff), 0x00cf9b000000ffffn);
  assert.equal(gdtEntry(0x008b, 0x12345678, 0x67), 0x12008b3456780067n);
});

void test('segmentFromEntry expands a page-granular limit and decodes the flags', () => {
  const cs = segmentFromEntry(0x10, 0x00af9b000000ffffn);
  assert.deepEqual(cs, {
    base: 0n, limit: 0xffffffff, selector: 0x10, type: 0xb, s: 1, dpl: 0, present: 1,
    avl: 0, l: 1, db: 0, g: 1, unusable: 0,
  });
  const tss = segmentFromEntry(0x08, gdtEntry(0x008b, 0x12345678, 0x67));
  assert.equal(tss.base, 0x12345678n);
  assert.equal(tss.limit, 0x67);
  assert.equal(tss.s, 0);
  assert.equal(tss.type, 11);
});

void test('the boot GDT has null, TSS, code at 0x10 and data at 0x18, and an empty IDT', () => {
  const mem = testMemory([{ gpa: 0, size: 0x1000 }]);
  mem.writeU64(BOOT_IDT, 0xdeadn);
  writeBootGdt(mem, 'protected');
  assert.equal(mem.readU64(BOOT_GDT), 0n);
  assert.equal(mem.readU64(BOOT_GDT + 0x10), 0x00cf9b000000ffffn);
  assert.equal(mem.readU64(BOOT_GDT + 0x18), 0x00cf93000000ffffn);
  assert.equal(mem.readU64(BOOT_IDT), 0n);
  assert.equal(bootGdt('long')[2], 0x00af9b000000ffffn);
});
