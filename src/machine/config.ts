/**
 * A machine as the user asked for it: what the CLI produces and `createMachine` takes.
 * Plain data (it crosses to worker threads and into QMP answers).
 */
export type SerialBackend =
  | { kind: 'stdio' }
  | { kind: 'file'; path: string }
  | { kind: 'null' }
  | { kind: 'none' }
  | { kind: 'unix'; path: string; server: boolean; wait: boolean };

/** `-cpu host,+feat,-feat`: the model and the feature edits, in order. */
export interface CpuConfig {
  model: 'host';
  /** QEMU feature names, e.g. { name: 'x2apic', enabled: false } for `-x2apic`. */
  features: ReadonlyArray<{ name: string; enabled: boolean }>;
}

export interface MachineConfig {
  /** Guest RAM in bytes. */
  memorySize: number;
  /** Number of vCPUs. */
  cpus: number;
  cpu: CpuConfig;
  kernel: string;
  initrd?: string;
  append: string;
  /** COM1; `none` leaves it unwired (the device still exists, output is dropped). */
  serial: SerialBackend;
  /** `-no-reboot`: a guest reset ends the VM (exit 0) instead of rebooting it. */
  noReboot: boolean;
  /** `-name`. */
  name?: string;
  /**
   * Where an LZ4-compressed bzImage is decompressed: 'host' (default) decompresses the payload
   * in the VMM and enters the vmlinux inside at startup_64, as Firecracker boots a vmlinux;
   * 'guest' runs the bzImage's own decompressor, as QEMU does. Other payloads always go 'guest'.
   */
  kernelDecompress?: 'host' | 'guest';
}

export const DEFAULT_MEMORY_SIZE = 128 * 1024 * 1024; // QEMU's default -m
