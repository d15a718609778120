/**
 * The header every ACPI System Description Table starts with (ACPI 6.x, 5.2.6), and the
 * 8-bit checksums that make a table (or the RSDP) sum to zero.
 */

export const SDT_HEADER_SIZE = 36;

// Header fields (byte offsets).
export const SDT_SIGNATURE = 0;
export const SDT_LENGTH = 4;
export const SDT_REVISION = 8;
export const SDT_CHECKSUM = 9;
export const SDT_OEMID = 10; //           6 bytes
export const SDT_OEM_TABLE_ID = 16; //    8 bytes
export const SDT_OEM_REVISION = 24;
export const SDT_CREATOR_ID = 28; //      4 bytes
export const SDT_CREATOR_REVISION = 32;

/** Who made the tables, as the header and the RSDP name it. */
export const ACPI_OEMID = 'NODEVS';
export const ACPI_OEM_TABLE_ID = 'NODEVSR ';
export const ACPI_OEM_REVISION = 1;
export const ACPI_CREATOR_ID = 'NDVS';
export const ACPI_CREATOR_REVISION = 1;

/** The byte that makes `bytes` sum to zero when it replaces a zero byte among them. */
export function acpiChecksum(bytes: Uint8Array): number {
  let sum = 0;
  for (const b of bytes) sum = (sum + b) & 0xff;
  return (0x100 - sum) & 0xff;
}

export function putAscii(v: DataView, offset: number, text: string, width: number): void {
  if (text.length > width) throw new RangeError(`ACPI: "${text}" is longer than ${width} bytes`);
  for (let i = 0; i < width; i++) v.setUint8(offset + i, i < text.length ? text.charCodeAt(i) : 0x20);
}

export function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * A zeroed table of `length` bytes with its header filled in, checksum still 0.
 * Fill the body through the returned view, then call `sealTable`.
 */
export function newTable(signature: string, length: number, revision: number): { bytes: Uint8Array; view: DataView } {
  if (signature.length !== 4) throw new RangeError(`ACPI: bad signature "${signature}"`);
  const bytes = new Uint8Array(length);
  const view = viewOf(bytes);
  putAscii(view, SDT_SIGNATURE, signature, 4);
  view.setUint32(SDT_LENGTH, length, true);
  view.setUint8(SDT_REVISION, revision);
  putAscii(view, SDT_OEMID, ACPI_OEMID, 6);
  putAscii(view, SDT_OEM_TABLE_ID, ACPI_OEM_TABLE_ID, 8);
  view.setUint32(SDT_OEM_REVISION, ACPI_OEM_REVISION, true);
  putAscii(view, SDT_CREATOR_ID, ACPI_CREATOR_ID, 4);
  view.setUint32(SDT_CREATOR_REVISION, ACPI_CREATOR_REVISION, true);
  return { bytes, view };
}

/** Sets the header checksum once the table is complete. */
export function sealTable(bytes: Uint8Array): Uint8Array {
  bytes[SDT_CHECKSUM] = 0;
  bytes[SDT_CHECKSUM] = acpiChecksum(bytes);
  return bytes;
}
