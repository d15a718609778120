/**
 * The VMM end of `-object introspection`: connects to the tool's listening unix socket,
 * performs the handshake (uuid, name, start time; the tool must prove the secret when one is
 * set), then serves KVMI on that socket. A tool that is missing, fails the handshake or goes
 * away is retried every `reconnect` seconds; without `reconnect` the link gives up and the VM
 * runs on uninspected. Everything is reported through the log callback, nothing is thrown
 * at the machine.
 */
import net from 'node:net';

import type { IntrospectionConfig } from '../machine/config.js';
import { formatUuid, parseUuid, vmHandshake, type Hello } from './handshake.js';
import { silentLog, type IntrospectionLog } from './log.js';
import { KvmiSession } from './session.js';
import type { IntrospectionTarget } from './target.js';
import { close, dup } from '../kvm/libc.js';
import { KvmiSocketThread } from './socket/socket-thread.js';
import { connectUnix } from './socket/unix-connect.js';
import { IntrospectionError } from './wire/errors.js';

export interface IntrospectionInfo {
  /** `-uuid`; none: all zeros. */
  uuid?: string;
  /** `-name`; none: empty. */
  name?: string;
  /** When the VM started, milliseconds since the epoch. */
  startTime: number | bigint;
}

export interface ConnectOptions {
  log?: IntrospectionLog;
}

export type LinkState = 'connecting' | 'handshake' | 'connected' | 'waiting' | 'stopped';

/** Starts connecting in the background and returns at once. Throws only for an invalid UUID. */
export function connectIntrospection(
  config: IntrospectionConfig,
  target: IntrospectionTarget,
  info: IntrospectionInfo,
  options: ConnectOptions = {},
): IntrospectionLink {
  return new IntrospectionLink(config, target, info, options);
}

export class IntrospectionLink {
  readonly #config: IntrospectionConfig;
  readonly #target: IntrospectionTarget;
  readonly #hello: Hello;
  readonly #log: IntrospectionLog;
  #state: LinkState = 'connecting';
  #stopping = false;
  #socket: net.Socket | undefined;
  #session: KvmiSession | undefined;
  #wake: (() => void) | undefined;
  /** Resolves when the link will make no more attempts (closed, or gave up without reconnect). */
  readonly stopped: Promise<void>;

  constructor(config: IntrospectionConfig, target: IntrospectionTarget, info: IntrospectionInfo, options: ConnectOptions) {
    this.#config = config;
    this.#target = target;
    this.#log = options.log ?? silentLog;
    this.#hello = { uuid: parseUuid(info.uuid), startTime: BigInt(info.startTime), name: info.name ?? '' };
    this.stopped = this.#run();
  }

  get state(): LinkState {
    return this.#state;
  }

  /** The session serving the tool now, if one is connected. */
  get session(): KvmiSession | undefined {
    return this.#session;
  }

  /**
   * Stops for good: a connected tool is sent UNHOOK (if it asked for it) and given the unhook
   * timeout to let go; no further attempts are made.
   */
  async close(): Promise<void> {
    this.#stopping = true;
    this.#wake?.();
    if (this.#session !== undefined) await this.#session.unhook();
    else this.#socket?.destroy();
    await this.stopped;
  }

  async #run(): Promise<void> {
    const path = this.#config.path;
    const id = this.#config.id;
    for (;;) {
      if (this.#stopping) break;
      try {
        await this.#attempt();
      } catch (e) {
        const auth = e instanceof IntrospectionError && e.code === 'ERR_KVMI_AUTH';
        this.#log(auth ? 'error' : 'warning', `introspection ${id}: ${path}: ${(e as Error).message}${auth ? '; connection closed' : ''}`);
      }
      if (this.#stopping) break;
      const reconnect = this.#config.reconnect ?? 0;
      if (!(reconnect > 0)) {
        // As QEMU's reconnect=0: no retry.
        this.#log('info', `introspection ${id}: no reconnect; the VM runs uninspected`);
        break;
      }
      this.#state = 'waiting';
      await this.#sleep(reconnect * 1000);
    }
    this.#state = 'stopped';
  }

  /**
   * One connection: connect, handshake (on Node's socket, over a duplicate of the
   * descriptor), then hand the socket to the KVMI socket thread and serve until the session
   * ends.
   */
  async #attempt(): Promise<void> {
    this.#state = 'connecting';
    const fd = connectUnix(this.#config.path);
    let handedOver = false;
    const socket = new net.Socket({ fd: dup(fd), readable: true, writable: true });
    this.#socket = socket;
    try {
      this.#state = 'handshake';
      let rest = await vmHandshake(socket, this.#hello, { key: this.#config.key, timeoutMs: this.#config.handshakeTimeoutMs });
      // The handshake left the socket paused: whatever it had read past the tool's answer.
      for (let chunk = socket.read() as Buffer | null; chunk !== null; chunk = socket.read() as Buffer | null) rest = concat(rest, chunk);
      socket.destroy(); // closes the duplicate only: no shutdown, the connection stays
      if (this.#stopping) return;
      // The thread reports through its port, so never before `session` below exists.
      const thread = new KvmiSocketThread(fd, {
        dialect: this.#config.dialect,
        initial: rest,
        ram: this.#target.ramMapping?.() ?? [],
        ...(this.#target.eventSlots !== undefined ? { slots: this.#target.eventSlots } : {}),
        onDirectAnswered: (vcpu) => session.directAnswered(vcpu),
        onFrames: (frames) => session.receiveFrames(frames),
        onViolation: (message) => session.framingError(message),
        onPeerClosed: (error) => {
          if (error !== undefined) this.#log('warning', `introspection ${this.#config.id}: ${error}`);
          session.peerClosed();
        },
      });
      handedOver = true;
      const session = new KvmiSession(this.#target, thread, {
        dialect: this.#config.dialect, log: this.#log, unhookTimeoutMs: this.#config.unhookTimeoutMs,
      });
      this.#session = session;
      this.#state = 'connected';
      this.#log('info', `introspection ${this.#config.id}: connected to ${this.#config.path} as ${formatUuid(this.#hello.uuid)}`);
      session.start();
      await session.ended;
      await thread.ended;
      this.#session = undefined;
    } finally {
      this.#socket = undefined;
      socket.destroy();
      if (!handedOver) close(fd);
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    });
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
