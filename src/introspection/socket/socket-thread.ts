/**
 * The main thread's handle on the KVMI socket thread (socket-worker.ts): a SessionTransport
 * whose writes are posted to the thread, and a source of the frames the session must handle.
 * Every post is followed by a write to the thread's eventfd, which is what wakes its poll().
 */
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';

import { errnoName } from '../../kvm/errno.js';
import { close, EFD_CLOEXEC, EFD_NONBLOCK, errno, eventfd, EVENTFD_ONE, write } from '../../kvm/libc.js';
import type { SessionTransport } from '../session.js';
import type { Frame } from '../wire/header.js';
import type { DialectName } from '../wire/ids.js';
import type { EventSlots } from './event-slots.js';
import type { RamMapping } from '../target.js';
import type { FromSocketThread, SocketWorkerData, ToSocketThread } from './messages.js';

export interface SocketThreadOptions {
  dialect: DialectName;
  /** Bytes received before the thread took over. */
  initial?: Uint8Array;
  /** Guest RAM the thread may answer READ_PHYSICAL from; none: the session answers all. */
  ram?: readonly RamMapping[];
  /** The target's event slots: the vCPUs' own events and their replies bypass the main thread. */
  slots?: EventSlots;
  /** A vCPU's own event was answered by the thread; the session may send what it queued for it. */
  onDirectAnswered?(vcpu: number): void;
  /** Frames for the session, in order; each must be acknowledged with `handled`. */
  onFrames(frames: Frame[]): void;
  /** The input broke the framing rules. */
  onViolation(message: string): void;
  /** The tool is gone: called once; `error` when it was not a plain close (the socket or the thread failed). */
  onPeerClosed(error?: string): void;
}

export class KvmiSocketThread implements SessionTransport {
  readonly #worker: Worker;
  readonly #port: MessagePort;
  readonly #wakeFd: number;
  #closed = false;
  #closing = false;
  #peerClosed = false;
  /** Resolves when the thread has ended and the socket is closed. */
  readonly ended: Promise<void>;

  /** Takes ownership of `fd`, a connected non-blocking socket, once constructed: the thread closes it. */
  constructor(fd: number, options: SocketThreadOptions) {
    this.#wakeFd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (this.#wakeFd < 0) throw new Error(`eventfd: ${errnoName(errno())}`);
    const { port1, port2 } = new MessageChannel();
    this.#port = port1;
    const data: SocketWorkerData = {
      fd, wakeFd: this.#wakeFd, port: port2, dialect: options.dialect,
      initial: options.initial ?? new Uint8Array(0), ram: options.ram ?? [],
      slots: options.slots === undefined ? null : { buffer: options.slots.buffer, doorbells: options.slots.doorbells },
    };
    this.#worker = new Worker(new URL('./socket-worker.js', import.meta.url), {
      workerData: data, transferList: [port2], name: 'kvmi-socket',
      resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 64, stackSizeMb: 1 },
    });
    const peerClosed = (error?: string): void => {
      if (this.#peerClosed) return;
      this.#peerClosed = true;
      options.onPeerClosed(error);
    };
    port1.on('message', (m: FromSocketThread) => {
      switch (m.type) {
        case 'frames':
          options.onFrames(m.frames);
          break;
        case 'violation':
          options.onViolation(m.message);
          break;
        case 'peer-closed':
          peerClosed(m.error);
          break;
        case 'direct-answered':
          options.onDirectAnswered?.(m.vcpu);
          break;
      }
    });
    this.ended = new Promise<void>((resolve) => {
      this.#worker.once('error', (e) => peerClosed(`the socket thread failed: ${e.message}`));
      this.#worker.once('exit', () => {
        this.#closed = true;
        port1.close();
        close(this.#wakeFd);
        // A thread that ends before it was told to has lost the connection.
        peerClosed(this.#closing ? undefined : 'the socket thread ended');
        resolve();
      });
    });
  }

  #post(m: ToSocketThread): void {
    if (this.#closed) return;
    this.#port.postMessage(m);
    write(this.#wakeFd, EVENTFD_ONE, 8);
  }

  write(bytes: Uint8Array): void {
    this.#post({ type: 'write', bytes });
  }

  handled(replies: boolean): void {
    this.#post({ type: 'handled', replies });
  }

  close(): void {
    this.#closing = true;
    this.#post({ type: 'close' });
  }
}
