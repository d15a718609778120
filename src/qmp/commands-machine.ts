/**
 * The QMP commands that act on or describe the VM, on top of the QmpMachine interface.
 */
import {
  PANIC_ACTIONS,
  REBOOT_ACTIONS,
  SHUTDOWN_ACTIONS,
  WATCHDOG_ACTIONS,
  type ActionPolicy,
} from '../runstate/actions.js';
import type { QmpVersion } from './commands-core.js';
import { defineCommand, type CommandTable } from './dispatcher.js';
import { genericError } from './errors.js';
import { runHmp } from './hmp.js';
import { jsonObject, type JsonObject } from './json-value.js';
import { contChecked, wakeupChecked } from './machine-ops.js';
import type { QmpCpuInfoFast, QmpMachine } from './qmp-machine.js';

const PROP_ORDER = ['node-id', 'socket-id', 'die-id', 'cluster-id', 'core-id', 'thread-id'] as const;

/** A fresh CpuInfoFast with members added in QEMU's order (which decides the printed order). */
function cpuInfo(cpu: QmpCpuInfoFast): JsonObject {
  const out = jsonObject();
  out['cpu-index'] = cpu['cpu-index'];
  out['qom-path'] = cpu['qom-path'];
  out['thread-id'] = cpu['thread-id'];
  if (cpu.props !== undefined) {
    const props = jsonObject();
    for (const key of PROP_ORDER) {
      const v = cpu.props[key];
      if (v !== undefined) props[key] = v;
    }
    out.props = props;
  }
  out.target = cpu.target;
  return out;
}

export function machineCommands(machine: QmpMachine, version: QmpVersion): CommandTable {
  return {
    'query-status': defineCommand({
      args: {},
      handler: () => {
        const s = machine.status();
        return { running: s.running, singlestep: s.singlestep, status: s.status };
      },
    }),
    stop: defineCommand({ args: {}, handler: async () => void (await machine.stop()) }),
    cont: defineCommand({ args: {}, handler: () => contChecked(machine) }),
    system_reset: defineCommand({ args: {}, handler: async () => void (await machine.systemReset()) }),
    system_powerdown: defineCommand({ args: {}, handler: async () => void (await machine.systemPowerdown()) }),
    system_wakeup: defineCommand({ args: {}, handler: () => wakeupChecked(machine) }),
    quit: defineCommand({ args: {}, handler: async () => void (await machine.quit()) }),
    'inject-nmi': defineCommand({ args: {}, handler: async () => void (await machine.injectNmi()) }),
    'set-action': defineCommand({
      args: {
        reboot: { type: 'enum', values: REBOOT_ACTIONS, optional: true },
        shutdown: { type: 'enum', values: SHUTDOWN_ACTIONS, optional: true },
        panic: { type: 'enum', values: PANIC_ACTIONS, optional: true },
        watchdog: { type: 'enum', values: WATCHDOG_ACTIONS, optional: true },
      },
      handler: (args) => {
        const changes: Partial<ActionPolicy> = {};
        if (args.reboot !== undefined) changes.reboot = args.reboot;
        if (args.shutdown !== undefined) changes.shutdown = args.shutdown;
        if (args.panic !== undefined) changes.panic = args.panic;
        if (args.watchdog !== undefined) changes.watchdog = args.watchdog;
        machine.setActions(changes);
      },
    }),
    'watchdog-set-action': defineCommand({
      args: { action: { type: 'enum', values: WATCHDOG_ACTIONS } },
      handler: (args) => machine.setActions({ watchdog: args.action }),
    }),
    'query-name': defineCommand({
      args: {},
      handler: () => (machine.name === undefined ? {} : { name: machine.name }),
    }),
    'query-uuid': defineCommand({ args: {}, handler: () => ({ UUID: machine.uuid }) }),
    'query-kvm': defineCommand({
      args: {},
      handler: () => ({ enabled: machine.kvm.enabled, present: machine.kvm.present }),
    }),
    'x-query-accel': defineCommand({ args: {}, handler: () => machine.accel() }),
    'query-cpus-fast': defineCommand({ args: {}, handler: () => machine.cpus().map(cpuInfo) }),
    'human-monitor-command': defineCommand({
      args: { 'command-line': { type: 'str' }, 'cpu-index': { type: 'int', optional: true } },
      handler: (args) => {
        const cpus = machine.cpus();
        let cpuIndex = cpus[0]?.['cpu-index'] ?? 0;
        const wanted = args['cpu-index'];
        if (wanted !== undefined) {
          if (!cpus.some((c) => BigInt(c['cpu-index']) === BigInt(wanted))) {
            throw genericError("Parameter 'cpu-index' expects a CPU number");
          }
          cpuIndex = Number(wanted);
        }
        return runHmp(args['command-line'], { machine, version, cpuIndex });
      },
    }),
  };
}
