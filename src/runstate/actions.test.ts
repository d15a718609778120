import { test } from 'node:test';
import assert from 'node:assert/strict';

import { OptionError } from '../errors.js';
import {
  DEFAULT_ACTIONS,
  panicOutcome,
  parseActionOption,
  parseWatchdogActionOption,
  resetOutcome,
  shutdownOutcome,
  watchdogOutcome,
  withNoReboot,
  withNoShutdown,
} from './actions.js';

const message = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof OptionError);
    return e.message;
  }
  assert.fail('no error');
};

test("QEMU 7.2's defaults", () => {
  assert.deepEqual({ ...DEFAULT_ACTIONS }, { reboot: 'reset', shutdown: 'poweroff', panic: 'shutdown', watchdog: 'reset' });
});

test('-action parses every key and keeps the rest', () => {
  const { policy, warnings } = parseActionOption('reboot=shutdown,shutdown=pause,panic=exit-failure,watchdog=inject-nmi');
  assert.deepEqual(policy, { reboot: 'shutdown', shutdown: 'pause', panic: 'exit-failure', watchdog: 'inject-nmi' });
  assert.deepEqual(warnings, []);
  assert.deepEqual(parseActionOption('panic=none', withNoReboot(DEFAULT_ACTIONS)).policy, {
    ...DEFAULT_ACTIONS,
    reboot: 'shutdown',
    panic: 'none',
  });
  assert.deepEqual(parseActionOption('').policy, DEFAULT_ACTIONS);
  assert.deepEqual(parseActionOption('panic=pause,').policy.panic, 'pause');
  assert.deepEqual(parseActionOption('panic=pause,panic=none').policy.panic, 'none');
});

test("-action errors use QEMU's words (captured from qemu-system-x86_64 7.2)", () => {
  assert.equal(message(() => parseActionOption('panic=bogus')), "Parameter 'panic' does not accept value 'bogus'");
  assert.equal(message(() => parseActionOption('foo=bar')), "Invalid parameter 'foo'");
  assert.equal(message(() => parseActionOption('=x')), "Invalid parameter ''");
  assert.equal(message(() => parseActionOption('reboot=none')), "Parameter 'reboot' does not accept value 'none'");
  assert.equal(message(() => parseActionOption('panic=pause,,x')), "Parameter 'panic' does not accept value 'pause,x'");
  assert.equal(message(() => parseActionOption('watchdog=bogus')), "Parameter 'watchdog' does not accept value 'bogus'");
  // Unknown keys first, then values in reboot/shutdown/panic/watchdog order.
  assert.equal(message(() => parseActionOption('panic=bogus,foo=1')), "Invalid parameter 'foo'");
  assert.equal(message(() => parseActionOption('panic=x,reboot=y')), "Parameter 'reboot' does not accept value 'y'");
});

test('a bare key is the deprecated short-form boolean', () => {
  const err = message(() => parseActionOption('panic'));
  assert.equal(err, "Parameter 'panic' does not accept value 'on'");
});

test('-watchdog-action', () => {
  assert.equal(parseWatchdogActionOption('pause'), 'pause');
  assert.equal(message(() => parseWatchdogActionOption('bogus')), "Parameter 'watchdog' does not accept value 'bogus'");
});

test('-no-reboot turns resets into shutdowns, except a subsystem reset', () => {
  const p = withNoReboot(DEFAULT_ACTIONS);
  assert.equal(resetOutcome(DEFAULT_ACTIONS, 'guest-reset'), 'reset');
  assert.equal(resetOutcome(p, 'guest-reset'), 'shutdown');
  assert.equal(resetOutcome(p, 'host-qmp-system-reset'), 'shutdown');
  assert.equal(resetOutcome(p, 'subsystem-reset'), 'reset');
});

test('-no-shutdown pauses on shutdown, but quit still exits', () => {
  const p = withNoShutdown(DEFAULT_ACTIONS);
  assert.equal(p.shutdown, 'pause');
  assert.equal(shutdownOutcome(p, 'guest-shutdown'), 'pause');
  assert.equal(shutdownOutcome(p, 'host-qmp-quit'), 'exit');
  assert.equal(shutdownOutcome(DEFAULT_ACTIONS, 'guest-shutdown'), 'exit');
});

test('panic outcomes match what QEMU 7.2 does', () => {
  // Checked against QEMU 7.2 (docs/guest-events-qemu.md): GUEST_PANICKED poweroff, SHUTDOWN, no STOP.
  assert.deepEqual(panicOutcome(DEFAULT_ACTIONS), { event: 'poweroff', stop: false, shutdown: true, exitFailure: false });
  // -no-shutdown makes the default panic action pause.
  assert.deepEqual(panicOutcome(withNoShutdown(DEFAULT_ACTIONS)), {
    event: 'pause',
    stop: true,
    shutdown: false,
    exitFailure: false,
  });
  assert.equal(panicOutcome({ ...DEFAULT_ACTIONS, panic: 'none' }).event, 'run');
  assert.equal(panicOutcome({ ...DEFAULT_ACTIONS, panic: 'pause' }).event, 'pause');
  assert.deepEqual(panicOutcome({ ...DEFAULT_ACTIONS, panic: 'exit-failure' }), {
    event: 'poweroff',
    stop: false,
    shutdown: true,
    exitFailure: true,
  });
});

test('watchdog outcomes', () => {
  assert.deepEqual(watchdogOutcome('pause'), { kind: 'stop', state: 'watchdog' });
  assert.deepEqual(watchdogOutcome('shutdown'), { kind: 'powerdown' });
  assert.deepEqual(watchdogOutcome('reset'), { kind: 'reset', cause: 'guest-reset' });
  assert.deepEqual(watchdogOutcome('poweroff'), { kind: 'exit', status: 0 });
});
