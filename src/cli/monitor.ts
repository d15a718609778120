/**
 * `-chardev`, `-mon` and `-qmp`: where QMP listens. QEMU builds these in stages, and so does
 * this module: the option's text is checked as it is read (parseChardevOption, parseQmpOption,
 * parseMonOption), every chardev is then created in order (createChardev), then every monitor
 * is attached to its chardev (attachMonitors). nodevisor's only chardev backend here is a
 * listening socket, QEMU's `socket` (and `stdio` through `-qmp stdio`); its only monitor is QMP
 * (`mode=control`) on a socket that does not wait for its first client (`server=on,wait=off`).
 * A client socket (`server=off`) is for an `-object introspection`, which introspection.ts
 * resolves; one that nothing uses is accepted and left closed.
 *
 * Errors are OptsSyntaxErrors carrying QEMU's message; parse-args places them.
 */
import type { ListenSpec } from '../qmp/server.js';
import { OptsSyntaxError } from './opts-error.js';
import { checkId, firstId } from './qemu-id.js';
import { isHelpOption, parseBool, parseQemuOpts, type OptsDesc, type ParsedOpts } from './qemu-opts.js';

/** QEMU 7.2's `-chardev` keys and their types (`-chardev socket,help`), `id` aside. */
export const CHARDEV_DESC: OptsDesc = {
  abstract: 'bool',
  append: 'bool',
  backend: 'string',
  chardev: 'string',
  clipboard: 'bool',
  cols: 'number',
  debug: 'number',
  delay: 'bool',
  fd: 'string',
  height: 'number',
  host: 'string',
  ipv4: 'bool',
  ipv6: 'bool',
  localaddr: 'string',
  localport: 'string',
  logappend: 'bool',
  logfile: 'string',
  mouse: 'bool',
  mux: 'bool',
  name: 'string',
  nodelay: 'bool',
  path: 'string',
  port: 'string',
  reconnect: 'number',
  rows: 'number',
  server: 'bool',
  signal: 'bool',
  size: 'size',
  telnet: 'bool',
  tight: 'bool',
  'tls-authz': 'string',
  'tls-creds': 'string',
  tn3270: 'bool',
  to: 'number',
  wait: 'bool',
  websocket: 'bool',
  width: 'number',
};

/** The `-chardev` keys nodevisor implements (what `-chardev socket,help` lists). */
export const SOCKET_CHARDEV_DESC: OptsDesc = {
  backend: 'string',
  host: 'string',
  path: 'string',
  port: 'string',
  reconnect: 'number',
  server: 'bool',
  wait: 'bool',
};

/** QEMU 7.2's chardev backends (`-chardev help`). */
const QEMU_CHARDEV_BACKENDS = [
  'stdio', 'ringbuf', 'mux', 'pipe', 'qemu-vdagent', 'null', 'msmouse', 'socket', 'vc',
  'parallel', 'udp', 'memory', 'file', 'serial', 'wctablet', 'pty', 'testdev',
];

const MON_DESC: OptsDesc = { chardev: 'string', mode: 'string', pretty: 'bool', id: 'string' };

/** A `-chardev` as nodevisor keeps it (RunOptions.chardevs), for introspection. */
export interface ChardevInfo {
  id: string;
  backend: 'socket';
  path?: string;
  host?: string;
  port?: number;
  server: boolean;
  /** As QEMU reads it: only a server waits, and a server waits unless told `wait=off`. */
  wait: boolean;
  reconnect?: number;
}

/** A chardev as read from the command line, before it is created. */
export interface PendingChardev {
  /** `undefined` when none was given (an error once the chardev is created). */
  id: string | undefined;
  values: Map<string, string>;
  loc: string;
  /** Made by `-qmp DEV` (as QEMU's `compat_monitorN`), not by `-chardev`. */
  compat: boolean;
}

/** A chardev once created: its socket (or stdio) and whether `server`/`wait` were given. */
export interface CreatedChardev {
  pending: PendingChardev;
  kind: 'unix' | 'tcp' | 'stdio';
  path: string;
  host: string;
  port: number;
  server: boolean;
  /** `undefined` when not given. */
  wait: boolean | undefined;
  reconnect: number | undefined;
}

export interface PendingMonitor {
  /** `undefined` when `-mon` named none. */
  chardev: string | undefined;
  mode: string;
  loc: string;
}

export type ChardevOption =
  | { kind: 'chardev'; chardev: PendingChardev }
  | { kind: 'help'; text: string; exitStatus: 0 | 1 };

/** `-chardev BACKEND,id=ID,...` as read; `warnings` gets QEMU's short-form warnings. */
export function parseChardevOption(text: string, loc: string, warnings: string[]): ChardevOption {
  // QEMU checks the id before it reads the other items.
  const id = firstId(text);
  checkId(id);
  const r: ParsedOpts = parseQemuOpts(text, 'backend', { ...CHARDEV_DESC, id: 'string' }, warnings);
  if (r.help) return { kind: 'help', text: chardevOptionsHelp(), exitStatus: 1 };
  const backend = r.values.get('backend');
  if (backend !== undefined && isHelpOption(backend)) {
    return { kind: 'help', text: 'Available chardev backend types: \n  socket\n', exitStatus: 0 };
  }
  r.values.delete('id');
  return { kind: 'chardev', chardev: { id, values: r.values, loc, compat: false } };
}

function chardevOptionsHelp(): string {
  const shown: Record<string, string> = { number: '<num>', bool: '<bool (on/off)>', string: '<str>' };
  const lines = Object.keys(SOCKET_CHARDEV_DESC)
    .sort()
    .map((k) => `  ${k}=${shown[SOCKET_CHARDEV_DESC[k] ?? 'string'] ?? '<str>'}\n`);
  return `chardev options:\n${lines.join('')}`;
}

/** Legacy chardev names QEMU's `-qmp`/`-serial` parser knows but nodevisor does not offer. */
function isOtherCompatChardev(dev: string): boolean {
  if (['null', 'pty', 'msmouse', 'wctablet', 'braille', 'testdev', 'vc'].includes(dev)) return true;
  return ['vc:', 'con:', 'COM', 'file:', 'pipe:', 'telnet:', 'tn3270:', 'websocket:', 'udp:', '/dev/', 'mon:'].some(
    (p) => dev.startsWith(p),
  );
}

/**
 * `-qmp DEV`: `chardev:ID` names a `-chardev`; otherwise DEV is a legacy chardev made here with
 * the id `label` (QEMU's compat_monitorN). Errors end with QEMU's "parse error: DEV" line.
 */
export function parseQmpOption(
  dev: string,
  loc: string,
  label: string,
): { monitor: PendingMonitor; chardev?: PendingChardev } {
  const monitor: PendingMonitor = { chardev: label, mode: 'control', loc };
  if (dev.startsWith('chardev:')) return { monitor: { ...monitor, chardev: dev.slice(8) } };
  const parseError = (reason?: string): never => {
    const more = [`parse error: ${dev}`];
    if (reason === undefined) throw new OptsSyntaxError(more[0] ?? '');
    throw new OptsSyntaxError(reason, more);
  };
  const values = new Map<string, string>();
  const make = (): { monitor: PendingMonitor; chardev: PendingChardev } => ({
    monitor,
    chardev: { id: label, values, loc, compat: true },
  });
  const options = (text: string, implied?: string): void => {
    try {
      // The legacy syntax gives no short-form boolean warnings (`server,nowait` is common).
      for (const [k, v] of parseQemuOpts(text, implied, CHARDEV_DESC).values) {
        values.delete(k);
        values.set(k, v);
      }
    } catch (e) {
      if (e instanceof OptsSyntaxError) parseError(e.message);
      throw e;
    }
  };
  if (dev === 'stdio') {
    values.set('backend', 'stdio');
    return make();
  }
  if (dev.startsWith('unix:')) {
    values.set('backend', 'socket');
    options(dev.slice(5), 'path');
    return make();
  }
  if (dev.startsWith('tcp:')) {
    // QEMU's sscanf "%64[^:]:%32[^,]", or ":%32[^,]" for an empty host.
    const rest = dev.slice(4);
    const m = /^([^:]{1,64}):([^,]{1,32})/.exec(rest) ?? /^():([^,]{1,32})/.exec(rest);
    if (m === null) return parseError();
    values.set('backend', 'socket');
    values.set('host', m[1] ?? '');
    values.set('port', m[2] ?? '');
    const after = rest.slice(m[0].length);
    if (after.startsWith(',')) options(after.slice(1));
    return make();
  }
  if (isOtherCompatChardev(dev)) {
    throw new OptsSyntaxError(`'${dev}' is not supported by nodevisor: use unix:PATH, tcp:HOST:PORT or stdio`);
  }
  return parseError(`'${dev}' is not a valid char driver`);
}

/** `-mon [chardev=]ID[,mode=readline|control][,pretty=on|off]` as read. */
export function parseMonOption(text: string, loc: string, warnings: string[]): PendingMonitor {
  const { values } = parseQemuOpts(text, 'chardev', MON_DESC, warnings);
  return { chardev: values.get('chardev'), mode: values.get('mode') ?? 'readline', loc };
}

/** Creates one chardev as QEMU would, in QEMU's order of checks. */
export function createChardev(p: PendingChardev): CreatedChardev {
  if (p.id === undefined) throw new OptsSyntaxError('chardev: no id specified');
  const v = p.values;
  const backend = v.get('backend');
  if (backend === undefined) throw new OptsSyntaxError(`chardev: "${p.id}" missing backend`);
  if (!QEMU_CHARDEV_BACKENDS.includes(backend)) {
    throw new OptsSyntaxError(`'${backend}' is not a valid char driver name`);
  }
  const base = { pending: p, path: '', host: '', port: 0, server: false, wait: undefined, reconnect: undefined };
  if (backend === 'stdio' && p.compat) return { ...base, kind: 'stdio' };
  if (backend !== 'socket') {
    throw new OptsSyntaxError(`chardev backend '${backend}' is not supported by nodevisor (only socket)`);
  }
  for (const k of v.keys()) {
    if (!Object.hasOwn(SOCKET_CHARDEV_DESC, k)) {
      throw new OptsSyntaxError(`parameter '${k}' is not supported by nodevisor`);
    }
  }
  const path = v.get('path');
  const host = v.get('host');
  const port = v.get('port');
  const server = parseBool('server', v.get('server') ?? 'off');
  const waitText = v.get('wait');
  const wait = waitText === undefined ? undefined : parseBool('wait', waitText);
  const reconnectText = v.get('reconnect');
  const reconnect = reconnectText === undefined ? undefined : Number(reconnectText);
  if (path !== undefined && host !== undefined) {
    throw new OptsSyntaxError("None or one of 'path', 'fd' or 'host' option required.");
  }
  if (host !== undefined && port === undefined) throw new OptsSyntaxError('chardev: socket: no port given');
  // QEMU refuses `wait` on a client socket; `-qmp`'s legacy chardevs get nodevisor's
  // "only server=on" later instead, which says more there.
  if (!server && waitText !== undefined && !p.compat) {
    throw new OptsSyntaxError("'wait' option is incompatible with socket in client connect mode");
  }
  if (path === undefined && port === undefined) throw new OptsSyntaxError('Unable to parse FD number ');
  if (server && reconnect !== undefined) {
    throw new OptsSyntaxError("'reconnect' option is incompatible with socket in server listen mode");
  }
  const common = { ...base, server, wait, reconnect };
  if (path !== undefined) {
    // QEMU would listen on a name of its own making.
    if (path === '') throw new OptsSyntaxError('an empty socket path is not supported by nodevisor');
    return { ...common, kind: 'unix', path };
  }
  const portText = port ?? '';
  const portNumber = /^[0-9]{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (!(portNumber <= 65535)) {
    throw new OptsSyntaxError(`port '${portText}' is not supported by nodevisor: give a number from 0 to 65535`);
  }
  return { ...common, kind: 'tcp', host: host ?? '', port: portNumber };
}

/** What RunOptions.chardevs keeps of a `-chardev`. */
export function chardevInfo(c: CreatedChardev): ChardevInfo {
  const info: ChardevInfo = {
    id: c.pending.id ?? '',
    backend: 'socket',
    server: c.server,
    wait: c.server && c.wait !== false,
  };
  if (c.kind === 'unix') info.path = c.path;
  if (c.kind === 'tcp') {
    info.host = c.host;
    info.port = c.port;
  }
  if (c.reconnect !== undefined) info.reconnect = c.reconnect;
  return info;
}

/**
 * Attaches each monitor to its chardev, in order, and returns the QMP listeners. Each error is
 * thrown with the location it belongs to (the monitor's, or the chardev's for server/wait).
 * `taken`: chardevs another frontend (an `-object introspection`) already uses.
 */
export function attachMonitors(
  monitors: readonly PendingMonitor[],
  chardevs: readonly CreatedChardev[],
  taken: ReadonlySet<string> = new Set(),
): ListenSpec[] {
  const byId = new Map(chardevs.map((c) => [c.pending.id ?? '', c]));
  const used = new Set<string>(taken);
  const specs: ListenSpec[] = [];
  for (const m of monitors) {
    const fail = (loc: string, message: string): never => {
      throw new LocatedError(loc, message);
    };
    if (m.mode !== 'readline' && m.mode !== 'control') {
      fail(m.loc, `Parameter 'mode' does not accept value '${m.mode}'`);
    }
    if (m.chardev === undefined) return fail(m.loc, "Parameter 'chardev' is missing");
    const c = byId.get(m.chardev);
    if (c === undefined) return fail(m.loc, `chardev "${m.chardev}" not found`);
    if (used.has(m.chardev)) fail(m.loc, `Device '${m.chardev}' is in use`);
    used.add(m.chardev);
    if (m.mode === 'readline') {
      fail(m.loc, 'the human monitor is not supported: use mode=control (QMP)');
    }
    if (c.kind === 'stdio') {
      specs.push({ kind: 'stdio' });
      continue;
    }
    if (!c.server) fail(c.pending.loc, 'only server=on is supported');
    if (c.wait !== false) {
      fail(
        c.pending.loc,
        `only wait=off is supported (QEMU would wait for a client${c.wait === undefined ? ', as wait=on is the default' : ''})`,
      );
    }
    specs.push(
      c.kind === 'unix'
        ? { kind: 'unix', path: c.path, server: true, wait: false }
        : { kind: 'tcp', host: c.host, port: c.port, server: true, wait: false },
    );
  }
  return specs;
}

/** An error whose location is known here (several options meet in attachMonitors). */
export class LocatedError extends Error {
  readonly loc: string;
  constructor(loc: string, message: string) {
    super(message);
    this.name = 'LocatedError';
    this.loc = loc;
  }
}
