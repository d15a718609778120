/**
 * Shared words through which a vCPU thread sends its own introspection event to the tool and
 * gets the answer without the main thread: the event is one exit, one socket write by the
 * vCPU's thread and one wake-up by the socket thread when the reply arrives, as in a C VMM.
 * Used by three kinds of thread over one SharedArrayBuffer:
 *
 *   session (main)   which events each vCPU may send itself (the "wanted" bits), and it
 *                    claims a vCPU's slot before sending an event of its own;
 *   vCPU thread      claims its slot, writes the event to the socket under the write lock;
 *   socket thread    writes under the same lock, and answers the vCPU when the tool's reply
 *                    matches the event in the slot exactly.
 *
 * One event per vCPU is outstanding at a time, whoever sent it: the slot says who (free,
 * the session, the vCPU itself). Whoever hands the vCPU the tool's answer frees the slot. A
 * vCPU that cannot send directly (slot taken, socket backed up or closed, event not wanted)
 * raises the event the old way, through the main thread: nothing is ever lost, only slower.
 *
 * The socket is written by two kinds of thread, so every write is made under one lock, and a
 * vCPU writes only when the socket thread has nothing queued (order) and only whole messages:
 * a unix stream socket takes a message this small whole or not at all (EAGAIN).
 */
import { EINTR } from '../../kvm/errno.js';
import { errno, MSG_NOSIGNAL, send, SHUT_RDWR, shutdown } from '../../kvm/libc.js';
import type { DialectName, KvmiAction } from '../wire/ids.js';

export const WANT_BREAKPOINT = 1;
export const WANT_SINGLESTEP = 2;

/**
 * A slot word: free, the session's, or the sequence number of the vCPU's own event (never 0
 * or ~0), so that a claim publishes which event it is and an answer frees exactly that event
 * in one compare-and-swap, whatever happened between.
 */
const SLOT_FREE = 0;
const SLOT_SESSION = -1;

// Global words.
const LOCK = 0;
/** 1 while FD is a socket the socket thread keeps open. */
const OPEN = 1;
const FD = 2;
/** 1 while the socket thread has output queued: nobody else may write before it. */
const BACKLOG = 3;
const NEXT_SEQ = 4;
/** The session's dialect: an index into DIALECT_NAMES. */
const DIALECT = 5;
const GLOBAL_WORDS = 8;
const DIALECT_NAMES: readonly DialectName[] = ['v7', 'rfc-v5'];

// Per-vCPU words.
const WANT = 0;
const SLOT = 1;
/** The dialect's number of the event in the slot. */
const EVENT = 2;
/** The answer for the vCPU: 0 none, else 1 + the KVMI action number. */
const REPLY = 3;
/** Events the session has queued for this vCPU: the reply must go through the session then. */
const QUEUED = 4;
const VCPU_WORDS = 8;

const ACTIONS: readonly KvmiAction[] = ['continue', 'retry', 'crash'];

/** A word another thread sleeps on (a vCPU's doorbell): add one and wake it. */
export interface Doorbell {
  readonly buffer: SharedArrayBuffer;
  readonly index: number;
}

export class EventSlots {
  readonly buffer: SharedArrayBuffer;
  /** What wakes each vCPU when this instance answers it (empty in the vCPU threads). */
  readonly doorbells: readonly Doorbell[];
  readonly #w: Int32Array;
  /** `doorbells` as words to ring. */
  readonly #bells: ReadonlyArray<{ word: Int32Array; index: number }>;

  /** New slots for `vcpuCount` vCPUs; `doorbells[i]` wakes vCPU i when its answer is in. */
  static create(vcpuCount: number, doorbells: readonly Doorbell[]): EventSlots {
    return new EventSlots(new SharedArrayBuffer((GLOBAL_WORDS + vcpuCount * VCPU_WORDS) * 4), doorbells);
  }

  /** The same slots seen from another thread (doorbells: only where answers are given). */
  constructor(buffer: SharedArrayBuffer, doorbells: readonly Doorbell[] = []) {
    this.buffer = buffer;
    this.doorbells = [...doorbells];
    this.#w = new Int32Array(buffer);
    this.#bells = doorbells.map((d) => ({ word: new Int32Array(d.buffer), index: d.index }));
  }

  get vcpuCount(): number {
    return (this.#w.length - GLOBAL_WORDS) / VCPU_WORDS;
  }

  #at(vcpu: number, word: number): number {
    if (!Number.isInteger(vcpu) || vcpu < 0 || vcpu >= this.vcpuCount) throw new RangeError(`no vCPU ${vcpu}`);
    return GLOBAL_WORDS + vcpu * VCPU_WORDS + word;
  }

  /** Event sequence numbers for every sender: 1, 2, ... 2^32-1, 1, ... (never 0). */
  nextSeq(): number {
    for (;;) {
      const seq = Atomics.add(this.#w, NEXT_SEQ, 1) >>> 0;
      if (seq !== 0 && (seq | 0) !== SLOT_SESSION) return seq;
    }
  }

  // ---- the write lock (socket thread and vCPU threads) ----

  lock(): void {
    while (Atomics.compareExchange(this.#w, LOCK, 0, 1) !== 0) Atomics.wait(this.#w, LOCK, 1, 1);
  }

  unlock(): void {
    Atomics.store(this.#w, LOCK, 0);
    Atomics.notify(this.#w, LOCK, 1);
  }

  // ---- the socket thread ----

  /** The socket vCPUs may write to, from now on (call with the lock held). */
  openSocket(fd: number): void {
    Atomics.store(this.#w, FD, fd);
    Atomics.store(this.#w, BACKLOG, 0);
    Atomics.store(this.#w, OPEN, 1);
  }

  /** No vCPU writes to the socket after this returns (call with the lock held). */
  closeSocket(): void {
    Atomics.store(this.#w, OPEN, 0);
    Atomics.store(this.#w, FD, -1);
  }

  /** Whether the socket thread has output waiting (call with the lock held). */
  setBacklog(backlog: boolean): void {
    Atomics.store(this.#w, BACKLOG, backlog ? 1 : 0);
  }

  // ---- the session ----

  /** The numbering vCPUs use for the events they send (set by the session as it starts). */
  setDialect(d: DialectName): void {
    Atomics.store(this.#w, DIALECT, DIALECT_NAMES.indexOf(d));
  }

  get dialect(): DialectName {
    return DIALECT_NAMES[Atomics.load(this.#w, DIALECT)] ?? 'v7';
  }

  /** Which events vCPU `vcpu` may send itself (WANT_* bits). */
  setWanted(vcpu: number, mask: number): void {
    Atomics.store(this.#w, this.#at(vcpu, WANT), mask);
  }

  /** Events the session has waiting for this vCPU. */
  setQueued(vcpu: number, count: number): void {
    Atomics.store(this.#w, this.#at(vcpu, QUEUED), count);
  }

  queued(vcpu: number): number {
    return Atomics.load(this.#w, this.#at(vcpu, QUEUED));
  }

  /** Takes the slot for an event of the session; false while the vCPU's own event is out. */
  claimForSession(vcpu: number): boolean {
    const s = this.#at(vcpu, SLOT);
    const was = Atomics.compareExchange(this.#w, s, SLOT_FREE, SLOT_SESSION);
    return was === SLOT_FREE || was === SLOT_SESSION;
  }

  releaseSession(vcpu: number): void {
    Atomics.compareExchange(this.#w, this.#at(vcpu, SLOT), SLOT_SESSION, SLOT_FREE);
  }

  /** The vCPU's own outstanding event: its sequence number and the dialect's event number. */
  direct(vcpu: number): { seq: number; event: number } | undefined {
    if (vcpu >= this.vcpuCount) return undefined;
    const slot = Atomics.load(this.#w, this.#at(vcpu, SLOT));
    if (slot === SLOT_FREE || slot === SLOT_SESSION) return undefined;
    return { seq: slot >>> 0, event: Atomics.load(this.#w, this.#at(vcpu, EVENT)) };
  }

  /**
   * Gives the vCPU the answer to its own event `seq` and frees the slot; false when that
   * event is not outstanding (any more). Whoever answers must check `queued` afterwards: an
   * event the session queued meanwhile can go out now.
   */
  answer(vcpu: number, seq: number, action: KvmiAction): boolean {
    if (vcpu >= this.vcpuCount || seq === 0 || (seq | 0) === SLOT_SESSION) return false;
    if (Atomics.compareExchange(this.#w, this.#at(vcpu, SLOT), seq | 0, SLOT_FREE) !== (seq | 0)) return false;
    // The vCPU waits for this word: it cannot claim the freed slot before seeing it.
    Atomics.store(this.#w, this.#at(vcpu, REPLY), 1 + ACTIONS.indexOf(action));
    const bell = this.#bells[vcpu];
    if (bell !== undefined) {
      Atomics.add(bell.word, bell.index, 1);
      Atomics.notify(bell.word, bell.index);
    }
    return true;
  }

  // ---- the vCPU thread ----

  /**
   * Sends the vCPU's event to the tool itself when it may: the event is wanted (`want`), the
   * slot is free, the socket open with nothing queued. `message(seq)` builds the whole KVMI
   * message. True: the event is out and its answer will come through `takeAnswer`.
   */
  trySend(vcpu: number, want: number, event: number, message: (seq: number) => Uint8Array): boolean {
    if ((Atomics.load(this.#w, this.#at(vcpu, WANT)) & want) === 0 || Atomics.load(this.#w, OPEN) !== 1) return false;
    // Cleared before the claim: an answer given right after the claim must survive.
    Atomics.store(this.#w, this.#at(vcpu, REPLY), 0);
    const seq = this.nextSeq();
    if (Atomics.compareExchange(this.#w, this.#at(vcpu, SLOT), SLOT_FREE, seq | 0) !== SLOT_FREE) return false;
    // Read by whoever matches the tool's reply, which cannot come before the message below.
    Atomics.store(this.#w, this.#at(vcpu, EVENT), event);
    let bytes: Uint8Array;
    try {
      bytes = message(seq);
    } catch {
      Atomics.compareExchange(this.#w, this.#at(vcpu, SLOT), seq | 0, SLOT_FREE);
      return false;
    }
    let sent = -1;
    this.lock();
    try {
      if (Atomics.load(this.#w, OPEN) === 1 && Atomics.load(this.#w, BACKLOG) === 0) {
        const fd = Atomics.load(this.#w, FD);
        do sent = send(fd, bytes, bytes.length, MSG_NOSIGNAL); while (sent < 0 && errno() === EINTR);
        // A unix stream socket takes a message this small whole or not at all; should it
        // ever take part of one, the stream is lost: end the connection (the session's end
        // then answers this event CONTINUE).
        if (sent > 0 && sent < bytes.length) shutdown(fd, SHUT_RDWR);
      }
    } finally {
      this.unlock();
    }
    if (sent > 0) return true;
    // Not sent (EAGAIN, a socket closing): the slot is free again and the event goes the slow way.
    Atomics.compareExchange(this.#w, this.#at(vcpu, SLOT), seq | 0, SLOT_FREE);
    return false;
  }

  /** The answer to the vCPU's own event, once given (then cleared); null until then. */
  takeAnswer(vcpu: number): KvmiAction | null {
    const r = Atomics.exchange(this.#w, this.#at(vcpu, REPLY), 0);
    return r === 0 ? null : (ACTIONS[r - 1] ?? 'continue');
  }
}
