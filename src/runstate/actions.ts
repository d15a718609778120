/**
 * What the VMM does when the guest reboots, shuts down, panics or lets its watchdog expire:
 * QEMU's `-action` policy (settable at run time with the set-action QMP command), the older
 * `-no-reboot`, `-no-shutdown` and `-watchdog-action` spellings of it, and the outcome each
 * setting leads to, as pure functions the machine can follow.
 */
import { OptionError } from '../errors.js';
import type { ShutdownCause } from './shutdown-cause.js';
import { readValue } from '../cli/qemu-opts.js';

export const REBOOT_ACTIONS = ['reset', 'shutdown'] as const;
export const SHUTDOWN_ACTIONS = ['poweroff', 'pause'] as const;
export const PANIC_ACTIONS = ['pause', 'shutdown', 'exit-failure', 'none'] as const;
export const WATCHDOG_ACTIONS = ['reset', 'shutdown', 'poweroff', 'pause', 'debug', 'none', 'inject-nmi'] as const;
/** The `action` reported by GUEST_PANICKED / GUEST_CRASHLOADED (not the same set as PanicAction). */
export const GUEST_PANIC_ACTIONS = ['pause', 'poweroff', 'run'] as const;

export type RebootAction = (typeof REBOOT_ACTIONS)[number];
export type ShutdownAction = (typeof SHUTDOWN_ACTIONS)[number];
export type PanicAction = (typeof PANIC_ACTIONS)[number];
export type WatchdogAction = (typeof WATCHDOG_ACTIONS)[number];
export type GuestPanicAction = (typeof GUEST_PANIC_ACTIONS)[number];

export interface ActionPolicy {
  reboot: RebootAction;
  shutdown: ShutdownAction;
  panic: PanicAction;
  watchdog: WatchdogAction;
}

/** QEMU 7.2's defaults. */
export const DEFAULT_ACTIONS: Readonly<ActionPolicy> = Object.freeze({
  reboot: 'reset',
  shutdown: 'poweroff',
  panic: 'shutdown',
  watchdog: 'reset',
});

/** The keys of `-action`, in the order QEMU checks their values. */
const ACTION_KEYS = ['reboot', 'shutdown', 'panic', 'watchdog'] as const;
type ActionKey = (typeof ACTION_KEYS)[number];

const ACTION_VALUES: Readonly<Record<ActionKey, readonly string[]>> = {
  reboot: REBOOT_ACTIONS,
  shutdown: SHUTDOWN_ACTIONS,
  panic: PANIC_ACTIONS,
  watchdog: WATCHDOG_ACTIONS,
};

/** `-no-reboot` is `-action reboot=shutdown`. */
export function withNoReboot(policy: ActionPolicy): ActionPolicy {
  return { ...policy, reboot: 'shutdown' };
}

/**
 * `-no-shutdown` is `-action shutdown=pause`. The panic setting is left alone: a panic with
 * `panic=shutdown` pauses instead while shutdown=pause (see panicOutcome), which is how QEMU
 * makes `-no-shutdown` keep a panicked guest around.
 */
export function withNoShutdown(policy: ActionPolicy): ActionPolicy {
  return { ...policy, shutdown: 'pause' };
}

export interface ParsedActionOption {
  policy: ActionPolicy;
  /** QEMU's deprecation warnings (short-form booleans), without location. */
  warnings: string[];
}


/**
 * Parses one `-action` argument such as `reboot=shutdown,panic=none` on top of `base`.
 * Throws OptionError with QEMU's message, without the `prog: -action …:` location.
 * Unknown keys are reported first, then bad values in reboot/shutdown/panic/watchdog order;
 * a repeated key keeps its last value.
 */
export function parseActionOption(text: string, base: ActionPolicy = DEFAULT_ACTIONS): ParsedActionOption {
  const given = new Map<ActionKey, string>();
  const warnings: string[] = [];
  let i = 0;
  while (i < text.length) {
    const end = text.indexOf(',', i);
    const eq = text.indexOf('=', i);
    let key: string;
    let value: string;
    if (eq !== -1 && (end === -1 || eq < end)) {
      key = text.slice(i, eq);
      [value, i] = readValue(text, eq + 1);
    } else {
      // QemuOpts' deprecated short form: `flag` is flag=on, `noflag` is flag=off.
      key = text.slice(i, end === -1 ? text.length : end);
      i = end === -1 ? text.length : end;
      value = 'on';
      if (key.startsWith('no')) {
        key = key.slice(2);
        value = 'off';
      }
      warnings.push(`short-form boolean option '${key}' deprecated\nPlease use ${key}=${value} instead`);
    }
    if (!(ACTION_KEYS as readonly string[]).includes(key)) throw new OptionError(`Invalid parameter '${key}'`);
    given.set(key as ActionKey, value);
    if (text[i] === ',') i++;
  }
  const policy: ActionPolicy = { ...base };
  for (const key of ACTION_KEYS) {
    const value = given.get(key);
    if (value === undefined) continue;
    if (!ACTION_VALUES[key].includes(value)) {
      throw new OptionError(`Parameter '${key}' does not accept value '${value}'`);
    }
    (policy as Record<ActionKey, string>)[key] = value;
  }
  return { policy, warnings };
}

/** `-watchdog-action X`, which QEMU 7.2 treats as `-action watchdog=X`. */
export function parseWatchdogActionOption(text: string): WatchdogAction {
  if (!(WATCHDOG_ACTIONS as readonly string[]).includes(text)) {
    throw new OptionError(`Parameter 'watchdog' does not accept value '${text}'`);
  }
  return text as WatchdogAction;
}

/**
 * What a reset request becomes: with reboot=shutdown every reset except a subsystem reset is
 * turned into a shutdown request carrying the same cause (so `system_reset` under -no-reboot
 * emits SHUTDOWN with reason host-qmp-system-reset).
 */
export function resetOutcome(policy: ActionPolicy, cause: ShutdownCause): 'reset' | 'shutdown' {
  return policy.reboot === 'shutdown' && cause !== 'subsystem-reset' ? 'shutdown' : 'reset';
}

/**
 * What follows the SHUTDOWN event of a shutdown request: `pause` stops the VM in state
 * `shutdown` (STOP follows) and keeps the process; `exit` ends it. `quit` always exits.
 */
export function shutdownOutcome(policy: ActionPolicy, cause: ShutdownCause): 'pause' | 'exit' {
  if (cause === 'host-qmp-quit') return 'exit';
  return policy.shutdown === 'pause' ? 'pause' : 'exit';
}

export interface PanicOutcome {
  /** The `action` of GUEST_PANICKED. */
  event: GuestPanicAction;
  /** Stop the VM in state `guest-panicked` (a STOP event if it was running). */
  stop: boolean;
  /** Then request a shutdown with cause `guest-panic` (see shutdownOutcome). */
  shutdown: boolean;
  /** If that shutdown ends the process, exit with status 1 instead of 0. */
  exitFailure: boolean;
}

/** QEMU 7.2's qemu_system_guest_panicked(). */
export function panicOutcome(policy: ActionPolicy): PanicOutcome {
  if (policy.panic === 'pause' || (policy.panic === 'shutdown' && policy.shutdown === 'pause')) {
    return { event: 'pause', stop: true, shutdown: false, exitFailure: false };
  }
  // No vm_stop here: QEMU 7.2 goes straight to the shutdown request (GUEST_PANICKED, SHUTDOWN;
  // the STOP of -no-shutdown comes from the shutdown action, after SHUTDOWN).
  if (policy.panic === 'shutdown' || policy.panic === 'exit-failure') {
    return { event: 'poweroff', stop: false, shutdown: true, exitFailure: policy.panic === 'exit-failure' };
  }
  return { event: 'run', stop: false, shutdown: false, exitFailure: false };
}

/**
 * What follows the WATCHDOG event (its `action` is the setting itself), as in QEMU 7.2:
 * - reset: a reset request with cause guest-reset (subject to resetOutcome)
 * - shutdown: an ACPI power-button press (POWERDOWN), not a SHUTDOWN
 * - poweroff: the process exits 0 at once, without a SHUTDOWN event
 * - pause: the VM stops in state `watchdog`
 * - debug: "watchdog: timer fired" on stderr, the guest runs on
 * - none: nothing
 * - inject-nmi: an NMI to every vCPU
 */
export type WatchdogOutcome =
  | { kind: 'reset'; cause: 'guest-reset' }
  | { kind: 'powerdown' }
  | { kind: 'exit'; status: 0 }
  | { kind: 'stop'; state: 'watchdog' }
  | { kind: 'log'; message: string }
  | { kind: 'none' }
  | { kind: 'nmi' };

export function watchdogOutcome(action: WatchdogAction): WatchdogOutcome {
  switch (action) {
    case 'reset':
      return { kind: 'reset', cause: 'guest-reset' };
    case 'shutdown':
      return { kind: 'powerdown' };
    case 'poweroff':
      return { kind: 'exit', status: 0 };
    case 'pause':
      return { kind: 'stop', state: 'watchdog' };
    case 'debug':
      return { kind: 'log', message: 'watchdog: timer fired' };
    case 'none':
      return { kind: 'none' };
    case 'inject-nmi':
      return { kind: 'nmi' };
  }
}
