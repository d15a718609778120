/**
 * A vCPU's doorbell: a word others add one to when they want the stopped vCPU to look again
 * (a command posted, a run request, the answer to its introspection event).
 *
 * The vCPU sleeps on it with a bare futex, not Atomics.wait. V8 parks Atomics.wait on one
 * process-wide mutex and wakes the sleeper while still holding it, so the woken vCPU
 * blocked again at once on that mutex: on one CPU, two more context switches and three more
 * futex calls per introspection event (seen with strace). Ringing also does Atomics.notify,
 * for a thread that waits with Atomics.waitAsync instead (the tests' FakeTarget).
 */
import { EINTR } from '../kvm/errno.js';
import { addressOfWord, errno, futexWait, futexWake, timespec } from '../kvm/libc.js';

/** Where a doorbell lives; any thread can make a Doorbell of it. */
export interface DoorbellWord {
  readonly buffer: SharedArrayBuffer;
  readonly index: number;
}

export class Doorbell {
  readonly #words: Int32Array;
  readonly #index: number;
  readonly #address: bigint;
  /** The last timeout waited with, as a struct timespec (a halted vCPU waits 10 ms each time). */
  #timeoutMs = -1;
  #timeout = timespec(0);

  constructor(at: DoorbellWord) {
    this.#words = new Int32Array(at.buffer);
    this.#index = at.index;
    this.#address = addressOfWord(this.#words, at.index);
  }

  /** What the bell reads now: pass it to `wait` after checking for work. */
  get value(): number {
    return Atomics.load(this.#words, this.#index);
  }

  ring(): void {
    Atomics.add(this.#words, this.#index, 1);
    Atomics.notify(this.#words, this.#index);
    futexWake(this.#address, 0x7fffffff);
  }

  /**
   * Sleeps until the bell no longer reads `seen` (or `timeoutMs` passes, or a signal comes).
   * Returns at once if it rang since `seen` was read, so no ring is ever missed.
   */
  wait(seen: number, timeoutMs?: number): void {
    if (timeoutMs !== undefined && timeoutMs !== this.#timeoutMs) {
      this.#timeoutMs = timeoutMs;
      this.#timeout = timespec(timeoutMs);
    }
    const timeout = timeoutMs === undefined ? null : this.#timeout;
    while (futexWait(this.#address, seen, timeout) < 0 && errno() === EINTR && timeout === null && this.value === seen);
  }
}
