/**
 * The VM run state, with QEMU 7.2's names and its table of legal transitions.
 *
 * QEMU aborts on a transition outside the table; nodevisor refuses it with ERR_BAD_STATE.
 * Either way it is a bug in the VMM, never something a QMP client can cause, so callers
 * check `canTransition` when a request may legitimately arrive in the wrong state.
 */
import { NodevisorError } from '../errors.js';

/** QEMU's RunState enum, in QEMU's declaration order (query-qmp-schema lists them so). */
export const RUN_STATES = [
  'debug',
  'inmigrate',
  'internal-error',
  'io-error',
  'paused',
  'postmigrate',
  'prelaunch',
  'finish-migrate',
  'restore-vm',
  'running',
  'save-vm',
  'shutdown',
  'suspended',
  'watchdog',
  'guest-panicked',
  'colo',
] as const;

export type RunState = (typeof RUN_STATES)[number];

export function isRunState(value: unknown): value is RunState {
  return typeof value === 'string' && (RUN_STATES as readonly string[]).includes(value);
}

/** from → the states it may move to (softmmu/runstate.c, QEMU 7.2). */
export const RUN_STATE_TRANSITIONS: Readonly<Record<RunState, readonly RunState[]>> = {
  prelaunch: ['inmigrate', 'suspended', 'running', 'finish-migrate'],
  debug: ['running', 'finish-migrate', 'prelaunch', 'suspended'],
  inmigrate: [
    'internal-error', 'io-error', 'paused', 'running', 'shutdown', 'suspended', 'watchdog',
    'guest-panicked', 'finish-migrate', 'prelaunch', 'postmigrate', 'colo',
  ],
  'internal-error': ['paused', 'finish-migrate', 'prelaunch'],
  'io-error': ['running', 'finish-migrate', 'prelaunch'],
  paused: ['running', 'finish-migrate', 'postmigrate', 'prelaunch', 'colo', 'suspended'],
  postmigrate: ['running', 'finish-migrate', 'prelaunch'],
  'finish-migrate': [
    'running', 'paused', 'postmigrate', 'prelaunch', 'colo', 'internal-error', 'io-error',
    'shutdown', 'suspended', 'watchdog', 'guest-panicked',
  ],
  'restore-vm': ['running', 'prelaunch', 'suspended'],
  colo: ['running', 'prelaunch', 'shutdown'],
  running: [
    'debug', 'internal-error', 'io-error', 'paused', 'finish-migrate', 'restore-vm', 'save-vm',
    'shutdown', 'watchdog', 'guest-panicked', 'colo', 'suspended',
  ],
  'save-vm': ['running', 'suspended'],
  shutdown: ['paused', 'finish-migrate', 'prelaunch', 'colo'],
  suspended: ['running', 'finish-migrate', 'prelaunch', 'colo', 'paused', 'save-vm', 'restore-vm', 'shutdown'],
  watchdog: ['running', 'finish-migrate', 'prelaunch', 'colo'],
  'guest-panicked': ['running', 'finish-migrate', 'prelaunch'],
};

/** True when `from → to` is in QEMU's table (a same-state "transition" is not a transition). */
export function isAllowedTransition(from: RunState, to: RunState): boolean {
  return RUN_STATE_TRANSITIONS[from].includes(to);
}

/**
 * QEMU's runstate_needs_reset(): states the guest cannot be continued from. Only these two;
 * `guest-panicked` and `io-error` can be continued with `cont`.
 */
export function stateNeedsReset(state: RunState): boolean {
  return state === 'internal-error' || state === 'shutdown';
}

/**
 * Where a system reset leaves the VM (QEMU's main loop after qemu_system_reset): a running VM
 * keeps running, an incoming/outgoing migration keeps its state, anything else becomes
 * `prelaunch` — so `system_reset` on a paused VM reports "paused (prelaunch)" afterwards.
 */
export function stateAfterReset(state: RunState): RunState {
  if (state === 'running' || state === 'inmigrate' || state === 'finish-migrate') return state;
  return isAllowedTransition(state, 'prelaunch') ? 'prelaunch' : state;
}

export type RunStateListener = (to: RunState, from: RunState) => void;

export class RunStateMachine {
  #state: RunState;
  readonly #listeners = new Set<RunStateListener>();

  /** QEMU starts in `prelaunch` (with or without -S; without it, `cont` follows at once). */
  constructor(initial: RunState = 'prelaunch') {
    this.#state = initial;
  }

  get state(): RunState {
    return this.#state;
  }

  /** Same state counts as possible: transition() treats it as a no-op. */
  canTransition(to: RunState): boolean {
    return to === this.#state || isAllowedTransition(this.#state, to);
  }

  /** Moves to `to` and tells the listeners; a no-op for the current state. */
  transition(to: RunState): void {
    const from = this.#state;
    if (to === from) return;
    if (!isAllowedTransition(from, to)) {
      throw new NodevisorError('ERR_BAD_STATE', `invalid runstate transition: '${from}' -> '${to}'`);
    }
    this.#state = to;
    for (const listener of [...this.#listeners]) listener(to, from);
  }

  /** QEMU's runstate_is_running(): only `running` counts, not `debug` or `suspended`. */
  isRunning(): boolean {
    return this.#state === 'running';
  }

  needsReset(): boolean {
    return stateNeedsReset(this.#state);
  }

  /** Registers a listener called after each real transition; returns its remover. */
  onChange(listener: RunStateListener): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }
}
