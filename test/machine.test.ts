// The library API on real KVM: pause/resume latency, state, resets, several machines at once.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createMachine, NodevisorError, type Machine } from '../src/index.js';
import { guest } from '../src/testing/kvm-guests.js';

function collect(m: Machine): { text: () => string; waitFor: (s: string, ms?: number) => Promise<void> } {
  let out = '';
  const waiters: Array<() => void> = [];
  m.events.on('serial', (b) => {
    out += Buffer.from(b).toString('latin1');
    waiters.splice(0).forEach((w) => w());
  });
  return {
    text: () => out,
    waitFor: async (s, ms = 10_000) => {
      const deadline = Date.now() + ms;
      while (!out.includes(s)) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${JSON.stringify(s)}; got ${JSON.stringify(out)}`);
        await new Promise<void>((resolve) => { waiters.push(resolve); setTimeout(resolve, 50); });
      }
    },
  };
}

for (const name of ['hlt', 'spin']) {
  test(`pause stops a vCPU within 10 ms while the guest ${name === 'hlt' ? 'halts' : 'spins'}, resume continues it`, async () => {
    const m = await createMachine({ kernel: guest(name), memorySize: 64 << 20, cpus: 2 });
    try {
      const out = collect(m);
      await m.start();
      await out.waitFor(name === 'hlt' ? 'hlt: halting\n' : 'spin: spinning\n');
      await new Promise((r) => setTimeout(r, 50));
      const latencies: number[] = [];
      let rip = -1n;
      for (let i = 0; i < 9; i++) {
        const t0 = performance.now();
        await m.pause();
        latencies.push(performance.now() - t0);
        assert.equal(m.status, 'paused');
        const { regs } = await m.vcpuState(0);
        if (rip >= 0n) assert.equal(regs.rip, rip, 'the guest is where it was: state intact across pause/resume');
        rip = regs.rip;
        await m.resume();
        assert.equal(m.status, 'running');
        await new Promise((r) => setTimeout(r, 20));
      }
      // The median: on a loaded 2-CPU host the scheduler may hold up any one pause (CI saw it).
      const median = [...latencies].sort((x, y) => x - y)[Math.floor(latencies.length / 2)]!;
      assert.ok(median < 10, `pause took ${median.toFixed(2)} ms (median; all: ${latencies.map((l) => l.toFixed(2)).join(', ')})`);
    } finally {
      await m.quit();
    }
  });
}

test('vCPU state cannot be read while the machine runs', async () => {
  const m = await createMachine({ kernel: guest('spin'), memorySize: 32 << 20 });
  try {
    await m.start();
    await assert.rejects(m.vcpuState(0), (e: unknown) => e instanceof NodevisorError && e.code === 'ERR_BAD_STATE');
  } finally {
    await m.quit();
  }
});

test('several machines run in one process without interfering', async () => {
  const machines = await Promise.all([1, 2, 3].map(() => createMachine({ kernel: guest('reset'), memorySize: 32 << 20, noReboot: true })));
  const outs = machines.map(collect);
  await Promise.all(machines.map((m) => m.start()));
  const ends = await Promise.all(machines.map((m) => m.waitForEnd()));
  for (const [i, e] of ends.entries()) {
    assert.deepEqual(e, { reason: 'guest-reset', exitCode: 0 });
    assert.equal(outs[i]!.text(), 'reset: boot 1\n', 'each machine has its own CMOS');
  }
});

test('a host reset boots the kernel again and keeps CMOS; memory is readable', async () => {
  const m = await createMachine({ kernel: guest('reset'), memorySize: 32 << 20, noReboot: false });
  const out = collect(m);
  const resets: string[] = [];
  m.events.on('reset', (r) => resets.push(`${r.guest}:${r.reason}`));
  try {
    await m.start();
    await out.waitFor('reset: boot 3\n');
    await m.pause();
    await m.reset('host-qmp-system-reset');
    await m.resume();
    await out.waitFor('reset: boot 5\n');
    assert.ok(resets.includes('false:host-qmp-system-reset'), resets.join(' '));
    assert.ok(resets.filter((r) => r === 'true:guest-reset').length >= 2, resets.join(' '));
    // The PVH start info the loader wrote is in guest RAM, magic first.
    assert.equal(m.memory.readU32(0x6000), 0x336ec578);
  } finally {
    await m.quit();
  }
});

test('no /dev/kvm: an error naming the device and the fix', async () => {
  await assert.rejects(
    createMachine({ kernel: guest('hello') }, { kvmDevice: '/dev/nonexistent-kvm' }),
    (e: unknown) => e instanceof NodevisorError && e.code === 'ERR_KVM_UNAVAILABLE'
      && /\/dev\/nonexistent-kvm: ENOENT: is the kvm module loaded/.test(e.message),
  );
});
