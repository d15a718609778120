// Finds the tables the way an OS does: scan the BIOS area for the RSDP, check it, follow the
// XSDT (and the RSDT) to every table, and the FADT to the FACS and DSDT.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { testMemory, type GuestMemory } from '../../../memory/guest-memory.js';
import { E820_RESERVED, e820Map, ramLayout } from '../e820.js';
import { MPTABLE_START } from '../layout.js';
import { writeMpTable } from '../mptable.js';
import { FACS_FIRMWARE_WAKING_VECTOR } from './facs.js';
import { ACPI_TABLES_END, ACPI_TABLES_START, writeAcpiTables } from './tables.js';

const sum = (b: Uint8Array): number => b.reduce((s, x) => (s + x) & 0xff, 0);
const text = (b: Uint8Array): string => String.fromCharCode(...b);

function findRsdp(mem: GuestMemory): number {
  for (let a = 0xe0000; a < 0x100000; a += 16) {
    if (text(mem.read(a, 8)) === 'RSD PTR ' && sum(mem.read(a, 20)) === 0) return a;
  }
  assert.fail('no RSDP in 0xE0000-0xFFFFF');
}

/** Checks a table's header and returns its signature and length. */
function table(mem: GuestMemory, addr: number): { sig: string; len: number } {
  const sig = text(mem.read(addr, 4));
  const len = mem.readU32(addr + 4);
  assert.ok(addr >= ACPI_TABLES_START && addr + len <= ACPI_TABLES_END, `${sig} inside the ACPI area`);
  assert.equal(sum(mem.read(addr, len)), 0, `${sig} checksum`);
  return { sig, len };
}

function boot(cpus: number, pvpanicPort?: number) {
  const mem = testMemory([{ gpa: 0, size: 0x100000 }]);
  const layout = writeAcpiTables(mem, pvpanicPort === undefined ? { cpus } : { cpus, pvpanicPort });
  return { mem, layout };
}

void test('the RSDP: found by scanning, both checksums, revision 2, 36 bytes', () => {
  const { mem, layout } = boot(2);
  const rsdp = findRsdp(mem);
  assert.equal(rsdp, layout.rsdpAddr);
  assert.equal(rsdp % 16, 0);
  assert.equal(mem.readU8(rsdp + 15), 2);
  assert.equal(mem.readU32(rsdp + 20), 36);
  assert.equal(sum(mem.read(rsdp, 36)), 0, 'extended checksum');
  assert.equal(text(mem.read(rsdp + 9, 6)), 'NODEVS');
  assert.equal(mem.readU32(rsdp + 16), layout.rsdtAddr);
  assert.equal(mem.readU64(rsdp + 24), BigInt(layout.xsdtAddr));
});

void test('XSDT and RSDT list the FADT and MADT; the FADT leads to the DSDT and FACS', () => {
  const { mem, layout } = boot(2);
  const rsdp = findRsdp(mem);
  const xsdt = Number(mem.readU64(rsdp + 24));
  const x = table(mem, xsdt);
  assert.equal(x.sig, 'XSDT');
  const viaX = Array.from({ length: (x.len - 36) / 8 }, (_, i) => Number(mem.readU64(xsdt + 36 + 8 * i)));
  const rsdt = mem.readU32(rsdp + 16);
  const r = table(mem, rsdt);
  assert.equal(r.sig, 'RSDT');
  const viaR = Array.from({ length: (r.len - 36) / 4 }, (_, i) => mem.readU32(rsdt + 36 + 4 * i));
  assert.deepEqual(viaR, viaX);
  assert.deepEqual(viaX.map((a) => table(mem, a).sig), ['FACP', 'APIC']);
  assert.deepEqual(viaX, [layout.fadtAddr, layout.madtAddr]);

  const fadt = layout.fadtAddr;
  const dsdt = Number(mem.readU64(fadt + 140));
  assert.equal(table(mem, dsdt).sig, 'DSDT');
  const facs = Number(mem.readU64(fadt + 132));
  assert.equal(facs, layout.facsAddr);
  assert.equal(facs % 64, 0, 'FACS is 64-byte aligned');
  assert.equal(text(mem.read(facs, 4)), 'FACS');
  assert.equal(mem.readU32(facs + 4), 64);
  assert.equal(mem.readU32(facs + FACS_FIRMWARE_WAKING_VECTOR), 0);
  assert.equal(mem.readU8(facs + 32), 2, 'FACS version');
});

void test('the MADT lists every CPU', () => {
  const { mem, layout } = boot(8);
  let lapics = 0;
  const end = layout.madtAddr + mem.readU32(layout.madtAddr + 4);
  for (let o = layout.madtAddr + 44; o < end; o += mem.readU8(o + 1)) if (mem.readU8(o) === 0) lapics++;
  assert.equal(lapics, 8);
});

void test('tables stay below the MP table for 254 CPUs, and the MP table does not touch them', () => {
  const { mem, layout } = boot(254, 0x505);
  assert.ok(layout.end <= MPTABLE_START, `ends at 0x${layout.end.toString(16)}`);
  writeMpTable(mem, 254);
  for (const a of [layout.dsdtAddr, layout.fadtAddr, layout.madtAddr, layout.xsdtAddr, layout.rsdtAddr]) table(mem, a);
  assert.equal(findRsdp(mem), layout.rsdpAddr);
});

void test('the e820 map reserves the whole ACPI area', () => {
  const { layout } = boot(254, 0x505);
  const map = e820Map(ramLayout(64 * 1024 * 1024));
  assert.ok(map.some((e) => e.type === E820_RESERVED && e.addr <= ACPI_TABLES_START && e.addr + e.size >= layout.end));
});

void test('writing again (a reset) gives the same bytes and clears a waking vector left behind', () => {
  const { mem, layout } = boot(4);
  const before = mem.read(ACPI_TABLES_START, layout.end - ACPI_TABLES_START);
  mem.writeU32(layout.facsAddr + FACS_FIRMWARE_WAKING_VECTOR, 0x1234);
  writeAcpiTables(mem, { cpus: 4 });
  assert.deepEqual(mem.read(ACPI_TABLES_START, layout.end - ACPI_TABLES_START), before);
});
