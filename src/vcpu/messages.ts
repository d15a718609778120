import type { MessagePort } from 'node:worker_threads';
import type { BootCpuState, Regs, Sregs } from '../hypervisor/x86-state.js';
import type { CpuidEntryData, MsrEntry } from '../kvm/structs.js';
import type { DevicePlan } from '../machine/devices.js';
import type { GuestPanicInformation } from '../runstate/events.js';
import type { MemoryFailureEventData } from '../runstate/memory-failure.js';
import type { FakeScript } from '../testing/fake-hypervisor.js';
import type { VcpuExit } from './exit.js';
import type { NotifyVmexitPolicy } from './handle-exit.js';

/** How a vCPU thread runs: what the accelerator's properties mean for its exits. */
export interface VcpuRunConfig {
  readonly notifyVmexit: NotifyVmexitPolicy;
  /** False with kernel-irqchip=off: no in-kernel LAPIC, IOAPIC or PIC; HLT exits to user space. */
  readonly irqchip: boolean;
  /** Entries in this vCPU's dirty ring (0: off). */
  readonly dirtyRingEntries: number;
  /**
   * `-cpu host,hv-crash`: where the Hyper-V crash MSRs live. `kvm`: KVM handles them and
   * reports a crash as a system event (the thread then reads P0..P4); `user`: nodevisor,
   * behind the MSR filter; `off`: not offered.
   */
  readonly hvCrash: 'off' | 'kvm' | 'user';
}

/** Which hypervisor the thread's vCPU lives in: KVM, or (tests only) the scripted fake. */
export type VcpuBackend = { kind: 'kvm' } | { kind: 'fake'; script: FakeScript };

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
  readonly config: VcpuRunConfig;
  readonly backend: VcpuBackend;
}

/** Power-on configuration of a vCPU, applied at setup and again at every reset. */
export interface VcpuSetup {
  readonly cpuid: CpuidEntryData[];
  readonly msrs: MsrEntry[];
  readonly fpu: Uint8Array;
  /** The boot CPU's entry state; null for APs (they wait for INIT/SIPI). */
  readonly boot: BootCpuState | null;
  /** Machine-check banks (KVM_X86_SETUP_MCE's MCG_CAP), or null when the host has none. */
  readonly mcgCap: bigint | null;
}

/** The id of a command the thread answers with nothing (ids of calls start at 1). */
export const NO_REPLY = 0;

export type VcpuCommand =
  | { id: number; cmd: 'setup'; setup: VcpuSetup }
  | { id: number; cmd: 'reset'; boot: BootCpuState | null }
  | { id: number; cmd: 'get-state' }
  /** Introspection reads (the vCPU must be paused): KVM_GET_MSRS, KVM_GET_XSAVE, KVM_GET_XCRS. */
  | { id: number; cmd: 'get-msrs'; indices: number[] }
  | { id: number; cmd: 'get-xsave' }
  | { id: number; cmd: 'get-xcrs' }
  /** Introspection: KVM_SET_REGS (served while the vCPU is stopped or waits for an event reply). */
  | { id: number; cmd: 'set-regs'; regs: Regs }
  /** Introspection: queue an exception for the next entry (KVM_SET_VCPU_EVENTS); EBUSY if one is pending. */
  | { id: number; cmd: 'inject-exception'; vector: number; hasErrorCode: boolean; errorCode: number; address: bigint }
  /** Introspection: KVM_SET_GUEST_DEBUG; an absent field keeps its setting. */
  | { id: number; cmd: 'guest-debug'; breakpoints?: boolean; singleStep?: boolean }
  /**
   * The answer to this vCPU's outstanding introspection event: the vCPU goes on. `newValue`:
   * what an MSR event's WRMSR stores. Ignored (ok) when no event is outstanding.
   */
  | { id: number; cmd: 'event-reply'; action: 'continue' | 'retry' | 'crash'; newValue?: bigint }
  /** The MSRs read into every introspection event's state, next to the registers (empty: none). */
  | { id: number; cmd: 'event-msrs'; indices: number[] }
  /** Introspection's shared event slots (src/introspection/socket/event-slots.ts): events this vCPU may send itself. */
  | { id: number; cmd: 'event-slots'; buffer: SharedArrayBuffer };

export type VcpuReply =
  | {
    id: number; ok: true; regs?: Regs; sregs?: Sregs;
    /** get-msrs: the MSRs KVM read, in order; fewer than asked when it stopped at one it cannot read. */
    msrs?: MsrEntry[];
    /** get-xsave: struct kvm_xsave; get-xcrs: struct kvm_xcrs. */
    xsave?: Uint8Array; xcrs?: Uint8Array;
  }
  | { id: number; ok: false; message: string; code?: 'EBUSY' | 'EINVAL' };

/** What a vCPU raises for introspection; it then waits (serving commands) for an event-reply. */
export type IntrospectionExit =
  /** An intercepted INT3 at linear address `gva` (its guest-physical address when the thread could translate it). */
  | { kind: 'breakpoint'; gva: bigint; gpa?: bigint; insnLength: number }
  | { kind: 'singlestep'; failed: boolean }
  | { kind: 'msr'; msr: number; oldValue: bigint; newValue: bigint }
  /** A guest write to a write-protected RAM page (an MMIO exit inside RAM); not stored yet. */
  | { kind: 'pf'; gpa: bigint };

/**
 * The vCPU as it stood when it raised an introspection event, read in its own thread before
 * it waits, so the tool is told it without another trip to the thread: a state block
 * (src/kvm/state-block.ts) with the MSRs set by 'event-msrs' (fewer when KVM stopped at one).
 */
export type IntrospectionState = Uint8Array;

/** What a worker reports on its own: something the machine must decide. */
export type VcpuEvent =
  | { type: 'ready'; tid: number }
  | { type: 'request'; kind: 'reset'; reason: 'guest-reset' }
  | { type: 'request'; kind: 'shutdown'; reason: 'guest-shutdown' }
  | { type: 'request'; kind: 'guest-panic'; info?: GuestPanicInformation }
  | { type: 'request'; kind: 'sleep'; state: 'S3' | 'S4' | 'S5' }
  /** Something the guest did that needs no decision before the vCPU runs on. */
  | { type: 'notice'; kind: 'crash-loaded' }
  | {
    type: 'internal-error'; exit: VcpuExit; why?: string;
    regs: Regs | null; sregs: Sregs | null; code: Array<number | null> | null; codeIndex: number;
  }
  /**
   * A hardware memory error this vCPU's thread was told about (SIGBUS), as decided by QEMU's
   * policy: the event to emit first, the log line, and what the machine does next (the
   * thread has already injected a machine check when that was the decision).
   */
  | {
    type: 'memory-failure'; event: MemoryFailureEventData | null; log: { level: 'error' | 'warning'; text: string } | null;
    next: 'continue' | 'reset' | 'exit'; poisonedPage: { hostAddress: bigint; size: number } | null;
  }
  /** Something the operator should know, once per key (QEMU's warn_report_once). */
  | { type: 'warning'; key: string; message: string }
  | { type: 'debug'; exit: VcpuExit }
  /** An introspection event: the vCPU waits for an 'event-reply' command. */
  | { type: 'introspection'; event: IntrospectionExit; state: IntrospectionState | null }
  | { type: 'fatal'; message: string };
