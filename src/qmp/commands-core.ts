/**
 * The protocol-level commands that need no VM — qmp_capabilities, query-version,
 * query-commands — and the version nodevisor reports.
 */
import { packageVersion } from '../version.js';
import { defineCommand, type CommandTable } from './dispatcher.js';
import { QmpError } from './errors.js';
import { QMP_CAPABILITIES } from './session.js';

export interface QmpVersion {
  qemu: { major: number; minor: number; micro: number };
  /** Free text; QEMU on Debian puts the package version here ("Debian 1:7.2+dfsg-7+deb12u…"). */
  package: string;
}

/**
 * nodevisor reports the QEMU release it is compatible with, so that clients that check the
 * version (libvirt, scripts) treat it as QEMU 7.2, and names itself in `package`.
 */
export function nodevisorQmpVersion(): QmpVersion {
  return { qemu: { major: 7, minor: 2, micro: 0 }, package: `nodevisor ${packageVersion()}` };
}

/**
 * Every command nodevisor implements, in the relative order QEMU 7.2's query-commands lists
 * them (QEMU lists newest registration first).
 */
export const NODEVISOR_QMP_COMMANDS = [
  'human-monitor-command',
  'cont',
  'stop',
  'query-name',
  'query-kvm',
  'inject-nmi',
  'system_wakeup',
  'system_powerdown',
  'system_reset',
  'query-uuid',
  'query-cpus-fast',
  'quit',
  'query-commands',
  'query-version',
  'qmp_capabilities',
  'set-action',
  'watchdog-set-action',
  'query-status',
] as const;

export type NodevisorQmpCommand = (typeof NODEVISOR_QMP_COMMANDS)[number];

/** Names in QEMU's listing order; names QEMU does not know come last, in table order. */
function listingOrder(names: readonly string[]): string[] {
  const rank = (n: string): number => {
    const i = (NODEVISOR_QMP_COMMANDS as readonly string[]).indexOf(n);
    return i === -1 ? NODEVISOR_QMP_COMMANDS.length : i;
  };
  return names.map((n, i) => ({ n, i })).sort((a, b) => rank(a.n) - rank(b.n) || a.i - b.i).map((e) => e.n);
}

export function coreCommands(version: QmpVersion): CommandTable {
  return {
    qmp_capabilities: defineCommand({
      args: { enable: { type: 'array', items: { type: 'enum', values: QMP_CAPABILITIES }, optional: true } },
      allowedBeforeNegotiation: true,
      handler(args, { session }) {
        if (session.negotiated) {
          throw new QmpError('CommandNotFound', 'Capabilities negotiation is already complete, command ignored');
        }
        const enable = args.enable ?? [];
        for (const cap of enable) {
          if (!session.offered.includes(cap)) throw new QmpError('GenericError', `Capability '${cap}' not available`);
        }
        session.oob = enable.includes('oob');
        session.negotiated = true;
      },
    }),
    'query-version': defineCommand({
      args: {},
      handler: () => versionInfo(version),
    }),
    'query-commands': defineCommand({
      args: {},
      handler: (_args, { commandNames }) => listingOrder(commandNames).map((name) => ({ name })),
    }),
  };
}

/** A fresh VersionInfo, members added in QEMU's order (it decides the printed order). */
export function versionInfo(version: QmpVersion): QmpVersion {
  return {
    qemu: { major: version.qemu.major, minor: version.qemu.minor, micro: version.qemu.micro },
    package: version.package,
  };
}
