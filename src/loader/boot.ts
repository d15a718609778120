import type { E820Entry, RamLayout } from '../arch/x86/e820.js';
import type { BootCpuState } from '../hypervisor/x86-state.js';
import type { GuestMemory } from '../memory/guest-memory.js';

/** Everything a kernel loader needs to place a kernel and describe the machine to it. */
export interface BootInput {
  /** Path of the kernel image, for error messages. */
  readonly kernelPath: string;
  readonly kernel: Uint8Array;
  readonly initrdPath?: string;
  readonly initrd?: Uint8Array;
  readonly cmdline: string;
  readonly memory: GuestMemory;
  readonly layout: RamLayout;
  readonly e820: readonly E820Entry[];
  /** Guest-physical address of the ACPI RSDP, or 0 when the machine has no ACPI tables. */
  readonly rsdpAddr: number;
}

/** The result of loading: what the boot CPU must look like, and what was loaded where. */
export interface BootResult {
  readonly format: 'bzImage' | 'pvh-elf' | 'elf64';
  readonly cpu: BootCpuState;
  readonly kernelRange: { readonly addr: number; readonly size: number };
  readonly initrdRange?: { readonly addr: number; readonly size: number };
}
