import type { MessagePort } from 'node:worker_threads';
import type { BootCpuState, Regs, Sregs } from '../hypervisor/x86-state.js';
import type { CpuidEntryData, MsrEntry } from '../kvm/structs.js';
import type { DevicePlan } from '../machine/devices.js';
import type { VcpuExit } from './exit.js';

/** workerData for a vCPU thread. */
export interface VcpuWorkerData {
  readonly index: number;
  readonly vmFd: number;
  readonly vcpuFd: number;
  readonly runAddress: bigint;
  readonly runSize: number;
  readonly control: SharedArrayBuffer;
  readonly devices: DevicePlan;
  readonly ram: ReadonlyArray<{ gpa: number; size: number; hostAddress: bigint }>;
  readonly port: MessagePort;
}

/** Power-on configuration of a vCPU, applied at setup and again at every reset. */
export interface VcpuSetup {
  readonly cpuid: CpuidEntryData[];
  readonly msrs: MsrEntry[];
  readonly fpu: Uint8Array;
  /** The boot CPU's entry state; null for APs (they wait for INIT/SIPI). */
  readonly boot: BootCpuState | null;
}

export type VcpuCommand =
  | { id: number; cmd: 'setup'; setup: VcpuSetup }
  | { id: number; cmd: 'reset'; boot: BootCpuState | null }
  | { id: number; cmd: 'get-state' };

export type VcpuReply =
  | { id: number; ok: true; regs?: Regs; sregs?: Sregs }
  | { id: number; ok: false; message: string };

/** What a worker reports on its own: something the machine must decide. */
export type VcpuEvent =
  | { type: 'ready'; tid: number }
  | { type: 'request'; kind: 'reset'; reason: 'guest-reset' }
  | { type: 'request'; kind: 'shutdown'; reason: 'guest-shutdown' }
  | { type: 'request'; kind: 'guest-panic' }
  | { type: 'internal-error'; exit: VcpuExit; regs: Regs | null; sregs: Sregs | null; code: Array<number | null> | null; codeIndex: number }
  | { type: 'debug'; exit: VcpuExit }
  | { type: 'fatal'; message: string };
