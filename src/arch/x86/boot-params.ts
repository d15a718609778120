import { NodevisorError } from '../../errors.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import type { E820Entry } from './e820.js';
import { ZERO_PAGE } from './layout.js';

/**
 * Linux's struct boot_params ("zero page") and the setup header inside it, at the offsets of
 * Documentation/x86/boot.rst and Documentation/x86/zero-page.rst. The setup header has the
 * same offsets in a bzImage file and in boot_params.
 */
export const BOOT_PARAMS_SIZE = 0x1000;
export const ACPI_RSDP_ADDR = 0x070; //     u64
export const EXT_RAMDISK_IMAGE = 0x0c0; //  u32
export const EXT_RAMDISK_SIZE = 0x0c4; //   u32
export const EXT_CMD_LINE_PTR = 0x0c8; //   u32
export const E820_ENTRIES = 0x1e8; //       u8
export const E820_TABLE = 0x2d0; //        struct boot_e820_entry[E820_MAX_ENTRIES_ZEROPAGE]
export const E820_ENTRY_SIZE = 20;
export const E820_MAX_ENTRIES_ZEROPAGE = 128;

export const SETUP_HEADER = 0x1f1;
export const SETUP_SECTS = 0x1f1; //        u8
export const SYSSIZE = 0x1f4; //            u32, 16-byte paragraphs
export const VID_MODE = 0x1fa; //           u16
export const BOOT_FLAG = 0x1fe; //          u16, 0xaa55
export const JUMP = 0x200; //               u16; its second byte gives the header's end
export const HEADER = 0x202; //             u32, "HdrS"
export const VERSION = 0x206; //            u16
export const TYPE_OF_LOADER = 0x210; //     u8
export const LOADFLAGS = 0x211; //          u8
export const RAMDISK_IMAGE = 0x218; //      u32
export const RAMDISK_SIZE = 0x21c; //       u32
export const HEAP_END_PTR = 0x224; //       u16
export const CMD_LINE_PTR = 0x228; //       u32
export const INITRD_ADDR_MAX = 0x22c; //    u32
export const KERNEL_ALIGNMENT = 0x230; //   u32
export const RELOCATABLE_KERNEL = 0x234; // u8
export const XLOADFLAGS = 0x236; //         u16
export const CMDLINE_SIZE = 0x238; //       u32
export const PAYLOAD_OFFSET = 0x248; //     u32
export const PAYLOAD_LENGTH = 0x24c; //     u32
export const PREF_ADDRESS = 0x258; //       u64
export const INIT_SIZE = 0x260; //          u32

export const HDRS_MAGIC = 0x53726448; // "HdrS"
export const BOOT_FLAG_MAGIC = 0xaa55;
export const LOADED_HIGH = 0x01;
export const CAN_USE_HEAP = 0x80;
export const XLF_KERNEL_64 = 0x01;
export const TYPE_OF_LOADER_UNDEFINED = 0xff;
/** heap_end_ptr is only read by 16-bit setup code, which the 64-bit entry skips. */
export const HEAP_END = 0xfe00;

export interface BootParamsInput {
  /** The setup header bytes (from offset 0x1f1), as in the image or synthesized. */
  readonly setupHeader: Uint8Array;
  readonly cmdlinePtr: number;
  readonly ramdisk?: { readonly addr: number; readonly size: number };
  readonly e820: readonly E820Entry[];
  readonly rsdpAddr: number;
}

/** Length of the setup header of a bzImage: from 0x1f1 to 0x202 + the jump's displacement. */
export function setupHeaderLength(image: Uint8Array): number {
  return HEADER + (image[JUMP + 1] ?? 0) - SETUP_HEADER;
}

/** A setup header for a kernel that has none (an ELF vmlinux), as Firecracker writes it. */
export function syntheticSetupHeader(cmdlineSize: number): Uint8Array {
  const bp = new Uint8Array(BOOT_PARAMS_SIZE);
  const v = new DataView(bp.buffer);
  v.setUint16(BOOT_FLAG, BOOT_FLAG_MAGIC, true);
  v.setUint16(JUMP, 0x6aeb, true); // jmp short: header ends at 0x26c (protocol 2.15)
  v.setUint32(HEADER, HDRS_MAGIC, true);
  v.setUint16(VERSION, 0x020f, true);
  v.setUint16(VID_MODE, 0xffff, true); // "normal"
  v.setUint32(INITRD_ADDR_MAX, 0x7fffffff, true);
  v.setUint32(KERNEL_ALIGNMENT, 0x1000000, true);
  v.setUint16(XLOADFLAGS, XLF_KERNEL_64, true);
  v.setUint32(CMDLINE_SIZE, cmdlineSize, true);
  return bp.slice(SETUP_HEADER, SETUP_HEADER + setupHeaderLength(bp));
}

/** Builds boot_params at ZERO_PAGE: setup header, loader fields, command line, initrd, e820, RSDP. */
export function writeBootParams(mem: GuestMemory, input: BootParamsInput): void {
  if (input.e820.length > E820_MAX_ENTRIES_ZEROPAGE) {
    throw new NodevisorError('ERR_DOES_NOT_FIT',
      `e820 map has ${input.e820.length} entries, boot_params holds ${E820_MAX_ENTRIES_ZEROPAGE}`);
  }
  const bp = new Uint8Array(BOOT_PARAMS_SIZE);
  const v = new DataView(bp.buffer, bp.byteOffset, bp.byteLength);
  bp.set(input.setupHeader.subarray(0, E820_TABLE - SETUP_HEADER), SETUP_HEADER);

  v.setUint8(TYPE_OF_LOADER, TYPE_OF_LOADER_UNDEFINED);
  v.setUint8(LOADFLAGS, v.getUint8(LOADFLAGS) | LOADED_HIGH | CAN_USE_HEAP);
  v.setUint16(HEAP_END_PTR, HEAP_END, true);
  v.setUint32(CMD_LINE_PTR, input.cmdlinePtr, true);
  v.setUint32(EXT_CMD_LINE_PTR, 0, true);
  v.setUint32(RAMDISK_IMAGE, input.ramdisk?.addr ?? 0, true);
  v.setUint32(RAMDISK_SIZE, input.ramdisk?.size ?? 0, true);
  v.setUint8(E820_ENTRIES, input.e820.length);
  input.e820.forEach((e, i) => {
    const o = E820_TABLE + i * E820_ENTRY_SIZE;
    v.setBigUint64(o, BigInt(e.addr), true);
    v.setBigUint64(o + 8, BigInt(e.size), true);
    v.setUint32(o + 16, e.type, true);
  });
  if (input.rsdpAddr) v.setBigUint64(ACPI_RSDP_ADDR, BigInt(input.rsdpAddr), true);
  mem.write(ZERO_PAGE, bp);
}
