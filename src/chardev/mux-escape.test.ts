import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MuxEscape, muxHelpText, type MuxEvent } from './mux-escape.js';

const bytes = (...xs: number[]): Uint8Array => Uint8Array.from(xs);
const input = (...xs: number[]): MuxEvent => ({ kind: 'input', bytes: bytes(...xs) });

test('plain bytes, ctrl-c included, go to the guest', () => {
  assert.deepEqual(new MuxEscape().feed(bytes(0x61, 0x03, 0x62)), [input(0x61, 0x03, 0x62)]);
});

test('ctrl-a commands', () => {
  const m = new MuxEscape();
  assert.deepEqual(m.feed(bytes(0x61, 0x01, 0x78, 0x62)), [input(0x61), { kind: 'quit' }, input(0x62)]);
  assert.deepEqual(m.feed(bytes(0x01, 0x68)), [{ kind: 'help' }]);
  assert.deepEqual(m.feed(bytes(0x01, 0x3f)), [{ kind: 'help' }]);
  assert.deepEqual(m.feed(bytes(0x01, 0x63)), [{ kind: 'monitor' }]);
});

test('ctrl-a ctrl-a sends one ctrl-a; unknown keys are swallowed', () => {
  const m = new MuxEscape();
  assert.deepEqual(m.feed(bytes(0x01, 0x01, 0x61)), [input(0x01, 0x61)]);
  assert.deepEqual(m.feed(bytes(0x61, 0x01, 0x7a, 0x62)), [input(0x61), input(0x62)]);
  assert.deepEqual(m.feed(bytes(0x01, 0x73, 0x01, 0x74)), []);
});

test('an escape split across reads', () => {
  const m = new MuxEscape();
  assert.deepEqual(m.feed(bytes(0x61, 0x01)), [input(0x61)]);
  assert.deepEqual(m.feed(bytes(0x78)), [{ kind: 'quit' }]);
  assert.deepEqual(m.feed(bytes(0x01)), []);
  assert.deepEqual(m.feed(bytes(0x01, 0x62)), [input(0x01, 0x62)]);
});

test('help text uses QEMU layout', () => {
  const text = muxHelpText();
  assert.ok(text.startsWith('\n\rC-a h    print this help\n\r'));
  assert.ok(text.includes('C-a x    exit emulator\n\r'));
  assert.ok(text.endsWith('C-a C-a  sends C-a\n\r'));
});
