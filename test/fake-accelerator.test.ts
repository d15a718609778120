// Exits this host cannot produce (it has no notify VM exit, no bus-lock exit) driven through
// the scripted fake hypervisor: the same vCPU threads, decoder, exit handling and machine.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createMachine, NodevisorError, type Machine } from '../src/index.js';
import type { QmpEvent } from '../src/runstate/events.js';
import { FakeHypervisor, fakeExit, type FakeRun, type FakeScript } from '../src/testing/fake-hypervisor.js';
import { guest } from '../src/testing/kvm-guests.js';
import { KVM_MSR_EXIT_REASON, KVM_NOTIFY_CONTEXT_INVALID } from '../src/vcpu/exit-reason.js';
import type { AccelConfig } from '../src/machine/config.js';

const ACCEL: AccelConfig = { notifyVmexit: 'run', notifyWindow: 0, kernelIrqchip: 'on', dirtyRingSize: 0 };

interface Watched {
  machine: Machine;
  fake: FakeHypervisor;
  warnings: string[];
  events: string[];
  reports: string[];
  waitFor(pred: () => boolean, what: string): Promise<void>;
}

async function boot(script: FakeScript, accel: Partial<AccelConfig> = {}, cpus = 1): Promise<Watched> {
  const fake = new FakeHypervisor(script);
  const machine = await createMachine(
    { kernel: guest('hello'), memorySize: 32 << 20, cpus, serial: { kind: 'null' }, accel: { ...ACCEL, ...accel } },
    { fakeHypervisor: fake },
  );
  const w: Watched = {
    machine, fake, warnings: [], events: [], reports: [],
    async waitFor(pred, what) {
      const deadline = Date.now() + 5000;
      while (!pred()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; events ${w.events.join(',')}`);
        await new Promise((r) => setTimeout(r, 5));
      }
    },
  };
  machine.events.on('warning', (m) => w.warnings.push(m));
  machine.events.on('qmp', (e: QmpEvent) => w.events.push(e.event));
  machine.events.on('internal-error', ({ report }) => w.reports.push(report));
  return w;
}

const at = (n: number, run: FakeRun): Array<FakeRun | null> => [...Array<null>(n - 1).fill(null), run];

test('notify exit with an invalid context: internal-error and STOP, whatever notify-vmexit says', async () => {
  const w = await boot({ vcpus: [at(3, fakeExit.notify(KVM_NOTIFY_CONTEXT_INVALID))], caps: { X86_NOTIFY_VMEXIT: 3 } });
  try {
    await w.machine.start();
    await w.waitFor(() => w.machine.status === 'internal-error', 'internal-error');
    assert.deepEqual(w.events, ['RESUME', 'STOP']);
    assert.match(w.reports[0]!, /notify VM exit \(flags 0x1\)[\s\S]*invalid context/);
    assert.match(w.reports[0]!, /EIP=00100000[\s\S]*Code=/, 'the register dump and code bytes follow');
    // The notify exit was enabled at VM creation: window in bits 63:32, enable + user flags.
    assert.deepEqual(w.fake.log.enabledCaps, [{ cap: 'X86_NOTIFY_VMEXIT', arg0: 3n }]);
  } finally {
    await w.machine.quit();
  }
});

test('notify exits with notify-vmexit=run: one warning, the guest keeps running', async () => {
  const w = await boot({
    vcpus: [[fakeExit.notify(0), null, fakeExit.notify(0), fakeExit.notify(0)]], caps: { X86_NOTIFY_VMEXIT: 3 },
  }, { notifyWindow: 128 });
  try {
    await w.machine.start();
    await w.waitFor(() => w.machine.exitCounts()[0]! >= 3, 'three exits');
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(w.machine.status, 'running');
    assert.equal(w.warnings.filter((m) => /notify VM exit with valid context/.test(m)).length, 1);
    assert.deepEqual(w.fake.log.enabledCaps, [{ cap: 'X86_NOTIFY_VMEXIT', arg0: (128n << 32n) | 3n }]);
  } finally {
    await w.machine.quit();
  }
});

test('notify-vmexit=internal-error: a valid-context notify exit stops the VM', async () => {
  const w = await boot({ vcpus: [[fakeExit.notify(0)]], caps: { X86_NOTIFY_VMEXIT: 3 } }, { notifyVmexit: 'internal-error' });
  try {
    await w.machine.start();
    await w.waitFor(() => w.machine.status === 'internal-error', 'internal-error');
    assert.match(w.reports[0]!, /valid context/);
  } finally {
    await w.machine.quit();
  }
});

test('a host without notify VM exit: the VM starts, reports it, and warns whoever asked for it', async () => {
  const quiet = await boot({ vcpus: [[]] });
  try {
    assert.equal(quiet.machine.accelerator.notifyVmexit, 'unavailable');
    assert.deepEqual(quiet.warnings, [], 'QEMU is silent with the default notify-vmexit=run');
  } finally {
    await quiet.machine.quit();
  }
  const w = await boot({ vcpus: [[]] }, { notifyVmexitRequested: true, notifyWindow: 10 });
  try {
    assert.equal(w.machine.accelerator.notifyVmexit, 'unavailable');
    assert.deepEqual(w.warnings, ['notify-vmexit=run has no effect: this host\'s KVM has no notify VM exit (KVM_CAP_X86_NOTIFY_VMEXIT)']);
    assert.deepEqual(w.fake.log.enabledCaps, []);
  } finally {
    await w.machine.quit();
  }
  const d = await boot({ vcpus: [[]], caps: { X86_NOTIFY_VMEXIT: 3 } }, { notifyVmexit: 'disable' });
  try {
    assert.equal(d.machine.accelerator.notifyVmexit, 'disabled');
    assert.deepEqual(d.fake.log.enabledCaps, []);
  } finally {
    await d.machine.quit();
  }
});

test('a host whose notify VM exit lacks the user-exit flag is refused with a clear error', async () => {
  await assert.rejects(boot({ vcpus: [[]], caps: { X86_NOTIFY_VMEXIT: 1 } }), (e: unknown) =>
    e instanceof NodevisorError && /needs the enable and user-exit flags.*0x1/.test(e.message));
});

test('memory fault, unknown exit and failed entry: internal-error with what an operator needs', async () => {
  const cases: Array<[FakeRun, RegExp]> = [
    [fakeExit.memoryFault(0xd0000000n, 0x1000n), /memory fault at gpa 0xd0000000 size 0x1000 \(shared memory/],
    [fakeExit.raw(77, 0x30n), /unknown exit reason 77 \(hardware exit reason 0x30\)/],
    [fakeExit.raw(0, 0x12n), /KVM: unknown exit, hardware reason 0x12/],
    [fakeExit.failEntry(0x80000021n, 1), /entry failed, hardware error 0x80000021/],
    [fakeExit.internalError(2, [5n]), /Suberror: 2\nextra data\[0\]: 0x0000000000000005\n.*simultaneous/],
  ];
  for (const [run, pattern] of cases) {
    const w = await boot({ vcpus: [[run]] });
    try {
      await w.machine.start();
      await w.waitFor(() => w.machine.status === 'internal-error', 'internal-error');
      assert.match(w.reports[0]!, pattern);
      assert.deepEqual(w.events, ['RESUME', 'STOP']);
    } finally {
      await w.machine.quit();
    }
  }
});

test('an unhandled MSR gets #GP and one warning; a bus lock warns once and runs on', async () => {
  const w = await boot({
    vcpus: [[fakeExit.rdmsr(0x4b564dff, KVM_MSR_EXIT_REASON.FILTER), fakeExit.rdmsr(0x4b564dff, KVM_MSR_EXIT_REASON.FILTER),
      fakeExit.busLock(), fakeExit.busLock(), fakeExit.outb(0x80, 1)]],
  });
  try {
    await w.machine.start();
    await w.waitFor(() => w.machine.exitCounts()[0]! >= 5, 'five exits');
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(w.machine.status, 'running');
    assert.equal(w.warnings.filter((m) => /rdmsr of MSR 0x4b564dff \(filtered\).*#GP/.test(m)).length, 1);
    assert.equal(w.warnings.filter((m) => /bus lock/.test(m)).length, 1);
  } finally {
    await w.machine.quit();
  }
});

test('guest system events: reset and shutdown requests reach the run-state machine', async () => {
  const w = await boot({ vcpus: [[fakeExit.systemEvent(1)]] });
  const end = w.machine.waitForEnd();
  await w.machine.start();
  const how = await end;
  assert.equal(how.reason, 'guest-shutdown');
  assert.deepEqual(w.events, ['RESUME', 'SHUTDOWN']);
});

test('accelerator properties the machine refuses: split irqchip, off with SMP, a dirty ring too big', async () => {
  await assert.rejects(boot({ vcpus: [[]] }, { kernelIrqchip: 'split' }), /kernel-irqchip=split is not supported/);
  await assert.rejects(boot({ vcpus: [[], []] }, { kernelIrqchip: 'off' }, 2), /kernel-irqchip=off supports one vCPU/);
  await assert.rejects(boot({ vcpus: [[]], caps: { DIRTY_LOG_RING: 65536 } }, { dirtyRingSize: 8192 }),
    /KVM dirty ring size 8192 too big \(maximum is 4096\)\. {2}Please use a smaller value\.\nfailed to initialize kvm: Invalid argument/);
  const ok = await boot({ vcpus: [[]], caps: { DIRTY_LOG_RING: 65536 } }, { dirtyRingSize: 4096 });
  try {
    assert.deepEqual(ok.fake.log.enabledCaps, [{ cap: 'DIRTY_LOG_RING', arg0: 65536n }]);
    assert.equal(ok.fake.log.irqchip, true);
  } finally {
    await ok.machine.quit();
  }
  const off = await boot({ vcpus: [[fakeExit.hlt(), fakeExit.hlt()]] }, { kernelIrqchip: 'off' });
  try {
    assert.equal(off.fake.log.irqchip, false);
    assert.equal(off.fake.log.pit, false);
    assert.ok(off.warnings.some((m) => /kernel-irqchip=off/.test(m)));
    await off.machine.start();
    await off.waitFor(() => off.machine.exitCounts()[0]! >= 2, 'HLT exits');
    assert.equal(off.machine.status, 'running');
  } finally {
    await off.machine.quit();
  }
});

test('hv-crash on a host whose KVM emulates Hyper-V: no MSR filter, and KVM\'s crash event carries P0..P4', async () => {
  const fake = new FakeHypervisor({ vcpus: [[fakeExit.systemEvent(3)]], caps: { HYPERV: 1 } });
  const machine = await createMachine(
    { kernel: guest('hello'), memorySize: 32 << 20, serial: { kind: 'null' }, cpu: { model: 'host', features: [], hvCrash: true } },
    { fakeHypervisor: fake },
  );
  const events: QmpEvent[] = [];
  machine.events.on('qmp', (e: QmpEvent) => events.push(e));
  const end = machine.waitForEnd();
  await machine.start();
  assert.equal((await end).reason, 'guest-panic');
  assert.deepEqual(fake.log.msrFilter, []);
  assert.deepEqual(events[1], {
    event: 'GUEST_PANICKED',
    data: { action: 'poweroff', info: { type: 'hyper-v', arg1: 0n, arg2: 0n, arg3: 0n, arg4: 0n, arg5: 0n } },
  });
});

const AR = 4; // BUS_MCEERR_AR
const AO = 5; // BUS_MCEERR_AO
const mf = (recipient: string, action: string, ar: boolean, recursive: boolean): QmpEvent => ({
  event: 'MEMORY_FAILURE', data: { recipient, action, flags: { 'action-required': ar, recursive } },
} as QmpEvent);

async function poisoned(runs: Array<FakeRun | null>, caps: FakeScript['caps']): Promise<{ events: QmpEvent[]; machine: Machine; logs: string[] }> {
  const machine = await createMachine(
    { kernel: guest('hello'), memorySize: 32 << 20, serial: { kind: 'null' } },
    { fakeHypervisor: new FakeHypervisor({ vcpus: [runs], ...(caps ? { caps } : {}) }) },
  );
  const events: QmpEvent[] = [];
  const logs: string[] = [];
  machine.events.on('qmp', (e: QmpEvent) => events.push(e));
  machine.events.on('log', (l) => logs.push(l));
  machine.events.on('warning', (l) => logs.push(l));
  return { events, machine, logs };
}

test('a poisoned guest page, guest without MCE enabled: MEMORY_FAILURE reset, then RESET', async () => {
  const { events, machine, logs } = await poisoned([{ exitReason: 0, sigbus: { code: AR, gpa: 0x200000 } }], { MCE: 32 });
  try {
    await machine.start();
    const deadline = Date.now() + 5000;
    while (!events.some((e) => e.event === 'RESET') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(events.slice(1, 3), [mf('guest', 'reset', true, false), { event: 'RESET', data: { guest: true, reason: 'guest-reset' } }]);
    assert.match(logs[0]!, /Guest MCE Memory Error at QEMU addr 0x[0-9a-f]+ and GUEST addr 0x200000 of type BUS_MCEERR_AR injected/);
  } finally {
    await machine.quit();
  }
});

test('a poisoned guest page, guest with CR4.MCE: the machine check is injected; a second one while handling resets', async () => {
  const { events, machine } = await poisoned([
    { exitReason: 0, cr4: 1n << 6n, sigbus: { code: AR, gpa: 0x300000 } },
    { exitReason: 0, sigbus: { code: AO, gpa: 0x301000 } },
    { exitReason: 0, sigbus: { code: AR, gpa: 0x302000 } },
  ], { MCE: 32 });
  try {
    await machine.start();
    const deadline = Date.now() + 5000;
    while (!events.some((e) => e.event === 'RESET') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(events.slice(1), [
      mf('guest', 'inject', true, false),
      // MCG_STATUS.MCIP is still set: an action-optional error is dropped, a required one resets.
      mf('guest', 'ignore', false, true),
      mf('guest', 'reset', true, true),
      { event: 'RESET', data: { guest: true, reason: 'guest-reset' } },
    ]);
  } finally {
    await machine.quit();
  }
});

test('a poisoned page on a host without machine-check banks is the hypervisor\'s: MEMORY_FAILURE fatal, exit 1, no SHUTDOWN', async () => {
  const { events, machine, logs } = await poisoned([{ exitReason: 0, sigbus: { code: AR, gpa: 0x200000 } }], undefined);
  const end = machine.waitForEnd();
  await machine.start();
  const how = await end;
  assert.deepEqual([how.reason, how.exitCode], ['fatal', 1]);
  assert.deepEqual(events.slice(1), [mf('hypervisor', 'fatal', true, false)]);
  assert.match(logs[0]!, /QEMU got Hardware memory error at addr 0x/);
});
