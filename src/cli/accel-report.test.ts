import assert from 'node:assert/strict';
import { accessSync, constants } from 'node:fs';
import { test } from 'node:test';
import { Kvm } from '../kvm/kvm.js';
import { capabilityLines, hostCapabilityLines } from './accel-report.js';

test('capability lines name each capability and what it allows', () => {
  const lines = capabilityLines({
    notifyVmexitFlags: 3, memoryFaultInfo: true, dirtyRingMaxEntries: 65536, userSpaceMsr: 1, msrFilter: true,
    guestDebug: false, busLockExit: 0, maxVcpus: 1024,
  });
  assert.deepEqual(lines, [
    'Host capabilities (nodevisor):',
    '  X86_NOTIFY_VMEXIT    flags 0x3 (enabled, user)',
    '  MEMORY_FAULT_INFO    yes',
    '  DIRTY_LOG_RING       dirty-ring-size up to 65536',
    '  X86_USER_SPACE_MSR   yes',
    '  X86_MSR_FILTER       yes',
    '  SET_GUEST_DEBUG      no',
    '  MAX_VCPUS            1024',
  ]);
  const none = capabilityLines({
    notifyVmexitFlags: 0, memoryFaultInfo: false, dirtyRingMaxEntries: 0, userSpaceMsr: 0, msrFilter: false,
    guestDebug: false, busLockExit: 0, maxVcpus: 1,
  });
  assert.equal(none[1], '  X86_NOTIFY_VMEXIT    no (notify-vmexit has no effect)');
  assert.equal(none[3], '  DIRTY_LOG_RING       no (dirty-ring-size must be 0)');
});

test('without a KVM device: one line saying so, not an error', () => {
  const lines = hostCapabilityLines('/nonexistent/kvm');
  assert.equal(lines.length, 2);
  assert.equal(lines[0], 'Host capabilities (nodevisor):');
  assert.match(lines[1] ?? '', /^ {2}unknown: Could not access KVM kernel module: \/nonexistent\/kvm: ENOENT/);
});

test('with /dev/kvm: the answers of KVM_CHECK_EXTENSION', () => {
  accessSync('/dev/kvm', constants.R_OK | constants.W_OK); // nodevisor's tests need KVM
  const lines = hostCapabilityLines();
  assert.equal(lines.length, 8);
  const kvm = Kvm.open();
  try {
    const ring = Math.floor(kvm.checkExtension('DIRTY_LOG_RING') / 16);
    assert.ok(lines.includes(`  DIRTY_LOG_RING       ${ring === 0 ? 'no (dirty-ring-size must be 0)' : `dirty-ring-size up to ${ring}`}`));
    assert.ok(lines.includes(`  MAX_VCPUS            ${kvm.checkExtension('MAX_VCPUS') || kvm.checkExtension('NR_VCPUS')}`));
  } finally {
    kvm.close();
  }
});
