/**
 * The "Host capabilities (nodevisor):" section that `-accel kvm,help` prints after the
 * property list: what this host's KVM offers for the properties above and for introspection,
 * from the same record x-query-accel reports (machine/accelerator.ts's hostCapabilities).
 */
import { NodevisorError } from '../errors.js';
import { Kvm, KVM_DEVICE } from '../kvm/kvm.js';
import {
  hostCapabilities,
  KVM_X86_NOTIFY_VMEXIT_ENABLED,
  KVM_X86_NOTIFY_VMEXIT_USER,
  type HostCapabilities,
} from '../machine/accelerator.js';

const NOTIFY_FLAGS: ReadonlyArray<[number, string]> = [
  [KVM_X86_NOTIFY_VMEXIT_ENABLED, 'enabled'],
  [KVM_X86_NOTIFY_VMEXIT_USER, 'user'],
];

/** `0x3 (enabled, user)`: a flag mask with the names of the bits it has. */
function flags(mask: number, names: ReadonlyArray<[number, string]>): string {
  const set = names.filter(([bit]) => (mask & bit) !== 0).map(([, name]) => name);
  return `0x${mask.toString(16)}${set.length > 0 ? ` (${set.join(', ')})` : ''}`;
}

const yesNo = (b: boolean): string => (b ? 'yes' : 'no');

/** The lines for capabilities already read; one per capability, under the heading. */
export function capabilityLines(caps: HostCapabilities): string[] {
  return [
    'Host capabilities (nodevisor):',
    `  X86_NOTIFY_VMEXIT    ${caps.notifyVmexitFlags === 0 ? 'no (notify-vmexit has no effect)' : `flags ${flags(caps.notifyVmexitFlags, NOTIFY_FLAGS)}`}`,
    `  MEMORY_FAULT_INFO    ${yesNo(caps.memoryFaultInfo)}`,
    `  DIRTY_LOG_RING       ${caps.dirtyRingMaxEntries === 0 ? 'no (dirty-ring-size must be 0)' : `dirty-ring-size up to ${caps.dirtyRingMaxEntries}`}`,
    // KVM answers 1, not the exit reasons it supports: those show only when enabling them.
    `  X86_USER_SPACE_MSR   ${yesNo(caps.userSpaceMsr !== 0)}`,
    `  X86_MSR_FILTER       ${yesNo(caps.msrFilter)}`,
    `  SET_GUEST_DEBUG      ${yesNo(caps.guestDebug)}`,
    `  MAX_VCPUS            ${caps.maxVcpus}`,
  ];
}

/**
 * Opens `kvmDevice` and describes what it offers. When it cannot be opened that is said in
 * one line: help is still help, not a failure.
 */
export function hostCapabilityLines(kvmDevice: string = KVM_DEVICE): string[] {
  let kvm: Kvm;
  try {
    kvm = Kvm.open(kvmDevice);
  } catch (e) {
    if (!(e instanceof NodevisorError)) throw e;
    return ['Host capabilities (nodevisor):', `  unknown: ${e.message}`];
  }
  try {
    return capabilityLines(hostCapabilities(kvm));
  } finally {
    kvm.close();
  }
}
