import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { decodeLz4Block, decompressLz4Legacy, isLz4Legacy } from './lz4-legacy.js';
import { lz4LegacyLiterals } from './test-images.js';

const hasLz4 = spawnSync('lz4', ['--version']).status === 0;

void test('an LZ4 block with an overlapping match repeats the pattern', () => {
  // "ab", then a match at offset 2 of length 6, then the last literal "c".
  const block = Uint8Array.from([0x22, 0x61, 0x62, 0x02, 0x00, 0x10, 0x63]);
  const out = new Uint8Array(9);
  assert.equal(decodeLz4Block(block, out, 0), 9);
  assert.equal(new TextDecoder().decode(out), 'ababababc');
});

void test('LZ4 long literal and match lengths use the extra length bytes', () => {
  const lits = new Uint8Array(15 + 255 + 3).fill(0x41);
  // 273 literals, a 4+15+255+1 = 275-byte match at offset 1, then one last literal.
  const block = Uint8Array.from([0xff, 255, 3, ...lits, 0x01, 0x00, 255, 1, 0x10, 0x42]);
  const out = new Uint8Array(273 + 275 + 1);
  decodeLz4Block(block, out, 0);
  assert.ok(out.subarray(0, 548).every((b) => b === 0x41));
  assert.equal(out[548], 0x42);
});

void test('LZ4 errors: bad offsets, truncated blocks, output overflow', () => {
  const out = new Uint8Array(64);
  assert.throws(() => decodeLz4Block(Uint8Array.from([0x10, 0x61, 0x00, 0x00, 0x10, 0x63]), out, 0), { message: 'LZ4 match offset 0 is out of range' });
  assert.throws(() => decodeLz4Block(Uint8Array.from([0x10, 0x61, 0x05, 0x00, 0x10, 0x63]), out, 0), { message: 'LZ4 match offset 5 is out of range' });
  assert.throws(() => decodeLz4Block(Uint8Array.from([0x30, 0x61]), out, 0), { message: 'LZ4 literals run past the end of the block' });
  assert.throws(() => decodeLz4Block(Uint8Array.from([0x10, 0x61, 0x01]), out, 0), { message: 'LZ4 block ends inside a match offset' });
  assert.throws(() => decodeLz4Block(Uint8Array.from([0x20, 0x61, 0x62]), new Uint8Array(1), 0), { message: 'LZ4 output exceeds its expected size' });
});

void test('LZ4 legacy frames: several blocks, the size trailer, the magic check', () => {
  const data = Uint8Array.from({ length: 5000 }, (_, i) => (i * 13) & 0xff);
  const frame = lz4LegacyLiterals(data, 1024);
  assert.ok(isLz4Legacy(frame));
  assert.deepEqual(decompressLz4Legacy(frame.subarray(0, frame.length - 4), 5000), data);
  assert.deepEqual(decompressLz4Legacy(frame.subarray(0, frame.length - 4)), data);
  assert.throws(() => decompressLz4Legacy(frame.subarray(0, frame.length - 4), 4999), { message: 'LZ4 output exceeds its expected size' });
  assert.throws(() => decompressLz4Legacy(frame.subarray(0, frame.length - 4), 6000), { message: 'LZ4 frame decodes to 5000 bytes, expected 6000' });
  assert.throws(() => decompressLz4Legacy(frame.subarray(0, frame.length - 6)), { message: 'LZ4 block of 909 bytes runs past the end of the frame' });
  assert.throws(() => decompressLz4Legacy(frame.subarray(0, frame.length - 2)), { message: 'LZ4 frame ends inside a block size' });
  assert.throws(() => decompressLz4Legacy(new Uint8Array(8)), { message: 'not an LZ4 legacy frame' });
});

void test('LZ4 legacy frames made by the lz4 tool decode to the original', () => {
  assert.ok(hasLz4, 'the lz4 command is not installed (apt-get install lz4)');
  // 20 MiB of compressible data with varied matches: three 8 MiB blocks.
  const data = new Uint8Array(20 << 20);
  let x = 1;
  for (let i = 0; i < data.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    data[i] = (x >>> 28) < 6 ? data[Math.max(0, i - 1 - ((x >>> 8) & 0x3ff))]! : (x >>> 16) & 0xff;
  }
  for (const level of ['-1', '-9']) {
    const lz = spawnSync('lz4', ['-l', level, '-c'], { input: data, maxBuffer: 64 << 20 });
    assert.equal(lz.status, 0, lz.stderr.toString());
    const frame = new Uint8Array(lz.stdout.buffer, lz.stdout.byteOffset, lz.stdout.byteLength);
    assert.deepEqual(Buffer.from(decompressLz4Legacy(frame)).equals(data), true);
    assert.deepEqual(Buffer.from(decompressLz4Legacy(frame, data.length)).equals(data), true);
  }
});
