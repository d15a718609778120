import { test } from 'node:test';
import assert from 'node:assert/strict';

import { timestamp } from './events.js';

test('timestamp splits wall-clock microseconds', () => {
  assert.deepEqual(timestamp(1_795_315_417_373_759n), { seconds: 1_795_315_417, microseconds: 373_759 });
  const now = timestamp();
  assert.ok(Math.abs(now.seconds - Date.now() / 1000) < 5);
  assert.ok(now.microseconds >= 0 && now.microseconds < 1_000_000 && Number.isInteger(now.microseconds));
});
