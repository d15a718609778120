import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GPE0_BLK, PM1A_CNT_BLK, PM1A_EVT_BLK, PM_TMR_BLK, SCI_IRQ } from '../../../devices/acpi/pm.js';
import {
  buildFadt, FADT_FIRMWARE_CTRL, FADT_FLAGS, FADT_IAPC_BOOT_ARCH, FADT_PM_TMR_LEN, FADT_RESET_REG_SUP, FADT_SIZE,
  FADT_PWR_BUTTON, FADT_TMR_VAL_EXT, FADT_HW_REDUCED_ACPI, IAPC_8042, IAPC_LEGACY_DEVICES,
} from './fadt.js';

const FACS = 0xe0040;
const DSDT = 0xe0080;

function fadt() {
  const t = buildFadt({ facs: FACS, dsdt: DSDT });
  const v = new DataView(t.buffer, t.byteOffset, t.byteLength);
  const gas = (o: number) => ({
    space: v.getUint8(o), bits: v.getUint8(o + 1), offset: v.getUint8(o + 2), access: v.getUint8(o + 3),
    addr: Number(v.getBigUint64(o + 4, true)),
  });
  return { t, v, gas };
}

void test('header: FACP, revision 6.0, 276 bytes, checksum', () => {
  const { t, v } = fadt();
  assert.equal(String.fromCharCode(...t.subarray(0, 4)), 'FACP');
  assert.equal(v.getUint32(4, true), FADT_SIZE);
  assert.equal(t.length, 276);
  assert.equal(v.getUint8(8), 6);
  assert.equal(v.getUint8(131), 0, 'minor version');
  assert.equal(t.reduce((s, x) => (s + x) & 0xff, 0), 0);
});

void test('FACS and DSDT pointers, 32-bit and X_ alike', () => {
  const { v } = fadt();
  assert.equal(v.getUint32(FADT_FIRMWARE_CTRL, true), FACS);
  assert.equal(v.getUint32(40, true), DSDT);
  assert.equal(v.getBigUint64(132, true), BigInt(FACS));
  assert.equal(v.getBigUint64(140, true), BigInt(DSDT));
});

void test('SCI 9, no SMI_CMD (always in ACPI mode)', () => {
  const { v } = fadt();
  assert.equal(v.getUint16(46, true), SCI_IRQ);
  assert.equal(v.getUint32(48, true), 0);
  assert.equal(v.getUint8(52), 0);
  assert.equal(v.getUint8(53), 0);
});

void test('PM blocks at the PM device ports, legacy and X_ fields agreeing', () => {
  const { v, gas } = fadt();
  const blocks = [
    { legacy: 56, len: 88, x: 148, port: PM1A_EVT_BLK, n: 4 },
    { legacy: 64, len: 89, x: 172, port: PM1A_CNT_BLK, n: 2 },
    { legacy: 76, len: FADT_PM_TMR_LEN, x: 208, port: PM_TMR_BLK, n: 4 },
    { legacy: 80, len: 92, x: 220, port: GPE0_BLK, n: 4 },
  ];
  assert.deepEqual(blocks.map((b) => b.port), [0x600, 0x604, 0x608, 0xafe0]);
  for (const b of blocks) {
    assert.equal(v.getUint32(b.legacy, true), b.port);
    assert.equal(v.getUint8(b.len), b.n);
    assert.deepEqual(gas(b.x), { space: 1, bits: 8 * b.n, offset: 0, access: 0, addr: b.port });
  }
  // No PM1b, PM2 or GPE1 blocks.
  for (const o of [60, 68, 72, 84]) assert.equal(v.getUint32(o, true), 0);
  for (const o of [90, 93]) assert.equal(v.getUint8(o), 0);
  for (const o of [160, 184, 196, 232]) assert.deepEqual(gas(o), { space: 0, bits: 0, offset: 0, access: 0, addr: 0 });
});

void test('flags: fixed power button, 24-bit timer, reset register supported, not hardware-reduced', () => {
  const { v } = fadt();
  const flags = v.getUint32(FADT_FLAGS, true);
  assert.equal(flags & FADT_PWR_BUTTON, 0, 'fixed-feature power button');
  assert.equal(flags & FADT_TMR_VAL_EXT, 0);
  assert.equal(flags & FADT_HW_REDUCED_ACPI, 0);
  assert.ok(flags & FADT_RESET_REG_SUP);
  const arch = v.getUint16(FADT_IAPC_BOOT_ARCH, true);
  assert.ok(arch & IAPC_LEGACY_DEVICES);
  assert.ok(arch & IAPC_8042);
  assert.equal(v.getUint8(108), 0x32, 'CMOS century index');
});

void test('RESET_REG: system I/O 0xcf9, one byte, value 6', () => {
  const { v, gas } = fadt();
  assert.deepEqual(gas(116), { space: 1, bits: 8, offset: 0, access: 1, addr: 0xcf9 });
  assert.equal(v.getUint8(128), 0x06);
});
