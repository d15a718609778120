/**
 * Writes the ACPI tables into the BIOS area, where an OS that scans for the RSDP finds them
 * and the e820 map already marks the memory reserved (BIOS_START to BIOS_END). They take
 * 0xE0000 up to the MP table at 0xF0000:
 *
 *   RSDP (16-byte aligned, at ACPI_TABLES_START), FACS (64-byte aligned), DSDT, FADT, MADT,
 *   XSDT, RSDT, each on a 16-byte boundary.
 *
 * The OS writes the FACS's waking vector before S3, so whoever resumes the guest must not
 * write the tables again before reading it.
 */
import type { GuestMemory } from '../../../memory/guest-memory.js';
import { BIOS_START, MPTABLE_START } from '../layout.js';
import type { AcpiDescription } from './description.js';
import { buildDsdt } from './dsdt.js';
import { buildFacs, FACS_ALIGN } from './facs.js';
import { buildFadt } from './fadt.js';
import { buildMadt } from './madt.js';
import { buildRsdp, RSDP_ALIGN, RSDP_SIZE } from './rsdp.js';
import { buildRsdt, buildXsdt } from './xsdt.js';

export type { AcpiDescription } from './description.js';

export const ACPI_TABLES_START = BIOS_START;
/** The MP table follows (src/arch/x86/mptable.ts). */
export const ACPI_TABLES_END = MPTABLE_START;
const TABLE_ALIGN = 16;

export interface AcpiTablesLayout {
  readonly rsdpAddr: number;
  readonly facsAddr: number;
  readonly dsdtAddr: number;
  readonly fadtAddr: number;
  readonly madtAddr: number;
  readonly xsdtAddr: number;
  readonly rsdtAddr: number;
  /** First byte after the last table. */
  readonly end: number;
}

const align = (x: number, a: number): number => Math.ceil(x / a) * a;

/** Builds every table for `desc`; returns them with where each goes, without touching RAM. */
export function buildAcpiTables(desc: AcpiDescription, base = ACPI_TABLES_START): {
  layout: AcpiTablesLayout; blobs: Array<{ addr: number; bytes: Uint8Array }>;
} {
  if (base % RSDP_ALIGN !== 0) throw new RangeError('ACPI: the RSDP must be 16-byte aligned');
  const blobs: Array<{ addr: number; bytes: Uint8Array }> = [];
  let next = base;
  const place = (bytes: Uint8Array, alignment = TABLE_ALIGN): number => {
    const addr = align(next, alignment);
    blobs.push({ addr, bytes });
    next = addr + bytes.length;
    return addr;
  };

  // The RSDP needs the root tables' addresses, which come last: reserve its place first.
  const rsdpAddr = place(new Uint8Array(RSDP_SIZE), RSDP_ALIGN);
  const facsAddr = place(buildFacs(), FACS_ALIGN);
  const dsdtAddr = place(buildDsdt(desc));
  const fadtAddr = place(buildFadt({ facs: facsAddr, dsdt: dsdtAddr }));
  const madtAddr = place(buildMadt(desc.cpus));
  const listed = [fadtAddr, madtAddr];
  const xsdtAddr = place(buildXsdt(listed));
  const rsdtAddr = place(buildRsdt(listed));
  blobs[0] = { addr: rsdpAddr, bytes: buildRsdp({ rsdt: rsdtAddr, xsdt: xsdtAddr }) };
  if (next > ACPI_TABLES_END) {
    throw new RangeError(`ACPI: tables end at 0x${next.toString(16)}, past 0x${ACPI_TABLES_END.toString(16)}`);
  }
  return { layout: { rsdpAddr, facsAddr, dsdtAddr, fadtAddr, madtAddr, xsdtAddr, rsdtAddr, end: next }, blobs };
}

/** Writes the tables for `desc` into guest RAM; the RSDP's address goes to the boot protocol. */
export function writeAcpiTables(mem: GuestMemory, desc: AcpiDescription): AcpiTablesLayout {
  const { layout, blobs } = buildAcpiTables(desc);
  // Zero the padding between tables too: it is covered by no checksum, but should not hold garbage.
  mem.fill(ACPI_TABLES_START, layout.end - ACPI_TABLES_START);
  for (const { addr, bytes } of blobs) mem.write(addr, bytes);
  return layout;
}
