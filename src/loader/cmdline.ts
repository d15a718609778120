import { CMDLINE_MAX, CMDLINE_START } from '../arch/x86/layout.js';
import { ImageError } from '../errors.js';
import type { GuestMemory } from '../memory/guest-memory.js';

/**
 * Writes the NUL-terminated command line at CMDLINE_START. `kernelLimit` is the kernel's own
 * limit without the NUL (setup header cmdline_size); the area at CMDLINE_START caps it too.
 */
export function writeCmdline(mem: GuestMemory, file: string, cmdline: string, kernelLimit: number): number {
  const bytes = new TextEncoder().encode(cmdline);
  const limit = Math.min(kernelLimit, CMDLINE_MAX - 1);
  if (bytes.length > limit) {
    throw new ImageError(file, `command line too long: ${bytes.length} bytes, the kernel accepts at most ${limit}`);
  }
  mem.write(CMDLINE_START, bytes);
  mem.writeU8(CMDLINE_START + bytes.length, 0);
  return CMDLINE_START;
}
