/**
 * nodevisor's own QMP client, for tests, tools and scripts: connects to a unix socket or TCP
 * port, reads the greeting, negotiates, runs commands and collects events. It reads replies
 * with the server's own JSON reader, so large integers arrive as bigints, not rounded.
 */
import net from 'node:net';

import { EventQueue } from '../util/event-queue.js';
import { QMP_ERROR_CLASSES, QmpError, type QmpErrorClass } from './errors.js';
import { JsonStream } from './json-stream.js';
import { isJsonObject, type JsonObject, type JsonValue } from './json-value.js';
import { formatQmpJson } from './json-writer.js';

export type QmpTarget = string | { host: string; port: number };

/** An event as received: name, timestamp and (for most events) data. */
export interface ReceivedEvent {
  event: string;
  timestamp: { seconds: number; microseconds: number };
  data?: JsonObject;
}

export interface QmpGreeting {
  QMP: { version: { qemu: { major: number; minor: number; micro: number }; package: string }; capabilities: string[] };
}

interface Pending {
  resolve(value: JsonValue): void;
  reject(error: Error): void;
}

export class QmpClient {
  readonly #socket: net.Socket;
  readonly #stream = new JsonStream({ maxMessageBytes: 64 << 20 });
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  readonly #events = new EventQueue<ReceivedEvent>();
  #closed = false;
  #greeting!: QmpGreeting;

  private constructor(socket: net.Socket) {
    this.#socket = socket;
  }

  /** Connects and waits for the greeting. */
  static async connect(target: QmpTarget, timeoutMs = 5000): Promise<QmpClient> {
    const socket = typeof target === 'string' ? net.connect(target) : net.connect(target.port, target.host);
    const client = new QmpClient(socket);
    client.#greeting = await new Promise<QmpGreeting>((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error('QMP greeting timed out')), timeoutMs);
      const fail = (e: Error): void => {
        clearTimeout(timer);
        socket.destroy();
        reject(e);
      };
      const closed = (): void => fail(new Error('QMP connection closed before the greeting'));
      socket.once('error', fail);
      socket.once('close', closed);
      client.#onGreeting = (g) => {
        clearTimeout(timer);
        socket.off('error', fail);
        socket.off('close', closed);
        resolve(g);
      };
      socket.on('data', (chunk: Buffer) => client.#receive(chunk));
    });
    socket.on('error', () => client.#shutdown(new Error('QMP connection failed')));
    socket.on('close', () => client.#shutdown(new Error('QMP connection closed')));
    return client;
  }

  #onGreeting: ((g: QmpGreeting) => void) | undefined;

  get greeting(): QmpGreeting {
    return this.#greeting;
  }

  /** Sends qmp_capabilities. */
  async negotiate(enable: readonly string[] = []): Promise<void> {
    await this.execute('qmp_capabilities', enable.length > 0 ? { enable: [...enable] } : undefined);
  }

  /** Runs a command; resolves with its `return`, or throws a QmpError with class and desc. */
  execute<T = unknown>(command: string, args?: JsonObject | Record<string, unknown>): Promise<T> {
    if (this.#closed) return Promise.reject(new Error('QMP connection closed'));
    const id = this.#nextId++;
    const request: Record<string, unknown> = { execute: command, id };
    if (args !== undefined) request.arguments = args;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: (v) => resolve(v as T), reject });
      this.#socket.write(`${formatQmpJson(request)}\n`);
    });
  }

  /** Events in arrival order, buffered from connection time; ends when the connection does. */
  events(): AsyncGenerator<ReceivedEvent, void, undefined> {
    return this.#events[Symbol.asyncIterator]();
  }


  /** Waits for the next event with this name, skipping others. */
  async waitForEvent(name: string): Promise<ReceivedEvent> {
    for await (const e of this.events()) if (e.event === name) return e;
    throw new Error(`QMP connection closed before ${name}`);
  }

  async close(): Promise<void> {
    if (this.#socket.closed) return;
    await new Promise<void>((resolve) => {
      this.#socket.once('close', () => resolve());
      this.#socket.end();
    });
  }

  #receive(chunk: Buffer): void {
    for (const item of this.#stream.feed(chunk)) {
      if (item.kind !== 'value' || !isJsonObject(item.value)) continue; // a server never sends these
      this.#message(item.value);
    }
  }

  #message(m: JsonObject): void {
    if (isJsonObject(m.QMP) && this.#onGreeting !== undefined) {
      const done = this.#onGreeting;
      this.#onGreeting = undefined;
      done(m as unknown as QmpGreeting);
      return;
    }
    if (typeof m.event === 'string') {
      this.#events.push(m as unknown as ReceivedEvent);
      return;
    }
    // A reply without our id (a parse error) belongs to the oldest request: replies are in order.
    const id = typeof m.id === 'number' ? m.id : this.#pending.keys().next().value;
    if (id === undefined) return;
    const pending = this.#pending.get(id);
    if (pending === undefined) return;
    this.#pending.delete(id);
    if ('return' in m) {
      pending.resolve(m.return ?? null);
    } else {
      const err = isJsonObject(m.error) ? m.error : {};
      const cls = (QMP_ERROR_CLASSES as readonly string[]).includes(String(err.class)) ? err.class : 'GenericError';
      pending.reject(new QmpError(cls as QmpErrorClass, typeof err.desc === 'string' ? err.desc : ''));
    }
  }

  #shutdown(reason: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const p of this.#pending.values()) p.reject(reason);
    this.#pending.clear();
    this.#events.close();
  }
}
