/**
 * The few human-monitor (HMP) commands nodevisor answers through human-monitor-command, with
 * QEMU 7.2's output text. Lines end in "\r\n", as QEMU's monitor writes them. Commands QEMU has
 * but nodevisor does not are reported as unknown, in QEMU's words for an unknown command.
 */
import { WATCHDOG_ACTIONS, type WatchdogAction } from '../runstate/actions.js';
import type { QmpVersion } from './commands-core.js';
import { QmpError } from './errors.js';
import { contChecked, wakeupChecked } from './machine-ops.js';
import type { QmpMachine } from './qmp-machine.js';

export interface HmpContext {
  machine: QmpMachine;
  version: QmpVersion;
  /** The monitor's current CPU (cpu-index, else the first vCPU). */
  cpuIndex: number;
}

interface HmpCommand {
  /** QEMU's name field: the name and its aliases joined by '|'. */
  name: string;
  /** One optional/mandatory word argument, as `watchdog_action action:s`. */
  arg?: 'word';
  help?: string;
  run(ctx: HmpContext, arg: string | undefined): Promise<string> | string;
}

const INFO_COMMANDS: readonly HmpCommand[] = [
  {
    name: 'cpus',
    help: 'show infos for each CPU',
    run: ({ machine, cpuIndex }) =>
      machine
        .cpus()
        .map((c) => `${c['cpu-index'] === cpuIndex ? '*' : ' '} CPU #${c['cpu-index']}: thread_id=${c['thread-id']}\n`)
        .join(''),
  },
  {
    name: 'kvm',
    help: 'show KVM information',
    run: ({ machine: { kvm } }) => `kvm support: ${!kvm.present ? 'not compiled' : kvm.enabled ? 'enabled' : 'disabled'}\n`,
  },
  { name: 'name', help: 'show the current VM name', run: ({ machine }) => (machine.name === undefined ? '' : `${machine.name}\n`) },
  {
    name: 'status',
    help: 'show the current VM status (running|paused)',
    run: ({ machine }) => {
      const s = machine.status();
      let text = `VM status: ${s.running ? 'running' : 'paused'}${s.singlestep ? ' (single step mode)' : ''}`;
      if (!s.running && s.status !== 'paused') text += ` (${s.status})`;
      return `${text}\n`;
    },
  },
  { name: 'uuid', help: 'show the current VM UUID', run: ({ machine }) => `${machine.uuid}\n` },
  {
    name: 'version',
    help: 'show the version of QEMU',
    run: ({ version: { qemu, package: pkg } }) => `${qemu.major}.${qemu.minor}.${qemu.micro}${pkg}\n`,
  },
];

const COMMANDS: readonly HmpCommand[] = [
  { name: 'stop|s', run: async ({ machine }) => (await machine.stop(), '') },
  { name: 'cont|c', run: async ({ machine }) => (await contChecked(machine), '') },
  { name: 'system_reset', run: async ({ machine }) => (await machine.systemReset(), '') },
  { name: 'system_powerdown', run: async ({ machine }) => (await machine.systemPowerdown(), '') },
  { name: 'system_wakeup', run: async ({ machine }) => (await wakeupChecked(machine), '') },
  { name: 'nmi', run: async ({ machine }) => (await machine.injectNmi(), '') },
  { name: 'quit|q', run: async ({ machine }) => (await machine.quit(), '') },
  {
    name: 'watchdog_action',
    arg: 'word',
    run: ({ machine }, action) => {
      if (!(WATCHDOG_ACTIONS as readonly string[]).includes(action ?? '')) {
        return `Error: invalid parameter value: ${action ?? ''}\n`;
      }
      machine.setActions({ watchdog: action as WatchdogAction });
      return '';
    },
  },
];

const isSpace = (c: string | undefined): boolean => c !== undefined && ' \t\n\v\f\r'.includes(c);

/** QEMU's get_command_name(): skips blanks, then reads up to a blank or '/'. */
function readName(line: string, from: number): { name: string; end: number } | undefined {
  let p = from;
  while (isSpace(line[p])) p++;
  if (p >= line.length) return undefined;
  const start = p;
  while (p < line.length && line[p] !== '/' && !isSpace(line[p])) p++;
  return { name: line.slice(start, p), end: p };
}

const matches = (cmd: HmpCommand, name: string): boolean => cmd.name.split('|').includes(name);

/** Runs one HMP command line; returns what QEMU's monitor would print. */
export async function runHmp(line: string, ctx: HmpContext): Promise<string> {
  const first = readName(line, 0);
  if (first === undefined) return '';
  let cmd: HmpCommand | undefined;
  let end = first.end;
  if (first.name === 'info') {
    const sub = readName(line, first.end);
    if (sub === undefined) return crlf(INFO_COMMANDS.map((c) => `info ${c.name}  -- ${c.help ?? ''}\n`).join(''));
    cmd = INFO_COMMANDS.find((c) => matches(c, sub.name));
    end = sub.end;
  } else {
    cmd = COMMANDS.find((c) => matches(c, first.name));
  }
  if (cmd === undefined) return crlf(`unknown command: '${line.slice(0, end)}'\n`);
  const typed = line.slice(0, end).trim();
  let p = end;
  let arg: string | undefined;
  if (cmd.arg === 'word') {
    const word = readName(line, p);
    if (word === undefined) return crlf(`${cmd.name}: string expected\nTry "help ${typed}" for more information\n`);
    arg = word.name;
    p = word.end;
  }
  while (isSpace(line[p])) p++;
  if (p < line.length) {
    return crlf(`${cmd.name}: extraneous characters at the end of line\nTry "help ${typed}" for more information\n`);
  }
  try {
    return crlf(await cmd.run(ctx, arg));
  } catch (e) {
    // HMP prints QMP errors as "Error: <desc>"; anything else propagates to the QMP layer.
    if (e instanceof QmpError) return crlf(`Error: ${e.desc}\n`);
    throw e;
  }
}

function crlf(text: string): string {
  return text.replace(/\n/g, '\r\n');
}
