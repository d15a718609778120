/**
 * What to do about an exit: a pure function of the exit and the buses, so every path can be
 * driven in tests with made-up exits. Device accesses are done here (under the device lock);
 * anything that concerns the whole machine is returned as an action for the vCPU loop.
 */
import type { Bus } from '../bus/bus.js';
import type { VcpuExit } from './exit.js';
import { KVM_SYSTEM_EVENT } from './exit-reason.js';

export interface ExitContext {
  readonly pio: Bus;
  readonly mmio: Bus;
  /** The machine's device lock, held around every device access (no closure per exit). */
  lock(): void;
  unlock(): void;
}

export type ExitAction =
  | { kind: 'continue' }
  /** The guest halted with no in-kernel irqchip to wake it: wait for an interrupt. */
  | { kind: 'halt' }
  /** The guest (or KVM on its behalf) asked for a reset: triple fault, PSCI/system event. */
  | { kind: 'reset'; reason: 'guest-reset' }
  | { kind: 'shutdown'; reason: 'guest-shutdown' }
  | { kind: 'guest-panic' }
  | { kind: 'internal-error'; exit: VcpuExit }
  | { kind: 'debug'; exit: VcpuExit };

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
      return { kind: 'internal-error', exit };
    case 'debug':
      return { kind: 'debug', exit };
    case 'fail-entry':
    case 'internal-error':
    case 'unhandled':
      return { kind: 'internal-error', exit };
  }
}
