/**
 * What a KVMI session needs from the VM it inspects: the contract between the protocol (this
 * directory) and the VMM. Everything here can be built on stock KVM:
 *
 *   guest memory            the VMM's own mapping of guest RAM (main thread, synchronous)
 *   registers, CPUID, XSAVE KVM_GET/SET_REGS, SREGS, MSRS, CPUID2, XSAVE, XCRS in the vCPU's thread
 *   pause / resume          the vCPU control words and the kick signal (immediate_exit)
 *   breakpoints, stepping   KVM_SET_GUEST_DEBUG (USE_SW_BP, SINGLESTEP) → KVM_EXIT_DEBUG
 *   MSR write events        KVM_CAP_X86_USER_SPACE_MSR (FILTER) + KVM_X86_SET_MSR_FILTER deny-write
 *                           → KVM_EXIT_X86_WRMSR
 *   page write events       KVM_MEM_READONLY slots (split so that only protected pages are
 *                           read-only) → KVM_EXIT_MMIO on a guest write
 *   exception injection     KVM_SET_VCPU_EVENTS
 *
 * Threads: the session runs on the main thread and calls every method there. Methods that
 * touch a vCPU return promises; the VMM forwards them to the vCPU's worker thread. A vCPU
 * that has raised an event blocks in its thread until `reply` is called, and while it waits
 * it must keep serving the vCPU methods below (the tool reads and writes its registers
 * during the event). Errors: a method that throws `KvmiError` ('EINVAL', 'EBUSY', ...) gets
 * that error number answered to the tool; anything else is answered -EFAULT and logged.
 */
import type { Regs, Sregs } from '../hypervisor/x86-state.js';
import type { CpuidLeaf, PhysicalRange } from './wire/commands.js';
import type { KvmiAction, KvmiCommand, KvmiEventName } from './wire/ids.js';
import type { MsrValue } from './wire/vcpu-state.js';
import type { EventSlots } from './socket/event-slots.js';

export type { KvmiAction } from './wire/ids.js';
export type { CpuidLeaf, PhysicalRange, PhysicalType } from './wire/commands.js';
export type { MsrValue } from './wire/vcpu-state.js';

export interface VcpuRegisters {
  regs: Regs;
  sregs: Sregs;
  /** The MSRs asked for, in the order asked. */
  msrs: MsrValue[];
}

/** A region of guest RAM and where this process maps it. */
export interface RamMapping {
  readonly gpa: number;
  readonly size: number;
  readonly hostAddress: bigint;
}

export interface ExceptionInjection {
  vector: number;
  /** Whether the vector pushes an error code (#DF, #TS, #NP, #SS, #GP, #PF, #AC, #CP, #VC, #SX). */
  hasErrorCode: boolean;
  errorCode: number;
  /** The faulting address for #PF (CR2); 0 otherwise. */
  address: bigint;
}

interface VcpuEventBase {
  /** The vCPU that raised the event; it is blocked until `reply` is called. */
  readonly vcpu: number;
  /**
   * The vCPU's registers and the sink's state MSRs (`setEventSink`) as they were at the event,
   * when the target read them with it; otherwise the session asks `getRegisters`.
   */
  readonly state?: VcpuRegisters;
}

/**
 * The guest executed an INT3 while breakpoint interception is on for its vCPU
 * (KVM_EXIT_DEBUG with exception 3). `reply`: 'continue' re-injects the guest's own #BP
 * (KVM_SET_VCPU_EVENTS, a soft exception of `insnLength` bytes); 'retry' re-enters the guest
 * without it (the tool usually moved RIP with SET_REGISTERS); 'crash' stops the guest.
 */
export interface BreakpointEvent extends VcpuEventBase {
  readonly kind: 'breakpoint';
  /** The linear address of the INT3 (kvm_run.debug.arch.pc). */
  readonly gva: bigint;
  /** Its guest-physical address when the VMM knows it; otherwise the session walks the page tables. */
  readonly gpa?: bigint;
  readonly insnLength: number;
  reply(action: KvmiAction): void;
}

/**
 * The guest wrote an intercepted MSR (KVM_EXIT_X86_WRMSR, reason FILTER). `reply`: 'continue'
 * writes `newValue` (the tool's, which may differ from the guest's) with KVM_SET_MSRS and
 * completes the WRMSR; if KVM refuses the value the VMM sets kvm_run.msr.error (#GP).
 * 'retry' is not a KVMI action for MSR events; the session never sends it here. 'crash'
 * stops the guest.
 */
export interface MsrEvent extends VcpuEventBase {
  readonly kind: 'msr';
  readonly msr: number;
  /** The value before the write (KVM_GET_MSRS). */
  readonly oldValue: bigint;
  /** What the guest is writing. */
  readonly newValue: bigint;
  reply(action: KvmiAction, newValue: bigint): void;
}

/**
 * The guest wrote a write-protected page (KVM_EXIT_MMIO, is_write, inside a read-only slot).
 * KVM has decoded and executed the instruction except for the store, so RIP is already past
 * it. `reply`: 'continue' performs the store (the exit's data into RAM) and lets the vCPU go
 * on; 'retry' means "run the instruction again": if the page is still protected the VMM raises
 * this event again (the store never happens while it is), otherwise it performs the store,
 * which is what the instruction would do; 'crash' stops the guest.
 */
export interface PageFaultEvent extends VcpuEventBase {
  readonly kind: 'pf';
  readonly gpa: bigint;
  /** The linear address written, when known (KVM_EXIT_MMIO does not tell it). */
  readonly gva?: bigint;
  /** KVMI_PAGE_ACCESS_W: only writes can be caught on stock KVM. */
  readonly access: number;
  reply(action: KvmiAction): void;
}

/**
 * One instruction completed under single-stepping (KVM_EXIT_DEBUG with the single-step bit
 * in DR6). 'continue' goes on (stepping again while it stays on); 'crash' stops the guest.
 */
export interface SingleStepEvent extends VcpuEventBase {
  readonly kind: 'singlestep';
  readonly failed: boolean;
  reply(action: KvmiAction): void;
}

/**
 * A vCPU was created (hot-plugged, or created after the tool connected), before it first runs;
 * `vcpuCount` already counts it. 'continue' lets it start; 'crash' stops the guest.
 */
export interface CreateVcpuEvent extends VcpuEventBase {
  readonly kind: 'create-vcpu';
  reply(action: KvmiAction): void;
}

export type TargetEvent = BreakpointEvent | MsrEvent | PageFaultEvent | SingleStepEvent | CreateVcpuEvent;

export type TargetEventSink = (event: TargetEvent) => void;

export interface IntrospectionTarget {
  /**
   * What this target cannot do beyond what stock KVM rules out (capabilities.ts): the session
   * refuses these commands and events with -EOPNOTSUPP and CHECK_COMMAND/CHECK_EVENT say so.
   */
  readonly unsupported?: { readonly commands: ReadonlySet<KvmiCommand>; readonly events: ReadonlySet<KvmiEventName> };
  /**
   * Slots through which the target's vCPU threads send breakpoint and single-step events to
   * the tool themselves, and get the answer from the socket thread (socket/event-slots.ts).
   * Absent: every event comes through the sink.
   */
  readonly eventSlots?: EventSlots;
  /** Online vCPUs; vCPU indices are 0..vcpuCount-1. */
  readonly vcpuCount: number;
  /** The guest TSC frequency in Hz (KVM_GET_TSC_KHZ × 1000); 0 when unknown. */
  readonly tscHz: bigint;

  /** One past the highest guest frame backed by a memory slot. */
  maxGfn(): bigint;
  /**
   * Copies `size` bytes of guest RAM at `gpa`, through the VMM's mapping (no vCPU involved);
   * undefined when any of it is not RAM. Synchronous, main thread.
   */
  readPhysical(gpa: bigint, size: number): Uint8Array | undefined;
  /**
   * Guest RAM as mapped in this process (host addresses), for the socket thread to answer
   * READ_PHYSICAL from directly; absent or empty: every read goes through `readPhysical`.
   */
  ramMapping?(): readonly RamMapping[];
  /** Writes guest RAM (write protection does not apply to the VMM); false when not RAM. */
  writePhysical(gpa: bigint, data: Uint8Array): boolean;
  /** The memory region holding `gpa`, or undefined when nothing is mapped there. */
  queryPhysical(gpa: bigint): PhysicalRange | undefined;

  /**
   * Stops the vCPU out of guest mode and keeps it there until `resume`. Resolves once it will
   * not run guest code again: at once if it is already stopped or is blocked waiting for an
   * event reply (the hold then applies after that reply). Idempotent: several pauses, one
   * resume. Independent of the machine's own pause: a QMP `cont` must not release it.
   */
  pause(vcpu: number): Promise<void>;
  /** Releases the hold set by `pause`. */
  resume(vcpu: number): void;
  /** KVMI_EVENT_ACTION_CRASH for a vCPU the session holds: stop the guest ungracefully, now. */
  crash(vcpu: number): void;

  /**
   * Registers and the MSRs asked for, read in the vCPU's thread. A running vCPU is kicked out
   * of guest mode for the read and continues afterwards. Throws KvmiError('EINVAL') for an
   * MSR KVM cannot read.
   */
  getRegisters(vcpu: number, msrs: readonly number[]): Promise<VcpuRegisters>;
  /**
   * KVM_SET_REGS. The session only calls it while the vCPU waits for an event reply, so the
   * new values take effect when the vCPU resumes.
   */
  setRegisters(vcpu: number, regs: Regs): Promise<void>;
  /** The leaf as the guest sees it (the vCPU's KVM_SET_CPUID2 table); undefined if absent. */
  getCpuid(vcpu: number, fn: number, index: number): Promise<CpuidLeaf | undefined>;
  /** struct kvm_xsave (4096 bytes today; at most 8176). */
  getXsave(vcpu: number): Promise<Uint8Array>;
  /** An extended control register (KVM_GET_XCRS); undefined for one KVM does not report. */
  getXcr(vcpu: number, xcr: number): Promise<bigint | undefined>;
  /**
   * Queues an exception for the vCPU's next entry (KVM_SET_VCPU_EVENTS); throws
   * KvmiError('EBUSY') while another injected exception is still pending.
   */
  injectException(vcpu: number, exception: ExceptionInjection): Promise<void>;

  /** INT3 on this vCPU exits to the VMM (KVM_GUESTDBG_USE_SW_BP) instead of reaching the guest. */
  setBreakpointIntercept(vcpu: number, enable: boolean): Promise<void>;
  /** Single-step this vCPU (KVM_GUESTDBG_SINGLESTEP); combine with the breakpoint flag. */
  setSingleStep(vcpu: number, enable: boolean): Promise<void>;
  /**
   * Guest writes to `msr`, on any vCPU, exit to the VMM (the MSR filter is VM-wide; the
   * session filters per vCPU). Throws KvmiError('EOPNOTSUPP') for an MSR KVM cannot filter.
   */
  setMsrIntercept(msr: number, enable: boolean): Promise<void>;
  /** Makes these 4 KiB pages (by address, page-aligned) read-only to the guest, or writable again. */
  setWriteProtect(gpas: readonly bigint[], enable: boolean): Promise<void>;

  /**
   * Where events go. The session installs a sink when it starts and removes it (null) when it
   * ends; an event raised while no sink is installed must be handled by the VMM as 'continue'.
   * The sink is called on the main thread. `stateMsrs`: the MSRs the session sends with every
   * event; a target that can read them at the event puts them in the event's `state`.
   */
  setEventSink(sink: TargetEventSink | null, stateMsrs?: readonly number[]): void;
}
