import type { RamLayout } from '../arch/x86/e820.js';
import { ImageError } from '../errors.js';

export const PAGE_SIZE = 0x1000;
const MIB = 0x100000;

export const hex = (n: number): string => `0x${n.toString(16)}`;

/** How RAM is described in "does not fit" messages: where low RAM ends and the total size. */
export function ramText(layout: RamLayout): string {
  const size = layout.ramSize % MIB === 0 ? `${layout.ramSize / MIB} MiB` : `${layout.ramSize} bytes`;
  return `RAM is ${size}, ending at ${hex(layout.lowSize)} below 4 GiB`;
}

/** Throws unless [addr, addr+size) lies in RAM below 4 GiB, where loaders put kernels. */
export function checkKernelFits(file: string, layout: RamLayout, addr: number, size: number): void {
  if (addr + size > layout.lowSize) {
    throw new ImageError(file,
      `kernel does not fit in RAM: it needs ${size} bytes at ${hex(addr)} (up to ${hex(addr + size)}), ${ramText(layout)}`,
      'ERR_DOES_NOT_FIT');
  }
}
