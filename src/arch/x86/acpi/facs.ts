/**
 * The Firmware ACPI Control Structure (ACPI 6.x, 5.2.10): no header checksum, 64-byte
 * aligned. The OS writes the firmware waking vector here before entering S3; whatever
 * resumes the guest reads it back (FACS_FIRMWARE_WAKING_VECTOR, or the 64-bit X_ one).
 */
import { putAscii, viewOf } from './sdt.js';

export const FACS_SIZE = 64;
export const FACS_ALIGN = 64;
export const FACS_VERSION = 2; // ACPI 4.0 and later

// Fields (byte offsets).
export const FACS_LENGTH = 4;
export const FACS_HARDWARE_SIGNATURE = 8;
export const FACS_FIRMWARE_WAKING_VECTOR = 12; //   u32, real-mode entry: segment = vector >> 4
export const FACS_GLOBAL_LOCK = 16;
export const FACS_FLAGS = 20;
export const FACS_X_FIRMWARE_WAKING_VECTOR = 24; // u64, used only if the OS sets it
export const FACS_VERSION_OFFSET = 32;
export const FACS_OSPM_FLAGS = 36;

/** A FACS with no waking vector, no global lock owner and no S4BIOS or 64-bit wake support. */
export function buildFacs(): Uint8Array {
  const bytes = new Uint8Array(FACS_SIZE);
  const v = viewOf(bytes);
  putAscii(v, 0, 'FACS', 4);
  v.setUint32(FACS_LENGTH, FACS_SIZE, true);
  v.setUint8(FACS_VERSION_OFFSET, FACS_VERSION);
  return bytes;
}
