import assert from 'node:assert/strict';
import { test } from 'node:test';
import { testMemory } from '../../memory/guest-memory.js';
import { longModeEntry, protectedModeEntry } from './boot-cpu.js';
import { BOOT_GDT, BOOT_IDT, BOOT_STACK, PML4_START, PDPTE_START, ZERO_PAGE } from './layout.js';

const mem = () => testMemory([{ gpa: 0, size: 0x10000 }]);

void test('long mode entry: paging, EFER, 64-bit CS 0x10, flat data 0x18, busy TSS, RSI', () => {
  const m = mem();
  const { regs, sregs } = longModeEntry(m, 0x100200, ZERO_PAGE);
  assert.equal(regs.rip, 0x100200n);
  assert.equal(regs.rsi, BigInt(ZERO_PAGE));
  assert.equal(regs.rsp, BigInt(BOOT_STACK));
  assert.equal(regs.rflags, 2n);
  assert.equal(sregs.cr0, 0x80000031n);
  assert.equal(sregs.cr4, 0x20n);
  assert.equal(sregs.cr3, BigInt(PML4_START));
  assert.equal(sregs.efer, 0x500n);
  assert.deepEqual(sregs.gdt, { base: BigInt(BOOT_GDT), limit: 31 });
  assert.deepEqual(sregs.idt, { base: BigInt(BOOT_IDT), limit: 0 });
  assert.equal(sregs.cs?.selector, 0x10);
  assert.equal(sregs.cs?.l, 1);
  assert.equal(sregs.cs?.db, 0);
  assert.equal(sregs.cs?.type, 0xb);
  for (const s of [sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss]) {
    assert.deepEqual(s, {
      base: 0n, limit: 0xffffffff, selector: 0x18, type: 3, s: 1, dpl: 0, present: 1,
      avl: 0, l: 0, db: 1, g: 1, unusable: 0,
    });
  }
  assert.equal(sregs.tr?.type, 11);
  assert.equal(sregs.tr?.s, 0);
  assert.equal(sregs.tr?.present, 1);
  assert.equal(sregs.tr?.unusable, 0);
  // What the sregs claim is what the GDT in memory says.
  assert.equal(m.readU64(BOOT_GDT + 0x10), 0x00af9b000000ffffn);
  assert.equal(m.readU64(PML4_START), BigInt(PDPTE_START) | 3n);
});

void test('protected mode entry: PE without paging, 32-bit flat CS, EBX = start_info', () => {
  const m = mem();
  const { regs, sregs } = protectedModeEntry(m, 0x100000, 0x6000);
  assert.equal(regs.rip, 0x100000n);
  assert.equal(regs.rbx, 0x6000n);
  assert.equal(regs.rflags, 2n);
  assert.equal(sregs.cr0, 0x11n);
  assert.equal(sregs.cr4, 0n);
  assert.equal(sregs.efer, 0n);
  assert.deepEqual(sregs.cs, {
    base: 0n, limit: 0xffffffff, selector: 0x10, type: 0xb, s: 1, dpl: 0, present: 1,
    avl: 0, l: 0, db: 1, g: 1, unusable: 0,
  });
  assert.equal(sregs.ss?.selector, 0x18);
  assert.equal(sregs.ss?.type, 3);
  assert.equal(sregs.tr?.type, 11);
  assert.equal(m.readU64(BOOT_GDT + 0x10), 0x00cf9b000000ffffn);
  assert.equal(m.readU64(PML4_START), 0n, 'no page tables for PVH');
});
