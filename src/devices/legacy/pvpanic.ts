/**
 * The ISA pvpanic device: one byte-wide port (0x505 by default) through which a guest kernel
 * tells the host that it panicked or that a crash kernel is loaded, as QEMU 7.2's
 * `-device pvpanic` shows it (behaviour checked by running QEMU, docs/guest-events-qemu.md).
 *
 * - A read returns the events the device supports (PANICKED | CRASH_LOADED by default).
 * - A write reports an event: PANICKED wins when both bits are set (only GUEST_PANICKED
 *   follows, no GUEST_CRASHLOADED), other bits are ignored. The supported-events mask is
 *   only advertised: QEMU 7.2 reports CRASH_LOADED even with `events=1`.
 * - A wider access behaves as that many byte accesses to the same register: a 16-bit read
 *   gives the events byte twice (QEMU: 0x0303, and 0x03030303 for 32 bits), a 16-bit write
 *   of 0x0100 reports PANICKED.
 *
 * The device has no mutable state, so it needs no shared region: every thread builds its own
 * copy, and the callbacks run on the vCPU thread that made the access.
 */
import type { BusDevice } from '../device.js';

export const PVPANIC_DEFAULT_PORT = 0x505;
/** Ports the device occupies on the ISA bus. */
export const PVPANIC_PORT_COUNT = 1;

/** The guest panicked (GUEST_PANICKED). */
export const PVPANIC_PANICKED = 1 << 0;
/** A crash kernel is loaded and about to take over (GUEST_CRASHLOADED). */
export const PVPANIC_CRASH_LOADED = 1 << 1;
export const PVPANIC_EVENTS_ALL = PVPANIC_PANICKED | PVPANIC_CRASH_LOADED;

/** What the device reports, called from the vCPU thread that wrote the port. */
export interface PvpanicEvents {
  panicked(): void;
  crashLoaded(): void;
}

export interface PvpanicOptions {
  /** Events advertised to the guest (QEMU's `events` property); default both. */
  events?: number;
}

export class Pvpanic implements BusDevice {
  static readonly STATE_BYTES = 0;

  private readonly events: number;

  constructor(
    private readonly callbacks: PvpanicEvents,
    opts: PvpanicOptions = {},
  ) {
    this.events = (opts.events ?? PVPANIC_EVENTS_ALL) & 0xff;
  }

  read(_offset: number, data: Uint8Array): void {
    data.fill(this.events);
  }

  write(_offset: number, data: Uint8Array): void {
    // Low byte first, as the bus splits a wide access.
    for (const value of data) this.report(value);
  }

  reset(): void {
    // Nothing to forget: the device only forwards events.
  }

  private report(value: number): void {
    if (value & PVPANIC_PANICKED) this.callbacks.panicked();
    else if (value & PVPANIC_CRASH_LOADED) this.callbacks.crashLoaded();
  }
}
