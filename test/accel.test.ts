// x-query-accel on real KVM: the properties in force and this host's capabilities, as QMP
// reports them (compared with what KVM_CHECK_EXTENSION says directly).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createMachine } from '../src/index.js';
import { Kvm } from '../src/kvm/kvm.js';
import { qmpMachine } from '../src/machine/qmp-adapter.js';
import { coreCommands } from '../src/qmp/commands-core.js';
import { machineCommands } from '../src/qmp/commands-machine.js';
import { QmpDispatcher } from '../src/qmp/dispatcher.js';
import { QmpSession } from '../src/qmp/session.js';
import { play } from '../src/qmp/transcript.js';
import { guest } from '../src/testing/kvm-guests.js';
import { QEMU, runNodevisor, runProgram } from '../src/testing/run-cli.js';

const VERSION = { qemu: { major: 7, minor: 2, micro: 0 }, package: 'nodevisor-test' };

test('x-query-accel reports the properties in force and the host capabilities that matter', async () => {
  const kvm = Kvm.open();
  const caps = {
    notify: kvm.checkExtension('X86_NOTIFY_VMEXIT'), ring: kvm.checkExtension('DIRTY_LOG_RING'),
    msr: kvm.checkExtension('X86_USER_SPACE_MSR'), max: kvm.checkExtension('MAX_VCPUS'),
  };
  kvm.close();
  const m = await createMachine({
    kernel: guest('hello'), memorySize: 32 << 20,
    accel: { notifyVmexit: 'internal-error', notifyWindow: 7, kernelIrqchip: 'on', dirtyRingSize: 0 },
  });
  try {
    const dispatcher = new QmpDispatcher({ ...coreCommands(VERSION), ...machineCommands(qmpMachine(m), VERSION) });
    const session = new QmpSession();
    session.negotiated = true;
    const [line] = await play(dispatcher, session, '{"execute": "x-query-accel"}');
    const r = (JSON.parse(line!) as { return: Record<string, unknown> }).return;
    assert.deepEqual(r.properties, { 'notify-vmexit': 'internal-error', 'notify-window': 7, 'kernel-irqchip': 'on', 'dirty-ring-size': 0 });
    assert.equal(r['notify-vmexit-status'], caps.notify === 0 ? 'unavailable' : 'enabled');
    const host = r.host as Record<string, unknown>;
    assert.equal(host['notify-vmexit'], caps.notify !== 0);
    assert.equal(host['dirty-ring-max-size'], Math.floor(caps.ring / 16));
    assert.equal(host['user-space-msr'], caps.msr !== 0);
    assert.equal(host['max-vcpus'], caps.max);
    const [list] = await play(dispatcher, session, '{"execute": "query-commands"}');
    assert.match(list!, /"name": "x-query-accel"/);
  } finally {
    await m.quit();
  }
});

test('a dirty ring larger than the host allows: QEMU 7.2\'s two lines at the -accel option, exit 1', async () => {
  const kvm = Kvm.open();
  const max = Math.floor(kvm.checkExtension('DIRTY_LOG_RING') / 16);
  kvm.close();
  assert.ok(max > 0, 'this test needs a host with KVM_CAP_DIRTY_LOG_RING');
  const args = ['-M', 'pc', '-kernel', guest('hello'), '-display', 'none', '-accel', `kvm,dirty-ring-size=${max * 2}`];
  const [ours, qemu] = await Promise.all([runNodevisor(args, { timeoutMs: 30_000 }), runProgram(QEMU, args, { timeoutMs: 30_000 })]);
  assert.equal(ours.code, 1);
  assert.equal(ours.code, qemu.code);
  assert.equal(ours.stderr.replaceAll('nodevisor:', 'qemu-system-x86_64:'), qemu.stderr);
});
