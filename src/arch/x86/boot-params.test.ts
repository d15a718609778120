import assert from 'node:assert/strict';
import { test } from 'node:test';
import { testMemory } from '../../memory/guest-memory.js';
import { syntheticSetupHeader, writeBootParams } from './boot-params.js';
import { ZERO_PAGE } from './layout.js';

void test('boot_params: setup header, loader fields, ramdisk, e820 and RSDP', () => {
  const mem = testMemory([{ gpa: 0, size: 0x10000 }]);
  mem.fill(ZERO_PAGE, 0x1000, 0xee); // the zero page starts zeroed whatever was there
  const e820 = [{ addr: 0, size: 0x9fc00, type: 1 }, { addr: 0x100000, size: 0x3f00000, type: 1 }];
  writeBootParams(mem, {
    setupHeader: syntheticSetupHeader(2047),
    cmdlinePtr: 0x20000,
    ramdisk: { addr: 0x3f00000, size: 1234 },
    e820,
    rsdpAddr: 0xe0000,
  });
  assert.equal(mem.readU8(ZERO_PAGE), 0);
  assert.equal(mem.readU32(ZERO_PAGE + 0x202), 0x53726448);
  assert.equal(mem.readU16(ZERO_PAGE + 0x206), 0x020f);
  assert.equal(mem.readU16(ZERO_PAGE + 0x1fe), 0xaa55);
  assert.equal(mem.readU8(ZERO_PAGE + 0x210), 0xff);
  assert.equal(mem.readU8(ZERO_PAGE + 0x211), 0x81);
  assert.equal(mem.readU16(ZERO_PAGE + 0x224), 0xfe00);
  assert.equal(mem.readU32(ZERO_PAGE + 0x228), 0x20000);
  assert.equal(mem.readU32(ZERO_PAGE + 0x218), 0x3f00000);
  assert.equal(mem.readU32(ZERO_PAGE + 0x21c), 1234);
  assert.equal(mem.readU32(ZERO_PAGE + 0x238), 2047);
  assert.equal(mem.readU64(ZERO_PAGE + 0x070), 0xe0000n);
  assert.equal(mem.readU8(ZERO_PAGE + 0x1e8), 2);
  assert.equal(mem.readU64(ZERO_PAGE + 0x2d0 + 20), 0x100000n);
  assert.equal(mem.readU64(ZERO_PAGE + 0x2d0 + 28), 0x3f00000n);
  assert.equal(mem.readU32(ZERO_PAGE + 0x2d0 + 36), 1);
  assert.equal(mem.readU8(ZERO_PAGE + 0x2d0 + 40), 0, 'nothing after the last entry');
});

void test('boot_params refuses more e820 entries than it holds', () => {
  const mem = testMemory([{ gpa: 0, size: 0x10000 }]);
  const e820 = Array.from({ length: 129 }, (_, i) => ({ addr: i * 0x1000, size: 0x1000, type: 1 }));
  assert.throws(() => writeBootParams(mem, { setupHeader: syntheticSetupHeader(255), cmdlinePtr: 0, e820, rsdpAddr: 0 }),
    { code: 'ERR_DOES_NOT_FIT', message: 'e820 map has 129 entries, boot_params holds 128' });
});
