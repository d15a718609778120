import { test } from 'node:test';
import assert from 'node:assert/strict';

import { prng } from '../../testing/prng.js';
import { IntrospectionError, KvmiError } from './errors.js';
import { FrameReader } from './frame-reader.js';
import { decodeReply, encodeMessage, encodeReply, KVMI_MAX_PAYLOAD, type Frame } from './header.js';

function randomMessages(rand: () => number, n: number): { bytes: Uint8Array; frames: Frame[] } {
  const frames: Frame[] = [];
  const parts: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const size = rand() < 0.1 ? KVMI_MAX_PAYLOAD : Math.floor(rand() * 64);
    const payload = Uint8Array.from({ length: size }, () => Math.floor(rand() * 256));
    const id = Math.floor(rand() * 65536);
    const seq = Math.floor(rand() * 2 ** 32);
    frames.push({ id, size, seq, payload });
    parts.push(encodeMessage(id, seq, payload));
  }
  return { bytes: Buffer.concat(parts), frames };
}

test('messages come out whole however the bytes are split or glued', () => {
  const rand = prng(0xf4a3e);
  for (let round = 0; round < 200; round++) {
    const { bytes, frames } = randomMessages(rand, 1 + Math.floor(rand() * 8));
    const reader = new FrameReader();
    const out: Frame[] = [];
    for (let at = 0; at < bytes.length; ) {
      // Byte by byte, small pieces, or large runs spanning several messages.
      const r = rand();
      const n = r < 0.2 ? 1 : r < 0.7 ? 1 + Math.floor(rand() * 16) : 1 + Math.floor(rand() * 20000);
      out.push(...reader.push(bytes.subarray(at, at + n)));
      at += n;
    }
    assert.deepEqual(out, frames, `round ${round}`);
    assert.equal(reader.buffered, 0);
  }
});

test('all messages of one write come out of one push', () => {
  const a = encodeMessage(2, 1);
  const b = encodeMessage(7, 2, new Uint8Array(16));
  const reader = new FrameReader();
  const frames = reader.push(Buffer.concat([a, b, b.subarray(0, 5)]));
  assert.deepEqual(frames.map((f) => [f.id, f.seq, f.size]), [[2, 1, 0], [7, 2, 16]]);
  assert.equal(reader.buffered, 5);
  assert.deepEqual(reader.push(b.subarray(5)).map((f) => f.seq), [2]);
});

test('a header announcing more than 8184 bytes breaks the stream', () => {
  const h = new Uint8Array(8);
  new DataView(h.buffer).setUint16(2, KVMI_MAX_PAYLOAD + 1, true);
  assert.throws(() => new FrameReader().push(h), (e: unknown) => e instanceof IntrospectionError && e.code === 'ERR_KVMI_PROTOCOL');
  assert.throws(() => encodeMessage(1, 1, new Uint8Array(KVMI_MAX_PAYLOAD + 1)), IntrospectionError);
});

test('frames are copies: reusing the input buffer does not change them', () => {
  const buf = Buffer.from(encodeMessage(5, 9, Uint8Array.of(1, 2, 3)));
  const [f] = new FrameReader().push(buf);
  buf.fill(0);
  assert.deepEqual([...f!.payload], [1, 2, 3]);
});

test('replies: an error carries no data, success carries its data, padding is checked', () => {
  const ok = encodeReply(13, 77, 0, Uint8Array.of(1, 2));
  const [f] = new FrameReader().push(ok);
  assert.equal(f!.id, 13);
  assert.equal(f!.seq, 77);
  assert.deepEqual(decodeReply(f!.payload), { err: 0, data: Uint8Array.of(1, 2) });
  const bad = encodeReply(13, 78, -22, Uint8Array.of(1, 2));
  assert.equal(bad.length, 16, 'data is dropped from an error reply');
  assert.deepEqual(decodeReply(bad.subarray(8)), { err: -22, data: new Uint8Array(0) });
  const withData = Uint8Array.of(0xea, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1);
  assert.throws(() => decodeReply(withData), KvmiError, 'an error reply with data');
  const padded = Uint8Array.of(0, 0, 0, 0, 1, 0, 0, 0);
  assert.throws(() => decodeReply(padded), KvmiError, 'non-zero padding');
});
