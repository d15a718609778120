/**
 * What to do about an exit: a pure function of the exit and its context, so every path can
 * be driven in tests with made-up exits (and by the fake hypervisor). Device and MSR accesses
 * are done here (devices under the device lock); anything that concerns the whole machine is
 * returned as an action for the vCPU loop. Every exit reason KVM defines has a case here or
 * falls into `unhandled`, which stops the VM with an internal error naming it.
 */
import type { Bus } from '../bus/bus.js';
import type { MsrAnswer, VcpuExit } from './exit.js';
import { KVM_INTERNAL_ERROR, KVM_MSR_EXIT_REASON, KVM_NOTIFY_CONTEXT_INVALID, KVM_SYSTEM_EVENT } from './exit-reason.js';

/** MSRs the VMM implements in user space (reached through the MSR filter). */
export interface UserMsrs {
  /** The value, or undefined when the MSR is not one of ours. */
  read(index: number): bigint | undefined;
  /** True when the MSR is ours and took the value. */
  write(index: number, value: bigint): boolean;
  /**
   * Whether the MSR is one of ours (the VMM's own MSRs behind the filter). A filtered write
   * to an MSR that is not ours was denied for introspection: it becomes an `msr-write` action.
   * Absent: every filtered MSR is ours.
   */
  owns?(index: number): boolean;
}

/** What introspection asked of this vCPU (KVM_SET_GUEST_DEBUG): how debug exits are meant. */
export interface DebugIntercepts {
  /** INT3 exits to the VMM (KVM_GUESTDBG_USE_SW_BP). */
  readonly breakpoints: boolean;
  /** Every instruction exits (KVM_GUESTDBG_SINGLESTEP). */
  readonly singleStep: boolean;
}

/** `-accel kvm,notify-vmexit=`: what a notify exit does. */
export type NotifyVmexitPolicy = 'run' | 'internal-error' | 'disable';

export interface ExitContext {
  readonly pio: Bus;
  readonly mmio: Bus;
  /** The machine's device lock, held around every device access (no closure per exit). */
  lock(): void;
  unlock(): void;
  readonly msrs: UserMsrs;
  /** The run page, where the answer to an MSR exit goes. */
  readonly answer: MsrAnswer;
  readonly notifyVmexit: NotifyVmexitPolicy;
  /** Introspection's breakpoint and single-step interception; absent: none. */
  readonly debug?: DebugIntercepts;
  /**
   * The linear address of the instruction at RIP when it is an INT3 (0xCC), else null. On a
   * host that emulates the guest's kernel mode (PVM) an INT3 there is not a debug exit but an
   * emulation failure stopped at it; with breakpoints intercepted, that is a breakpoint too.
   */
  int3AtRip?(): bigint | null;
  /**
   * Whether [gpa, gpa+length) is guest RAM. A write there that exits as MMIO hit a page made
   * read-only for introspection: it becomes a `ram-write` action. Absent: no RAM is protected.
   */
  isRam?(gpa: number, length: number): boolean;
}

export type ExitAction =
  | { kind: 'continue' }
  /** Continue, and tell the operator once (per key) about something the guest did. */
  | { kind: 'warn'; key: string; message: string }
  /** The guest halted with no in-kernel irqchip to wake it: wait for an interrupt. */
  | { kind: 'halt' }
  /** The guest (or KVM on its behalf) asked for a reset: triple fault, PSCI/system event. */
  | { kind: 'reset'; reason: 'guest-reset' }
  | { kind: 'shutdown'; reason: 'guest-shutdown' }
  | { kind: 'guest-panic' }
  /** Stop the VM in internal-error; `why` says what an operator needs to know beyond the exit. */
  | { kind: 'internal-error'; exit: VcpuExit; why?: string }
  | { kind: 'debug'; exit: VcpuExit }
  /**
   * An intercepted INT3 at linear address `gva`. `emulated`: reported as an emulation failure
   * (RIP on the INT3, nothing injected by KVM yet), not as a KVM_EXIT_DEBUG.
   */
  | { kind: 'breakpoint'; gva: bigint; emulated: boolean }
  /** One instruction done under introspection's single-stepping. */
  | { kind: 'singlestep' }
  /** A guest write to write-protected RAM, not stored yet: `data` (a copy) goes to `gpa` if the tool agrees. */
  | { kind: 'ram-write'; gpa: number; data: Uint8Array }
  /** A WRMSR denied for introspection: the exit stays unanswered until the tool replies. */
  | { kind: 'msr-write'; index: number; value: bigint }
  /** This vCPU's dirty ring must be harvested before it can run again. */
  | { kind: 'harvest-dirty-ring' };

const CONTINUE: ExitAction = Object.freeze({ kind: 'continue' });

function portIo(ctx: ExitContext, exit: Extract<VcpuExit, { reason: 'io' }>): void {
  const { pio } = ctx;
  ctx.lock();
  try {
    if (exit.count === 1) {
      if (exit.out) pio.write(exit.port, exit.data);
      else pio.read(exit.port, exit.data);
      return;
    }
    // rep ins/outs: KVM hands over `count` elements back to back.
    for (let i = 0; i < exit.count; i++) {
      const d = exit.data.subarray(i * exit.size, (i + 1) * exit.size);
      if (exit.out) pio.write(exit.port, d);
      else pio.read(exit.port, d);
    }
  } finally {
    ctx.unlock();
  }
}

function mmio(ctx: ExitContext, exit: Extract<VcpuExit, { reason: 'mmio' }>): void {
  ctx.lock();
  try {
    if (exit.isWrite) ctx.mmio.write(exit.gpa, exit.data);
    else ctx.mmio.read(exit.gpa, exit.data);
  } finally {
    ctx.unlock();
  }
}

function msrReasonName(reason: number): string {
  if (reason === KVM_MSR_EXIT_REASON.FILTER) return 'filtered';
  if (reason === KVM_MSR_EXIT_REASON.UNKNOWN) return 'unknown to KVM';
  if (reason === KVM_MSR_EXIT_REASON.INVAL) return 'invalid';
  return `reason ${reason}`;
}

const hex = (n: number | bigint): string => `0x${n.toString(16)}`;

/**
 * An MSR access sent to user space. Ours are answered; any other gets what KVM itself gives
 * an MSR it does not know (QEMU's policy too): #GP in the guest. Logged once per MSR.
 */
function msrAccess(ctx: ExitContext, exit: Extract<VcpuExit, { reason: 'x86-rdmsr' | 'x86-wrmsr' }>): ExitAction {
  if (exit.reason === 'x86-rdmsr') {
    const value = ctx.msrs.read(exit.index);
    ctx.answer.answerRdmsr(value);
    if (value !== undefined) return CONTINUE;
  } else {
    if (exit.msrReason === KVM_MSR_EXIT_REASON.FILTER && ctx.msrs.owns !== undefined && !ctx.msrs.owns(exit.index)) {
      return { kind: 'msr-write', index: exit.index, value: exit.value };
    }
    const ok = ctx.msrs.write(exit.index, exit.value);
    ctx.answer.answerWrmsr(ok);
    if (ok) return CONTINUE;
  }
  const op = exit.reason === 'x86-rdmsr' ? 'rdmsr' : 'wrmsr';
  return {
    kind: 'warn', key: `${op}:${exit.index}`,
    message: `guest ${op} of MSR ${hex(exit.index)} (${msrReasonName(exit.msrReason)}) is not handled: #GP injected`,
  };
}

export function handleExit(exit: VcpuExit, ctx: ExitContext): ExitAction {
  switch (exit.reason) {
    case 'io':
      portIo(ctx, exit);
      return CONTINUE;
    case 'mmio':
      if (exit.isWrite && ctx.isRam?.(exit.gpa, exit.data.length) === true) return { kind: 'ram-write', gpa: exit.gpa, data: exit.data.slice() };
      mmio(ctx, exit);
      return CONTINUE;
    case 'intr':
    case 'irq-window-open':
      return CONTINUE;
    case 'hlt':
      return { kind: 'halt' };
    case 'shutdown':
      // A triple fault: a PC resets (QEMU: qemu_system_reset_request(SHUTDOWN_CAUSE_GUEST_RESET)).
      return { kind: 'reset', reason: 'guest-reset' };
    case 'system-event':
      if (exit.type === KVM_SYSTEM_EVENT.RESET) return { kind: 'reset', reason: 'guest-reset' };
      if (exit.type === KVM_SYSTEM_EVENT.SHUTDOWN) return { kind: 'shutdown', reason: 'guest-shutdown' };
      if (exit.type === KVM_SYSTEM_EVENT.CRASH) return { kind: 'guest-panic' };
      return { kind: 'internal-error', exit, why: `KVM system event of type ${exit.type} has no meaning on x86` };
    case 'debug':
      // #BP (3) and #DB (1) that introspection asked for; anything else nobody expects.
      if (exit.exception === 3 && ctx.debug?.breakpoints === true) return { kind: 'breakpoint', gva: exit.pc, emulated: false };
      if (exit.exception === 1 && ctx.debug?.singleStep === true) return { kind: 'singlestep' };
      return { kind: 'debug', exit };
    case 'x86-rdmsr':
    case 'x86-wrmsr':
      return msrAccess(ctx, exit);
    case 'notify': {
      const invalid = (exit.flags & KVM_NOTIFY_CONTEXT_INVALID) !== 0;
      const what = `notify VM exit with ${invalid ? 'invalid' : 'valid'} context: the guest kept the CPU `
        + 'from opening an event window for longer than the notify window (a stalled or hostile guest)';
      // The VM context is gone when KVM says so, whatever the option asked for.
      if (invalid || ctx.notifyVmexit === 'internal-error') return { kind: 'internal-error', exit, why: what };
      return { kind: 'warn', key: 'notify', message: `${what}; the guest keeps running (notify-vmexit=run)` };
    }
    case 'memory-fault':
      return { kind: 'internal-error', exit };
    case 'bus-lock':
      return { kind: 'warn', key: 'bus-lock', message: 'the guest took a bus lock (split lock), which stalls every CPU of the host' };
    case 'dirty-ring-full':
      return { kind: 'harvest-dirty-ring' };
    case 'internal-error':
      if (exit.suberror === KVM_INTERNAL_ERROR.EMULATION && ctx.debug?.breakpoints === true) {
        const gva = ctx.int3AtRip?.() ?? null;
        if (gva !== null) return { kind: 'breakpoint', gva, emulated: true };
      }
      return { kind: 'internal-error', exit };
    case 'fail-entry':
    case 'unhandled':
      return { kind: 'internal-error', exit };
  }
}
