import type { BootInput } from './boot.js';
import { ImageError } from '../errors.js';
import { hex, PAGE_SIZE, ramText } from './fit.js';

export interface LoadedRange {
  readonly addr: number;
  readonly size: number;
}

/**
 * Places the initrd page-aligned as high as possible in low RAM, below `maxEnd` (exclusive;
 * a kernel's initrd_addr_max + 1) and above `kernelEnd`, as QEMU and bootloaders do, so the
 * kernel's own early allocations below it stay free.
 */
export function loadInitrd(input: BootInput, kernelEnd: number, maxEnd: number): LoadedRange | undefined {
  const { initrd } = input;
  if (!initrd) return undefined;
  const file = input.initrdPath ?? 'initrd';
  const top = Math.min(maxEnd, input.layout.lowSize);
  const addr = Math.floor((top - initrd.length) / PAGE_SIZE) * PAGE_SIZE;
  const floor = Math.ceil(kernelEnd / PAGE_SIZE) * PAGE_SIZE;
  if (addr < floor) {
    throw new ImageError(file,
      `initrd does not fit in RAM: ${initrd.length} bytes do not fit between the kernel's end ${hex(floor)} and ${hex(top)}, ${ramText(input.layout)}`,
      'ERR_DOES_NOT_FIT');
  }
  input.memory.write(addr, initrd);
  return { addr, size: initrd.length };
}
