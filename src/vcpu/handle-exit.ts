/**
 * What to do about an exit: a pure function of the exit and its context, so every path can
 * be driven in tests with made-up exits (and by the fake hypervisor). Device and MSR accesses
 * are done here (devices under the device lock); anything that concerns the whole machine is
 * returned as an action for the vCPU loop. Every exit reason KVM defines has a case here or
 * falls into `unhandled`, which stops the VM with an internal error naming it.
 */
import type { Bus } from '../bus/bus.js';
import type { MsrAnswer, VcpuExit } from './exit.js';
import { KVM_MSR_EXIT_REASON, KVM_NOTIFY_CONTEXT_INVALID, KVM_SYSTEM_EVENT } from './exit-reason.js';

/** MSRs the VMM implements in user space (reached through the MSR filter). */
export interface UserMsrs {
  /** The value, or undefined when the MSR is not one of ours. */
  read(index: number): bigint | undefined;
  /** True when the MSR is ours and took the value. */
  write(index: number, value: bigint): boolean;
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
    case 'fail-entry':
    case 'internal-error':
    case 'unhandled':
      return { kind: 'internal-error', exit };
  }
}
