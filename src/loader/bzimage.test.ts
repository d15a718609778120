import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ZERO_PAGE } from '../arch/x86/layout.js';
import { loadBzImage } from './bzimage.js';
import { bootInput, fakeBzImage, fakeElf, lz4LegacyLiterals, MIB } from './test-images.js';

void test('bzImage: protected-mode code at 1 MiB, long mode at startup_64, RSI = boot_params', () => {
  const kernel = fakeBzImage();
  const input = bootInput({ kernel, cmdline: 'console=ttyS0 root=/dev/vda' });
  const r = loadBzImage(input);
  const mem = input.memory;
  assert.equal(r.format, 'bzImage');
  assert.deepEqual(r.kernelRange, { addr: 0x100000, size: 0x1000 });
  assert.deepEqual(mem.read(0x100000, 0x1000), kernel.subarray(0xa00));
  assert.equal(r.cpu.regs.rip, 0x100200n);
  assert.equal(r.cpu.regs.rsi, BigInt(ZERO_PAGE));
  assert.equal(r.cpu.sregs.cs?.l, 1);
  assert.equal(r.initrdRange, undefined);

  // The image's setup header, with the loader's fields filled in.
  assert.equal(mem.readU32(ZERO_PAGE + 0x202), 0x53726448);
  assert.equal(mem.readU8(ZERO_PAGE + 0x1f1), 4);
  assert.equal(mem.readU64(ZERO_PAGE + 0x258), 0x1000000n);
  assert.equal(mem.readU32(ZERO_PAGE + 0x260), 4 * MIB);
  assert.equal(mem.readU8(ZERO_PAGE + 0x210), 0xff);
  assert.equal(mem.readU8(ZERO_PAGE + 0x211), 0x81);
  assert.equal(mem.readU32(ZERO_PAGE + 0x228), 0x20000);
  assert.equal(new TextDecoder().decode(mem.read(0x20000, 27)), 'console=ttyS0 root=/dev/vda');
  assert.equal(mem.readU8(0x20000 + 27), 0);
  assert.equal(mem.readU32(ZERO_PAGE + 0x218), 0);
  assert.equal(mem.readU64(ZERO_PAGE + 0x070), 0n);
  // e820 copied from the BootInput.
  assert.equal(mem.readU8(ZERO_PAGE + 0x1e8), input.e820.length);
  input.e820.forEach((e, i) => {
    assert.equal(mem.readU64(ZERO_PAGE + 0x2d0 + i * 20), BigInt(e.addr));
    assert.equal(mem.readU64(ZERO_PAGE + 0x2d0 + i * 20 + 8), BigInt(e.size));
    assert.equal(mem.readU32(ZERO_PAGE + 0x2d0 + i * 20 + 16), e.type);
  });
});

void test('bzImage: setup_sects 0 means 4, and the RSDP address is passed', () => {
  const input = bootInput({ kernel: fakeBzImage({ setupSects: 0 }), rsdpAddr: 0xe0000 });
  loadBzImage(input);
  assert.equal(input.memory.readU8(0x100000), 1, 'pm code starts after 5 sectors');
  assert.equal(input.memory.readU64(ZERO_PAGE + 0x070), 0xe0000n);
});

void test('bzImage: the initrd goes page-aligned at the top of RAM', () => {
  const initrd = new Uint8Array(10000).fill(0x5a);
  const input = bootInput({ kernel: fakeBzImage(), initrd });
  const r = loadBzImage(input);
  assert.deepEqual(r.initrdRange, { addr: 0x3ffd000, size: 10000 });
  assert.equal(input.memory.readU32(ZERO_PAGE + 0x218), 0x3ffd000);
  assert.equal(input.memory.readU32(ZERO_PAGE + 0x21c), 10000);
  assert.deepEqual(input.memory.read(0x3ffd000, 10000), initrd);
});

void test('bzImage: the initrd stays below initrd_addr_max', () => {
  const input = bootInput({ kernel: fakeBzImage({ initrdAddrMax: 0x2ffffff }), initrd: new Uint8Array(10000) });
  assert.deepEqual(loadBzImage(input).initrdRange, { addr: 0x2ffd000, size: 10000 });
});

void test('bzImage: refuses a kernel older than boot protocol 2.12', () => {
  assert.throws(() => loadBzImage(bootInput({ kernel: fakeBzImage({ version: 0x020b }) })), {
    name: 'ImageError', code: 'ERR_BAD_KERNEL',
    message: 'vmlinuz: kernel too old for the 64-bit boot protocol: boot protocol 2.11, need 2.12',
  });
});

void test('bzImage: refuses a kernel without XLF_KERNEL_64', () => {
  assert.throws(() => loadBzImage(bootInput({ kernel: fakeBzImage({ xloadflags: 0 }) })), {
    message: 'vmlinuz: kernel has no 64-bit entry point (xloadflags lacks XLF_KERNEL_64)',
  });
});

void test('bzImage: a truncated file says how long it should be', () => {
  assert.throws(() => loadBzImage(bootInput({ kernel: fakeBzImage({ truncate: 100 }) })), {
    code: 'ERR_BAD_KERNEL', message: 'vmlinuz: truncated: setup header says 6656 bytes, file has 6556',
  });
});

void test('bzImage: a kernel whose init_size does not fit in RAM', () => {
  assert.throws(() => loadBzImage(bootInput({ kernel: fakeBzImage({ initSize: 60 * MIB }) })), {
    code: 'ERR_DOES_NOT_FIT',
    message: 'vmlinuz: kernel does not fit in RAM: it needs 78643200 bytes at 0x100000 (up to 0x4c00000), RAM is 64 MiB, ending at 0x4000000 below 4 GiB',
  });
});

void test('bzImage: a non-relocatable kernel runs at pref_address', () => {
  const kernel = fakeBzImage({ relocatable: false, prefAddress: 0x2000000, initSize: 40 * MIB });
  assert.throws(() => loadBzImage(bootInput({ kernel })), { code: 'ERR_DOES_NOT_FIT' });
  assert.doesNotThrow(() => loadBzImage(bootInput({ kernel, ramSize: 128 * MIB })));
});

void test('bzImage: an initrd that does not fit above the kernel', () => {
  const input = bootInput({ kernel: fakeBzImage(), initrd: new Uint8Array(60 * MIB) });
  assert.throws(() => loadBzImage(input), {
    code: 'ERR_DOES_NOT_FIT',
    message: "initrd.img: initrd does not fit in RAM: 62914560 bytes do not fit between the kernel's end 0x1400000 and 0x4000000, RAM is 64 MiB, ending at 0x4000000 below 4 GiB",
  });
});

void test('bzImage: the command line may be as long as cmdline_size, not longer', () => {
  assert.doesNotThrow(() => loadBzImage(bootInput({ kernel: fakeBzImage({ cmdlineSize: 13 }), cmdline: 'console=ttyS0' })));
  assert.throws(() => loadBzImage(bootInput({ kernel: fakeBzImage({ cmdlineSize: 12 }), cmdline: 'console=ttyS0' })), {
    message: 'vmlinuz: command line too long: 13 bytes, the kernel accepts at most 12',
  });
  assert.throws(() => loadBzImage(bootInput({ kernel: fakeBzImage({ cmdlineSize: 0x100000 }), cmdline: 'x'.repeat(0x10000) })), {
    message: 'vmlinuz: command line too long: 65536 bytes, the kernel accepts at most 65535',
  });
});

/** A bzImage whose payload is an LZ4 legacy frame holding `vmlinux`. */
function lz4BzImage(vmlinux: Uint8Array): Uint8Array {
  const payload = lz4LegacyLiterals(vmlinux, 0x300);
  const pm = new Uint8Array(0x400 + payload.length + 12);
  pm.set(payload, 0x400);
  return fakeBzImage({ pm, payloadOffset: 0x400, payloadLength: payload.length });
}

void test('bzImage decompressOnHost: loads the vmlinux inside an LZ4 payload and enters it', () => {
  const text = Uint8Array.from({ length: 0x900 }, (_, i) => i & 0xff);
  const vmlinux = fakeElf({
    elfClass: 64, entry: 0xffffffff81000040n,
    segments: [{ paddr: 0x1000000, vaddr: 0xffffffff81000000n, data: text, memsz: 0x2000 }],
  });
  const kernel = lz4BzImage(vmlinux);
  const input = bootInput({ kernel, initrd: new Uint8Array(0x1000) });
  input.memory.fill(0x1000900, 0x100, 0xee);
  const r = loadBzImage(input, { decompressOnHost: true });
  assert.equal(r.format, 'bzImage');
  assert.equal(r.cpu.regs.rip, 0x1000040n);
  assert.equal(r.cpu.regs.rsi, BigInt(ZERO_PAGE));
  assert.deepEqual(r.kernelRange, { addr: 0x1000000, size: 0x2000 });
  assert.deepEqual(input.memory.read(0x1000000, 0x900), text);
  assert.equal(input.memory.readU8(0x1000900), 0, 'bss zeroed');
  assert.equal(input.memory.readU8(0x100000), 0, 'the compressed kernel is not loaded');
  assert.equal(input.memory.readU32(ZERO_PAGE + 0x202), 0x53726448, 'the setup header is kept');
  assert.equal(input.memory.readU32(ZERO_PAGE + 0x260), 4 * MIB);
  assert.equal(r.initrdRange?.addr, 0x3fff000);

  // Without the option the same image boots through its own decompressor.
  assert.equal(loadBzImage(bootInput({ kernel })).cpu.regs.rip, 0x100200n);
});

void test('bzImage decompressOnHost: other payloads take the normal path', () => {
  const r = loadBzImage(bootInput({ kernel: fakeBzImage({ payloadOffset: 0x10, payloadLength: 0x100 }) }), { decompressOnHost: true });
  assert.equal(r.cpu.regs.rip, 0x100200n);
  // An LZ4 payload that is not an ELF64 too.
  const r2 = loadBzImage(bootInput({ kernel: lz4BzImage(new Uint8Array(0x500).fill(1)) }), { decompressOnHost: true });
  assert.equal(r2.cpu.regs.rip, 0x100200n);
});

void test('bzImage decompressOnHost: a corrupt LZ4 payload is an image error', () => {
  const kernel = lz4BzImage(new Uint8Array(0x500).fill(1));
  kernel[0xa00 + 0x400 + 7] = 0x7f; // the first block's size, now 2 GiB
  assert.throws(() => loadBzImage(bootInput({ kernel }), { decompressOnHost: true }), {
    code: 'ERR_BAD_KERNEL', message: /^vmlinuz: corrupt LZ4 payload: LZ4 block of \d+ bytes runs past the end of the frame$/,
  });
});
