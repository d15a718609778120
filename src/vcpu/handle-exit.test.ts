// Exit handling driven with made-up exits: every path, no KVM needed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Bus } from '../bus/bus.js';
import type { BusDevice } from '../devices/device.js';
import type { VcpuExit } from './exit.js';
import { KVM_SYSTEM_EVENT } from './exit-reason.js';
import { handleExit, type ExitContext } from './handle-exit.js';

class Port implements BusDevice {
  log: string[] = [];
  read(offset: number, data: Uint8Array): void {
    this.log.push(`r${offset}/${data.length}`);
    data.fill(0x40 + offset);
  }
  write(offset: number, data: Uint8Array): void {
    this.log.push(`w${offset}=${[...data].join(',')}`);
  }
}

function context(): { ctx: ExitContext; port: Port; mem: Port; held: () => number; calls: string[] } {
  const pio = new Bus('pio');
  const mmio = new Bus('mmio');
  const port = new Port();
  const mem = new Port();
  pio.insert(port, 0x3f8, 8, 'com1');
  mmio.insert(mem, 0xd0000000, 0x1000, 'mmio dev');
  let depth = 0;
  const calls: string[] = [];
  const ctx: ExitContext = {
    pio, mmio,
    lock: () => { depth++; calls.push('lock'); },
    unlock: () => { depth--; calls.push('unlock'); },
  };
  return { ctx, port, mem, held: () => depth, calls };
}

test('port I/O reaches the device under the lock; an in fills the run page data', () => {
  const { ctx, port, held, calls } = context();
  const data = new Uint8Array(1);
  assert.deepEqual(handleExit({ reason: 'io', out: false, port: 0x3fd, size: 1, count: 1, data }, ctx), { kind: 'continue' });
  assert.equal(data[0], 0x45);
  handleExit({ reason: 'io', out: true, port: 0x3f8, size: 1, count: 1, data: Uint8Array.of(65) }, ctx);
  assert.deepEqual(port.log, ['r5/1', 'w0=65']);
  assert.equal(held(), 0);
  assert.deepEqual(calls, ['lock', 'unlock', 'lock', 'unlock']);
});

test('rep outs/ins: count elements back to back, one lock for all of them', () => {
  const { ctx, port, calls } = context();
  handleExit({ reason: 'io', out: true, port: 0x3f8, size: 1, count: 3, data: Uint8Array.of(1, 2, 3) }, ctx);
  const data = new Uint8Array(4);
  handleExit({ reason: 'io', out: false, port: 0x3fa, size: 2, count: 2, data }, ctx);
  assert.deepEqual(port.log, ['w0=1', 'w0=2', 'w0=3', 'r2/2', 'r2/2']);
  assert.deepEqual([...data], [0x42, 0x42, 0x42, 0x42]);
  assert.deepEqual(calls, ['lock', 'unlock', 'lock', 'unlock']);
});

test('unclaimed port and MMIO reads are all ones and never fatal', () => {
  const { ctx } = context();
  const data = new Uint8Array(4);
  assert.deepEqual(handleExit({ reason: 'io', out: false, port: 0x1234, size: 4, count: 1, data }, ctx), { kind: 'continue' });
  assert.deepEqual([...data], [0xff, 0xff, 0xff, 0xff]);
  const m = new Uint8Array(8);
  assert.deepEqual(handleExit({ reason: 'mmio', gpa: 0xfeb00000, isWrite: false, data: m }, ctx), { kind: 'continue' });
  assert.ok(m.every((b) => b === 0xff));
  assert.equal(ctx.pio.unclaimedReads + ctx.mmio.unclaimedReads, 2);
});

test('MMIO goes to the device at its offset', () => {
  const { ctx, mem } = context();
  handleExit({ reason: 'mmio', gpa: 0xd0000010, isWrite: true, data: Uint8Array.of(9, 8) }, ctx);
  assert.deepEqual(mem.log, ['w16=9,8']);
});

test('machine-level exits become actions for the vCPU loop', () => {
  const { ctx } = context();
  const cases: Array<[VcpuExit, string]> = [
    [{ reason: 'hlt' }, 'halt'],
    [{ reason: 'intr' }, 'continue'],
    [{ reason: 'irq-window-open' }, 'continue'],
    [{ reason: 'shutdown' }, 'reset'],
    [{ reason: 'system-event', type: KVM_SYSTEM_EVENT.RESET, data: [] }, 'reset'],
    [{ reason: 'system-event', type: KVM_SYSTEM_EVENT.SHUTDOWN, data: [] }, 'shutdown'],
    [{ reason: 'system-event', type: KVM_SYSTEM_EVENT.CRASH, data: [] }, 'guest-panic'],
    [{ reason: 'system-event', type: 99, data: [] }, 'internal-error'],
    [{ reason: 'internal-error', suberror: 1, data: [1n] }, 'internal-error'],
    [{ reason: 'fail-entry', hardwareEntryFailureReason: 0x80000021n, cpu: 0 }, 'internal-error'],
    [{ reason: 'unhandled', exitReason: 200, hardwareExitReason: 0n }, 'internal-error'],
    [{ reason: 'debug', exception: 1, pc: 0n, dr6: 0n, dr7: 0n }, 'debug'],
  ];
  for (const [exit, kind] of cases) assert.equal(handleExit(exit, ctx).kind, kind, exit.reason);
  assert.deepEqual(handleExit({ reason: 'shutdown' }, ctx), { kind: 'reset', reason: 'guest-reset' });
});
