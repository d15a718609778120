/** What the main thread and the KVMI socket thread say to each other. */
import type { MessagePort } from 'node:worker_threads';
import type { Frame } from '../wire/header.js';
import type { DialectName } from '../wire/ids.js';
import type { RamMapping } from '../target.js';
import type { DoorbellWord } from '../../vcpu/doorbell.js';

export interface SocketWorkerData {
  /** The connected socket; the thread closes it when it ends. */
  readonly fd: number;
  /** An eventfd the main thread writes after every message it posts. */
  readonly wakeFd: number;
  readonly port: MessagePort;
  readonly dialect: DialectName;
  /** Bytes the tool sent before the thread started (right after its handshake). */
  readonly initial: Uint8Array;
  /** Guest RAM the thread answers READ_PHYSICAL from; empty: every read goes to the session. */
  readonly ram: readonly RamMapping[];
  /** The target's event slots (event-slots.ts): vCPUs write their own events, replies are routed here. */
  readonly slots: { readonly buffer: SharedArrayBuffer; readonly doorbells: readonly DoorbellWord[] } | null;
}

/** Main thread → socket thread. */
export type ToSocketThread =
  /** One whole message to send, after everything queued before it. */
  | { type: 'write'; bytes: Uint8Array }
  /** The session is done with one forwarded frame (its reply, if any, already posted). */
  | { type: 'handled'; replies: boolean }
  /** Send what is queued, then close the socket and end. */
  | { type: 'close' };

/** Socket thread → main thread. */
export type FromSocketThread =
  /** Frames for the session, in arrival order. */
  | { type: 'frames'; frames: Frame[] }
  /** The byte stream broke the framing rules; nothing more is read. */
  | { type: 'violation'; message: string }
  /** The tool closed the connection, or it failed (`error`: how). */
  | { type: 'peer-closed'; error?: string }
  /** A vCPU's own event was answered here while the session had events queued for that vCPU. */
  | { type: 'direct-answered'; vcpu: number };
