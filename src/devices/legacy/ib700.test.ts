// Plays Linux's ib700wdt driver (start/ping on 0x443, stop on 0x441) and the machine's main
// thread (one timer from armed(), expire() when it fires) against the model. Expected
// behaviour is what QEMU 7.2's `-device ib700` did (docs/guest-events-qemu.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { SharedArena, type SharedRegion } from '../shared-state.js';
import {
  Ib700, IB700_BASE_PORT, IB700_DISABLE_PORT, IB700_ENABLE_PORT, IB700_PORT_COUNT, IB700_TIMEOUTS_S, monotonicMs,
} from './ib700.js';

const ENABLE = IB700_ENABLE_PORT - IB700_BASE_PORT;
const DISABLE = IB700_DISABLE_PORT - IB700_BASE_PORT;

function setup(region: SharedRegion = SharedArena.create(4096).alloc(Ib700.STATE_BYTES)) {
  const clock = { ms: 1_000_000 };
  let changes = 0;
  const dev = new Ib700(region, { changed: () => changes++ }, { now: () => clock.ms });
  const outb = (offset: number, v: number): void => dev.write(offset, Uint8Array.of(v));
  return { region, clock, dev, outb, changes: () => changes };
}

void test('ports: 0x441..0x444, disable at 0x441, enable at 0x443', () => {
  assert.equal(IB700_BASE_PORT, 0x441);
  assert.equal(IB700_PORT_COUNT, 4);
  assert.equal(IB700_DISABLE_PORT, 0x441);
  assert.equal(IB700_ENABLE_PORT, 0x443);
});

void test('timeout table: index 0 is 30 s, each next 2 s less, index 15 is 0 s', () => {
  assert.deepEqual(IB700_TIMEOUTS_S, [30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0]);
});

void test('power-on: disarmed, nothing for the main thread', () => {
  const { dev, changes } = setup();
  assert.equal(dev.enabled, false);
  assert.equal(dev.armed(), null);
  assert.equal(changes(), 0);
});

void test('reads return 0xff on every port', () => {
  const { dev } = setup();
  for (let off = 0; off < IB700_PORT_COUNT; off++) {
    const d = new Uint8Array(2);
    dev.read(off, d);
    assert.deepEqual([...d], [0xff, 0xff]);
  }
});

void test('start with the shortest timeout: due at once', () => {
  const { dev, outb, clock, changes } = setup();
  outb(ENABLE, 0x0f);
  assert.equal(dev.enabled, true);
  assert.equal(changes(), 1);
  const t = dev.armed();
  assert.ok(t);
  assert.equal(t.deadline, clock.ms);
  assert.equal(t.generation % 2, 0, 'a stable generation is even');
});

void test('only the low nibble selects the timeout', () => {
  const { dev, outb, clock } = setup();
  outb(ENABLE, 0xfc); // index 12: 6 s
  assert.equal(dev.armed()?.deadline, clock.ms + 6000);
  outb(ENABLE, 0x00);
  assert.equal(dev.armed()?.deadline, clock.ms + 30_000);
});

void test('a ping re-arms from now and makes the earlier timer stale', () => {
  const { dev, outb, clock, changes } = setup();
  outb(ENABLE, 0x0e); // 2 s
  const first = dev.armed()!;
  clock.ms += 1500;
  outb(ENABLE, 0x0e);
  const second = dev.armed()!;
  assert.equal(second.deadline, clock.ms + 2000);
  assert.notEqual(second.generation, first.generation);
  assert.equal(changes(), 2);
  assert.equal(dev.expire(first.generation), false, 'stale timer');
  assert.equal(dev.enabled, true);
  assert.equal(dev.expire(second.generation), true);
});

void test('stop on 0x441 or 0x442 disarms; stopping an idle watchdog tells nobody', () => {
  const { dev, outb, changes } = setup();
  outb(ENABLE, 0);
  const armed = dev.armed()!;
  outb(DISABLE, 0);
  assert.equal(dev.enabled, false);
  assert.equal(dev.armed(), null);
  assert.equal(dev.expire(armed.generation), false);
  assert.equal(changes(), 2);
  outb(DISABLE, 0);
  outb(DISABLE + 1, 0);
  assert.equal(changes(), 2);
  outb(ENABLE, 0);
  outb(DISABLE + 1, 0x55); // 0x442 disables too, whatever the value
  assert.equal(dev.enabled, false);
});

void test('0x444 arms too (QEMU maps the enable write to two ports)', () => {
  const { dev, outb, clock } = setup();
  outb(ENABLE + 1, 0x0d);
  assert.equal(dev.armed()?.deadline, clock.ms + 4000);
});

void test('a 16-bit write to 0x443 is two enable writes: the high byte wins (QEMU fired at once for 0x0f0e)', () => {
  const { dev, clock, changes } = setup();
  dev.write(ENABLE, Uint8Array.of(0x0e, 0x0f));
  assert.equal(dev.armed()?.deadline, clock.ms);
  assert.equal(changes(), 2);
});

void test('a 16-bit write to 0x442 disables and its high byte does not reach 0x443 (QEMU: no WATCHDOG for 0x0f00)', () => {
  const { dev, outb } = setup();
  outb(ENABLE, 0);
  dev.write(DISABLE + 1, Uint8Array.of(0x00, 0x0f));
  assert.equal(dev.enabled, false);
});

void test('a 16-bit write to 0x444 arms with its low byte (QEMU fired at once for 0x000f)', () => {
  const { dev, clock } = setup();
  dev.write(ENABLE + 1, Uint8Array.of(0x0f, 0x00));
  assert.equal(dev.armed()?.deadline, clock.ms);
});

void test('a 32-bit write does nothing (QEMU: no WATCHDOG for 0x0000000f to 0x443)', () => {
  const { dev, outb, changes } = setup();
  dev.write(ENABLE, Uint8Array.of(0x0f, 0, 0, 0));
  assert.equal(dev.enabled, false);
  outb(ENABLE, 0);
  dev.write(DISABLE, Uint8Array.of(0, 0, 0, 0));
  assert.equal(dev.enabled, true);
  assert.equal(changes(), 1);
});

void test('expiry fires once and leaves the watchdog disarmed', () => {
  const { dev, outb, changes } = setup();
  outb(ENABLE, 0x0f);
  const t = dev.armed()!;
  assert.equal(dev.expire(t.generation), true);
  assert.equal(dev.enabled, false);
  assert.equal(dev.armed(), null);
  assert.equal(dev.expire(t.generation), false, 'the same timer does not fire twice');
  assert.equal(changes(), 2);
  outb(ENABLE, 0x0f); // the guest may arm it again
  assert.equal(dev.expire(dev.armed()!.generation), true);
});

void test('a machine reset disarms', () => {
  const { dev, outb, changes } = setup();
  outb(ENABLE, 0);
  const t = dev.armed()!;
  dev.reset();
  assert.equal(dev.enabled, false);
  assert.equal(dev.expire(t.generation), false);
  assert.equal(changes(), 2);
  dev.reset();
  assert.equal(changes(), 2, 'a reset of a disarmed watchdog is no news');
});

void test('time stands still while the VM is stopped (QEMU: 6 s timer, stopped 6 s after 1 s, fires 5 s after cont)', () => {
  const { dev, outb, clock, changes } = setup();
  const t0 = clock.ms;
  outb(ENABLE, 0x0c); // 6 s
  const before = dev.armed()!;
  clock.ms = t0 + 1000;
  dev.stopClock();
  assert.equal(dev.armed(), null, 'no timer while stopped');
  assert.equal(dev.enabled, true);
  assert.equal(dev.expire(before.generation), false, 'a timer set before the stop is stale');
  clock.ms = t0 + 7000;
  dev.startClock();
  assert.equal(dev.armed()?.deadline, t0 + 12_000);
  assert.equal(changes(), 3);
  dev.startClock(); // already running: nothing
  assert.equal(changes(), 3);
});

void test('stopping and starting a disarmed watchdog keeps it disarmed; arming while stopped counts from the start', () => {
  const { dev, outb, clock } = setup();
  dev.stopClock();
  dev.stopClock();
  outb(ENABLE, 0x0e); // a vCPU finishing its last exit after the stop
  assert.equal(dev.armed(), null);
  clock.ms += 10_000;
  dev.startClock();
  assert.equal(dev.armed()?.deadline, clock.ms + 2000);
  outb(DISABLE, 0);
  dev.stopClock();
  dev.startClock();
  assert.equal(dev.armed(), null);
});

void test('two device objects over one region (two threads) see the same watchdog', () => {
  const a = setup();
  const b = setup(a.region);
  b.clock.ms = a.clock.ms;
  a.outb(ENABLE, 0x0e);
  assert.deepEqual(b.dev.armed(), a.dev.armed());
  assert.equal(b.dev.expire(a.dev.armed()!.generation), true);
  assert.equal(a.dev.enabled, false);
});

void test('the main thread can wait on the generation word for a change', async () => {
  const { dev, outb } = setup();
  const seen = Atomics.load(dev.generationCell, 0);
  const wait = Atomics.waitAsync(dev.generationCell, 0, seen);
  assert.equal(wait.async, true);
  outb(ENABLE, 0);
  assert.equal(await wait.value, 'ok');
});

void test('monotonicMs is one clock for every thread: a worker arms, the main thread reads its deadline', async () => {
  const region = SharedArena.create(4096).alloc(Ib700.STATE_BYTES);
  const url = new URL('./ib700.js', import.meta.url).href;
  const code = `
    const { workerData, parentPort } = require('node:worker_threads');
    import(workerData.url).then(({ Ib700 }) => {
      const region = { sab: workerData.sab, offset: 0, length: 24,
        i32: new Int32Array(workerData.sab, 0, 6), view: new DataView(workerData.sab, 0, 24) };
      const dev = new Ib700(region, { changed() {} });
      dev.write(2, Uint8Array.of(0x0e));
      parentPort.postMessage('armed');
    });`;
  const before = monotonicMs();
  const worker = new Worker(code, { eval: true, workerData: { url, sab: region.sab } });
  await new Promise<void>((resolve, reject) => {
    worker.once('message', () => resolve());
    worker.once('error', reject);
  });
  const after = monotonicMs();
  await worker.terminate();
  const main = new Ib700(region, { changed: () => undefined });
  const t = main.armed();
  assert.ok(t);
  assert.ok(t.deadline >= before + 2000 && t.deadline <= after + 2000, `${before} <= ${t.deadline - 2000} <= ${after}`);
});
