import { longModeEntry } from '../arch/x86/boot-cpu.js';
import {
  BOOT_FLAG, BOOT_FLAG_MAGIC, CMDLINE_SIZE, HDRS_MAGIC, HEADER, INIT_SIZE, INITRD_ADDR_MAX,
  KERNEL_ALIGNMENT, PAYLOAD_LENGTH, PAYLOAD_OFFSET, PREF_ADDRESS, RELOCATABLE_KERNEL, SETUP_HEADER,
  SETUP_SECTS, setupHeaderLength, SYSSIZE, VERSION, writeBootParams, XLF_KERNEL_64, XLOADFLAGS,
} from '../arch/x86/boot-params.js';
import { HIMEM_START, ZERO_PAGE } from '../arch/x86/layout.js';
import { ImageError } from '../errors.js';
import type { BootInput, BootResult } from './boot.js';
import { writeCmdline } from './cmdline.js';
import { isElf, loadSegments, parseElf } from './elf.js';
import { physicalEntry } from './elf64.js';
import { checkKernelFits } from './fit.js';
import type { LoadedRange } from './initrd.js';
import { loadInitrd } from './initrd.js';
import { decompressLz4Legacy, isLz4Legacy, Lz4FormatError } from './lz4-legacy.js';

/** The 64-bit entry (startup_64) is 0x200 past the start of the protected-mode code. */
const STARTUP_64_OFFSET = 0x200;
/** Boot protocol 2.12 added xloadflags, which says whether the 64-bit entry exists. */
const MIN_VERSION_64BIT = 0x020c;
const SECTOR = 512;

export interface BzImageOptions {
  /**
   * Decompress an LZ4 payload on the host and enter the vmlinux inside at startup_64, skipping
   * the bzImage's own decompressor (slow where guest kernel mode is emulated).
   */
  readonly decompressOnHost?: boolean;
}

export function isBzImage(image: Uint8Array): boolean {
  if (image.length < HEADER + 4) return false;
  const v = new DataView(image.buffer, image.byteOffset, image.byteLength);
  return v.getUint16(BOOT_FLAG, true) === BOOT_FLAG_MAGIC && v.getUint32(HEADER, true) === HDRS_MAGIC;
}

interface Kernel {
  readonly range: LoadedRange;
  /** First byte above everything the running kernel may use before it reads the e820 map. */
  readonly end: number;
  readonly entry: number;
}

/**
 * Loads a bzImage through the 64-bit boot protocol (Documentation/x86/boot.rst): the
 * protected-mode code at 1 MiB, boot_params with the image's setup header, and long mode at
 * startup_64 with RSI = boot_params.
 */
export function loadBzImage(input: BootInput, options: BzImageOptions = {}): BootResult {
  const { kernel: image, kernelPath: file, memory: mem } = input;
  if (!isBzImage(image)) throw new ImageError(file, 'not a Linux bzImage or ELF kernel');
  const v = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const version = v.getUint16(VERSION, true);
  if (version < MIN_VERSION_64BIT) {
    throw new ImageError(file,
      `kernel too old for the 64-bit boot protocol: boot protocol ${version >> 8}.${(version & 0xff).toString().padStart(2, '0')}, need 2.12`);
  }
  const headerEnd = SETUP_HEADER + setupHeaderLength(image);
  const setupSize = ((image[SETUP_SECTS] || 4) + 1) * SECTOR;
  const pmSize = v.getUint32(SYSSIZE, true) * 16 || image.length - setupSize;
  const claimed = Math.max(setupSize + pmSize, headerEnd);
  if (image.length < claimed) {
    throw new ImageError(file, `truncated: setup header says ${claimed} bytes, file has ${image.length}`);
  }
  if (!(v.getUint16(XLOADFLAGS, true) & XLF_KERNEL_64)) {
    throw new ImageError(file, 'kernel has no 64-bit entry point (xloadflags lacks XLF_KERNEL_64)');
  }
  const pm = image.subarray(setupSize, setupSize + pmSize);

  const loaded = (options.decompressOnHost ? loadDecompressed(input, pm, v) : undefined)
    ?? loadCompressed(input, pm, v);
  const cmdlinePtr = writeCmdline(mem, file, input.cmdline, v.getUint32(CMDLINE_SIZE, true));
  const initrdRange = loadInitrd(input, loaded.end, v.getUint32(INITRD_ADDR_MAX, true) + 1);
  writeBootParams(mem, {
    setupHeader: image.subarray(SETUP_HEADER, headerEnd),
    cmdlinePtr,
    ...(initrdRange ? { ramdisk: initrdRange } : {}),
    e820: input.e820,
    rsdpAddr: input.rsdpAddr,
  });
  return {
    format: 'bzImage',
    cpu: longModeEntry(mem, loaded.entry, ZERO_PAGE),
    kernelRange: loaded.range,
    ...(initrdRange ? { initrdRange } : {}),
  };
}

/**
 * The protected-mode code at 1 MiB. Its decompressor moves to where the kernel will run
 * (kernel_alignment-aligned, at least pref_address) and needs init_size bytes from there.
 */
function loadCompressed(input: BootInput, pm: Uint8Array, v: DataView): Kernel {
  const align = Math.max(v.getUint32(KERNEL_ALIGNMENT, true), 1);
  const pref = Number(v.getBigUint64(PREF_ADDRESS, true));
  const runAt = v.getUint8(RELOCATABLE_KERNEL)
    ? Math.max(Math.ceil(HIMEM_START / align) * align, pref)
    : Math.max(pref, HIMEM_START);
  const end = Math.max(HIMEM_START + pm.length, runAt + v.getUint32(INIT_SIZE, true));
  checkKernelFits(input.kernelPath, input.layout, HIMEM_START, end - HIMEM_START);
  input.memory.write(HIMEM_START, pm);
  return { range: { addr: HIMEM_START, size: pm.length }, end, entry: HIMEM_START + STARTUP_64_OFFSET };
}

/** The vmlinux inside an LZ4 payload, loaded at its p_paddr; undefined for other payloads. */
function loadDecompressed(input: BootInput, pm: Uint8Array, v: DataView): Kernel | undefined {
  const file = input.kernelPath;
  const offset = v.getUint32(PAYLOAD_OFFSET, true);
  const length = v.getUint32(PAYLOAD_LENGTH, true);
  if (length < 8 || offset + length > pm.length) return undefined;
  const payload = pm.subarray(offset, offset + length);
  if (!isLz4Legacy(payload)) return undefined;
  // Linux appends the uncompressed size (u32) after the compressed stream.
  const outputSize = new DataView(payload.buffer, payload.byteOffset + length - 4, 4).getUint32(0, true);
  let vmlinux: Uint8Array;
  try {
    vmlinux = decompressLz4Legacy(payload.subarray(0, length - 4), outputSize);
  } catch (e) {
    if (e instanceof Lz4FormatError) throw new ImageError(file, `corrupt LZ4 payload: ${e.message}`);
    throw e;
  }
  if (!isElf(vmlinux) || vmlinux[4] !== 2) return undefined;
  const elf = parseElf(file, vmlinux);
  const entry = physicalEntry(file, elf);
  const range = loadSegments(input.memory, file, input.layout, vmlinux, elf);
  return { range, end: range.addr + range.size, entry };
}
