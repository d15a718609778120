import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PVH_MEMMAP, PVH_MODLIST, PVH_START_INFO } from '../arch/x86/layout.js';
import { loadKernel } from './load-kernel.js';
import { bootInput, fakeElf, pvhNote, MIB } from './test-images.js';

const code = Uint8Array.from({ length: 0x100 }, (_, i) => 0x90 + (i & 1));

void test('PVH ELF32: segments at p_paddr with bss zeroed, hvm_start_info, 32-bit entry', () => {
  const kernel = fakeElf({
    elfClass: 32, entry: 0x100000n, notes: [{ name: 'GNU', type: 3, desc: new Uint8Array(4) }, pvhNote(0x100010)],
    segments: [{ paddr: 0x100000, data: code, memsz: 0x2000 }, { paddr: 0x200000, data: code }],
  });
  const initrd = new Uint8Array(5000).fill(7);
  const input = bootInput({ kernel, initrd, cmdline: 'console=ttyS0', rsdpAddr: 0xe0000 });
  const mem = input.memory;
  mem.fill(0x100100, 0x1f00, 0xee);
  const r = loadKernel(input);

  assert.equal(r.format, 'pvh-elf');
  assert.deepEqual(r.kernelRange, { addr: 0x100000, size: 0x100100 });
  assert.deepEqual(mem.read(0x100000, 0x100), code);
  assert.deepEqual(mem.read(0x100100, 0x1f00), new Uint8Array(0x1f00), 'bss zeroed');
  assert.deepEqual(mem.read(0x200000, 0x100), code);
  assert.equal(r.cpu.regs.rip, 0x100010n);
  assert.equal(r.cpu.regs.rbx, BigInt(PVH_START_INFO));
  assert.equal(r.cpu.sregs.cr0, 0x11n);
  assert.equal(r.cpu.sregs.cs?.db, 1);

  const s = PVH_START_INFO;
  assert.equal(mem.readU32(s), 0x336ec578);
  assert.equal(mem.readU32(s + 4), 1);
  assert.equal(mem.readU32(s + 8), 0);
  assert.equal(mem.readU32(s + 0x0c), 1);
  assert.equal(mem.readU64(s + 0x10), BigInt(PVH_MODLIST));
  assert.equal(mem.readU64(s + 0x18), 0x20000n);
  assert.equal(new TextDecoder().decode(mem.read(0x20000, 14)), 'console=ttyS0\0');
  assert.equal(mem.readU64(s + 0x20), 0xe0000n);
  assert.equal(mem.readU64(s + 0x28), BigInt(PVH_MEMMAP));
  assert.equal(mem.readU32(s + 0x30), input.e820.length);
  input.e820.forEach((e, i) => {
    const o = PVH_MEMMAP + i * 24;
    assert.deepEqual([mem.readU64(o), mem.readU64(o + 8), mem.readU32(o + 16), mem.readU32(o + 20)],
      [BigInt(e.addr), BigInt(e.size), e.type, 0]);
  });

  assert.deepEqual(r.initrdRange, { addr: 64 * MIB - 0x2000, size: 5000 });
  assert.equal(mem.readU64(PVH_MODLIST), BigInt(64 * MIB - 0x2000));
  assert.equal(mem.readU64(PVH_MODLIST + 8), 5000n);
  assert.deepEqual(mem.read(64 * MIB - 0x2000, 5000), initrd);
});

void test('PVH without initrd has no modules; an ELF64 with an 8-byte note is PVH too', () => {
  const kernel = fakeElf({ elfClass: 64, entry: 0n, notes: [pvhNote(0x1000000, 8)], segments: [{ paddr: 0x1000000, data: code }] });
  const input = bootInput({ kernel });
  const r = loadKernel(input);
  assert.equal(r.format, 'pvh-elf');
  assert.equal(r.cpu.regs.rip, 0x1000000n);
  assert.equal(input.memory.readU32(PVH_START_INFO + 0x0c), 0);
  assert.equal(input.memory.readU64(PVH_START_INFO + 0x10), 0n);
  assert.equal(r.initrdRange, undefined);
});

void test('PVH: a segment in the boot area below 1 MiB is refused', () => {
  const kernel = fakeElf({ elfClass: 32, entry: 0n, notes: [pvhNote(0x8000)], segments: [{ paddr: 0x8000, data: code, memsz: 0x1000 }] });
  assert.throws(() => loadKernel(bootInput({ kernel })), {
    code: 'ERR_BAD_KERNEL', message: 'vmlinuz: ELF program header 1 (0x8000-0x9000) overlaps the boot area 0x0-0x30000',
  });
  const bios = fakeElf({ elfClass: 32, entry: 0n, notes: [pvhNote(0xf0000)], segments: [{ paddr: 0xf0000, data: code }] });
  assert.throws(() => loadKernel(bootInput({ kernel: bios })), { message: /overlaps the boot area 0x9fc00-0x100000$/ });
  const low = fakeElf({ elfClass: 32, entry: 0n, notes: [pvhNote(0x40000)], segments: [{ paddr: 0x40000, data: code }] });
  assert.equal(loadKernel(bootInput({ kernel: low })).cpu.regs.rip, 0x40000n, 'free low memory is fine');
});

void test('PVH: a segment that does not fit in RAM', () => {
  const kernel = fakeElf({ elfClass: 32, entry: 0n, notes: [pvhNote(0x100000)], segments: [{ paddr: 0x100000, data: code, memsz: 64 * MIB }] });
  assert.throws(() => loadKernel(bootInput({ kernel })), {
    code: 'ERR_DOES_NOT_FIT',
    message: 'vmlinuz: kernel does not fit in RAM: it needs 67108864 bytes at 0x100000 (up to 0x4100000), RAM is 64 MiB, ending at 0x4000000 below 4 GiB',
  });
});

void test('PVH: an initrd that does not fit above the kernel', () => {
  const kernel = fakeElf({ elfClass: 32, entry: 0n, notes: [pvhNote(0x100000)], segments: [{ paddr: 0x100000, data: code, memsz: 40 * MIB }] });
  assert.throws(() => loadKernel(bootInput({ kernel, initrd: new Uint8Array(30 * MIB) })), {
    code: 'ERR_DOES_NOT_FIT', message: /^initrd\.img: initrd does not fit in RAM: 31457280 bytes do not fit between the kernel's end 0x2900000 and 0x4000000/,
  });
});

void test('PVH: a truncated file', () => {
  const kernel = fakeElf({ elfClass: 32, entry: 0n, notes: [pvhNote(0x100000)], segments: [{ paddr: 0x100000, data: code }] });
  const cut = kernel.subarray(0, kernel.length - 0x10);
  assert.throws(() => loadKernel(bootInput({ kernel: cut })), {
    message: `vmlinuz: truncated: program header 1 needs ${kernel.length} bytes, file has ${cut.length}`,
  });
});

void test('PVH: a command line longer than the area for it', () => {
  const kernel = fakeElf({ elfClass: 32, entry: 0n, notes: [pvhNote(0x100000)], segments: [{ paddr: 0x100000, data: code }] });
  assert.throws(() => loadKernel(bootInput({ kernel, cmdline: 'a'.repeat(0x10000) })), {
    message: 'vmlinuz: command line too long: 65536 bytes, the kernel accepts at most 65535',
  });
});
