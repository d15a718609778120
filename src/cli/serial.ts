/**
 * `-serial DEV` in QEMU's legacy chardev syntax (qemu_chr_parse_compat), for the backends
 * nodevisor has. `mon:stdio` is stdio multiplexed with the monitor: it brings the ctrl-a escapes
 * and sends ctrl-c to the guest, which is also what `-nographic` gives by default.
 */
import type { SerialBackend } from '../machine/config.js';
import { OptsSyntaxError } from './opts-error.js';
import { parseBool, parseQemuOpts } from './qemu-opts.js';

export interface SerialOption {
  backend: SerialBackend;
  /** QEMU's mux (`mon:` prefix): escapes on input, ctrl-c to the guest. */
  mux: boolean;
}

/** The socket options QEMU accepts that nodevisor implements. */
const UNIX_OPTS = { path: 'string', server: 'bool', wait: 'bool' } as const;

/**
 * Parses one `-serial` argument. A thrown OptsSyntaxError carries QEMU's two error lines.
 */
export function parseSerialOption(dev: string): SerialOption {
  const fail = (reason: string): never => {
    throw new OptsSyntaxError(reason, [`could not connect serial device to character backend '${dev}'`]);
  };
  let text = dev;
  let mux = false;
  if (text.startsWith('mon:')) {
    mux = true;
    text = text.slice(4);
  }
  if (text === 'none' && !mux) return { backend: { kind: 'none' }, mux };
  if (text === 'null') return { backend: { kind: 'null' }, mux };
  if (text === 'stdio') return { backend: { kind: 'stdio' }, mux };
  // QEMU's graphical console: without one, the terminal is the nearest thing.
  if (text === 'vc' || text.startsWith('vc:')) return { backend: { kind: 'stdio' }, mux };
  if (text.startsWith('file:')) return { backend: { kind: 'file', path: text.slice(5) }, mux };
  if (text.startsWith('unix:')) {
    let values: Map<string, string>;
    try {
      // The compat parser gives no short-form boolean warnings (`server,nowait` is common).
      values = parseQemuOpts(text.slice(5), 'path', UNIX_OPTS).values;
    } catch (e) {
      if (e instanceof OptsSyntaxError) return fail(e.message);
      throw e;
    }
    const path = values.get('path') ?? '';
    // QEMU reads an empty path as a file descriptor number.
    if (path === '') return fail('Unable to parse FD number ');
    const server = parseBool('server', values.get('server') ?? 'off');
    const wait = parseBool('wait', values.get('wait') ?? 'on');
    return { backend: { kind: 'unix', path, server, wait }, mux };
  }
  return fail(`'${dev}' is not a valid char driver`);
}
