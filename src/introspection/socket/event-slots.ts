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
import {
  EPOLL_CTL_MOD, EPOLL_EVENT_SIZE, EPOLLIN, epollCtl, errno, EVENTFD_ONE, MSG_NOSIGNAL, send, SHUT_RDWR, shutdown, write,
} from '../../kvm/libc.js';
import type { DialectName, KvmiAction } from '../wire/ids.js';
import { Doorbell, type DoorbellWord } from '../../vcpu/doorbell.js';

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
/** Who reads the socket now: nobody (0), the socket thread (-1), or 1 + a vCPU (own-reply.ts). */
const READER = 6;
/** 1 while a vCPU may read its own reply: the socket thread holds no part of a frame and nothing waits for the session. */
const READ_OK = 7;
/** The socket thread's epoll (-1: none); a vCPU reading its own reply takes the socket out of it meanwhile. */
const EPOLL_FD = 8;
/** The socket thread's wake-up eventfd. */
const WAKE_FD = 9;
/** 1 while the socket thread wants to read (it stops while the session or the tool is behind). */
const WANT_IN = 10;
/** Bytes a vCPU took off the socket that were not its reply, for the socket thread (CARRY_BYTES at CARRY). */
const CARRY_LENGTH = 11;
const CARRY = 12;
export const CARRY_BYTES = 64;
const GLOBAL_WORDS = CARRY + CARRY_BYTES / 4;
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
/** 1: the vCPU answered its own event while the session had events queued for it. */
const NOTICE = 5;
const VCPU_WORDS = 8;

const ACTIONS: readonly KvmiAction[] = ['continue', 'retry', 'crash'];

export class EventSlots {
  readonly buffer: SharedArrayBuffer;
  /** What wakes each vCPU when this instance answers it (empty in the vCPU threads). */
  readonly doorbells: readonly DoorbellWord[];
  readonly #w: Int32Array;
  readonly #bells: readonly Doorbell[];
  /** A struct epoll_event for #applyInterest (data 0: the socket). */
  readonly #event = new Uint8Array(EPOLL_EVENT_SIZE);
  readonly #eventView = new DataView(this.#event.buffer);

  /** New slots for `vcpuCount` vCPUs; `doorbells[i]` wakes vCPU i when its answer is in. */
  static create(vcpuCount: number, doorbells: readonly DoorbellWord[]): EventSlots {
    return new EventSlots(new SharedArrayBuffer((GLOBAL_WORDS + vcpuCount * VCPU_WORDS) * 4), doorbells);
  }

  /** The same slots seen from another thread (doorbells: only where answers are given). */
  constructor(buffer: SharedArrayBuffer, doorbells: readonly DoorbellWord[] = []) {
    this.buffer = buffer;
    this.doorbells = [...doorbells];
    this.#w = new Int32Array(buffer);
    this.#bells = doorbells.map((d) => new Doorbell(d));
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

  /**
   * The socket vCPUs may write to, from now on (call with the lock held). With `epollFd`, the
   * socket thread's epoll that has `fd` registered with data 0, a vCPU may also read the reply
   * to its own event; `wakeFd` is then the thread's eventfd.
   */
  openSocket(fd: number, epollFd = -1, wakeFd = -1): void {
    Atomics.store(this.#w, FD, fd);
    Atomics.store(this.#w, BACKLOG, 0);
    Atomics.store(this.#w, EPOLL_FD, epollFd);
    Atomics.store(this.#w, WAKE_FD, wakeFd);
    Atomics.store(this.#w, WANT_IN, 1);
    Atomics.store(this.#w, READ_OK, 0);
    Atomics.store(this.#w, READER, -1);
    Atomics.store(this.#w, OPEN, 1);
  }

  /**
   * No vCPU writes to the socket after this returns (call with the lock held), and none
   * starts reading it; one that is reading stops within its wait (`waitForReaders`).
   */
  closeSocket(): void {
    Atomics.store(this.#w, OPEN, 0);
    Atomics.store(this.#w, READ_OK, 0);
    Atomics.store(this.#w, EPOLL_FD, -1);
    Atomics.store(this.#w, WAKE_FD, -1);
    Atomics.store(this.#w, FD, -1);
  }

  /** Takes the socket's reading side; false while a vCPU reads its own reply. */
  takeReading(): boolean {
    const r = Atomics.compareExchange(this.#w, READER, 0, -1);
    return r === 0 || r === -1;
  }

  /**
   * Gives the reading side up before sleeping. `readOk`: a vCPU may read the next frame
   * itself (the thread holds no part of one, and the session has every frame it was given).
   */
  leaveReading(readOk: boolean): void {
    if (Atomics.load(this.#w, READER) !== -1) return;
    Atomics.store(this.#w, READ_OK, readOk ? 1 : 0);
    Atomics.store(this.#w, READER, 0);
  }

  /** Waits until no vCPU reads the socket, and keeps them out (before it is closed). */
  waitForReaders(): void {
    for (;;) {
      const r = Atomics.compareExchange(this.#w, READER, 0, -1);
      if (r === 0 || r === -1) return;
      Atomics.wait(this.#w, READER, r, 1);
    }
  }

  /** Whether the socket thread wants to read (call with the lock held); updates its epoll. */
  setWantIn(want: boolean): void {
    Atomics.store(this.#w, WANT_IN, want ? 1 : 0);
    this.#applyInterest();
  }

  /** Bytes a vCPU read that were not its reply: they come before anything still on the socket. */
  takeCarried(): Uint8Array | null {
    const n = Atomics.load(this.#w, CARRY_LENGTH);
    if (n === 0) return null;
    const bytes = new Uint8Array(this.buffer, CARRY * 4, n).slice();
    Atomics.store(this.#w, CARRY_LENGTH, 0);
    return bytes;
  }

  /** vCPUs that answered their own event while the session had events queued for them. */
  takeNotices(): number[] {
    const out: number[] = [];
    for (let v = 0; v < this.vcpuCount; v++) if (Atomics.exchange(this.#w, this.#at(v, NOTICE), 0) !== 0) out.push(v);
    return out;
  }

  /** The socket in the socket thread's epoll: readable interest only while the thread itself may read (lock held). */
  #applyInterest(): void {
    const epfd = Atomics.load(this.#w, EPOLL_FD);
    if (epfd < 0) return;
    const on = Atomics.load(this.#w, WANT_IN) === 1 && Atomics.load(this.#w, READER) <= 0;
    this.#event.fill(0);
    this.#eventView.setUint32(0, on ? EPOLLIN : 0, true);
    epollCtl(epfd, EPOLL_CTL_MOD, Atomics.load(this.#w, FD), this.#event);
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
    this.#bells[vcpu]?.ring();
    return true;
  }

  // ---- the vCPU thread ----

  /**
   * Sends the vCPU's event to the tool itself when it may: the event is wanted (`want`), the
   * slot is free, the socket open with nothing queued. `message(seq)` builds the whole KVMI
   * message. True: the event is out and its answer will come through `takeAnswer`.
   * `ownRead`: also take the socket's reading side when the socket thread allows it, before
   * the event leaves, so that the reply wakes this thread instead (`reading`, own-reply.ts).
   */
  trySend(vcpu: number, want: number, event: number, message: (seq: number) => Uint8Array, ownRead = false): boolean {
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
    let reading = false;
    this.lock();
    try {
      if (Atomics.load(this.#w, OPEN) === 1 && Atomics.load(this.#w, BACKLOG) === 0) {
        if (ownRead) reading = this.#claimReading(vcpu);
        const fd = Atomics.load(this.#w, FD);
        do sent = send(fd, bytes, bytes.length, MSG_NOSIGNAL); while (sent < 0 && errno() === EINTR);
        // A unix stream socket takes a message this small whole or not at all; should it
        // ever take part of one, the stream is lost: end the connection (the session's end
        // then answers this event CONTINUE).
        if (sent > 0 && sent < bytes.length) shutdown(fd, SHUT_RDWR);
        if (sent <= 0 && reading) this.#dropReading(vcpu);
      }
    } finally {
      this.unlock();
    }
    if (sent > 0) return true;
    // Not sent (EAGAIN, a socket closing): the slot is free again and the event goes the slow way.
    Atomics.compareExchange(this.#w, this.#at(vcpu, SLOT), seq | 0, SLOT_FREE);
    return false;
  }

  /** The socket's reading side for `vcpu`, if the socket thread offers it (lock held). */
  #claimReading(vcpu: number): boolean {
    if (Atomics.load(this.#w, EPOLL_FD) < 0 || this.queued(vcpu) > 0) return false;
    if (Atomics.compareExchange(this.#w, READER, 0, 1 + vcpu) !== 0) return false;
    // Stable now: the socket thread sets READ_OK only while it holds the reading side.
    if (Atomics.load(this.#w, READ_OK) !== 1) {
      Atomics.store(this.#w, READER, 0);
      return false;
    }
    this.#applyInterest();
    return true;
  }

  #dropReading(vcpu: number): void {
    if (Atomics.compareExchange(this.#w, READER, 1 + vcpu, 0) !== 1 + vcpu) return;
    this.#applyInterest(); // the socket thread wakes if anything is waiting to be read
    Atomics.notify(this.#w, READER);
  }

  /** Whether a vCPU could take the socket's reading side now. */
  get offersReading(): boolean {
    return Atomics.load(this.#w, READER) === 0 && Atomics.load(this.#w, READ_OK) === 1 && Atomics.load(this.#w, EPOLL_FD) >= 0;
  }

  /** Whether `vcpu` holds the socket's reading side (see trySend). */
  reading(vcpu: number): boolean {
    return Atomics.load(this.#w, READER) === 1 + vcpu;
  }

  /** The socket the vCPU reads while `reading`. */
  get socketFd(): number {
    return Atomics.load(this.#w, FD);
  }

  /**
   * Hands the reading side back to the socket thread, with `carried`: what the vCPU read that
   * was not its reply (at most CARRY_BYTES; the socket thread takes it before reading on).
   */
  stopReading(vcpu: number, carried?: Uint8Array): void {
    const carrying = carried !== undefined && carried.length > 0 && Atomics.load(this.#w, READER) === 1 + vcpu;
    if (carrying) {
      if (carried.length > CARRY_BYTES) throw new RangeError(`${carried.length} carried bytes`);
      new Uint8Array(this.buffer, CARRY * 4, CARRY_BYTES).set(carried);
      Atomics.store(this.#w, CARRY_LENGTH, carried.length);
      // No vCPU reads again before the socket thread has taken these.
      Atomics.store(this.#w, READ_OK, 0);
      // They may be all there is, so the socket thread must look even if the socket stays
      // quiet; woken while this vCPU still reads, it waits for it (`carrying`). The eventfd
      // is written while the reading side is held: the thread cannot end (and close it) before.
      const fd = Atomics.load(this.#w, WAKE_FD);
      if (fd >= 0) write(fd, EVENTFD_ONE, 8);
    }
    this.lock();
    try {
      this.#dropReading(vcpu);
    } finally {
      this.unlock();
    }
  }

  /** Whether bytes a vCPU read wait for the socket thread (takeCarried). */
  get carrying(): boolean {
    return Atomics.load(this.#w, CARRY_LENGTH) !== 0;
  }


  /**
   * After answering its own event: when the session queued events for the vCPU meanwhile,
   * the socket thread tells it they can go out now.
   */
  noticeAnswered(vcpu: number): void {
    // Called while the vCPU still holds the reading side: the eventfd is still open.
    if (this.queued(vcpu) === 0) return;
    Atomics.store(this.#w, this.#at(vcpu, NOTICE), 1);
    const fd = Atomics.load(this.#w, WAKE_FD);
    if (fd >= 0) write(fd, EVENTFD_ONE, 8);
  }

  /** The answer to the vCPU's own event, once given (then cleared); null until then. */
  takeAnswer(vcpu: number): KvmiAction | null {
    const r = Atomics.exchange(this.#w, this.#at(vcpu, REPLY), 0);
    return r === 0 ? null : (ACTIONS[r - 1] ?? 'continue');
  }
}
