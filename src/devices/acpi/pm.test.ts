// Plays an ACPI OS (ACPICA's fixed-hardware and GPE code, the sleep path) against the PM block.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SharedArena, type SharedRegion } from '../shared-state.js';
import { RecordingIrq } from '../test-doubles.js';
import {
  AcpiPm, GPE0_BLK, GPE0_BLK_LEN, GPE0_EN, GPE0_STS, PM1_CNT, PM1_EN, PM1_STS, PM1A_CNT_BLK, PM1A_EVT_BLK, PM_IO_BASE,
  PM_IO_LENGTH, PM_TIMER_FREQUENCY, PM_TMR, PM_TMR_BLK, PWRBTN_EN, PWRBTN_STS, SCI_EN, SCI_IRQ, SLP_EN, SLP_TYP_S3,
  SLP_TYP_S4, SLP_TYP_S5, SLP_TYP_SHIFT, TMR_EN, TMR_STS, WAK_STS, type SleepState,
} from './pm.js';

const NS = 1_000_000_000n;

function setup(opts: { region?: SharedRegion; clock?: { ns: bigint } } = {}) {
  const clock = opts.clock ?? { ns: 5n * NS };
  const region = opts.region ?? SharedArena.create(4096).alloc(AcpiPm.STATE_BYTES);
  const sci = new RecordingIrq();
  const sleeps: SleepState[] = [];
  const pm = new AcpiPm(region, { sci, sleep: (s) => sleeps.push(s) }, { now: () => clock.ns });
  const read = (dev: { read(o: number, d: Uint8Array): void }, off: number, size: number): number => {
    const d = new Uint8Array(size);
    dev.read(off, d);
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + d[i]!;
    return v;
  };
  const write = (dev: { write(o: number, d: Uint8Array): void }, off: number, size: number, v: number): void => {
    const d = new Uint8Array(4);
    new DataView(d.buffer).setUint32(0, v >>> 0, true);
    dev.write(off, d.subarray(0, size));
  };
  const inw = (off: number): number => read(pm, off, 2);
  const outw = (off: number, v: number): void => write(pm, off, 2, v);
  const inl = (off: number): number => read(pm, off, 4);
  const gpeIn = (off: number): number => read(pm.gpe0, off, 1);
  const gpeOut = (off: number, v: number): void => write(pm.gpe0, off, 1, v);
  return { clock, region, sci, sleeps, pm, inw, outw, inl, gpeIn, gpeOut, read, write };
}

void test('the port layout the FADT describes', () => {
  assert.equal(PM1A_EVT_BLK, 0x600);
  assert.equal(PM1A_CNT_BLK, 0x604);
  assert.equal(PM_TMR_BLK, 0x608);
  assert.equal(GPE0_BLK, 0xafe0);
  assert.equal(GPE0_BLK_LEN, 4);
  assert.equal(SCI_IRQ, 9);
  assert.ok(PM_TMR_BLK + 4 <= PM_IO_BASE + PM_IO_LENGTH);
});

void test('power-on: nothing pending or enabled, SCI_EN set (always in ACPI mode)', () => {
  const { inw, gpeIn, sci } = setup();
  assert.equal(inw(PM1_STS), 0);
  assert.equal(inw(PM1_EN), 0);
  assert.equal(inw(PM1_CNT), SCI_EN);
  for (let i = 0; i < GPE0_BLK_LEN; i++) assert.equal(gpeIn(i), 0);
  assert.deepEqual(sci.levels, []);
});

void test('SCI_EN cannot be cleared; SLP_TYP reads back; SLP_EN always reads 0', () => {
  const { inw, outw, sleeps } = setup();
  outw(PM1_CNT, 0);
  assert.equal(inw(PM1_CNT), SCI_EN);
  outw(PM1_CNT, SLP_TYP_S4 << SLP_TYP_SHIFT);
  assert.equal(inw(PM1_CNT), SCI_EN | (SLP_TYP_S4 << SLP_TYP_SHIFT));
  assert.deepEqual(sleeps, [], 'SLP_TYP alone does not sleep');
});

void test('SLP_TYP | SLP_EN asks for the sleep state the DSDT names', () => {
  for (const [typ, state] of [[SLP_TYP_S5, 'S5'], [SLP_TYP_S3, 'S3'], [SLP_TYP_S4, 'S4']] as const) {
    const { inw, outw, sleeps } = setup();
    // ACPICA: write SLP_TYP first, then SLP_TYP | SLP_EN.
    const cnt = inw(PM1_CNT) & ~(7 << SLP_TYP_SHIFT);
    outw(PM1_CNT, cnt | (typ << SLP_TYP_SHIFT));
    outw(PM1_CNT, cnt | (typ << SLP_TYP_SHIFT) | SLP_EN);
    assert.deepEqual(sleeps, [state]);
    assert.equal(inw(PM1_CNT) & SLP_EN, 0);
  }
});

void test('reserved SLP_TYP values are ignored; a byte write of the high half works', () => {
  const { pm, outw, sleeps } = setup();
  outw(PM1_CNT, (5 << SLP_TYP_SHIFT) | SLP_EN);
  assert.deepEqual(sleeps, []);
  pm.write(PM1_CNT + 1, Uint8Array.of(((SLP_TYP_S3 << SLP_TYP_SHIFT) | SLP_EN) >> 8));
  assert.deepEqual(sleeps, ['S3']);
});

void test('power button: status always, SCI only while PWRBTN_EN, write 1 to clear', () => {
  const { pm, inw, outw, sci } = setup();
  pm.pressPowerButton();
  assert.equal(inw(PM1_STS), PWRBTN_STS);
  assert.equal(sci.level, false, 'disabled: no SCI');
  assert.deepEqual(sci.levels, []);
  outw(PM1_EN, PWRBTN_EN);
  assert.equal(inw(PM1_EN), PWRBTN_EN);
  assert.deepEqual(sci.levels, [true], 'enabling a pending event raises the SCI');
  outw(PM1_STS, 0); // writing 0 leaves it
  outw(PM1_STS, TMR_STS | WAK_STS); // as do ones elsewhere
  assert.equal(inw(PM1_STS), PWRBTN_STS);
  assert.deepEqual(sci.levels, [true]);
  outw(PM1_STS, PWRBTN_STS);
  assert.equal(inw(PM1_STS), 0);
  assert.deepEqual(sci.levels, [true, false]);
  pm.pressPowerButton(); // enabled now: straight to the SCI
  assert.deepEqual(sci.levels, [true, false, true]);
  outw(PM1_EN, 0); // masking it drops the line, the status stays
  assert.deepEqual(sci.levels, [true, false, true, false]);
  assert.equal(inw(PM1_STS), PWRBTN_STS);
});

void test('a 32-bit access at PM1a_EVT_BLK reads status and enable together', () => {
  const { pm, inl, outw } = setup();
  outw(PM1_EN, PWRBTN_EN);
  pm.pressPowerButton();
  assert.equal(inl(PM1_STS), (PWRBTN_EN << 16) | PWRBTN_STS);
});

void test('wake() sets WAK_STS, which raises no SCI and clears by writing 1', () => {
  const { pm, inw, outw, sci } = setup();
  outw(PM1_EN, 0xffff);
  pm.wake();
  assert.equal(inw(PM1_STS), WAK_STS);
  assert.equal(sci.level, false);
  outw(PM1_STS, WAK_STS);
  assert.equal(inw(PM1_STS), 0);
});

void test('reset returns to power-on and lowers the SCI', () => {
  const { pm, inw, outw, sci, gpeIn } = setup();
  outw(PM1_EN, PWRBTN_EN);
  outw(PM1_CNT, SLP_TYP_S3 << SLP_TYP_SHIFT);
  pm.pressPowerButton();
  pm.reset();
  assert.equal(inw(PM1_STS), 0);
  assert.equal(inw(PM1_EN), 0);
  assert.equal(inw(PM1_CNT), SCI_EN);
  assert.equal(gpeIn(GPE0_EN), 0);
  assert.equal(sci.level, false);
});

void test('PM timer: 3.579545 MHz from the host clock, 24 bits, read-only, one sample per access', () => {
  const { clock, inl, pm, write } = setup();
  assert.equal(inl(PM_TMR), 0);
  clock.ns += NS / 100n; // 10 ms
  assert.equal(inl(PM_TMR), Math.floor(PM_TIMER_FREQUENCY / 100));
  clock.ns += NS - NS / 100n; // 1 s from power-on
  assert.equal(inl(PM_TMR), PM_TIMER_FREQUENCY);
  write(pm, PM_TMR, 4, 0);
  assert.equal(inl(PM_TMR), PM_TIMER_FREQUENCY, 'writes vanish');
  clock.ns += 4n * NS; // 5 s: 17897725 ticks, past 2^24
  assert.equal(inl(PM_TMR), (5 * PM_TIMER_FREQUENCY) % 2 ** 24);
  assert.equal(inl(PM_TMR) >>> 24, 0);
  // Byte reads see the same counter.
  const b = new Uint8Array(1);
  pm.read(PM_TMR + 2, b);
  assert.equal(b[0], ((5 * PM_TIMER_FREQUENCY) % 2 ** 24) >>> 16);
});

void test('PM timer advances at 3.579545 MHz on the real host clock (within 2%)', async () => {
  const region = SharedArena.create(4096).alloc(AcpiPm.STATE_BYTES);
  const pm = new AcpiPm(region, { sci: new RecordingIrq(), sleep: () => {} });
  const read = (): number => {
    const d = new Uint8Array(4);
    pm.read(PM_TMR, d);
    return new DataView(d.buffer).getUint32(0, true);
  };
  const t0 = process.hrtime.bigint();
  const c0 = read();
  await new Promise((r) => setTimeout(r, 200));
  const c1 = read();
  const t1 = process.hrtime.bigint();
  const ticks = (c1 - c0 + 2 ** 24) % 2 ** 24; // < 4.6 s: at most one wrap
  const expected = (Number(t1 - t0) / 1e9) * PM_TIMER_FREQUENCY;
  assert.ok(Math.abs(ticks - expected) / expected < 0.02, `${ticks} ticks, expected about ${Math.round(expected)}`);
});

void test('TMR_STS sets when bit 23 flips, clears by writing 1, and raises the SCI only with TMR_EN', () => {
  const { clock, inw, outw, sci } = setup();
  clock.ns += (NS * BigInt(2 ** 23 - 10)) / BigInt(PM_TIMER_FREQUENCY);
  assert.equal(inw(PM1_STS) & TMR_STS, 0);
  clock.ns += NS / 100n;
  assert.equal(inw(PM1_STS) & TMR_STS, TMR_STS);
  assert.equal(sci.level, false);
  outw(PM1_EN, TMR_EN);
  assert.equal(sci.level, true);
  outw(PM1_STS, TMR_STS);
  assert.equal(inw(PM1_STS) & TMR_STS, 0);
  assert.equal(sci.level, false);
  clock.ns += (NS * BigInt(2 ** 23)) / BigInt(PM_TIMER_FREQUENCY) + 1n;
  inw(PM_TMR); // the next access notices the flip
  assert.equal(sci.level, true);
});

void test('GPE0: enable latches, status clears by writing 1, SCI while (STS & EN)', () => {
  const { pm, gpeIn, gpeOut, sci } = setup();
  gpeOut(GPE0_EN, 0x04);
  gpeOut(GPE0_EN + 1, 0x80);
  assert.equal(gpeIn(GPE0_EN), 0x04);
  assert.equal(gpeIn(GPE0_EN + 1), 0x80);
  pm.raiseGpe0(1); // not enabled
  assert.equal(gpeIn(GPE0_STS), 0x02);
  assert.equal(sci.level, false);
  pm.raiseGpe0(2);
  assert.equal(gpeIn(GPE0_STS), 0x06);
  assert.equal(sci.level, true);
  gpeOut(GPE0_STS, 0x04);
  assert.equal(gpeIn(GPE0_STS), 0x02);
  assert.equal(sci.level, false);
  pm.raiseGpe0(15);
  assert.equal(gpeIn(GPE0_STS + 1), 0x80);
  assert.equal(sci.level, true);
  assert.throws(() => pm.raiseGpe0(16), RangeError);
});

void test('the SCI is the OR of every enabled pending event', () => {
  const { pm, outw, gpeOut, sci } = setup();
  outw(PM1_EN, PWRBTN_EN);
  gpeOut(GPE0_EN, 0x01);
  pm.pressPowerButton();
  pm.raiseGpe0(0);
  assert.deepEqual(sci.levels, [true]);
  outw(PM1_STS, PWRBTN_STS);
  assert.equal(sci.level, true, 'the GPE still holds it');
  gpeOut(GPE0_STS, 0x01);
  assert.deepEqual(sci.levels, [true, false]);
});

void test('accesses outside the registers read all ones and are counted', () => {
  const { pm, read, write } = setup();
  assert.equal(read(pm, 0x06, 2), 0xffff);
  assert.equal(read(pm, 0x0c, 4), 0xffffffff);
  write(pm, 0x20, 1, 0x12);
  assert.equal(read(pm.gpe0, 4, 1), 0xff);
  assert.equal(pm.badAccesses, 4);
});

void test('objects over the same region (one per thread) share the state; a second one resets nothing', () => {
  const clock = { ns: 7n * NS };
  const a = setup({ clock });
  clock.ns += NS;
  const b = setup({ clock, region: a.region });
  a.outw(PM1_EN, PWRBTN_EN);
  b.pm.pressPowerButton();
  assert.equal(a.inw(PM1_STS), PWRBTN_STS);
  assert.equal(b.inl(PM_TMR), PM_TIMER_FREQUENCY, 'the timer started with the first object');
  assert.deepEqual(b.sci.levels, [true]);
  a.outw(PM1_STS, PWRBTN_STS);
  assert.deepEqual(a.sci.levels, [false], 'whichever thread sees the change drives the line');
  assert.equal(b.pm.sciLevel, false);
});
