/**
 * The root tables listing every other table but the FACS and DSDT (which the FADT points
 * to): the XSDT with 64-bit entries (ACPI 6.x, 5.2.8), and the RSDT with 32-bit ones
 * (5.2.7) for readers that only know ACPI 1.0. Both list the same tables in the same order.
 */
import { newTable, sealTable, SDT_HEADER_SIZE } from './sdt.js';

export const XSDT_REVISION = 1;
export const RSDT_REVISION = 1;

export function buildXsdt(tables: readonly number[]): Uint8Array {
  const { bytes, view } = newTable('XSDT', SDT_HEADER_SIZE + 8 * tables.length, XSDT_REVISION);
  tables.forEach((addr, i) => view.setBigUint64(SDT_HEADER_SIZE + 8 * i, BigInt(addr), true));
  return sealTable(bytes);
}

export function buildRsdt(tables: readonly number[]): Uint8Array {
  const { bytes, view } = newTable('RSDT', SDT_HEADER_SIZE + 4 * tables.length, RSDT_REVISION);
  tables.forEach((addr, i) => {
    if (addr > 0xffff_ffff) throw new RangeError('RSDT: a table above 4 GiB');
    view.setUint32(SDT_HEADER_SIZE + 4 * i, addr, true);
  });
  return sealTable(bytes);
}
