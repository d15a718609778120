import assert from 'node:assert/strict';
import { test } from 'node:test';
import { testMemory } from '../../memory/guest-memory.js';
import { IOAPIC_ADDR, LAPIC_ADDR, MPTABLE_START } from './layout.js';
import { writeMpTable } from './mptable.js';

const sum = (b: Uint8Array): number => b.reduce((s, x) => (s + x) & 0xff, 0);
const text = (b: Uint8Array): string => String.fromCharCode(...b);

interface Parsed {
  cpus: Array<{ apicid: number; flags: number }>;
  buses: string[];
  ioapics: Array<{ id: number; version: number; flags: number; addr: number }>;
  intsrc: Array<{ irq: number; apic: number; pin: number; type: number; flags: number }>;
  lint: Array<{ type: number; dest: number; lint: number }>;
}

/** Parses an MP table back the way Linux's mpparse.c does: find "_MP_", follow physptr. */
function parse(mem: ReturnType<typeof testMemory>, base: number, size: number): Parsed {
  const area = mem.read(base, size);
  let mpf = -1;
  for (let i = 0; i + 16 <= area.length; i += 16) if (text(area.subarray(i, i + 4)) === '_MP_') { mpf = base + i; break; }
  assert.ok(mpf >= 0, 'floating pointer found');
  assert.equal(sum(mem.read(mpf, 16)), 0, 'mpf checksum');
  assert.equal(mem.readU8(mpf + 8), 1);
  assert.equal(mem.readU8(mpf + 9), 4);
  const t = mem.readU32(mpf + 4);
  assert.equal(text(mem.read(t, 4)), 'PCMP');
  const len = mem.readU16(t + 4);
  assert.equal(sum(mem.read(t, len)), 0, 'table checksum');
  assert.equal(text(mem.read(t + 8, 8)), 'NODEVSR ');
  assert.equal(mem.readU32(t + 36), LAPIC_ADDR);
  const count = mem.readU16(t + 34);
  const p: Parsed = { cpus: [], buses: [], ioapics: [], intsrc: [], lint: [] };
  let o = t + 44;
  for (let i = 0; i < count; i++) {
    const type = mem.readU8(o);
    if (type === 0) {
      p.cpus.push({ apicid: mem.readU8(o + 1), flags: mem.readU8(o + 3) });
      o += 20;
      continue;
    }
    if (type === 1) p.buses.push(text(mem.read(o + 2, 6)));
    else if (type === 2) p.ioapics.push({ id: mem.readU8(o + 1), version: mem.readU8(o + 2), flags: mem.readU8(o + 3), addr: mem.readU32(o + 4) });
    else if (type === 3) p.intsrc.push({ type: mem.readU8(o + 1), flags: mem.readU16(o + 2), irq: mem.readU8(o + 5), apic: mem.readU8(o + 6), pin: mem.readU8(o + 7) });
    else if (type === 4) p.lint.push({ type: mem.readU8(o + 1), dest: mem.readU8(o + 6), lint: mem.readU8(o + 7) });
    else assert.fail(`unknown entry type ${type}`);
    o += 8;
  }
  assert.equal(o, t + len, 'entries fill the table exactly');
  return p;
}

void test('an MP table for 4 CPUs lists every CPU, the ISA bus, the IOAPIC and the ISA IRQs', () => {
  const mem = testMemory([{ gpa: 0, size: 0x100000 }]);
  const used = writeMpTable(mem, 4);
  assert.equal(used, 16 + 44 + 4 * 20 + (1 + 1 + 15 + 2) * 8);
  const p = parse(mem, MPTABLE_START, 0x10000);
  assert.deepEqual(p.cpus, [{ apicid: 0, flags: 3 }, { apicid: 1, flags: 1 }, { apicid: 2, flags: 1 }, { apicid: 3, flags: 1 }]);
  assert.deepEqual(p.buses, ['ISA   ']);
  assert.deepEqual(p.ioapics, [{ id: 4, version: 0x11, flags: 1, addr: IOAPIC_ADDR }]);
  assert.equal(p.intsrc.length, 15);
  assert.deepEqual(p.intsrc[0], { type: 0, flags: 0, irq: 0, apic: 4, pin: 2 });
  for (const s of p.intsrc.slice(1)) {
    assert.equal(s.pin, s.irq);
    assert.equal(s.apic, 4);
  }
  assert.ok(!p.intsrc.some((s) => s.irq === 2), 'the cascade IRQ is not routed');
  assert.deepEqual(p.lint, [{ type: 3, dest: 0xff, lint: 0 }, { type: 1, dest: 0xff, lint: 1 }]);
});

void test('an MP table at another address points at itself and works for one CPU', () => {
  const mem = testMemory([{ gpa: 0, size: 0x100000 }]);
  writeMpTable(mem, 1, 0xe0000);
  assert.equal(mem.readU32(0xe0004), 0xe0010);
  assert.deepEqual(parse(mem, 0xe0000, 0x1000).cpus, [{ apicid: 0, flags: 3 }]);
});

void test('MP table CPU counts outside 1..254 are refused', () => {
  const mem = testMemory([{ gpa: 0, size: 0x100000 }]);
  assert.throws(() => writeMpTable(mem, 0), { message: 'MP table: 0 CPUs, must be 1 to 254' });
  assert.throws(() => writeMpTable(mem, 255), { message: 'MP table: 255 CPUs, must be 1 to 254' });
});
