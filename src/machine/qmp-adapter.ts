/**
 * The machine as the QMP commands see it (QmpMachine): a thin mapping, no policy of its own.
 * Preconditions and error wording live in src/qmp; run states and events in Machine.
 */
import type { ActionPolicy } from '../runstate/actions.js';
import type { QmpAccelInfo, QmpCpuInfoFast, QmpMachine, QmpStatusInfo } from '../qmp/qmp-machine.js';
import type { AcceleratorInfo } from './accelerator.js';
import type { Machine } from './machine.js';

export const NIL_UUID = '00000000-0000-0000-0000-000000000000';

export function qmpMachine(machine: Machine, ids: { name?: string; uuid?: string } = {}): QmpMachine {
  return {
    name: ids.name,
    uuid: ids.uuid ?? NIL_UUID,
    kvm: { enabled: true, present: true },
    accel: () => qmpAccelInfo(machine.accelerator),
    wakeupSupported: true, // ACPI S3 (QEMU: wake-up from suspend is enabled with ACPI)
    status(): QmpStatusInfo {
      const status = machine.status;
      return { running: status === 'running', singlestep: false, status };
    },
    cpus(): QmpCpuInfoFast[] {
      // One socket of N cores, one thread each (QEMU 7.2's default topology for -smp N).
      // QEMU's QOM numbering gives vCPU 0 device[0] and the others device[i + 1].
      return machine.vcpuThreadIds().map((tid, i) => ({
        'cpu-index': i,
        'qom-path': `/machine/unattached/device[${i === 0 ? 0 : i + 1}]`,
        'thread-id': tid,
        props: { 'core-id': i, 'thread-id': 0, 'socket-id': 0 },
        target: 'x86_64',
      }));
    },
    stop: () => machine.pause(),
    cont: () => machine.resume(),
    systemReset: () => machine.reset('host-qmp-system-reset'),
    systemPowerdown: () => machine.powerdown(),
    systemWakeup: () => machine.wakeup(),
    // SHUTDOWN, then the reply, then the end: wait for the event, not for the end.
    quit: () => machine.requestQuit('host-qmp-quit'),
    injectNmi: () => machine.injectNmi(),
    setActions: (changes: Partial<ActionPolicy>) => machine.setActions(changes),
  };
}

export function qmpAccelInfo(a: AcceleratorInfo): QmpAccelInfo {
  const p = a.properties;
  return {
    accel: 'kvm',
    properties: {
      'notify-vmexit': p.notifyVmexit, 'notify-window': p.notifyWindow, 'kernel-irqchip': p.kernelIrqchip,
      'dirty-ring-size': p.dirtyRingSize,
    },
    'notify-vmexit-status': a.notifyVmexit,
    host: {
      'notify-vmexit': a.host.notifyVmexitFlags !== 0,
      'memory-fault-info': a.host.memoryFaultInfo,
      'dirty-ring-max-size': a.host.dirtyRingMaxEntries,
      'user-space-msr': a.host.userSpaceMsr !== 0,
      'msr-filter': a.host.msrFilter,
      'guest-debug': a.host.guestDebug,
      'bus-lock-exit': a.host.busLockExit !== 0,
      'max-vcpus': a.host.maxVcpus,
    },
  };
}
