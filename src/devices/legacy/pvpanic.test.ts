// Plays a guest kernel's pvpanic driver (probe, kexec load, panic) against the model.
// Expected behaviour is what QEMU 7.2's `-device pvpanic` did (docs/guest-events-qemu.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Pvpanic, PVPANIC_CRASH_LOADED, PVPANIC_DEFAULT_PORT, PVPANIC_EVENTS_ALL, PVPANIC_PANICKED, type PvpanicEvents,
} from './pvpanic.js';

function setup(events?: number) {
  const seen: string[] = [];
  const callbacks: PvpanicEvents = {
    panicked: () => seen.push('panicked'),
    crashLoaded: () => seen.push('crash-loaded'),
  };
  const dev = new Pvpanic(callbacks, events === undefined ? {} : { events });
  const inb = (): number => {
    const d = new Uint8Array(1);
    dev.read(0, d);
    return d[0]!;
  };
  const outb = (v: number): void => dev.write(0, Uint8Array.of(v));
  return { dev, seen, inb, outb };
}

void test('constants: port 0x505, PANICKED bit 0, CRASH_LOADED bit 1', () => {
  assert.equal(PVPANIC_DEFAULT_PORT, 0x505);
  assert.equal(PVPANIC_PANICKED, 1);
  assert.equal(PVPANIC_CRASH_LOADED, 2);
  assert.equal(PVPANIC_EVENTS_ALL, 3);
});

void test('the driver probe reads both events as supported', () => {
  const { inb, seen } = setup();
  assert.equal(inb(), 3);
  assert.deepEqual(seen, [], 'a read reports nothing');
});

void test('kexec load then panic: crash-loaded, then panicked', () => {
  const { outb, seen } = setup();
  outb(PVPANIC_CRASH_LOADED);
  assert.deepEqual(seen, ['crash-loaded']);
  outb(PVPANIC_PANICKED);
  assert.deepEqual(seen, ['crash-loaded', 'panicked']);
});

void test('both bits at once: only panicked (QEMU 7.2)', () => {
  const { outb, seen } = setup();
  outb(PVPANIC_PANICKED | PVPANIC_CRASH_LOADED);
  assert.deepEqual(seen, ['panicked']);
});

void test('zero and unknown bits report nothing', () => {
  const { outb, seen } = setup();
  outb(0);
  outb(0x04);
  outb(0xfc);
  assert.deepEqual(seen, []);
  outb(0xff);
  assert.deepEqual(seen, ['panicked']);
});

void test('every write reports again: the device keeps no state', () => {
  const { dev, outb, seen } = setup();
  outb(PVPANIC_PANICKED);
  outb(PVPANIC_PANICKED);
  dev.reset();
  outb(PVPANIC_PANICKED);
  assert.deepEqual(seen, ['panicked', 'panicked', 'panicked']);
});

void test('events=1 advertises only PANICKED but CRASH_LOADED is still reported (QEMU 7.2)', () => {
  const { inb, outb, seen } = setup(PVPANIC_PANICKED);
  assert.equal(inb(), 1);
  outb(PVPANIC_CRASH_LOADED);
  assert.deepEqual(seen, ['crash-loaded']);
});

void test('wide reads return the events byte in every byte (QEMU: 0x0303, 0x03030303)', () => {
  const { dev } = setup();
  const d = new Uint8Array(4);
  dev.read(0, d.subarray(0, 2));
  assert.equal(new DataView(d.buffer).getUint16(0, true), 0x0303);
  dev.read(0, d);
  assert.equal(new DataView(d.buffer).getUint32(0, true), 0x03030303);
});

void test('a 32-bit write of 0x01000000 reports panicked from its top byte (QEMU 7.2)', () => {
  const { dev, seen } = setup();
  dev.write(0, Uint8Array.of(0, 0, 0, 1));
  assert.deepEqual(seen, ['panicked']);
});

void test('a 16-bit write is two byte writes, low byte first', () => {
  const { dev, seen } = setup();
  const word = (v: number): Uint8Array => {
    const d = new Uint8Array(2);
    new DataView(d.buffer).setUint16(0, v, true);
    return d;
  };
  dev.write(0, word(0x0100)); // QEMU: GUEST_PANICKED from the high byte
  assert.deepEqual(seen, ['panicked']);
  dev.write(0, word(0x0002)); // QEMU: GUEST_CRASHLOADED
  assert.deepEqual(seen, ['panicked', 'crash-loaded']);
  dev.write(0, word(0x0102));
  assert.deepEqual(seen, ['panicked', 'crash-loaded', 'crash-loaded', 'panicked']);
});
