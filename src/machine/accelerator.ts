/**
 * The KVM accelerator's properties applied to a new VM, checked against what the host offers,
 * and the record of both that `x-query-accel` and `-accel kvm,help` report. Runs before any
 * vCPU exists: KVM only takes notify-VM-exit and dirty-ring settings then.
 */
import { NodevisorError } from '../errors.js';
import type { Hypervisor, HypervisorVm } from '../hypervisor/hypervisor.js';
import { KvmError } from '../kvm/kvm-error.js';
import { KVM_DIRTY_GFN_SIZE } from '../kvm/dirty-ring.js';
import { strerror } from '../kvm/libc.js';
import type { AccelConfig } from './config.js';

/** KVM_X86_NOTIFY_VMEXIT_* flags (args[0] bits 31:0 of KVM_CAP_X86_NOTIFY_VMEXIT). */
export const KVM_X86_NOTIFY_VMEXIT_ENABLED = 1 << 0;
export const KVM_X86_NOTIFY_VMEXIT_USER = 1 << 1;

/** The host capabilities that decide what the accelerator can do. */
export interface HostCapabilities {
  /** Flags KVM_CAP_X86_NOTIFY_VMEXIT accepts (0: no notify VM exit on this host). */
  notifyVmexitFlags: number;
  /** KVM_CAP_MEMORY_FAULT_INFO: memory faults come with gpa, size and flags. */
  memoryFaultInfo: boolean;
  /** Largest dirty ring, in entries (0: no dirty ring). */
  dirtyRingMaxEntries: number;
  /** KVM_CAP_X86_USER_SPACE_MSR (KVM answers 1 when present). */
  userSpaceMsr: number;
  /** KVM_CAP_X86_MSR_FILTER. */
  msrFilter: boolean;
  /** KVM_CAP_SET_GUEST_DEBUG. */
  guestDebug: boolean;
  /** KVM_CAP_X86_BUS_LOCK_EXIT modes (0: none). */
  busLockExit: number;
  maxVcpus: number;
}

export interface AcceleratorInfo {
  /** The properties in force. */
  readonly properties: Readonly<AccelConfig>;
  /** Whether notify VM exits are on: `enabled`, `disabled` (by the option), or `unavailable` (host). */
  readonly notifyVmexit: 'enabled' | 'disabled' | 'unavailable';
  readonly host: Readonly<HostCapabilities>;
}

export function hostCapabilities(kvm: Hypervisor, vm?: HypervisorVm): HostCapabilities {
  const check = vm ?? kvm;
  return {
    notifyVmexitFlags: check.checkExtension('X86_NOTIFY_VMEXIT'),
    memoryFaultInfo: check.checkExtension('MEMORY_FAULT_INFO') > 0,
    dirtyRingMaxEntries: Math.floor(check.checkExtension('DIRTY_LOG_RING') / KVM_DIRTY_GFN_SIZE),
    userSpaceMsr: check.checkExtension('X86_USER_SPACE_MSR'),
    msrFilter: check.checkExtension('X86_MSR_FILTER') > 0,
    guestDebug: check.checkExtension('SET_GUEST_DEBUG') > 0,
    busLockExit: check.checkExtension('X86_BUS_LOCK_EXIT'),
    maxVcpus: kvm.checkExtension('MAX_VCPUS') || kvm.checkExtension('NR_VCPUS'),
  };
}

function failed(what: string, e: unknown): NodevisorError {
  const why = e instanceof KvmError ? strerror(e.errno) : e instanceof Error ? e.message : String(e);
  return new NodevisorError('ERR_KVM_UNAVAILABLE', `kvm: ${what}: ${why}`);
}

/**
 * Applies `accel` to a VM that has no vCPUs yet. Refuses what cannot work with an error the
 * user can act on; what the host lacks but QEMU runs without anyway is a warning.
 */
export function setUpAccelerator(
  kvm: Hypervisor, vm: HypervisorVm, accel: AccelConfig, cpus: number, warn: (message: string) => void,
): AcceleratorInfo {
  const host = hostCapabilities(kvm, vm);

  if (accel.kernelIrqchip === 'split') {
    throw new NodevisorError('ERR_ACCEL', 'kernel-irqchip=split is not supported: nodevisor has no user-space IOAPIC and PIC (use kernel-irqchip=on)');
  }
  if (accel.kernelIrqchip === 'off' && cpus > 1) {
    throw new NodevisorError('ERR_ACCEL', 'kernel-irqchip=off supports one vCPU only: without the in-kernel LAPIC nothing starts the others');
  }
  if (accel.kernelIrqchip === 'off') {
    warn('kernel-irqchip=off: no interrupt controller, so device interrupts are not delivered (HLT exits to nodevisor)');
  }

  let notify: AcceleratorInfo['notifyVmexit'] = 'disabled';
  if (accel.notifyVmexit !== 'disable') {
    const wanted = KVM_X86_NOTIFY_VMEXIT_ENABLED | KVM_X86_NOTIFY_VMEXIT_USER;
    if (host.notifyVmexitFlags === 0) {
      // QEMU starts anyway, silently. Whoever asked for the protection is told it is not there.
      notify = 'unavailable';
      if (accel.notifyVmexitRequested === true) warn(`notify-vmexit=${accel.notifyVmexit} has no effect: this host's KVM has no notify VM exit (KVM_CAP_X86_NOTIFY_VMEXIT)`);
    } else if ((host.notifyVmexitFlags & wanted) !== wanted) {
      throw new NodevisorError('ERR_ACCEL',
        `kvm: notify-vmexit=${accel.notifyVmexit} needs the enable and user-exit flags, but this host's KVM offers only 0x${host.notifyVmexitFlags.toString(16)}`);
    } else {
      // Bits 63:32 hold the window, 31:0 the flags.
      const arg = (BigInt(accel.notifyWindow >>> 0) << 32n) | BigInt(wanted);
      try {
        vm.enableCap('X86_NOTIFY_VMEXIT', arg);
      } catch (e) {
        throw failed('Failed to enable notify vmexit cap', e);
      }
      notify = 'enabled';
    }
  }

  if (accel.dirtyRingSize > 0) {
    if (host.dirtyRingMaxEntries === 0) {
      throw new NodevisorError('ERR_ACCEL', 'kvm: dirty-ring-size: this host\'s KVM has no dirty ring (KVM_CAP_DIRTY_LOG_RING)');
    }
    if (accel.dirtyRingSize > host.dirtyRingMaxEntries) {
      // QEMU's two lines, word for word (two spaces before "Please").
      throw new NodevisorError('ERR_ACCEL', `KVM dirty ring size ${accel.dirtyRingSize} too big (maximum is ${
        host.dirtyRingMaxEntries}).  Please use a smaller value.\nfailed to initialize kvm: Invalid argument`);
    }
    try {
      vm.enableCap('DIRTY_LOG_RING', BigInt(accel.dirtyRingSize * KVM_DIRTY_GFN_SIZE));
    } catch (e) {
      throw failed('Enabling of KVM dirty ring failed', e);
    }
  }

  return { properties: { ...accel }, notifyVmexit: notify, host };
}

/** KVM_MSR_EXIT_REASON_FILTER: accesses the MSR filter denies exit to user space. */
const KVM_MSR_EXIT_REASON_FILTER = 1 << 2;
const HV_X64_MSR_CRASH_P0 = 0x40000100;
const HV_X64_MSR_CRASH_CTL = 0x40000105;

/** One MSR the filter denies to the guest (its accesses exit to user space). */
export interface MsrFilterEntry {
  index: number;
  read: boolean;
  write: boolean;
}

/** The Hyper-V crash MSRs behind the MSR filter (hv-crash in user space): reads and writes. */
export const HYPERV_CRASH_MSR_FILTER: readonly MsrFilterEntry[] = Array.from(
  { length: HV_X64_MSR_CRASH_CTL - HV_X64_MSR_CRASH_P0 + 1 },
  (_, i) => ({ index: HV_X64_MSR_CRASH_P0 + i, read: true, write: true }),
);

/**
 * Sends accesses the MSR filter denies to user space (KVM_CAP_X86_USER_SPACE_MSR with the
 * FILTER reason). Shared by hv-crash and introspection's MSR events; with no filter set it
 * changes nothing. False when the host cannot (no user-space MSRs or no MSR filter).
 */
export function enableUserSpaceMsrs(vm: HypervisorVm): boolean {
  // KVM answers 1 for user-space MSRs (not the reasons it supports): it rejects bad reasons
  // in KVM_ENABLE_CAP instead.
  if (vm.checkExtension('X86_USER_SPACE_MSR') === 0 || vm.checkExtension('X86_MSR_FILTER') === 0) return false;
  vm.enableCap('X86_USER_SPACE_MSR', BigInt(KVM_MSR_EXIT_REASON_FILTER));
  return true;
}

/**
 * `-cpu host,hv-crash`: where the Hyper-V crash MSRs will live. A host whose KVM emulates
 * Hyper-V keeps them and reports a crash as a system event (QEMU's way); otherwise the MSR
 * filter sends them to nodevisor through user-space MSR exits. Call before creating vCPUs.
 */
export function setUpHypervCrash(kvm: Hypervisor, vm: HypervisorVm): 'kvm' | 'user' {
  if (kvm.checkExtension('HYPERV') > 0) return 'kvm';
  try {
    if (!enableUserSpaceMsrs(vm)) {
      throw new NodevisorError('ERR_KVM_UNAVAILABLE',
        'hv-crash: this host\'s KVM neither emulates Hyper-V nor sends filtered MSRs to user space (KVM_CAP_X86_USER_SPACE_MSR, KVM_CAP_X86_MSR_FILTER)');
    }
    vm.setMsrFilter(HYPERV_CRASH_MSR_FILTER);
  } catch (e) {
    if (e instanceof NodevisorError) throw e;
    throw failed('hv-crash: setting up the MSR filter failed', e);
  }
  return 'user';
}
