import { test } from 'node:test';
import assert from 'node:assert/strict';

import { SHUTDOWN_CAUSES, isGuestCause } from './shutdown-cause.js';

test('ShutdownCause values are in QEMU order', () => {
  assert.deepEqual(SHUTDOWN_CAUSES, [
    'none', 'host-error', 'host-qmp-quit', 'host-qmp-system-reset', 'host-signal', 'host-ui',
    'guest-shutdown', 'guest-reset', 'guest-panic', 'subsystem-reset', 'snapshot-load',
  ]);
});

test('the guest flag: guest-shutdown and later, except subsystem-reset', () => {
  const guest = SHUTDOWN_CAUSES.filter(isGuestCause);
  assert.deepEqual(guest, ['guest-shutdown', 'guest-reset', 'guest-panic', 'snapshot-load']);
  assert.equal(isGuestCause('host-qmp-system-reset'), false);
});
