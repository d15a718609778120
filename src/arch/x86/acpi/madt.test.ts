import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IOAPIC_ADDR, LAPIC_ADDR } from '../layout.js';
import { buildMadt, MADT_MAX_CPUS, MADT_PCAT_COMPAT } from './madt.js';

interface Parsed {
  lapics: Array<{ uid: number; apicId: number; flags: number }>;
  ioapics: Array<{ id: number; addr: number; gsiBase: number }>;
  overrides: Array<{ bus: number; irq: number; gsi: number; flags: number }>;
  nmis: Array<{ uid: number; flags: number; lint: number }>;
}

/** Walks the interrupt controller structures the way an OS does: type, length, next. */
function parse(t: Uint8Array): Parsed {
  const v = new DataView(t.buffer, t.byteOffset, t.byteLength);
  assert.equal(String.fromCharCode(...t.subarray(0, 4)), 'APIC');
  assert.equal(v.getUint32(4, true), t.length);
  assert.equal(t.reduce((s, x) => (s + x) & 0xff, 0), 0, 'checksum');
  assert.equal(v.getUint32(36, true), LAPIC_ADDR);
  assert.equal(v.getUint32(40, true), MADT_PCAT_COMPAT);
  const p: Parsed = { lapics: [], ioapics: [], overrides: [], nmis: [] };
  let o = 44;
  while (o < t.length) {
    const type = v.getUint8(o);
    const len = v.getUint8(o + 1);
    if (type === 0) {
      assert.equal(len, 8);
      p.lapics.push({ uid: v.getUint8(o + 2), apicId: v.getUint8(o + 3), flags: v.getUint32(o + 4, true) });
    } else if (type === 1) {
      assert.equal(len, 12);
      p.ioapics.push({ id: v.getUint8(o + 2), addr: v.getUint32(o + 4, true), gsiBase: v.getUint32(o + 8, true) });
    } else if (type === 2) {
      assert.equal(len, 10);
      p.overrides.push({ bus: v.getUint8(o + 2), irq: v.getUint8(o + 3), gsi: v.getUint32(o + 4, true), flags: v.getUint16(o + 8, true) });
    } else if (type === 4) {
      assert.equal(len, 6);
      p.nmis.push({ uid: v.getUint8(o + 2), flags: v.getUint16(o + 3, true), lint: v.getUint8(o + 5) });
    } else {
      assert.fail(`unexpected MADT entry type ${type}`);
    }
    o += len;
  }
  assert.equal(o, t.length, 'entries fill the table exactly');
  return p;
}

void test('a local APIC entry per CPU, APIC ID = UID = index, all enabled', () => {
  const p = parse(buildMadt(4));
  assert.deepEqual(p.lapics, [0, 1, 2, 3].map((i) => ({ uid: i, apicId: i, flags: 1 })));
});

void test('one IOAPIC after the CPUs, the timer and SCI overrides, NMI on every LINT1 (as the MP table)', () => {
  const p = parse(buildMadt(4));
  assert.deepEqual(p.ioapics, [{ id: 4, addr: IOAPIC_ADDR, gsiBase: 0 }]);
  assert.deepEqual(p.overrides, [
    { bus: 0, irq: 0, gsi: 2, flags: 0 }, //        conforming
    { bus: 0, irq: 9, gsi: 9, flags: 0x000d }, //   level, active high
  ]);
  assert.deepEqual(p.nmis, [{ uid: 0xff, flags: 0, lint: 1 }]);
});

void test('1 and 254 CPUs; out-of-range counts are refused', () => {
  assert.equal(parse(buildMadt(1)).lapics.length, 1);
  const big = parse(buildMadt(MADT_MAX_CPUS));
  assert.equal(big.lapics.length, 254);
  assert.equal(big.ioapics[0]!.id, 254);
  for (const n of [0, 255, 2.5]) assert.throws(() => buildMadt(n), RangeError);
});
