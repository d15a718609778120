import { longModeEntry } from '../arch/x86/boot-cpu.js';
import { syntheticSetupHeader, writeBootParams } from '../arch/x86/boot-params.js';
import { CMDLINE_MAX, ZERO_PAGE } from '../arch/x86/layout.js';
import { ImageError } from '../errors.js';
import type { BootInput, BootResult } from './boot.js';
import { writeCmdline } from './cmdline.js';
import { loadSegments, type ElfImage } from './elf.js';
import { hex } from './fit.js';
import { loadInitrd } from './initrd.js';

/** Where x86-64 Linux maps the kernel image (__START_KERNEL_map). */
const START_KERNEL_MAP = 0xffffffff80000000n;
/** Linux's 64-bit kernels take an initrd anywhere below 2 GiB (initrd_addr_max). */
const INITRD_ADDR_MAX = 0x7fffffff;

/** The physical entry of a vmlinux: e_entry, or its virtual address translated by the first PT_LOAD. */
export function physicalEntry(file: string, elf: ElfImage): number {
  let entry = elf.entry;
  if (entry >= START_KERNEL_MAP) {
    const first = elf.loads[0]!;
    entry = entry - first.vaddr + BigInt(first.paddr);
  }
  if (entry < 0n || entry >= 0x100000000n) throw new ImageError(file, `ELF entry point ${hex(Number(elf.entry))} is not a physical address below 4 GiB`);
  return Number(entry);
}

/**
 * Loads an ELF64 vmlinux (no PVH note) through the 64-bit boot protocol, as Firecracker does:
 * PT_LOADs at p_paddr, boot_params with a synthetic setup header, long mode at the entry.
 */
export function loadElf64(input: BootInput, elf: ElfImage): BootResult {
  const { memory: mem, kernelPath } = input;
  const entry = physicalEntry(kernelPath, elf);
  const kernelRange = loadSegments(mem, kernelPath, input.layout, input.kernel, elf);
  const cmdlinePtr = writeCmdline(mem, kernelPath, input.cmdline, CMDLINE_MAX - 1);
  const initrdRange = loadInitrd(input, kernelRange.addr + kernelRange.size, INITRD_ADDR_MAX + 1);
  writeBootParams(mem, {
    setupHeader: syntheticSetupHeader(CMDLINE_MAX - 1),
    cmdlinePtr,
    ...(initrdRange ? { ramdisk: initrdRange } : {}),
    e820: input.e820,
    rsdpAddr: input.rsdpAddr,
  });
  return {
    format: 'elf64',
    cpu: longModeEntry(mem, entry, ZERO_PAGE),
    kernelRange,
    ...(initrdRange ? { initrdRange } : {}),
  };
}
