/**
 * The iBase IB700 single-board-computer watchdog, as QEMU 7.2's `-device ib700` shows it to
 * a guest (behaviour checked by running QEMU, docs/guest-events-qemu.md):
 *
 * - ports 0x441 and 0x442: any write disarms the watchdog;
 * - ports 0x443 and 0x444: any write (re)arms it, expiring `IB700_TIMEOUTS_S[value & 0xf]`
 *   seconds later (30, 28, ..., 2, 0); a write while armed replaces the deadline;
 * - reads return 0xff (the ports are write-only);
 * - a 16-bit write to 0x441 or 0x443 is two byte writes to that port and the next, low byte
 *   first; at 0x442 or 0x444 only the low byte counts; a 32-bit write does nothing;
 * - on expiry the watchdog action runs once and the watchdog is disarmed until the guest
 *   arms it again; a machine reset disarms it;
 * - time only runs while the VM runs (QEMU's virtual clock): 6 s armed, stopped for 6 s
 *   after 1 s, resumed, expires 5 s after the resume.
 *
 * A vCPU thread cannot run a timer, so the device only keeps the deadline in shared memory
 * and tells the machine's main thread through `changed()`; the main thread (re)arms one
 * timer from `armed()` and calls `expire()` when it fires. The clock is `monotonicMs()`:
 * CLOCK_MONOTONIC through process.hrtime, which is the same clock in every thread of the
 * process (unlike performance.now(), whose origin is per thread).
 *
 * Every change bumps a generation counter, kept even when stable and odd while a change is
 * being written, so `armed()` can be read without the device lock (the main thread must not
 * block on it); every other method runs under the device lock, like a bus access.
 *
 * The main thread's side, in short:
 *   on changed() (or Atomics.waitAsync on generationCell): clearTimeout(t);
 *     const a = wd.armed(); if (a) t = setTimeout(fire, Math.max(0, a.deadline - monotonicMs()), a.generation)
 *   fire(gen): under the device lock, if (wd.expire(gen)) perform the watchdog action
 *   on stop / cont of the VM: wd.stopClock() / wd.startClock()
 */
import type { BusDevice } from '../device.js';
import type { SharedRegion } from '../shared-state.js';

/** The first port QEMU's ib700 occupies; it takes four (0x441..0x444). */
export const IB700_BASE_PORT = 0x441;
export const IB700_PORT_COUNT = 4;
export const IB700_DISABLE_PORT = 0x441;
export const IB700_ENABLE_PORT = 0x443;

// Offsets from IB700_BASE_PORT.
const DISABLE_LO = 0;
const DISABLE_HI = 1;
const ENABLE_LO = 2;
const ENABLE_HI = 3;

/** Timeout in seconds for each index (the low nibble written to the enable port). */
export const IB700_TIMEOUTS_S: readonly number[] = Object.freeze(Array.from({ length: 16 }, (_, i) => 30 - 2 * i));

/** Milliseconds on CLOCK_MONOTONIC, with microsecond resolution; the same in every thread. */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint() / 1000n) / 1000;
}

/** Tells the main thread that the watchdog was armed, disarmed or its clock stopped/started. */
export interface Ib700Events {
  changed(): void;
}

export interface Ib700Options {
  /** Milliseconds on a clock shared by every thread; tests inject one. Default monotonicMs. */
  now?: () => number;
}

/** A pending expiry, as the main thread needs it to set its timer. */
export interface Ib700Timer {
  /** Pass back to expire(): a stale timer (re-armed or disarmed since) then does nothing. */
  generation: number;
  /** When to fire, on the device's clock (monotonicMs by default). */
  deadline: number;
}

// Layout of the shared region (byte offsets).
const S_GENERATION = 0; // i32, even when stable
const S_ARMED = 4; // i32: 0 or 1
const S_CLOCK_STOPPED = 8; // i32: 0 or 1
const S_TIME = 16; // f64: the deadline while the clock runs, the time left while stopped

export class Ib700 implements BusDevice {
  static readonly STATE_BYTES = 24;

  /** One-element view of the generation word, for Atomics.waitAsync on the main thread. */
  readonly generationCell: Int32Array;
  private readonly i32: Int32Array;
  private readonly view: DataView;
  private readonly now: () => number;

  constructor(
    region: SharedRegion,
    private readonly events: Ib700Events,
    opts: Ib700Options = {},
  ) {
    if (region.length < Ib700.STATE_BYTES) throw new RangeError('Ib700: shared region too small');
    this.i32 = region.i32;
    this.view = region.view;
    this.generationCell = new Int32Array(region.sab, region.offset + S_GENERATION, 1);
    this.now = opts.now ?? monotonicMs;
    // All-zero bytes are the power-on state (disarmed, clock running): nothing to initialise.
  }

  read(_offset: number, data: Uint8Array): void {
    data.fill(0xff);
  }

  write(offset: number, data: Uint8Array): void {
    // QEMU's port list: a 16-bit write is split in two only within one register pair
    // (0x441/0x442 or 0x443/0x444), and a 32-bit write is dropped whole.
    if (data.length === 0 || data.length > 2) return;
    this.writeByte(offset, data[0]!);
    if (data.length === 2 && (offset === DISABLE_LO || offset === ENABLE_LO)) this.writeByte(offset + 1, data[1]!);
  }

  /** A machine reset disarms the watchdog. */
  reset(): void {
    this.disarm();
  }

  get generation(): number {
    return Atomics.load(this.i32, S_GENERATION >> 2);
  }

  /** Whether the guest has armed the watchdog and it has not expired since. */
  get enabled(): boolean {
    return Atomics.load(this.i32, S_ARMED >> 2) === 1;
  }

  /**
   * The pending expiry, or null when disarmed or while the clock is stopped. Safe without
   * the device lock: it retries while a change is being written.
   */
  armed(): Ib700Timer | null {
    for (;;) {
      const before = Atomics.load(this.i32, S_GENERATION >> 2);
      if (before & 1) continue; // a vCPU is writing; it holds the lock only briefly
      const armed = Atomics.load(this.i32, S_ARMED >> 2) === 1;
      const stopped = Atomics.load(this.i32, S_CLOCK_STOPPED >> 2) === 1;
      const deadline = this.view.getFloat64(S_TIME, true);
      if (Atomics.load(this.i32, S_GENERATION >> 2) !== before) continue;
      return armed && !stopped ? { generation: before, deadline } : null;
    }
  }

  /**
   * The main thread's timer for `generation` fired. Returns true when the watchdog expired:
   * it is now disarmed and the caller performs the watchdog action (once). False when the
   * timer was stale (the guest re-armed or disarmed it, a reset, a clock stop).
   */
  expire(generation: number): boolean {
    if (generation !== this.generation || !this.enabled) return false;
    if (Atomics.load(this.i32, S_CLOCK_STOPPED >> 2) === 1) return false;
    this.disarm();
    return true;
  }

  /** The VM stopped: freeze the time left, as QEMU's virtual clock stops with the VM. */
  stopClock(): void {
    if (Atomics.load(this.i32, S_CLOCK_STOPPED >> 2) === 1) return;
    this.change(() => {
      Atomics.store(this.i32, S_CLOCK_STOPPED >> 2, 1);
      if (this.enabled) this.view.setFloat64(S_TIME, Math.max(0, this.view.getFloat64(S_TIME, true) - this.now()), true);
    });
  }

  /** The VM runs again: the time left starts counting down from now. */
  startClock(): void {
    if (Atomics.load(this.i32, S_CLOCK_STOPPED >> 2) === 0) return;
    this.change(() => {
      Atomics.store(this.i32, S_CLOCK_STOPPED >> 2, 0);
      if (this.enabled) this.view.setFloat64(S_TIME, this.now() + this.view.getFloat64(S_TIME, true), true);
    });
  }

  private writeByte(offset: number, value: number): void {
    if (offset === DISABLE_LO || offset === DISABLE_HI) this.disarm();
    else if (offset === ENABLE_LO || offset === ENABLE_HI) this.arm(IB700_TIMEOUTS_S[value & 0xf]! * 1000);
  }

  private arm(timeoutMs: number): void {
    this.change(() => {
      Atomics.store(this.i32, S_ARMED >> 2, 1);
      const stopped = Atomics.load(this.i32, S_CLOCK_STOPPED >> 2) === 1;
      this.view.setFloat64(S_TIME, stopped ? timeoutMs : this.now() + timeoutMs, true);
    });
  }

  private disarm(): void {
    // A guest driver may disable an idle watchdog: no news for the main thread then.
    if (!this.enabled) return;
    this.change(() => {
      Atomics.store(this.i32, S_ARMED >> 2, 0);
      this.view.setFloat64(S_TIME, 0, true);
    });
  }

  /** Writes a change between an odd and the next even generation, then tells the main thread. */
  private change(update: () => void): void {
    Atomics.add(this.i32, S_GENERATION >> 2, 1);
    try {
      update();
    } finally {
      Atomics.add(this.i32, S_GENERATION >> 2, 1);
      Atomics.notify(this.i32, S_GENERATION >> 2);
    }
    this.events.changed();
  }
}
