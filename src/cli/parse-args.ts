/**
 * qemu-system-x86_64 7.2's command line → a MachineConfig. Pure: reads no files.
 *
 * Like QEMU, it works in two passes: first every option is looked up and given its argument
 * (an unknown option or a missing argument fails before anything else), then the options act
 * in order (`-version` and `-h` stop there), and what QEMU checks while building the machine
 * is checked last, in QEMU's order (secrets, chardevs, -smp, -m, the accelerator, introspection
 * objects, monitors, the serial port, the CPU, then each -device). Errors are OptionErrors whose
 * message is what QEMU would print, with `nodevisor` for the program name; warnings are
 * returned as lines to print.
 */
import { OptionError } from '../errors.js';
import {
  DEFAULT_MEMORY_SIZE,
  type AccelConfig,
  type CpuConfig,
  type DeviceConfig,
  type MachineConfig,
  type SerialBackend,
} from '../machine/config.js';
import type { ListenSpec } from '../qmp/server.js';
import { DEFAULT_ACTIONS, parseActionOption, type ActionPolicy } from '../runstate/actions.js';
import { packageVersion } from '../version.js';
import { applyKernelIrqchipGlobal, defaultAccel, kvmAccelHelpText, setKvmAccelProperty } from './accel.js';
import { cpuHelpText, parseCpuOption } from './cpu.js';
import { createDevice, deviceHelp, parseDeviceOption, type PendingDevice } from './device.js';
import {
  accelHelpText,
  displayHelpText,
  helpText,
  machineHelpText,
  PROGRAM_NAME,
  versionText,
} from './help.js';
import { createIntrospection, createSecret, type CreatedIntrospection, type CreatedSecret } from './introspection.js';
import { parseObjectOption, type PendingObject } from './object.js';
import { OptsSyntaxError } from './opts-error.js';
import {
  attachMonitors,
  chardevInfo,
  createChardev,
  LocatedError,
  parseChardevOption,
  parseMonOption,
  parseQmpOption,
  type ChardevInfo,
  type CreatedChardev,
  type PendingChardev,
  type PendingMonitor,
} from './monitor.js';
import { isHelpOption, parseBool, parseKeyval, parseQemuOpts, type OptsDesc, type ParsedOpts } from './qemu-opts.js';
import { qemuOptionArity } from './qemu-options.js';
import type { SecretFile } from './secret.js';
import { parseSerialOption } from './serial.js';
import { memorySizeFromOption, parseSizeValue } from './size.js';
import { resolveSmp, smpHelpText, type SmpTopology } from './smp.js';

/** What the command asks for beyond the machine itself. */
export interface RunOptions {
  /** `-nographic`. */
  nographic: boolean;
  /** `-display`; nodevisor has no other display than none. */
  display: 'none';
  /**
   * Where the `-accel kvm,...` in use was given (absent for `-machine accel=kvm` or the
   * default): QEMU places errors from KVM's initialisation there, e.g. a dirty ring bigger
   * than the host allows.
   */
  accelLoc?: string;
  /** `-machine`: the type (always `pc`) and its other properties but accel and kernel-irqchip, unvalidated. */
  machine: { type: string; props: Record<string, string> };
  /** `-smp` as resolved; `config.cpus` is `topology.cpus`. */
  topology: SmpTopology;
  /** COM1 on stdio is multiplexed (ctrl-a escapes, ctrl-c to the guest): `-nographic` or `mon:`. */
  serialMux: boolean;
  /** The `-serial` argument as given, to place an error opening it; absent when defaulted. */
  serialArg?: string;
  /** `-name` properties other than the guest name (`process`, `debug-threads`). */
  name: Record<string, string>;
  /** Whole lines (`nodevisor: ...warning: ...`) to print on stderr before starting. */
  warnings: string[];
  /** `-S`: start in `prelaunch`, the vCPUs stopped until `cont`. */
  startPaused: boolean;
  /** `-no-shutdown` was given (its effect is already in `actions.shutdown`). */
  noShutdown: boolean;
  /**
   * `-action`, `-watchdog-action`, `-no-reboot` and `-no-shutdown` merged as QEMU 7.2 merges
   * them: one list of settings in command-line order, the last value of each key winning.
   */
  actions: ActionPolicy;
  /** Where QMP listens: `-qmp DEV` and `-mon chardev=ID,mode=control`, in QEMU's order. */
  qmp: ListenSpec[];
  /** Every `-chardev`, used by a monitor or not, in command-line order. */
  chardevs: ChardevInfo[];
  /** `-uuid`, in lower case as QEMU reports it (also in `config.uuid`). */
  uuid?: string;
  /**
   * Every `-object secret,file=`, in order, for main.ts to read before it makes the machine
   * (loadSecretFiles): QEMU fails on an unreadable one even when nothing uses it.
   */
  secretFiles: SecretFile[];
  /** The id of the file secret whose bytes become `config.introspection.key`. */
  introspectionKeyFile?: string;
}

export type ParsedCommand =
  | { kind: 'run'; config: MachineConfig; options: RunOptions }
  /**
   * `exitStatus` is 1 where QEMU exits 1 after a help text (`-m 1G,help`, `-name x,help`).
   * `stream` is stderr where QEMU's "help" is an error line it still exits 0 after
   * (`-device foo,help`).
   */
  | { kind: 'help'; text: string; exitStatus: 0 | 1; stream?: 'stderr' }
  | { kind: 'version'; text: string }
  | { kind: 'accel-help'; text: string }
  /** `-accel kvm,help`: the property list; main.ts adds the host's capabilities after it. */
  | { kind: 'accel-props-help'; text: string };

const ACTION_DESC: OptsDesc = { reboot: 'string', shutdown: 'string', panic: 'string', watchdog: 'string' };
const UUID_PATTERN = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const MEMORY_DESC: OptsDesc = { size: 'size', slots: 'number', maxmem: 'size' };
const NAME_DESC: OptsDesc = { guest: 'string', process: 'string', 'debug-threads': 'bool' };
const DISPLAY_BOOLS = ['full-screen', 'window-close', 'show-cursor'];
const GL_MODES = ['off', 'on', 'core', 'es'];

/** Help for a QemuOpts list, in QEMU's layout. */
function optsHelp(group: string, desc: OptsDesc): string {
  const shown: Record<string, string> = { size: '<size>', number: '<num>', bool: '<bool (on/off)>', string: '<str>' };
  const lines = Object.keys(desc)
    .sort()
    .map((k) => `  ${k}=${shown[desc[k] ?? 'string'] ?? '<str>'}\n`);
  return `${group} options:\n${lines.join('')}`;
}

function errorLine(loc: string | undefined, message: string): string {
  return loc === undefined ? `${PROGRAM_NAME}: ${message}` : `${PROGRAM_NAME}: ${loc}: ${message}`;
}

/** Runs `fn`, giving an OptsSyntaxError QEMU's `prog: loc: ` prefix on each of its lines. */
function at<T>(loc: string | undefined, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (!(e instanceof OptsSyntaxError)) throw e;
    throw new OptionError([e.message, ...e.more].map((m) => errorLine(loc, m)).join('\n'));
  }
}

function fail(loc: string | undefined, message: string): never {
  throw new OptionError(errorLine(loc, message));
}

/** `warning: ...` texts from a parser → printable lines at `loc`. */
function warnLines(loc: string | undefined, texts: readonly string[]): string[] {
  return texts.map((t) => errorLine(loc, t.startsWith('warning: ') ? t : `warning: ${t}`));
}

/** parseQemuOpts at `loc`, its warnings kept even when it fails. */
function qemuOpts(c: Collected, loc: string, arg: string, implied: string | undefined, desc?: OptsDesc): ParsedOpts {
  const warnings: string[] = [];
  try {
    return at(loc, () => parseQemuOpts(arg, implied, desc, warnings));
  } finally {
    c.warnings.push(...warnLines(loc, warnings));
  }
}

/** Runs a parser at `loc`, keeping its warnings even when it fails (as qemuOpts does). */
function withWarnings<T>(c: Collected, loc: string, fn: (warnings: string[]) => T): T {
  const warnings: string[] = [];
  try {
    return at(loc, () => fn(warnings));
  } finally {
    c.warnings.push(...warnLines(loc, warnings));
  }
}

type Item = { kind: 'option'; name: string; arg: string | undefined; loc: string } | { kind: 'image'; text: string };

/** Pass one: split argv into options with their arguments, as QEMU's lookup_opt does. */
function tokenize(argv: readonly string[]): Item[] {
  const items: Item[] = [];
  for (let i = 0; i < argv.length; i++) {
    const text = argv[i] ?? '';
    if (!text.startsWith('-')) {
      items.push({ kind: 'image', text });
      continue;
    }
    // `--opt` is the same as `-opt`; `-opt=value` is not a form QEMU knows.
    const name = text.startsWith('--') ? text.slice(2) : text.slice(1);
    const arity = qemuOptionArity(name);
    if (arity === undefined) fail(text, 'invalid option');
    if (arity === 'flag') {
      items.push({ kind: 'option', name, arg: undefined, loc: text });
      continue;
    }
    const arg = argv[i + 1];
    if (arg === undefined) fail(text, 'requires an argument');
    i++;
    items.push({ kind: 'option', name, arg, loc: `${text} ${arg}` });
  }
  return items;
}

interface Collected {
  memory: Map<string, string>;
  smp: Map<string, string>;
  machine: Map<string, string>;
  accels: Array<{ values: Map<string, string>; loc: string }>;
  cpu: { text: string; loc: string } | undefined;
  kernel: string | undefined;
  initrd: string | undefined;
  append: string | undefined;
  name: Map<string, string>;
  nographic: boolean;
  displayGl: string | undefined;
  serials: Array<{ text: string; loc: string }>;
  noReboot: boolean;
  noShutdown: boolean;
  startPaused: boolean;
  /** The `action` settings merged in order; `loc` is the option that first made the list. */
  actions: { values: Map<string, string>; loc: string | undefined };
  uuid: string | undefined;
  /** `-chardev`s and `-qmp`'s own chardevs, in order; ids known so far. */
  chardevs: PendingChardev[];
  chardevIds: Set<string>;
  monitors: PendingMonitor[];
  /** `-device`s in order, and their ids. */
  devices: PendingDevice[];
  deviceIds: Set<string>;
  /** `-object`s in order, and their ids. */
  objects: PendingObject[];
  objectIds: Set<string>;
  /** QEMU's monitor_device_index, which names `-qmp`'s chardevs compat_monitorN. */
  qmpCount: number;
  warnings: string[];
}

export function parseArgs(argv: readonly string[]): ParsedCommand {
  const items = tokenize(argv);
  const warnings: string[] = [];
  try {
    return interpret(items, warnings);
  } catch (e) {
    // QEMU has printed its warnings by the time it fails: keep them, in order, before the error.
    if (!(e instanceof OptionError) || warnings.length === 0) throw e;
    throw new OptionError([...warnings, e.message].join('\n'));
  }
}

function interpret(items: readonly Item[], warnings: string[]): ParsedCommand {
  const c: Collected = {
    memory: new Map(),
    smp: new Map(),
    machine: new Map(),
    accels: [],
    cpu: undefined,
    kernel: undefined,
    initrd: undefined,
    append: undefined,
    name: new Map(),
    nographic: false,
    displayGl: undefined,
    serials: [],
    noReboot: false,
    noShutdown: false,
    startPaused: false,
    actions: { values: new Map(), loc: undefined },
    uuid: undefined,
    chardevs: [],
    chardevIds: new Set(),
    monitors: [],
    devices: [],
    deviceIds: new Set(),
    objects: [],
    objectIds: new Set(),
    qmpCount: 0,
    warnings,
  };

  // Pass two: each option in order.
  for (const item of items) {
    if (item.kind === 'image') fail(item.text, 'disk images are not supported (nodevisor boots -kernel directly)');
    const { name, loc } = item;
    const arg = item.arg ?? '';
    switch (name) {
      case 'h':
      case 'help':
        return { kind: 'help', text: helpText(packageVersion()), exitStatus: 0 };
      case 'version':
        return { kind: 'version', text: versionText(packageVersion()) };
      case 'm': {
        const r = qemuOpts(c, loc, arg, 'size', MEMORY_DESC);
        if (r.help) return { kind: 'help', text: optsHelp('memory', MEMORY_DESC), exitStatus: 1 };
        for (const [k, v] of r.values) {
          c.memory.delete(k);
          c.memory.set(k, v);
        }
        break;
      }
      case 'smp':
        if (at(loc, () => parseKeyval(arg, 'cpus', c.smp)).help) {
          return { kind: 'help', text: smpHelpText(), exitStatus: 0 };
        }
        break;
      case 'M':
      case 'machine': {
        const { help } = at(loc, () => parseKeyval(arg, 'type', c.machine));
        if (help || isHelpOption(c.machine.get('type') ?? '')) {
          return { kind: 'help', text: machineHelpText(), exitStatus: 0 };
        }
        break;
      }
      case 'enable-kvm':
        c.machine.delete('accel');
        c.machine.set('accel', 'kvm');
        break;
      case 'accel': {
        const r = qemuOpts(c, loc, arg, 'accel');
        const accel = r.values.get('accel');
        if (accel === undefined || isHelpOption(accel)) return { kind: 'accel-help', text: accelHelpText() };
        if (accel === 'kvm' && (r.values.has('help') || r.values.has('?'))) {
          return { kind: 'accel-props-help', text: kvmAccelHelpText() };
        }
        c.accels.push({ values: r.values, loc });
        break;
      }
      case 'cpu':
        c.cpu = { text: arg, loc };
        break;
      case 'kernel':
        c.kernel = arg;
        break;
      case 'initrd':
        c.initrd = arg;
        break;
      case 'append':
        c.append = arg;
        break;
      case 'name': {
        const r = qemuOpts(c, loc, arg, 'guest', NAME_DESC);
        if (r.help) return { kind: 'help', text: optsHelp('name', NAME_DESC), exitStatus: 1 };
        for (const [k, v] of r.values) {
          c.name.delete(k);
          c.name.set(k, v);
        }
        break;
      }
      case 'nographic':
        c.nographic = true;
        break;
      case 'display': {
        const r = at(loc, () => parseKeyval(arg, 'type'));
        if (r.help) return { kind: 'help', text: displayHelpText(), exitStatus: 0 };
        c.displayGl = at(loc, () => checkDisplay(r.values));
        break;
      }
      case 'serial':
        c.serials.push({ text: arg, loc });
        break;
      case 'no-reboot':
        c.noReboot = true;
        setAction(c, loc, 'reboot', 'shutdown');
        break;
      case 'no-shutdown':
        c.noShutdown = true;
        setAction(c, loc, 'shutdown', 'pause');
        break;
      case 'watchdog-action':
        setAction(c, loc, 'watchdog', arg);
        break;
      case 'action': {
        const r = qemuOpts(c, loc, arg, undefined, ACTION_DESC);
        if (r.help) return { kind: 'help', text: optsHelp('action', ACTION_DESC), exitStatus: 1 };
        c.actions.loc ??= loc;
        for (const [k, v] of r.values) setAction(c, loc, k, v);
        break;
      }
      case 'S':
        c.startPaused = true;
        break;
      case 'uuid':
        if (!UUID_PATTERN.test(arg)) fail(loc, 'failed to parse UUID string: wrong format');
        c.uuid = arg.toLowerCase();
        break;
      case 'chardev': {
        const r = withWarnings(c, loc, (warnings) => parseChardevOption(arg, loc, warnings));
        if (r.kind === 'help') return r;
        addChardev(c, r.chardev);
        break;
      }
      case 'mon': {
        c.monitors.push(withWarnings(c, loc, (warnings) => parseMonOption(arg, loc, warnings)));
        break;
      }
      case 'device': {
        const d = withWarnings(c, loc, (warnings) => parseDeviceOption(arg, loc, c.deviceIds, warnings));
        if (d.id !== undefined) c.deviceIds.add(d.id);
        c.devices.push(d);
        break;
      }
      case 'object': {
        const r = withWarnings(c, loc, (warnings) => parseObjectOption(arg, loc, c.objectIds, warnings));
        if (r.kind === 'help') return { kind: 'help', text: r.text, exitStatus: 0 };
        c.objectIds.add(r.object.id);
        c.objects.push(r.object);
        break;
      }
      case 'qmp': {
        const r = at(loc, () => parseQmpOption(arg, loc, `compat_monitor${c.qmpCount}`));
        c.qmpCount++;
        if (r.chardev !== undefined) addChardev(c, r.chardev);
        c.monitors.push(r.monitor);
        break;
      }
      default:
        fail(item.arg === undefined ? item.loc : `-${name}`, 'option not supported by nodevisor');
    }
  }
  return finish(c);
}

/** One `action` setting, merged over the earlier ones as QEMU's single `action` list does. */
function setAction(c: Collected, loc: string, key: string, value: string): void {
  c.actions.loc ??= loc;
  c.actions.values.delete(key);
  c.actions.values.set(key, value);
}

function addChardev(c: Collected, chardev: PendingChardev): void {
  if (chardev.id !== undefined) {
    if (c.chardevIds.has(chardev.id)) fail(chardev.loc, `Duplicate ID '${chardev.id}' for chardev`);
    c.chardevIds.add(chardev.id);
  }
  c.chardevs.push(chardev);
}

/**
 * The merged `action` settings → a policy. QEMU checks the values only now, after all options,
 * and reports a bad one at the option that started the list (even `-no-reboot`).
 */
function resolveActions(c: Collected): ActionPolicy {
  if (c.actions.loc === undefined) return { ...DEFAULT_ACTIONS };
  const text = [...c.actions.values].map(([k, v]) => `${k}=${v.replaceAll(',', ',,')}`).join(',');
  try {
    return parseActionOption(text, DEFAULT_ACTIONS).policy;
  } catch (e) {
    if (e instanceof OptionError) fail(c.actions.loc, e.message);
    throw e;
  }
}

/** Creates the chardevs in order; `stdio` tells whether one of them (`-qmp stdio`) took stdio. */
function createChardevs(c: Collected): { created: CreatedChardev[]; stdio: boolean } {
  const created: CreatedChardev[] = [];
  let stdio = false;
  for (const p of c.chardevs) {
    const made = at(p.loc, () => createChardev(p));
    if (made.kind === 'stdio') {
      if (stdio) fail(p.loc, 'cannot use stdio by multiple character devices');
      stdio = true;
    }
    created.push(made);
  }
  return { created, stdio };
}

/** Attaches the monitors to their chardevs (`taken` already used): QMP's listeners. */
function attachQmp(c: Collected, created: readonly CreatedChardev[], taken: ReadonlySet<string>): ListenSpec[] {
  try {
    return attachMonitors(c.monitors, created, taken);
  } catch (e) {
    if (e instanceof LocatedError) fail(e.loc, e.message);
    throw e;
  }
}

/** `-display`: only `none`, with QAPI's common display members. Returns the `gl` mode. */
function checkDisplay(values: ReadonlyMap<string, string>): string | undefined {
  const type = values.get('type');
  if (type === undefined) throw new OptsSyntaxError("Parameter 'type' is missing");
  if (type !== 'none') throw new OptsSyntaxError(`Parameter 'type' does not accept value '${type}'`);
  for (const [k, v] of values) {
    if (k === 'type') continue;
    if (DISPLAY_BOOLS.includes(k)) parseBool(k, v);
    else if (k === 'gl') {
      if (!GL_MODES.includes(v)) throw new OptsSyntaxError(`Parameter 'gl' does not accept value '${v}'`);
    } else throw new OptsSyntaxError(`Parameter '${k}' is unexpected`);
  }
  return values.get('gl');
}

/** What QEMU checks after the options, in its order. */
function finish(c: Collected): ParsedCommand {
  const cpuText = c.cpu?.text;
  if (cpuText !== undefined && isHelpOption(cpuText)) return { kind: 'help', text: cpuHelpText(), exitStatus: 0 };
  const deviceHelpCommand = findDeviceHelp(c);
  if (deviceHelpCommand !== undefined) return deviceHelpCommand;

  if (c.kernel === undefined) {
    if (c.append !== undefined) fail(undefined, '-append only allowed with -kernel option');
    if (c.initrd !== undefined) fail(undefined, '-initrd only allowed with -kernel option');
  }

  const actions = resolveActions(c);

  const type = c.machine.get('type') ?? 'pc';
  if (type !== 'pc') fail(undefined, 'unsupported machine type\nUse -machine help to list supported machines');

  // QEMU's early backends: the display, the secrets (early objects), then every chardev
  // (before -smp and -m are checked).
  if (c.displayGl !== undefined && c.displayGl !== 'off') fail(undefined, 'OpenGL is not supported by the display');
  const secrets = createSecrets(c);
  const chardevs = createChardevs(c);

  const smp = at(undefined, () => resolveSmp(c.smp));
  c.warnings.push(...warnLines(undefined, smp.warnings));

  const memorySize = resolveMemory(c);

  const { accel, loc: accelLoc } = resolveAccel(c);

  // QEMU's late objects, then the monitors: a chardev introspection uses is taken for them.
  const taken = new Set<string>();
  const introspection = createIntrospections(c, chardevs.created, secrets, taken, accel.introspection);

  const qmp = attachQmp(c, chardevs.created, taken);

  const serial = resolveSerial(c, chardevs.stdio);

  let cpu: CpuConfig = { model: 'host', features: [] };
  if (c.cpu !== undefined) {
    const r = at(undefined, () => parseCpuOption(cpuText ?? ''));
    if (r.kind === 'cpu') {
      cpu = r.cpu;
      c.warnings.push(...warnLines(undefined, r.warnings));
    }
  }

  const devices: DeviceConfig[] = [];
  for (const d of c.devices) devices.push(at(d.loc, () => createDevice(d, devices)));

  if (c.kernel === undefined) {
    fail(undefined, 'no kernel given: -kernel IMAGE is required (nodevisor has no firmware to boot a disk)');
  }

  const guestName = c.name.get('guest');
  const config: MachineConfig = {
    memorySize,
    cpus: smp.topology.cpus,
    cpu,
    kernel: c.kernel,
    append: c.append ?? '',
    serial: serial.backend,
    // What the policy makes of a reset: `-no-reboot`, or its `-action reboot=shutdown` spelling.
    noReboot: actions.reboot === 'shutdown',
    accel,
    devices,
  };
  if (c.initrd !== undefined) config.initrd = c.initrd;
  if (guestName !== undefined) config.name = guestName;
  if (c.uuid !== undefined) config.uuid = c.uuid;
  if (introspection !== undefined) config.introspection = introspection.config;

  const machineProps = new Map(c.machine);
  machineProps.delete('type');
  machineProps.delete('accel');
  machineProps.delete('kernel-irqchip');
  const nameProps = new Map(c.name);
  nameProps.delete('guest');
  const options: RunOptions = {
    nographic: c.nographic,
    display: 'none',
    machine: { type, props: Object.fromEntries(machineProps) },
    topology: smp.topology,
    serialMux: serial.mux,
    name: Object.fromEntries(nameProps),
    warnings: c.warnings,
    startPaused: c.startPaused,
    noShutdown: c.noShutdown,
    actions,
    qmp,
    chardevs: chardevs.created.filter((m) => !m.pending.compat).map(chardevInfo),
    secretFiles: [...secrets.values()].flatMap((s) => ('file' in s ? [s.file] : [])),
  };
  if (accelLoc !== undefined) options.accelLoc = accelLoc;
  if (introspection?.keyFile !== undefined) options.introspectionKeyFile = introspection.keyFile;
  if (c.uuid !== undefined) options.uuid = c.uuid;
  if (serial.arg !== undefined) options.serialArg = serial.arg;
  return { kind: 'run', config, options };
}

/** `-m` merged over all its uses → bytes. `maxmem`/`slots` are checked as QEMU does, then unused. */
function resolveMemory(c: Collected): number {
  const sizeText = c.memory.get('size');
  let bytes = BigInt(DEFAULT_MEMORY_SIZE);
  if (sizeText !== undefined) {
    const r = at(undefined, () => memorySizeFromOption(sizeText));
    if (r.warning !== undefined) c.warnings.push(...warnLines(undefined, [r.warning]));
    if (r.bytes !== undefined) bytes = r.bytes;
  }
  const maxText = c.memory.get('maxmem');
  if (maxText !== undefined) {
    const max = at(undefined, () => parseSizeValue('maxmem', maxText));
    if (max < bytes) {
      fail(
        undefined,
        `invalid value of maxmem: maximum memory size (0x${max.toString(16)}) must be at least ` +
          `the initial memory size (0x${bytes.toString(16)})`,
      );
    }
  } else if (c.memory.has('slots')) {
    fail(undefined, 'slots specified but no max-size');
  }
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) fail(undefined, 'ram size too large');
  return Number(bytes);
}

/**
 * The accelerators asked for, tried in order as QEMU does; only kvm exists here, so another name
 * is reported and the next one tried. With none asked for, kvm (nodevisor is a QEMU without
 * TCG). The kvm accelerator gets `-machine kernel-irqchip=` first, as a global property, then
 * its own properties in order; a bad one ends the run (QEMU does not fall back on it).
 */
function resolveAccel(c: Collected): { accel: AccelConfig; loc?: string } {
  const machineAccel = c.machine.get('accel');
  if (machineAccel !== undefined && c.accels.length > 0) {
    fail(undefined, 'The -accel and "-machine accel=" options are incompatible');
  }
  const candidates =
    machineAccel !== undefined
      ? machineAccel.split(':').map((name) => ({ name, values: new Map<string, string>(), loc: undefined }))
      : c.accels.map((a) => ({ name: a.values.get('accel') ?? '', values: a.values, loc: a.loc as string | undefined }));
  if (candidates.length === 0) candidates.push({ name: 'kvm', values: new Map(), loc: undefined });
  const typeOf = (id: string): string | undefined => c.objects.find((o) => o.id === id)?.type;
  const failures: string[] = [];
  for (const cand of candidates) {
    if (cand.name !== 'kvm') {
      failures.push(errorLine(cand.loc, `invalid accelerator ${cand.name}`));
      continue;
    }
    const accel = defaultAccel();
    try {
      at(cand.loc, () => {
        const irqchip = c.machine.get('kernel-irqchip');
        if (irqchip !== undefined) applyKernelIrqchipGlobal(accel, irqchip);
        for (const [k, v] of cand.values) if (k !== 'accel') setKvmAccelProperty(accel, k, v, typeOf);
      });
    } catch (e) {
      // The accelerators that failed before are reported first, as QEMU has printed them.
      if (e instanceof OptionError && failures.length > 0) throw new OptionError([...failures, e.message].join('\n'));
      throw e;
    }
    if (failures.length > 0) c.warnings.push(...failures, errorLine(undefined, 'falling back to KVM'));
    return cand.loc === undefined ? { accel } : { accel, loc: cand.loc };
  }
  throw new OptionError(failures.join('\n'));
}

/** `-device help` or `-device DRIVER,help`: the first `-device` that asks, after `-cpu help`. */
function findDeviceHelp(c: Collected): ParsedCommand | undefined {
  for (const d of c.devices) {
    const h = at(d.loc, () => deviceHelp(d));
    if (h === undefined) continue;
    if (h.kind === 'text') return { kind: 'help', text: h.text, exitStatus: 0 };
    return { kind: 'help', text: `${errorLine(d.loc, h.message)}\n`, exitStatus: 0, stream: 'stderr' };
  }
  return undefined;
}

/** The `-object secret`s, created with QEMU's early objects (before the chardevs). */
function createSecrets(c: Collected): Map<string, CreatedSecret> {
  const secrets = new Map<string, CreatedSecret>();
  for (const o of c.objects) {
    // QEMU reports an object's creation errors without a location.
    if (o.type === 'secret') secrets.set(o.id, at(undefined, () => createSecret(o)));
  }
  return secrets;
}

/**
 * The `-object introspection`s, created with QEMU's late objects; returns the one the
 * accelerator names (`-accel kvm,introspection=ID`), if any.
 */
function createIntrospections(
  c: Collected,
  created: readonly CreatedChardev[],
  secrets: ReadonlyMap<string, CreatedSecret>,
  taken: Set<string>,
  wanted: string | undefined,
): CreatedIntrospection | undefined {
  const byId = new Map(created.map((ch) => [ch.pending.id ?? '', ch]));
  let chosen: CreatedIntrospection | undefined;
  for (const o of c.objects) {
    if (o.type !== 'introspection') continue;
    const made = at(o.loc, () => createIntrospection(o, byId, secrets, c.objectIds, taken));
    if (o.id === wanted) chosen = made;
  }
  return chosen;
}

/**
 * `-serial`: COM1 only. Without it, stdio; multiplexed under -nographic, as QEMU's mon:stdio.
 * When QMP has stdio (`-qmp stdio`), a serial port on stdio fails as in QEMU, except QEMU's
 * default `vc` (which nodevisor puts on stdio): with no display to show it, it goes nowhere.
 */
function resolveSerial(c: Collected, stdioTaken: boolean): { backend: SerialBackend; mux: boolean; arg?: string } {
  const [first, second] = c.serials;
  if (second !== undefined) fail(second.loc, 'only one serial port (COM1) is supported');
  const inUse = (loc: string | undefined, dev: string): never =>
    fail(loc, `cannot use stdio by multiple character devices\n${errorLine(loc, `could not connect serial device to character backend '${dev}'`)}`);
  if (first === undefined) {
    if (stdioTaken) {
      if (c.nographic) inUse(undefined, 'stdio');
      return { backend: { kind: 'null' }, mux: false };
    }
    return { backend: { kind: 'stdio' }, mux: c.nographic };
  }
  const r = at(first.loc, () => parseSerialOption(first.text));
  if (stdioTaken && r.backend.kind === 'stdio') {
    const text = r.mux ? first.text.slice(4) : first.text;
    if (text === 'vc' || text.startsWith('vc:')) return { backend: { kind: 'null' }, mux: false, arg: first.text };
    inUse(first.loc, first.text);
  }
  return { backend: r.backend, mux: r.mux, arg: first.text };
}
