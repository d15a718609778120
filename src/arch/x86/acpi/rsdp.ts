/**
 * The Root System Description Pointer (ACPI 6.x, 5.2.5), revision 2: an OS finds it by
 * scanning the BIOS area on 16-byte boundaries for "RSD PTR " (or is handed its address by
 * the boot protocol), checks it and follows it to the XSDT (or, for ACPI 1.0 readers, the RSDT).
 */
import { ACPI_OEMID, acpiChecksum, putAscii, viewOf } from './sdt.js';

export const RSDP_SIGNATURE = 'RSD PTR ';
export const RSDP_REVISION = 2; // ACPI 2.0 and later
export const RSDP_V1_SIZE = 20; // what the first checksum covers
export const RSDP_SIZE = 36;
/** Where an OS looks for it: on 16-byte boundaries in the BIOS read-only area. */
export const RSDP_ALIGN = 16;

// Fields (byte offsets).
export const RSDP_CHECKSUM = 8;
export const RSDP_OEMID = 9;
export const RSDP_REVISION_OFFSET = 15;
export const RSDP_RSDT_ADDRESS = 16;
export const RSDP_LENGTH = 20;
export const RSDP_XSDT_ADDRESS = 24;
export const RSDP_EXTENDED_CHECKSUM = 32;

export function buildRsdp(addrs: { rsdt: number; xsdt: number }): Uint8Array {
  const bytes = new Uint8Array(RSDP_SIZE);
  const v = viewOf(bytes);
  putAscii(v, 0, RSDP_SIGNATURE, 8);
  putAscii(v, RSDP_OEMID, ACPI_OEMID, 6);
  v.setUint8(RSDP_REVISION_OFFSET, RSDP_REVISION);
  v.setUint32(RSDP_RSDT_ADDRESS, addrs.rsdt, true);
  v.setUint32(RSDP_LENGTH, RSDP_SIZE, true);
  v.setBigUint64(RSDP_XSDT_ADDRESS, BigInt(addrs.xsdt), true);
  // The first checksum covers the ACPI 1.0 part; the extended one the whole structure.
  v.setUint8(RSDP_CHECKSUM, acpiChecksum(bytes.subarray(0, RSDP_V1_SIZE)));
  v.setUint8(RSDP_EXTENDED_CHECKSUM, acpiChecksum(bytes));
  return bytes;
}
