// Guest-triggered events on real KVM, through the library API: pvpanic, the ib700 watchdog
// and the Hyper-V crash MSRs under each -action setting. The expected event sequences are
// QEMU 7.2's on the same guests (docs/guest-events-qemu.md; a firmware-less boot emits one
// RESET per reset where QEMU's SeaBIOS adds a second).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createMachine, type Machine, type MachineEnd } from '../src/index.js';
import type { DeviceConfig } from '../src/machine/config.js';
import { DEFAULT_ACTIONS, withNoShutdown, type ActionPolicy } from '../src/runstate/actions.js';
import type { QmpEvent } from '../src/runstate/events.js';
import { guest } from '../src/testing/kvm-guests.js';

interface Run {
  machine: Machine;
  events: string[];
  serial: () => string;
  logs: string[];
  warnings: string[];
  until(pred: () => boolean, what: string, ms?: number): Promise<void>;
}

async function run(name: string, devices: DeviceConfig[], actions: Partial<ActionPolicy> | ActionPolicy, hvCrash = false): Promise<Run> {
  const machine = await createMachine(
    { kernel: guest(name), memorySize: 32 << 20, devices, cpu: { model: 'host', features: [], hvCrash } },
    { actions: { ...DEFAULT_ACTIONS, ...actions } },
  );
  let out = '';
  const r: Run = {
    machine, events: [], logs: [], warnings: [], serial: () => out,
    async until(pred, what, ms = 10_000) {
      const deadline = Date.now() + ms;
      while (!pred()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; events ${r.events.join(' | ')}; serial ${JSON.stringify(out)}`);
        await new Promise((res) => setTimeout(res, 5));
      }
    },
  };
  machine.events.on('serial', (b) => { out += Buffer.from(b).toString('latin1'); });
  machine.events.on('qmp', (e: QmpEvent) => r.events.push('data' in e ? `${e.event} ${JSON.stringify(e.data, (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v))}` : e.event));
  machine.events.on('log', (l) => r.logs.push(l));
  machine.events.on('warning', (w) => r.warnings.push(w));
  return r;
}

const PVPANIC: DeviceConfig[] = [{ driver: 'pvpanic', ioport: 0x505 }];
const CRASHLOADED = 'GUEST_CRASHLOADED {"action":"run"}';

async function ended(r: Run): Promise<MachineEnd> {
  const end = r.machine.waitForEnd();
  await r.machine.start();
  return end;
}

test('pvpanic, default actions: GUEST_CRASHLOADED, GUEST_PANICKED poweroff, SHUTDOWN guest-panic, exit 0', async () => {
  const r = await run('pvpanic', PVPANIC, {});
  const end = await ended(r);
  assert.deepEqual(r.events, ['RESUME', CRASHLOADED, 'GUEST_PANICKED {"action":"poweroff"}', 'SHUTDOWN {"guest":true,"reason":"guest-panic"}']);
  assert.equal(end.exitCode, 0);
  assert.match(r.serial(), /pvpanic: events 3\npvpanic: crash loaded sent\n/);
  assert.doesNotMatch(r.serial(), /running after panic/);
});

test('pvpanic, panic=exit-failure: the same events and exit status 1', async () => {
  const r = await run('pvpanic', PVPANIC, { panic: 'exit-failure' });
  const end = await ended(r);
  assert.deepEqual(r.events.slice(-2), ['GUEST_PANICKED {"action":"poweroff"}', 'SHUTDOWN {"guest":true,"reason":"guest-panic"}']);
  assert.equal(end.exitCode, 1);
});

test('pvpanic, panic=none: GUEST_PANICKED run and the guest runs on', async () => {
  const r = await run('pvpanic', PVPANIC, { panic: 'none' });
  try {
    await r.machine.start();
    await r.until(() => r.serial().includes('pvpanic: running after panic'), 'the guest to run on');
    assert.deepEqual(r.events, ['RESUME', CRASHLOADED, 'GUEST_PANICKED {"action":"run"}']);
    assert.equal(r.machine.status, 'running');
  } finally {
    await r.machine.quit();
  }
});

test('pvpanic with -no-shutdown: GUEST_PANICKED pause, STOP, guest-panicked; cont resumes it', async () => {
  const r = await run('pvpanic', PVPANIC, withNoShutdown({ ...DEFAULT_ACTIONS }));
  try {
    await r.machine.start();
    await r.until(() => r.machine.status === 'guest-panicked', 'guest-panicked');
    assert.deepEqual(r.events, ['RESUME', CRASHLOADED, 'GUEST_PANICKED {"action":"pause"}', 'STOP']);
    await r.machine.resume();
    await r.until(() => r.serial().includes('pvpanic: running after panic'), 'the guest to run on');
    assert.equal(r.events.at(-1), 'RESUME');
  } finally {
    await r.machine.quit();
  }
});

test('pvpanic with -no-shutdown and panic=exit-failure: poweroff, SHUTDOWN, STOP, status shutdown', async () => {
  const r = await run('pvpanic', PVPANIC, { ...withNoShutdown({ ...DEFAULT_ACTIONS }), panic: 'exit-failure' });
  try {
    await r.machine.start();
    await r.until(() => r.machine.status === 'shutdown', 'shutdown');
    assert.deepEqual(r.events.slice(1), [CRASHLOADED, 'GUEST_PANICKED {"action":"poweroff"}', 'SHUTDOWN {"guest":true,"reason":"guest-panic"}', 'STOP']);
    await assert.rejects(r.machine.resume(), /Resetting the Virtual Machine is required/);
  } finally {
    await r.machine.quit();
  }
});

test('without -device pvpanic the port is unassigned: reads 0xff, writes ignored', async () => {
  const r = await run('pvpanic', [], {});
  try {
    await r.machine.start();
    await r.until(() => r.serial().includes('running after panic'), 'the guest to run on');
    assert.match(r.serial(), /pvpanic: events 255/);
    assert.deepEqual(r.events, ['RESUME']);
  } finally {
    await r.machine.quit();
  }
});

const IB700: DeviceConfig[] = [{ driver: 'ib700' }];

test('ib700 watchdog=pause: WATCHDOG pause, STOP, status watchdog; cont runs it and it does not fire again', async () => {
  const r = await run('watchdog', IB700, { watchdog: 'pause' });
  try {
    await r.machine.start();
    await r.until(() => r.machine.status === 'watchdog', 'status watchdog');
    assert.deepEqual(r.events, ['RESUME', 'WATCHDOG {"action":"pause"}', 'STOP']);
    await r.machine.resume();
    await new Promise((res) => setTimeout(res, 200));
    assert.deepEqual(r.events.slice(3), ['RESUME']);
  } finally {
    await r.machine.quit();
  }
});

test('ib700 watchdog=reset with -no-reboot: WATCHDOG reset, SHUTDOWN guest-reset, exit 0', async () => {
  const r = await run('watchdog', IB700, { watchdog: 'reset', reboot: 'shutdown' });
  const end = await ended(r);
  assert.deepEqual(r.events, ['RESUME', 'WATCHDOG {"action":"reset"}', 'SHUTDOWN {"guest":true,"reason":"guest-reset"}']);
  assert.equal(end.exitCode, 0);
});

test('ib700 watchdog=reset: one RESET per expiry, and the rebooted guest arms it again', async () => {
  const r = await run('watchdog', IB700, { watchdog: 'reset' });
  try {
    await r.machine.start();
    await r.until(() => r.events.filter((e) => e.startsWith('RESET')).length >= 2, 'two resets');
    assert.deepEqual(r.events.slice(0, 5), ['RESUME', 'WATCHDOG {"action":"reset"}', 'RESET {"guest":true,"reason":"guest-reset"}',
      'WATCHDOG {"action":"reset"}', 'RESET {"guest":true,"reason":"guest-reset"}']);
    assert.equal(r.serial().split('watchdog: arming').length - 1 >= 2, true);
  } finally {
    await r.machine.quit();
  }
});

test('ib700 watchdog=poweroff ends the machine with no SHUTDOWN; debug logs; none and shutdown run on', async () => {
  const off = await run('watchdog', IB700, { watchdog: 'poweroff' });
  const end = await ended(off);
  assert.deepEqual(off.events, ['RESUME', 'WATCHDOG {"action":"poweroff"}']);
  assert.deepEqual([end.reason, end.exitCode], ['watchdog', 0]);

  for (const [action, after] of [['debug', []], ['none', []], ['shutdown', ['POWERDOWN']]] as const) {
    const r = await run('watchdog', IB700, { watchdog: action });
    try {
      await r.machine.start();
      await r.until(() => r.events.length >= 2, 'WATCHDOG');
      await new Promise((res) => setTimeout(res, 100));
      assert.deepEqual(r.events, ['RESUME', `WATCHDOG {"action":"${action}"}`, ...after], action);
      assert.equal(r.machine.status, 'running');
      assert.deepEqual(r.logs, action === 'debug' ? ['watchdog: timer fired'] : []);
    } finally {
      await r.machine.quit();
    }
  }
});

test('ib700 watchdog=inject-nmi: the guest takes the NMI (vector 2)', async () => {
  const r = await run('watchdog', IB700, { watchdog: 'inject-nmi', reboot: 'shutdown' });
  const end = await ended(r);
  assert.match(r.serial(), /unexpected exception 2/);
  assert.deepEqual(r.events, ['RESUME', 'WATCHDOG {"action":"inject-nmi"}', 'SHUTDOWN {"guest":true,"reason":"guest-reset"}']);
  assert.equal(end.exitCode, 0);
});

test('hv-crash: Hyper-V leaves and crash MSRs through user-space MSR exits; the crash is a GUEST_PANICKED with its parameters', async () => {
  const r = await run('hvcrash', [], {}, true);
  const end = await ended(r);
  assert.match(r.serial(), /hvcrash: vendor Microsoft Hv\nhvcrash: crash msrs offered\nhvcrash: crash_ctl 8000000000000000\nhvcrash: params written\n/);
  assert.deepEqual(r.events, [
    'RESUME',
    'GUEST_PANICKED {"action":"poweroff","info":{"type":"hyper-v","arg1":1,"arg2":2,"arg3":3,"arg4":4,"arg5":5}}',
    'SHUTDOWN {"guest":true,"reason":"guest-panic"}',
  ]);
  assert.equal(end.exitCode, 0);
  assert.ok(r.warnings.some((w) => /Hyper-V crash parameters \(0x1 0x2 0x3 0x4 0x5\)/.test(w)));
});

test('without hv-crash the guest sees KVM\'s leaves and the MSR write faults, as under QEMU', async () => {
  const r = await run('hvcrash', [], { reboot: 'shutdown' });
  const end = await ended(r);
  assert.match(r.serial(), /hvcrash: vendor KVMKVMKVM\nhvcrash: crash msrs not offered\nunexpected exception 13/);
  assert.deepEqual(r.events, ['RESUME', 'SHUTDOWN {"guest":true,"reason":"guest-reset"}']);
  assert.equal(end.exitCode, 0);
});

test('acpi: the guest finds RSDP, XSDT, FADT, DSDT and MADT the way an OS does, and S5 powers off', async () => {
  const r = await run('acpi', [], {});
  const end = await ended(r);
  assert.equal(r.serial(), [
    'ACPI: RSDP ok', 'ACPI: XSDT', 'ACPI: FACP', 'ACPI: DSDT', 'ACPI: APIC cpus=1', 'ACPI: PM1a_CNT_BLK 00000604', 'ACPI: entering S5', '',
  ].join('\n'));
  assert.deepEqual(r.events, ['RESUME', 'SHUTDOWN {"guest":true,"reason":"guest-shutdown"}']);
  assert.deepEqual([end.reason, end.exitCode], ['guest-shutdown', 0]);
});

test('reset semantics: a guest booted twice in one process sees the same machine both times', async () => {
  // -no-shutdown keeps the machine after S5; system_reset then boots the guest again.
  const r = await run('acpi', PVPANIC, withNoShutdown({ ...DEFAULT_ACTIONS }));
  try {
    await r.machine.start();
    // The serial drain may trail the run state: wait for the guest's last line too.
    await r.until(() => r.machine.status === 'shutdown' && r.serial().endsWith('ACPI: entering S5\n'), 'the first S5');
    r.machine.powerdown(); // latches PWRBTN_STS: the reset must clear it
    const first = r.serial();
    await r.machine.reset('host-qmp-system-reset');
    assert.equal(r.machine.status, 'prelaunch', 'a reset from shutdown waits for cont, as in QEMU');
    await r.machine.resume();
    // STOP follows SHUTDOWN once the vCPUs have paused; the status changes with it.
    await r.until(() => r.serial().length >= 2 * first.length && r.events.filter((e) => e === 'STOP').length === 2
      && r.machine.status === 'shutdown', 'the second S5');
    assert.equal(r.serial(), first + first, 'the second boot prints exactly what the first did');
    assert.deepEqual(r.events, [
      'RESUME', 'SHUTDOWN {"guest":true,"reason":"guest-shutdown"}', 'STOP', 'POWERDOWN',
      'RESET {"guest":false,"reason":"host-qmp-system-reset"}', 'RESUME', 'SHUTDOWN {"guest":true,"reason":"guest-shutdown"}', 'STOP',
    ]);
  } finally {
    await r.machine.quit();
  }
});

test('ACPI S3: SUSPEND, system_wakeup resumes at the FACS waking vector (WAKEUP, WAK_STS), power button, S4', async () => {
  const r = await run('acpi-sleep', [], {});
  const end = r.machine.waitForEnd();
  await r.machine.start();
  await r.until(() => r.machine.status === 'suspended', 'suspended');
  assert.deepEqual(r.events, ['RESUME', 'SUSPEND']);
  await r.machine.wakeup();
  await r.until(() => r.serial().includes('sleep: waiting for the power button\n'), 'the guest to wait for the button');
  r.machine.powerdown();
  const how = await end;
  assert.equal(r.serial(), [
    'sleep: entering S3', 'sleep: woke', 'sleep: WAK_STS 1', 'sleep: waiting for the power button', 'sleep: power button',
    'sleep: entering S4', '',
  ].join('\n'));
  // QEMU 7.2 on the same guest: SUSPEND, WAKEUP, POWERDOWN, SUSPEND_DISK, SHUTDOWN, exit 0.
  assert.deepEqual(r.events, ['RESUME', 'SUSPEND', 'WAKEUP', 'POWERDOWN', 'SUSPEND_DISK', 'SHUTDOWN {"guest":true,"reason":"guest-shutdown"}']);
  assert.deepEqual([how.reason, how.exitCode], ['guest-shutdown', 0]);
});
