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
  /** Hyper-V enlightenments (`hv-crash`): the crash MSRs through which a guest reports a panic. */
  hvCrash?: boolean;
}

/** `-accel kvm,...`: the KVM accelerator's properties (QEMU 7.2's names and defaults). */
export interface AccelConfig {
  /** What a notify VM exit does: continue with a warning, stop in internal-error, or not enabled. */
  notifyVmexit: 'run' | 'internal-error' | 'disable';
  /**
   * The user set notify-vmexit or notify-window. Then a host without notify VM exits gets a
   * warning on stderr; with QEMU's defaults it is only reported (x-query-accel), as QEMU is silent.
   */
  notifyVmexitRequested?: boolean;
  /** Notify window in TSC cycles (uint32), added to the processor's internal threshold. */
  notifyWindow: number;
  /** Where the interrupt controllers live: in KVM (`on`), nowhere (`off`), or split (refused). */
  kernelIrqchip: 'on' | 'off' | 'split';
  /** Entries in each vCPU's dirty ring; 0 leaves the dirty ring off. */
  dirtyRingSize: number;
  /** `introspection=ID`: the `-object introspection` that inspects this VM. */
  introspection?: string;
}

export const DEFAULT_ACCEL: Readonly<AccelConfig> = Object.freeze({
  notifyVmexit: 'run', notifyWindow: 0, kernelIrqchip: 'on', dirtyRingSize: 0,
});

/** A `-device` the machine can have beyond the built-in PC devices. */
export type DeviceConfig =
  /** Paravirtual panic device on an ISA port (QEMU's `pvpanic`, default port 0x505). */
  | { driver: 'pvpanic'; ioport: number }
  /** The iBase IB700 watchdog at ports 0x441/0x443. */
  | { driver: 'ib700' };

/**
 * `-object introspection,...` with its chardev and secret resolved: where the introspection
 * tool listens and how to authenticate to it.
 */
export interface IntrospectionConfig {
  id: string;
  /** The unix socket the tool listens on (the `-chardev socket,path=`). */
  path: string;
  /** Seconds between attempts to reach a tool that went away; undefined: no retry. */
  reconnect?: number;
  /** The secret's bytes (`-object secret,data=|file=`); its SHA-1 is checked in the handshake. */
  key?: Uint8Array;
  /** Milliseconds the tool has to answer the handshake (default 10 000). */
  handshakeTimeoutMs: number;
  /** Milliseconds the tool has to let go when asked to unhook (default 60 000). */
  unhookTimeoutMs: number;
  /** Message numbering: libkvmi's kvmi-v7 (default) or the RFC v5 headers. */
  dialect: 'v7' | 'rfc-v5';
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
  /** `-uuid`, lower case. */
  uuid?: string;
  /** `-accel kvm,...`; DEFAULT_ACCEL when absent. */
  accel?: AccelConfig;
  /** `-device pvpanic`, `-device ib700`, in command-line order. */
  devices?: DeviceConfig[];
  /** `-object introspection` named by `-accel kvm,introspection=`. */
  introspection?: IntrospectionConfig;
  /**
   * Where an LZ4-compressed bzImage is decompressed: 'host' (default) decompresses the payload
   * in the VMM and enters the vmlinux inside at startup_64, as Firecracker boots a vmlinux;
   * 'guest' runs the bzImage's own decompressor, as QEMU does. Other payloads always go 'guest'.
   */
  kernelDecompress?: 'host' | 'guest';
}

export const DEFAULT_MEMORY_SIZE = 128 * 1024 * 1024; // QEMU's default -m
