import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadKernel } from './load-kernel.js';
import { bootInput, fakeBzImage, fakeElf, pvhNote } from './test-images.js';

const seg = [{ paddr: 0x1000000, data: new Uint8Array(0x100) }];

void test('loadKernel recognizes bzImage, PVH ELF and ELF64 vmlinux', () => {
  assert.equal(loadKernel(bootInput({ kernel: fakeBzImage() })).format, 'bzImage');
  assert.equal(loadKernel(bootInput({ kernel: fakeElf({ elfClass: 32, entry: 0n, notes: [pvhNote(0x1000000)], segments: seg }) })).format, 'pvh-elf');
  assert.equal(loadKernel(bootInput({ kernel: fakeElf({ elfClass: 64, entry: 0x1000000n, segments: seg }) })).format, 'elf64');
});

void test('loadKernel: anything else is not a kernel', () => {
  for (const kernel of [new Uint8Array(0), new Uint8Array(10), new TextEncoder().encode('MZ'.padEnd(4096, '\0'))]) {
    assert.throws(() => loadKernel(bootInput({ kernel })), {
      name: 'ImageError', code: 'ERR_BAD_KERNEL', message: 'vmlinuz: not a Linux bzImage or ELF kernel',
    });
  }
  // "HdrS" without the boot sector's 0xaa55 is not a bzImage.
  const noBootFlag = fakeBzImage();
  noBootFlag[0x1fe] = 0;
  assert.throws(() => loadKernel(bootInput({ kernel: noBootFlag })), { message: 'vmlinuz: not a Linux bzImage or ELF kernel' });
});

void test('loadKernel: an ELF32 without a PVH note is refused', () => {
  assert.throws(() => loadKernel(bootInput({ kernel: fakeElf({ elfClass: 32, entry: 0x1000000n, segments: seg }) })), {
    message: 'vmlinuz: 32-bit ELF kernel without a PVH entry point (no "Xen" XEN_ELFNOTE_PHYS32_ENTRY note)',
  });
});

void test('loadKernel: ELF for another machine, or without PT_LOAD', () => {
  assert.throws(() => loadKernel(bootInput({ kernel: fakeElf({ elfClass: 64, machine: 183, entry: 0n, segments: seg }) })), {
    message: 'vmlinuz: ELF machine 183 is not x86-64 (62)',
  });
  assert.throws(() => loadKernel(bootInput({ kernel: fakeElf({ elfClass: 64, entry: 0n, segments: [] }) })), {
    message: 'vmlinuz: ELF file has no PT_LOAD segment',
  });
  const big = fakeElf({ elfClass: 64, entry: 0n, segments: seg });
  big[5] = 2;
  assert.throws(() => loadKernel(bootInput({ kernel: big })), {
    message: 'vmlinuz: unsupported ELF file: not a little-endian ELF32 or ELF64',
  });
});
