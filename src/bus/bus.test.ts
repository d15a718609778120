import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BusDevice } from '../devices/device.js';
import { Bus, BusOverlapError } from './bus.js';

class Recorder implements BusDevice {
  log: string[] = [];
  read(offset: number, data: Uint8Array): void {
    this.log.push(`r${offset}/${data.length}`);
    data.fill(offset);
  }
  write(offset: number, data: Uint8Array): void {
    this.log.push(`w${offset}=${data[0]}`);
  }
}

test('dispatches with offsets relative to the range base', () => {
  const bus = new Bus('pio');
  const a = new Recorder();
  const b = new Recorder();
  bus.insert(a, 0x3f8, 8, 'com1');
  bus.insert(b, 0x60, 5, 'i8042');
  const d = new Uint8Array(1);
  assert.equal(bus.read(0x3fd, d), true);
  assert.equal(d[0], 5);
  bus.write(0x64, Uint8Array.of(0xfe));
  assert.deepEqual(a.log, ['r5/1']);
  assert.deepEqual(b.log, ['w4=254']);
});

test('unclaimed reads return all ones and are counted, never thrown', () => {
  const bus = new Bus('pio');
  bus.insert(new Recorder(), 0x3f8, 8, 'com1');
  const d = new Uint8Array(4);
  assert.equal(bus.read(0x1234, d), false);
  assert.deepEqual([...d], [0xff, 0xff, 0xff, 0xff]);
  assert.equal(bus.write(0x1234, d), false);
  assert.equal(bus.unclaimedReads, 1);
  assert.equal(bus.unclaimedWrites, 1);
  assert.equal(bus.lastUnclaimed, 0x1234);
  // An access that starts inside a range but runs past its end is not the device's.
  assert.equal(bus.read(0x3ff, new Uint8Array(2)), false);
});

test('overlapping and empty ranges are rejected with a typed error', () => {
  const bus = new Bus('pio');
  bus.insert(new Recorder(), 0x70, 2, 'rtc');
  assert.throws(() => bus.insert(new Recorder(), 0x71, 1, 'other'), BusOverlapError);
  assert.throws(() => bus.insert(new Recorder(), 0x60, 0x11, 'wide'), /overlaps rtc/);
  assert.throws(() => bus.insert(new Recorder(), 0x80, 0, 'empty'), /empty range/);
  bus.insert(new Recorder(), 0x72, 1, 'adjacent');
  assert.equal(bus.entries().length, 2);
});

test('binary search finds every device among many', () => {
  const bus = new Bus('mmio');
  const devs = Array.from({ length: 50 }, () => new Recorder());
  devs.forEach((d, i) => bus.insert(d, 0x1000 * (49 - i), 0x100, `d${i}`));
  for (let i = 0; i < 50; i++) {
    const d = new Uint8Array(1);
    assert.equal(bus.read(0x1000 * (49 - i) + 7, d), true);
    assert.equal(d[0], 7);
    assert.deepEqual(devs[i]!.log, ['r7/1']);
  }
  assert.equal(bus.read(0x1000 * 3 + 0x100, new Uint8Array(1)), false);
});
