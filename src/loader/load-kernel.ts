import { ImageError } from '../errors.js';
import type { BootInput, BootResult } from './boot.js';
import { isBzImage, loadBzImage, type BzImageOptions } from './bzimage.js';
import { isElf, parseElf, pvhEntry } from './elf.js';
import { loadElf64 } from './elf64.js';
import { loadPvh } from './pvh.js';

export type LoadKernelOptions = BzImageOptions;

/**
 * Loads a kernel in whichever format it is: a bzImage (64-bit boot protocol), an ELF with a
 * PVH entry note (32-bit PVH entry), or an ELF64 vmlinux (64-bit boot protocol).
 */
export function loadKernel(input: BootInput, options: LoadKernelOptions = {}): BootResult {
  const { kernel, kernelPath } = input;
  if (isBzImage(kernel)) return loadBzImage(input, options);
  if (!isElf(kernel)) throw new ImageError(kernelPath, 'not a Linux bzImage or ELF kernel');
  const elf = parseElf(kernelPath, kernel);
  const entry = pvhEntry(kernelPath, elf);
  if (entry !== undefined) return loadPvh(input, elf, entry);
  if (elf.elfClass === 64) return loadElf64(input, elf);
  throw new ImageError(kernelPath,
    '32-bit ELF kernel without a PVH entry point (no "Xen" XEN_ELFNOTE_PHYS32_ENTRY note)');
}
