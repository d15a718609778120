/**
 * The QMP server: listeners (unix socket, TCP, stdio), one session per client, replies in
 * request order and events to every client that has negotiated.
 *
 * Nothing a client does can stop the VM or the other clients: malformed input becomes error
 * replies, a client's requests run one at a time (reading pauses while 8 are queued, QEMU's
 * limit), and a client that does not read its replies or events is disconnected once its unsent
 * output passes `maxOutputBytes`, instead of the VMM buffering without bound.
 */
import { lstat, stat, unlink } from 'node:fs/promises';
import net from 'node:net';
import type { Readable, Writable } from 'node:stream';

import { NodevisorError } from '../errors.js';
import { timestamp, type QmpEvent, type QmpTimestamp } from '../runstate/events.js';
import { coreCommands, nodevisorQmpVersion, versionInfo, type QmpVersion } from './commands-core.js';
import { errorReply, formatReply, QmpDispatcher, type CommandTable, type QmpReply } from './dispatcher.js';
import { genericError } from './errors.js';
import { JsonStream, type JsonStreamItem } from './json-stream.js';
import { formatQmpJson } from './json-writer.js';
import { QmpSession, type QmpCapability } from './session.js';

export type ListenSpec =
  | { kind: 'unix'; path: string; server?: boolean; wait?: boolean }
  | { kind: 'tcp'; host: string; port: number; server?: boolean; wait?: boolean }
  /** The process's stdin/stdout unless streams are given. */
  | { kind: 'stdio'; input?: Readable; output?: Writable };

export type ListenerAddress =
  | { kind: 'unix'; path: string }
  | { kind: 'tcp'; host: string; port: number }
  | { kind: 'stdio' };

export interface QmpServerOptions {
  /** The VM's commands; qmp_capabilities, query-version and query-commands are added. */
  commands?: CommandTable;
  version?: QmpVersion;
  /** Unsent output per client before it is dropped. Default 1 MiB. */
  maxOutputBytes?: number;
  /** Largest request accepted (see JsonStream). Default 1 MiB. */
  maxMessageBytes?: number;
  /** In-band requests queued per client before its input is paused. Default 8 (QEMU's). */
  maxQueuedRequests?: number;
  /** Where dropped clients and listener errors are reported. Default: stderr. */
  log?: (message: string) => void;
}

export const DEFAULT_MAX_OUTPUT_BYTES = 1 << 20;

interface Listener {
  address: ListenerAddress;
  close(): Promise<void>;
}

class Connection {
  readonly session: QmpSession;
  readonly #stream: JsonStream;
  readonly #queue: JsonStreamItem[] = [];
  #busy = false;
  #closed = false;
  readonly #onData = (chunk: Buffer | string): void => this.#receive(chunk);
  readonly closed: Promise<void>;
  #resolveClosed!: () => void;

  constructor(
    private readonly server: QmpServer,
    private readonly input: Readable,
    private readonly output: Writable,
    offered: readonly QmpCapability[],
    private readonly ownsStreams: boolean,
  ) {
    this.session = new QmpSession(offered);
    this.#stream = new JsonStream({ maxMessageBytes: server.maxMessageBytes });
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
  }

  get isOpen(): boolean {
    return !this.#closed;
  }

  start(greeting: object): void {
    this.input.on('data', this.#onData);
    const gone = (): void => this.close();
    this.input.once('end', gone);
    this.input.once('close', gone);
    this.input.on('error', gone);
    this.output.on('error', gone);
    if ((this.output as unknown) !== this.input) this.output.once('close', gone);
    this.send(greeting);
  }

  /** Writes one message; drops the client if its unsent output would pass the bound. */
  send(message: object): void {
    if (this.#closed) return;
    this.sendLine(formatLine(message));
  }

  /** Writes one message already formatted by formatLine(), in a single write. */
  sendLine(line: string): void {
    if (this.#closed) return;
    if (this.output.writableLength + line.length > this.server.maxOutputBytes) {
      this.server.log(`QMP client dropped: more than ${this.server.maxOutputBytes} bytes of output unread`);
      this.close(true);
      return;
    }
    // The line is ASCII (the writer escapes everything else): latin1 needs no UTF-8 encoding.
    this.output.write(line, 'latin1');
  }

  #receive(chunk: Buffer | string): void {
    if (this.#closed) return;
    const items = this.#stream.feed(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    if (items.length === 0) return;
    // Replies to requests that arrived together leave together, in one write.
    const batch = items.length > 1;
    if (batch) this.output.cork();
    for (const item of items) {
      // Out-of-band requests jump the queue, as in QEMU.
      if (item.kind === 'value' && this.server.dispatcher.isOutOfBand(item.value, this.session)) {
        this.#reply(this.server.dispatcher.run(item.value, this.session));
        continue;
      }
      this.#queue.push(item);
    }
    if (this.#queue.length >= this.server.maxQueuedRequests) this.input.pause();
    this.#pump();
    if (batch) this.output.uncork();
  }

  #reply(reply: QmpReply | Promise<QmpReply>): void {
    if (reply instanceof Promise) void reply.then((r) => this.#sendReply(r));
    else this.#sendReply(reply);
  }

  #sendReply(reply: QmpReply): void {
    if (!this.#closed) this.sendLine(`${formatReply(reply)}\r\n`);
  }

  /**
   * Runs queued requests one at a time, in order. A command whose handler returns a plain
   * value is answered before the next is looked at, without waiting for a promise; one that
   * returns a promise holds the queue until it settles.
   */
  #pump(): void {
    if (this.#busy) return;
    for (let item = this.#queue.shift(); item !== undefined && !this.#closed; item = this.#queue.shift()) {
      const reply =
        item.kind === 'error' ? errorReply(genericError(item.message)) : this.server.dispatcher.run(item.value, this.session);
      if (reply instanceof Promise) {
        this.#busy = true;
        void reply.then((r) => {
          this.#busy = false;
          this.#answered(r);
          this.#pump();
        });
        return;
      }
      this.#answered(reply);
    }
  }

  #answered(reply: QmpReply): void {
    this.#sendReply(reply);
    if (this.#queue.length < this.server.maxQueuedRequests && this.input.isPaused()) this.input.resume();
  }

  /** Ends the connection: flushes what was written unless `abort`. Idempotent. */
  close(abort = false): void {
    if (this.#closed) {
      if (abort && this.ownsStreams) this.output.destroy();
      return;
    }
    this.#closed = true;
    this.#queue.length = 0;
    this.input.off('data', this.#onData);
    this.server.forget(this);
    if (!this.ownsStreams) {
      this.#resolveClosed();
      return;
    }
    const socket = this.output as net.Socket;
    if (socket.closed) {
      this.#resolveClosed();
      return;
    }
    socket.once('close', () => this.#resolveClosed());
    if (abort || socket.destroyed) {
      socket.destroy();
      return;
    }
    socket.end();
    // A peer that never reads could hold a half-closed socket open for ever.
    setTimeout(() => socket.destroy(), 1000).unref();
  }
}

export class QmpServer {
  readonly dispatcher: QmpDispatcher;
  readonly version: QmpVersion;
  readonly maxOutputBytes: number;
  readonly maxMessageBytes: number | undefined;
  readonly maxQueuedRequests: number;
  readonly log: (message: string) => void;
  readonly #connections = new Set<Connection>();
  readonly #closing = new Set<Promise<void>>();
  readonly #listeners: Listener[] = [];
  #closed = false;

  constructor(options: QmpServerOptions = {}) {
    this.version = options.version ?? nodevisorQmpVersion();
    this.dispatcher = new QmpDispatcher({ ...coreCommands(this.version), ...(options.commands ?? {}) });
    this.maxOutputBytes = options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
    this.maxMessageBytes = options.maxMessageBytes;
    this.maxQueuedRequests = options.maxQueuedRequests ?? 8;
    this.log = options.log ?? ((message) => process.stderr.write(`nodevisor: ${message}\n`));
  }

  /** Clients connected now. */
  get clientCount(): number {
    return this.#connections.size;
  }

  /** Starts a listener; resolves with where it listens once it does. */
  async listen(spec: ListenSpec): Promise<ListenerAddress> {
    if (this.#closed) throw new NodevisorError('ERR_BAD_STATE', 'QMP server is closed');
    if (spec.kind !== 'stdio' && (spec.server === false || spec.wait === true)) {
      throw new NodevisorError('ERR_BAD_OPTION', 'QMP sockets must be server=on,wait=off');
    }
    let listener: Listener;
    switch (spec.kind) {
      case 'unix':
        listener = await this.#listenUnix(spec.path);
        break;
      case 'tcp':
        listener = await this.#listenTcp(spec.host, spec.port);
        break;
      case 'stdio':
        listener = this.#listenStdio(spec.input ?? process.stdin, spec.output ?? process.stdout);
        break;
    }
    this.#listeners.push(listener);
    return listener.address;
  }

  /** Sends an event to every client that has negotiated capabilities, in call order. */
  broadcast(event: QmpEvent, when: QmpTimestamp = timestamp()): void {
    const message: Record<string, unknown> = { timestamp: when, event: event.event };
    if ('data' in event) message.data = event.data;
    let line: string | undefined;
    for (const c of this.#connections) {
      if (!c.session.negotiated) continue;
      // Formatted once, for however many clients.
      line ??= formatLine(message);
      c.sendLine(line);
    }
  }

  /** Stops listening, ends every client (after flushing) and removes socket files. */
  async close(): Promise<void> {
    this.#closed = true;
    const listeners = this.#listeners.splice(0);
    for (const c of [...this.#connections]) c.close();
    await Promise.all([...listeners.map((l) => l.close()), ...this.#closing]);
  }

  /** Called by a connection as it closes. */
  forget(connection: Connection): void {
    if (!this.#connections.delete(connection)) return;
    const done = connection.closed.finally(() => this.#closing.delete(done));
    this.#closing.add(done);
  }

  #greeting(offered: readonly QmpCapability[]): object {
    return { QMP: { version: versionInfo(this.version), capabilities: [...offered] } };
  }

  #accept(input: Readable, output: Writable, offered: readonly QmpCapability[], owns: boolean): Connection {
    const c = new Connection(this, input, output, offered, owns);
    this.#connections.add(c);
    c.start(this.#greeting(offered));
    return c;
  }

  #socketServer(): net.Server {
    const server = net.createServer((socket) => {
      if (this.#closed) {
        socket.destroy();
        return;
      }
      socket.setNoDelay?.(true);
      this.#accept(socket, socket, ['oob'], true);
    });
    server.on('error', (e) => this.log(`QMP listener error: ${e.message}`));
    return server;
  }

  async #listenUnix(path: string): Promise<Listener> {
    await removeStaleSocket(path);
    const server = this.#socketServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // The socket file gets 0777 & ~umask: never wider than the umask allows.
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    }).catch((e: NodeJS.ErrnoException) => {
      throw new NodevisorError('ERR_BAD_OPTION', `Failed to bind socket to ${path}: ${e.message}`);
    });
    const { ino } = await stat(path);
    return {
      address: { kind: 'unix', path },
      close: async () => {
        await closeServer(server);
        // Remove the file only if it is still ours.
        const now = await stat(path).catch(() => undefined);
        if (now?.ino === ino) await unlink(path).catch(() => undefined);
      },
    };
  }

  async #listenTcp(host: string, port: number): Promise<Listener> {
    const server = this.#socketServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port }, () => {
        server.off('error', reject);
        resolve();
      });
    }).catch((e: NodeJS.ErrnoException) => {
      throw new NodevisorError('ERR_BAD_OPTION', `Failed to bind socket to ${host}:${port}: ${e.message}`);
    });
    const addr = server.address() as net.AddressInfo;
    return { address: { kind: 'tcp', host: addr.address, port: addr.port }, close: () => closeServer(server) };
  }

  #listenStdio(input: Readable, output: Writable): Listener {
    // No I/O thread behind stdio in QEMU, so no oob offered.
    const c = this.#accept(input, output, [], false);
    return {
      address: { kind: 'stdio' },
      close: () => {
        c.close();
        return c.closed;
      },
    };
  }
}

/**
 * One message as the client reads it. QEMU's monitor turns every "\n" of its output into
 * "\r\n"; clients see exactly that. A value with no JSON form becomes an internal error.
 */
function formatLine(message: object): string {
  try {
    return `${formatQmpJson(message)}\r\n`;
  } catch {
    return `${formatQmpJson(errorReply(genericError('internal error')))}\r\n`;
  }
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/**
 * Makes room for a new socket at `path`: a socket nobody listens on is removed; a live socket
 * or any other kind of file is refused, never overwritten.
 */
async function removeStaleSocket(path: string): Promise<void> {
  const st = await lstat(path).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw new NodevisorError('ERR_BAD_OPTION', `Failed to bind socket to ${path}: ${e.message}`);
  });
  if (st === undefined) return;
  if (!st.isSocket()) {
    throw new NodevisorError('ERR_BAD_OPTION', `Failed to bind socket to ${path}: file exists and is not a socket`);
  }
  if (await isListening(path)) {
    throw new NodevisorError('ERR_BAD_OPTION', `Failed to bind socket to ${path}: Address already in use`);
  }
  await unlink(path);
}

function isListening(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}
