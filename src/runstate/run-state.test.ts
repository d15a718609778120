import { test } from 'node:test';
import assert from 'node:assert/strict';

import { NodevisorError } from '../errors.js';
import {
  RUN_STATES,
  RUN_STATE_TRANSITIONS,
  RunStateMachine,
  isRunState,
  stateAfterReset,
  stateNeedsReset,
  type RunState,
} from './run-state.js';

// QEMU 7.2's table, written out independently of the module's so a typo in either shows up.
const EXPECTED: Record<RunState, string> = {
  prelaunch: 'inmigrate suspended running finish-migrate',
  debug: 'running finish-migrate prelaunch suspended',
  inmigrate:
    'internal-error io-error paused running shutdown suspended watchdog guest-panicked finish-migrate prelaunch postmigrate colo',
  'internal-error': 'paused finish-migrate prelaunch',
  'io-error': 'running finish-migrate prelaunch',
  paused: 'running finish-migrate postmigrate prelaunch colo suspended',
  postmigrate: 'running finish-migrate prelaunch',
  'finish-migrate':
    'running paused postmigrate prelaunch colo internal-error io-error shutdown suspended watchdog guest-panicked',
  'restore-vm': 'running prelaunch suspended',
  colo: 'running prelaunch shutdown',
  running:
    'debug internal-error io-error paused finish-migrate restore-vm save-vm shutdown watchdog guest-panicked colo suspended',
  'save-vm': 'running suspended',
  shutdown: 'paused finish-migrate prelaunch colo',
  suspended: 'running finish-migrate prelaunch colo paused save-vm restore-vm shutdown',
  watchdog: 'running finish-migrate prelaunch colo',
  'guest-panicked': 'running finish-migrate prelaunch',
};

test('there are the 16 RunState values, in QEMU order', () => {
  assert.equal(RUN_STATES.length, 16);
  assert.deepEqual(RUN_STATES.slice(0, 3), ['debug', 'inmigrate', 'internal-error']);
  assert.equal(RUN_STATES[15], 'colo');
  assert.ok(isRunState('guest-panicked'));
  assert.ok(!isRunState('stopped'));
});

test('every one of the 16x16 pairs is allowed or refused exactly as in QEMU', () => {
  let allowed = 0;
  for (const from of RUN_STATES) {
    const expected = new Set(EXPECTED[from].split(' '));
    assert.equal(RUN_STATE_TRANSITIONS[from].length, expected.size, `row ${from}`);
    for (const to of RUN_STATES) {
      const m = new RunStateMachine(from);
      if (to === from) {
        m.transition(to); // a no-op, never an error
        assert.equal(m.state, from);
      } else if (expected.has(to)) {
        assert.ok(m.canTransition(to), `${from} -> ${to}`);
        m.transition(to);
        assert.equal(m.state, to);
        allowed++;
      } else {
        assert.ok(!m.canTransition(to), `${from} -> ${to}`);
        assert.throws(
          () => m.transition(to),
          (e: unknown) => e instanceof NodevisorError && e.code === 'ERR_BAD_STATE' && e.message.includes(`'${from}' -> '${to}'`),
        );
        assert.equal(m.state, from, 'a refused transition leaves the state alone');
      }
    }
  }
  assert.equal(allowed, 85); // the table has 85 arrows
});

test('listeners see real transitions only, and can be removed', () => {
  const m = new RunStateMachine();
  const seen: string[] = [];
  const off = m.onChange((to, from) => seen.push(`${from}>${to}`));
  m.transition('running');
  m.transition('running');
  m.transition('paused');
  off();
  m.transition('running');
  assert.deepEqual(seen, ['prelaunch>running', 'running>paused']);
});

test('isRunning and needsReset follow QEMU', () => {
  const m = new RunStateMachine();
  assert.equal(m.state, 'prelaunch');
  assert.ok(!m.isRunning());
  m.transition('running');
  assert.ok(m.isRunning());
  m.transition('debug');
  assert.ok(!m.isRunning(), 'debug is not running for query-status');
  const needing = RUN_STATES.filter(stateNeedsReset);
  assert.deepEqual(needing, ['internal-error', 'shutdown']);
  assert.ok(!stateNeedsReset('guest-panicked'), 'cont resumes a panicked guest in QEMU 7.2');
});

test('a reset leaves running VMs running and sends the others to prelaunch', () => {
  assert.equal(stateAfterReset('running'), 'running');
  assert.equal(stateAfterReset('paused'), 'prelaunch');
  assert.equal(stateAfterReset('shutdown'), 'prelaunch');
  assert.equal(stateAfterReset('internal-error'), 'prelaunch');
  assert.equal(stateAfterReset('inmigrate'), 'inmigrate');
  for (const s of RUN_STATES) {
    const to = stateAfterReset(s);
    assert.ok(new RunStateMachine(s).canTransition(to), `${s} -> ${to}`);
  }
});
