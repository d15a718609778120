import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ZERO_PAGE } from '../arch/x86/layout.js';
import { parseElf } from './elf.js';
import { loadElf64, physicalEntry } from './elf64.js';
import { bootInput, fakeElf } from './test-images.js';

const text = Uint8Array.from({ length: 0x300 }, (_, i) => i & 0xff);
const vmlinux = (entry: bigint): Uint8Array => fakeElf({
  elfClass: 64, entry,
  segments: [
    { paddr: 0x1000000, vaddr: 0xffffffff81000000n, data: text, memsz: 0x1000 },
    { paddr: 0x1200000, vaddr: 0xffffffff81200000n, data: text, memsz: 0x800 },
  ],
});

void test('ELF64 vmlinux: PT_LOADs at p_paddr, synthetic boot_params, long mode at the entry', () => {
  const input = bootInput({ kernel: vmlinux(0x1000000n), initrd: new Uint8Array(0x1800).fill(3), cmdline: 'quiet', rsdpAddr: 0xe0000 });
  const mem = input.memory;
  const r = loadElf64(input, parseElf('vmlinuz', input.kernel));
  assert.equal(r.format, 'elf64');
  assert.deepEqual(r.kernelRange, { addr: 0x1000000, size: 0x200800 });
  assert.deepEqual(mem.read(0x1200000, 0x300), text);
  assert.equal(r.cpu.regs.rip, 0x1000000n);
  assert.equal(r.cpu.regs.rsi, BigInt(ZERO_PAGE));
  assert.equal(r.cpu.sregs.efer, 0x500n);

  assert.equal(mem.readU16(ZERO_PAGE + 0x1fe), 0xaa55);
  assert.equal(mem.readU32(ZERO_PAGE + 0x202), 0x53726448);
  assert.equal(mem.readU16(ZERO_PAGE + 0x206), 0x020f);
  assert.equal(mem.readU8(ZERO_PAGE + 0x210), 0xff);
  assert.equal(mem.readU32(ZERO_PAGE + 0x228), 0x20000);
  assert.equal(new TextDecoder().decode(mem.read(0x20000, 6)), 'quiet\0');
  assert.equal(mem.readU32(ZERO_PAGE + 0x218), 0x4000000 - 0x2000);
  assert.equal(mem.readU32(ZERO_PAGE + 0x21c), 0x1800);
  assert.equal(mem.readU8(ZERO_PAGE + 0x1e8), input.e820.length);
  assert.equal(mem.readU64(ZERO_PAGE + 0x2d0 + 8), BigInt(input.e820[0]!.size));
  assert.equal(mem.readU64(ZERO_PAGE + 0x070), 0xe0000n);
});

void test('ELF64 vmlinux: a virtual e_entry is translated through the first PT_LOAD', () => {
  assert.equal(physicalEntry('vmlinuz', parseElf('vmlinuz', vmlinux(0xffffffff81000123n))), 0x1000123);
  assert.equal(physicalEntry('vmlinuz', parseElf('vmlinuz', vmlinux(0x1000040n))), 0x1000040);
  assert.throws(() => physicalEntry('vmlinuz', parseElf('vmlinuz', vmlinux(0x123456789n))), {
    message: 'vmlinuz: ELF entry point 0x123456789 is not a physical address below 4 GiB',
  });
});
