import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { close } from '../../kvm/libc.js';
import { EventSlots, WANT_BREAKPOINT, WANT_SINGLESTEP } from './event-slots.js';
import { connectUnix } from './unix-connect.js';

test('event slots: one event per vCPU whoever sends it, answers free exactly the event they name', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nodevisor-slots-'));
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(join(dir, 's'), resolve));
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const fd = connectUnix(join(dir, 's'));
  const peer = await accepted;
  let received = 0;
  peer.on('data', (d: Buffer) => { received += d.length; });
  try {
    const bells = new Int32Array(new SharedArrayBuffer(8));
    const slots = EventSlots.create(2, [0, 1].map((index) => ({ buffer: bells.buffer as SharedArrayBuffer, index })));
    const message = (): Uint8Array => new Uint8Array(100);
    slots.setWanted(0, WANT_BREAKPOINT);
    assert.equal(slots.trySend(0, WANT_BREAKPOINT, 4, message), false, 'no socket yet');
    slots.openSocket(fd);
    assert.equal(slots.trySend(0, WANT_SINGLESTEP, 11, message), false, 'not wanted');
    assert.equal(slots.trySend(0, WANT_BREAKPOINT, 4, message), true);
    const out = slots.direct(0);
    assert.ok(out !== undefined && out.event === 4);
    assert.equal(slots.claimForSession(0), false, 'the vCPU\'s own event is out');
    assert.equal(slots.trySend(0, WANT_BREAKPOINT, 4, message), false, 'one at a time');
    assert.equal(slots.answer(0, out.seq + 1, 'continue'), false, 'another event');
    assert.equal(slots.answer(1, out.seq, 'continue'), false, 'another vCPU');
    assert.equal(slots.takeAnswer(0), null);
    assert.equal(slots.answer(0, out.seq, 'retry'), true);
    assert.deepEqual([...bells], [1, 0], 'vCPU 0 woken');
    assert.equal(slots.answer(0, out.seq, 'continue'), false, 'answered once');
    assert.equal(slots.takeAnswer(0), 'retry');
    assert.equal(slots.takeAnswer(0), null, 'taken');

    assert.equal(slots.claimForSession(0), true);
    assert.equal(slots.trySend(0, WANT_BREAKPOINT, 4, message), false, 'the session\'s event is out');
    slots.releaseSession(0);
    slots.setBacklog(true);
    assert.equal(slots.trySend(0, WANT_BREAKPOINT, 4, message), false, 'the socket thread has output queued');
    slots.setBacklog(false);
    assert.equal(slots.trySend(0, WANT_BREAKPOINT, 4, message), true, 'the failed tries left the slot free');
    assert.notEqual(slots.direct(0)?.seq, out.seq, 'a new sequence number');
    slots.setWanted(1, WANT_BREAKPOINT);
    slots.closeSocket();
    assert.equal(slots.trySend(1, WANT_BREAKPOINT, 4, message), false, 'closed');
    assert.equal(slots.direct(1), undefined, 'and its slot free');
    for (let i = 0; i < 50 && received < 200; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(received, 200, 'two whole messages reached the peer');
  } finally {
    close(fd);
    peer.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  }
});
