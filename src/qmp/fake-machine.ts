/**
 * A QmpMachine without a VM, for tests of the QMP layer and for trying clients against:
 * it keeps a run state, follows QEMU's rules for stop/cont/reset/quit, and emits the events
 * QEMU would through `emit`.
 */
import { DEFAULT_ACTIONS, resetOutcome, type ActionPolicy } from '../runstate/actions.js';
import type { QmpEvent } from '../runstate/events.js';
import { RunStateMachine, stateAfterReset, type RunState } from '../runstate/run-state.js';
import type { QmpAccelInfo, QmpCpuInfoFast, QmpMachine, QmpStatusInfo } from './qmp-machine.js';

export class FakeMachine implements QmpMachine {
  name: string | undefined = undefined;
  uuid = '00000000-0000-0000-0000-000000000000';
  kvm = { enabled: true, present: true };
  wakeupSupported = true;
  actions: ActionPolicy = { ...DEFAULT_ACTIONS };
  readonly runState: RunStateMachine;
  /** Every method called, in order. */
  readonly calls: string[] = [];
  emit: (event: QmpEvent) => void = () => undefined;

  constructor(initial: RunState = 'prelaunch', readonly cpuCount = 1) {
    this.runState = new RunStateMachine(initial);
  }

  accel(): QmpAccelInfo {
    return {
      accel: 'kvm',
      properties: { 'notify-vmexit': 'run', 'notify-window': 0, 'kernel-irqchip': 'on', 'dirty-ring-size': 0 },
      'notify-vmexit-status': 'unavailable',
      host: {
        'notify-vmexit': false, 'memory-fault-info': true, 'dirty-ring-max-size': 65536, 'user-space-msr': true,
        'msr-filter': true, 'guest-debug': true, 'bus-lock-exit': false, 'max-vcpus': 1024,
      },
    };
  }

  status(): QmpStatusInfo {
    return { running: this.runState.isRunning(), singlestep: false, status: this.runState.state };
  }

  cpus(): QmpCpuInfoFast[] {
    return Array.from({ length: this.cpuCount }, (_, i) => ({
      'cpu-index': i,
      'qom-path': `/machine/unattached/device[${i}]`,
      'thread-id': 1000 + i,
      props: { 'core-id': 0, 'thread-id': 0, 'socket-id': i },
      target: 'x86_64' as const,
    }));
  }

  stop(): void {
    this.calls.push('stop');
    if (!this.runState.isRunning()) return;
    this.runState.transition('paused');
    this.emit({ event: 'STOP' });
  }

  cont(): void {
    this.calls.push('cont');
    if (this.runState.isRunning()) return;
    this.runState.transition('running');
    this.emit({ event: 'RESUME' });
  }

  systemReset(): void {
    this.calls.push('systemReset');
    if (resetOutcome(this.actions, 'host-qmp-system-reset') === 'shutdown') {
      this.emit({ event: 'SHUTDOWN', data: { guest: false, reason: 'host-qmp-system-reset' } });
      return;
    }
    this.emit({ event: 'RESET', data: { guest: false, reason: 'host-qmp-system-reset' } });
    this.runState.transition(stateAfterReset(this.runState.state));
  }

  systemPowerdown(): void {
    this.calls.push('systemPowerdown');
    this.emit({ event: 'POWERDOWN' });
  }

  systemWakeup(): void {
    this.calls.push('systemWakeup');
    this.runState.transition('running');
    this.emit({ event: 'WAKEUP' });
  }

  quit(): void {
    this.calls.push('quit');
    this.emit({ event: 'SHUTDOWN', data: { guest: false, reason: 'host-qmp-quit' } });
  }

  injectNmi(): void {
    this.calls.push('injectNmi');
  }

  setActions(changes: Partial<ActionPolicy>): void {
    this.calls.push(`setActions ${JSON.stringify(changes)}`);
    this.actions = { ...this.actions, ...changes };
  }
}
