/**
 * The QMP events nodevisor emits, with QEMU's names and payloads. The protocol layer adds
 * nothing but the envelope: {"timestamp": …, "event": name, "data": payload}.
 */
import type { GuestPanicAction, WatchdogAction } from './actions.js';
import type { ShutdownCause } from './shutdown-cause.js';

/** Wall-clock time of an event, as QEMU stamps it. */
export interface QmpTimestamp {
  seconds: number;
  microseconds: number;
}

/** Hyper-V crash MSRs, as QEMU reports them in GUEST_PANICKED. */
export interface GuestPanicInformationHyperV {
  type: 'hyper-v';
  arg1: number | bigint;
  arg2: number | bigint;
  arg3: number | bigint;
  arg4: number | bigint;
  arg5: number | bigint;
}

export type GuestPanicInformation = GuestPanicInformationHyperV;

export type MemoryFailureRecipient = 'hypervisor' | 'guest';
export type MemoryFailureAction = 'ignore' | 'inject' | 'fatal' | 'reset';

export type QmpEvent =
  | { event: 'SHUTDOWN'; data: { guest: boolean; reason: ShutdownCause } }
  | { event: 'POWERDOWN' }
  | { event: 'RESET'; data: { guest: boolean; reason: ShutdownCause } }
  | { event: 'STOP' }
  | { event: 'RESUME' }
  | { event: 'SUSPEND' }
  | { event: 'SUSPEND_DISK' }
  | { event: 'WAKEUP' }
  | { event: 'WATCHDOG'; data: { action: WatchdogAction } }
  | { event: 'GUEST_PANICKED'; data: { action: GuestPanicAction; info?: GuestPanicInformation } }
  | { event: 'GUEST_CRASHLOADED'; data: { action: GuestPanicAction; info?: GuestPanicInformation } }
  | {
      event: 'MEMORY_FAILURE';
      data: {
        recipient: MemoryFailureRecipient;
        action: MemoryFailureAction;
        flags: { 'action-required': boolean; recursive: boolean };
      };
    };

export type QmpEventName = QmpEvent['event'];

/** An event as sent on the wire, with its time. */
export type TimestampedEvent = QmpEvent & { timestamp: QmpTimestamp };

/** Now, from the wall clock (QEMU uses g_get_real_time, not a monotonic clock). */
export function timestamp(nowMicros: bigint = wallClockMicros()): QmpTimestamp {
  return { seconds: Number(nowMicros / 1_000_000n), microseconds: Number(nowMicros % 1_000_000n) };
}

function wallClockMicros(): bigint {
  // performance.timeOrigin + now() gives sub-millisecond wall time; Date.now() alone would
  // leave microseconds always a multiple of 1000.
  return BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000));
}
