/**
 * What the QMP commands need from the machine — implemented by src/machine, faked in tests.
 * The QMP layer checks QEMU's preconditions and words its errors (e.g. `cont` on a VM that
 * needs a reset); the machine performs the action and emits the events (STOP, RESUME, RESET,
 * SHUTDOWN, POWERDOWN, …) through QmpServer.broadcast. Events a method emits synchronously are
 * sent before the command's reply, as QEMU does for `quit`.
 */
import type { ActionPolicy } from '../runstate/actions.js';
import type { RunState } from '../runstate/run-state.js';

/** query-status's StatusInfo. `running` is true only in state `running`. */
export interface QmpStatusInfo {
  running: boolean;
  singlestep: boolean;
  status: RunState;
}

/** CpuInstanceProperties: where a vCPU sits in the topology. */
export interface QmpCpuProps {
  'node-id'?: number;
  'socket-id'?: number;
  'die-id'?: number;
  'cluster-id'?: number;
  'core-id'?: number;
  'thread-id'?: number;
}

/** One entry of query-cpus-fast (CpuInfoFast for an x86_64 target). */
export interface QmpCpuInfoFast {
  'cpu-index': number;
  /** QEMU's QOM path, e.g. /machine/unattached/device[0]. */
  'qom-path': string;
  /** The host thread running the vCPU (QEMU: the vCPU thread's TID). */
  'thread-id': number;
  props?: QmpCpuProps;
  target: 'x86_64';
}

/**
 * x-query-accel: the accelerator's properties in force and what the host offers, with QAPI
 * spellings (nodevisor's own command, named with QEMU's `x-` prefix for unstable interfaces).
 */
export interface QmpAccelInfo {
  accel: 'kvm';
  properties: {
    'notify-vmexit': 'run' | 'internal-error' | 'disable';
    'notify-window': number;
    'kernel-irqchip': 'on' | 'off' | 'split';
    'dirty-ring-size': number;
  };
  /** Notify VM exits as they are: enabled, disabled by the option, or unavailable on this host. */
  'notify-vmexit-status': 'enabled' | 'disabled' | 'unavailable';
  host: {
    'notify-vmexit': boolean;
    'memory-fault-info': boolean;
    'dirty-ring-max-size': number;
    'user-space-msr': boolean;
    'msr-filter': boolean;
    'guest-debug': boolean;
    'bus-lock-exit': boolean;
    'max-vcpus': number;
  };
}

export interface QmpMachine {
  /** -name, or undefined when none was given. */
  readonly name: string | undefined;
  /** -uuid; QEMU reports 00000000-0000-0000-0000-000000000000 when none was given. */
  readonly uuid: string;
  readonly kvm: { enabled: boolean; present: boolean };
  /** x-query-accel's answer. */
  accel(): QmpAccelInfo;
  /** Whether the guest can be woken from suspend at all (QEMU: ACPI wake-up enabled). */
  readonly wakeupSupported: boolean;

  status(): QmpStatusInfo;
  cpus(): QmpCpuInfoFast[];

  /** QEMU's vm_stop(paused): stops a running VM (STOP); nothing happens otherwise. */
  stop(): void | Promise<void>;
  /**
   * Starts the vCPUs (RESUME) unless running. Called only when the state allows it: not when a
   * reset is needed, not in `suspended` or `finish-migrate`.
   */
  cont(): void | Promise<void>;
  /** A reset request with cause host-qmp-system-reset (a shutdown under reboot=shutdown). */
  systemReset(): void | Promise<void>;
  /** An ACPI power-button press: POWERDOWN. */
  systemPowerdown(): void | Promise<void>;
  /** Wakes a suspended guest (called only in state `suspended` with wakeupSupported). */
  systemWakeup(): void | Promise<void>;
  /** SHUTDOWN {guest: false, reason: host-qmp-quit}, then the process ends (after the reply). */
  quit(): void | Promise<void>;
  /** An NMI to every vCPU. */
  injectNmi(): void | Promise<void>;
  /** set-action / watchdog-set-action: only the given settings change. */
  setActions(changes: Partial<ActionPolicy>): void;
}
