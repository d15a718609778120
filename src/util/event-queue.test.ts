import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EventQueue } from './event-queue.js';

test('events pushed before and during iteration come out in order; close ends the iteration', async () => {
  const q = new EventQueue<number>();
  q.push(1);
  const seen: number[] = [];
  const done = (async () => {
    for await (const n of q) seen.push(n);
  })();
  q.push(2);
  await new Promise((r) => setTimeout(r, 1));
  q.push(3);
  q.close();
  await done;
  assert.deepEqual(seen, [1, 2, 3]);
});
