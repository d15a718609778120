import { protectedModeEntry } from '../arch/x86/boot-cpu.js';
import { CMDLINE_MAX, PVH_MEMMAP, PVH_MODLIST, PVH_START_INFO } from '../arch/x86/layout.js';
import { NodevisorError } from '../errors.js';
import type { BootInput, BootResult } from './boot.js';
import { writeCmdline } from './cmdline.js';
import { loadSegments, type ElfImage } from './elf.js';
import { loadInitrd } from './initrd.js';

/** struct hvm_start_info (xen/include/public/arch-x86/hvm/start_info.h), version 1. */
export const XEN_HVM_START_MAGIC_VALUE = 0x336ec578;
export const HVM_START_INFO_SIZE = 0x38;
export const HVM_MODLIST_ENTRY_SIZE = 32;
export const HVM_MEMMAP_ENTRY_SIZE = 24;
/** The memmap must end before the zero page that follows it in the boot area. */
export const HVM_MEMMAP_MAX_ENTRIES = 128;

/**
 * Loads a PVH ELF: PT_LOADs at p_paddr, hvm_start_info with the e820 map as memmap, the initrd
 * as module 0, and a 32-bit flat protected-mode entry at the note's address with EBX pointing
 * at hvm_start_info.
 */
export function loadPvh(input: BootInput, elf: ElfImage, entry: number): BootResult {
  const { memory: mem, kernelPath } = input;
  const kernelRange = loadSegments(mem, kernelPath, input.layout, input.kernel, elf);
  const cmdline = writeCmdline(mem, kernelPath, input.cmdline, CMDLINE_MAX - 1);
  const initrdRange = loadInitrd(input, kernelRange.addr + kernelRange.size, input.layout.lowSize);
  if (input.e820.length > HVM_MEMMAP_MAX_ENTRIES) {
    throw new NodevisorError('ERR_DOES_NOT_FIT',
      `e820 map has ${input.e820.length} entries, the PVH memmap holds ${HVM_MEMMAP_MAX_ENTRIES}`);
  }

  const info = new Uint8Array(HVM_START_INFO_SIZE);
  const v = new DataView(info.buffer);
  v.setUint32(0x00, XEN_HVM_START_MAGIC_VALUE, true);
  v.setUint32(0x04, 1, true); //                            version
  v.setUint32(0x08, 0, true); //                            flags
  v.setUint32(0x0c, initrdRange ? 1 : 0, true); //          nr_modules
  v.setBigUint64(0x10, initrdRange ? BigInt(PVH_MODLIST) : 0n, true); // modlist_paddr
  v.setBigUint64(0x18, BigInt(cmdline), true); //           cmdline_paddr
  v.setBigUint64(0x20, BigInt(input.rsdpAddr), true); //    rsdp_paddr
  v.setBigUint64(0x28, BigInt(PVH_MEMMAP), true); //        memmap_paddr
  v.setUint32(0x30, input.e820.length, true); //            memmap_entries
  mem.write(PVH_START_INFO, info);

  input.e820.forEach((e, i) => {
    const o = PVH_MEMMAP + i * HVM_MEMMAP_ENTRY_SIZE;
    mem.writeU64(o, BigInt(e.addr));
    mem.writeU64(o + 8, BigInt(e.size));
    mem.writeU32(o + 16, e.type); // XEN_HVM_MEMMAP_TYPE_* are the e820 types
    mem.writeU32(o + 20, 0);
  });

  if (initrdRange) {
    mem.writeU64(PVH_MODLIST, BigInt(initrdRange.addr));
    mem.writeU64(PVH_MODLIST + 8, BigInt(initrdRange.size));
    mem.writeU64(PVH_MODLIST + 16, 0n); // no module command line
    mem.writeU64(PVH_MODLIST + 24, 0n);
  }

  return {
    format: 'pvh-elf',
    cpu: protectedModeEntry(mem, entry, PVH_START_INFO),
    kernelRange,
    ...(initrdRange ? { initrdRange } : {}),
  };
}
