// Plays Linux's mc146818 driver and a BIOS reading memory sizes against the model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SharedArena, type SharedRegion } from '../shared-state.js';
import {
  CmosRtc, REG_B_24H, REG_B_DM, REG_B_SET, RTC_CENTURY, RTC_DATA, RTC_DAY_OF_MONTH, RTC_DAY_OF_WEEK, RTC_HOURS,
  RTC_INDEX, RTC_MINUTES, RTC_MONTH, RTC_REG_A, RTC_REG_B, RTC_REG_C, RTC_REG_D, RTC_SECONDS, RTC_YEAR,
} from './cmos-rtc.js';
import { RecordingIrq } from '../test-doubles.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
// Saturday 14 March 2026, 15:09:26.250 UTC.
const T0 = Date.UTC(2026, 2, 14, 15, 9, 26, 250);


function setup(opts: { lowRamBytes?: number; highRamBytes?: number; region?: SharedRegion } = {}) {
  const clock = { ms: T0 };
  const region = opts.region ?? SharedArena.create(4096).alloc(CmosRtc.STATE_BYTES);
  const irq = new RecordingIrq();
  const rtc = new CmosRtc(region, irq, {
    lowRamBytes: opts.lowRamBytes ?? 64 * MiB,
    highRamBytes: opts.highRamBytes ?? 0,
    now: () => clock.ms,
  });
  const get = (idx: number): number => {
    rtc.write(RTC_INDEX, Uint8Array.of(idx));
    const d = new Uint8Array(1);
    rtc.read(RTC_DATA, d);
    return d[0]!;
  };
  const put = (idx: number, v: number): void => {
    rtc.write(RTC_INDEX, Uint8Array.of(idx));
    rtc.write(RTC_DATA, Uint8Array.of(v));
  };
  const time = (): number[] =>
    [RTC_SECONDS, RTC_MINUTES, RTC_HOURS, RTC_DAY_OF_WEEK, RTC_DAY_OF_MONTH, RTC_MONTH, RTC_YEAR, RTC_CENTURY].map(get);
  return { clock, region, irq, rtc, get, put, time };
}

void test('status registers at power-on: 32 kHz base, BCD 24h, valid RAM and time', () => {
  const { get } = setup();
  assert.equal(get(RTC_REG_A), 0x26);
  assert.equal(get(RTC_REG_B), REG_B_24H);
  assert.equal(get(RTC_REG_C), 0x00);
  assert.equal(get(RTC_REG_D), 0x80);
});

void test('time in BCD from the injected clock, century at 0x32', () => {
  const { time } = setup();
  assert.deepEqual(time(), [0x26, 0x09, 0x15, 0x07, 0x14, 0x03, 0x26, 0x20]);
});

void test('time in binary and in 12-hour format per REG_B', () => {
  const { time, put, get } = setup();
  put(RTC_REG_B, REG_B_24H | REG_B_DM);
  assert.deepEqual(time(), [26, 9, 15, 7, 14, 3, 26, 20]);
  put(RTC_REG_B, REG_B_DM); // 12-hour binary: 15h is 3 PM
  assert.equal(get(RTC_HOURS), 0x80 | 3);
  put(RTC_REG_B, 0); // 12-hour BCD
  assert.equal(get(RTC_HOURS), 0x83);
});

void test('the clock follows host time between reads', () => {
  const { clock, get } = setup();
  clock.ms += 61_000;
  assert.equal(get(RTC_SECONDS), 0x27);
  assert.equal(get(RTC_MINUTES), 0x10);
});

void test('setting the time in SET mode freezes, then runs from the new time', () => {
  const { clock, put, get, time } = setup();
  put(RTC_REG_B, REG_B_24H | REG_B_SET);
  clock.ms += 5_000;
  assert.equal(get(RTC_SECONDS), 0x26, 'frozen while SET');
  put(RTC_SECONDS, 0x05);
  put(RTC_MINUTES, 0x04);
  put(RTC_HOURS, 0x03);
  put(RTC_DAY_OF_MONTH, 0x02);
  put(RTC_MONTH, 0x01);
  put(RTC_YEAR, 0x30);
  put(RTC_REG_B, REG_B_24H);
  assert.deepEqual(time().slice(0, 8), [0x05, 0x04, 0x03, 0x04, 0x02, 0x01, 0x30, 0x20]); // a Wednesday
  clock.ms += 10_000;
  assert.equal(get(RTC_SECONDS), 0x15);
});

void test('a time write outside SET mode moves the clock at once', () => {
  const { clock, put, get } = setup();
  put(RTC_HOURS, 0x01);
  assert.equal(get(RTC_HOURS), 0x01);
  assert.equal(get(RTC_MINUTES), 0x09);
  clock.ms += 3_600_000;
  assert.equal(get(RTC_HOURS), 0x02);
});

void test('memory size registers for 64 MiB', () => {
  const { get } = setup({ lowRamBytes: 64 * MiB });
  const w = (lo: number): number => get(lo) | (get(lo + 1) << 8);
  assert.equal(w(0x15), 640);
  assert.equal(w(0x17), 63 * 1024);
  assert.equal(w(0x30), 63 * 1024);
  assert.equal(w(0x34), (48 * MiB) / 65536);
  assert.deepEqual([get(0x5b), get(0x5c), get(0x5d)], [0, 0, 0]);
});

void test('memory size registers for 5 GiB (3 GiB low, 2 GiB high)', () => {
  const { get } = setup({ lowRamBytes: 3 * GiB, highRamBytes: 2 * GiB });
  const w = (lo: number): number => get(lo) | (get(lo + 1) << 8);
  assert.equal(w(0x15), 640);
  assert.equal(w(0x17), 0xffff, 'clamped');
  assert.equal(w(0x30), 0xffff);
  assert.equal(w(0x34), (3 * GiB - 16 * MiB) / 65536);
  assert.deepEqual([get(0x5b), get(0x5c), get(0x5d)], [0x00, 0x80, 0x00]); // 2 GiB / 64 KiB = 0x8000
});

void test('NVRAM round trip, NMI bit ignored, contents survive a guest reset', () => {
  const { put, get, rtc } = setup();
  for (let i = 0x38; i < 0x80; i++) if (i < 0x5b || i > 0x5d) put(i, i ^ 0xa5);
  put(0x80 | 0x40, 0x11); // index bit 7 is the NMI mask
  assert.equal(get(0x40), 0x11);
  rtc.reset();
  for (let i = 0x41; i < 0x5b; i++) assert.equal(get(i), i ^ 0xa5);
  assert.equal(get(0x15) | (get(0x16) << 8), 640);
  const d = new Uint8Array(1);
  rtc.read(RTC_INDEX, d);
  assert.equal(d[0], 0xff, 'the index port reads as all ones');
});

void test('REG_C read returns and clears the flags and lowers the line; REG_C/D ignore writes', () => {
  const { put, get, rtc, irq, region } = setup();
  // No timer sets flags yet: plant UF|AF as the update/alarm logic would (CMOS is the last 128 bytes).
  region.u8[CmosRtc.STATE_BYTES - 128 + RTC_REG_C] = 0x30;
  put(RTC_REG_B, REG_B_24H | 0x10); // enabling UIE with UF already set interrupts at once
  assert.equal(irq.level, true);
  assert.equal(get(RTC_REG_C), 0xb0);
  assert.equal(irq.level, false);
  assert.equal(get(RTC_REG_C), 0x00);
  put(RTC_REG_C, 0xff);
  put(RTC_REG_D, 0x00);
  assert.equal(get(RTC_REG_C), 0x00);
  assert.equal(get(RTC_REG_D), 0x80);
  put(RTC_REG_A, 0xa6); // UIP is read-only
  assert.equal(get(RTC_REG_A), 0x26);
  put(RTC_REG_B, 0x7a); // PIE | AIE | UIE | SQWE | 24H
  rtc.reset();
  assert.equal(get(RTC_REG_B), 0x12, 'reset clears PIE, AIE and SQWE');
});

void test('two objects over one region (two threads) share CMOS and the clock offset', () => {
  const region = SharedArena.create(4096).alloc(CmosRtc.STATE_BYTES);
  const a = setup({ region });
  a.put(0x50, 0x99);
  a.put(RTC_YEAR, 0x31);
  const b = setup({ region, lowRamBytes: 1 * MiB }); // does not re-run power-on
  assert.equal(b.get(0x50), 0x99);
  assert.equal(b.get(RTC_YEAR), 0x31);
  assert.equal(b.get(0x15) | (b.get(0x16) << 8), 640);
  assert.equal(b.get(0x17) | (b.get(0x18) << 8), 63 * 1024);
});
