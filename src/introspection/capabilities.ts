/**
 * What a user-space KVMI over stock KVM can honestly do. The session answers CHECK_COMMAND and
 * CHECK_EVENT from these sets, and answers -EOPNOTSUPP to what is listed as impossible: KVM
 * gives user space no exit for CR or XSETBV writes, descriptor-table accesses, CPUID or
 * hypercalls, no per-page read or execute faults, and no EPT views, #VE or SPP.
 */
import type { KvmiCommand, KvmiEventName, KvmiAction } from './wire/ids.js';

/** Known commands nodevisor cannot (or does not) serve: always -EOPNOTSUPP. */
export const UNSUPPORTED_COMMANDS: ReadonlySet<KvmiCommand> = new Set<KvmiCommand>([
  'CONTROL_CR', // no CR-write exits
  'CONTROL_VE', 'SET_VE_INFO_PAGE', 'DISABLE_VE', // no #VE
  'CONTROL_SPP', 'GET_PAGE_WRITE_BITMAP', 'SET_PAGE_WRITE_BITMAP', // no sub-page protection
  'SWITCH_EPT_VIEW', 'GET_EPT_VIEW', 'CONTROL_EPT_VIEW', 'CREATE_EPT_VIEW', 'DESTROY_EPT_VIEW', // no EPT views
  'VCPU_CHANGE_GFN', 'VCPU_ALLOC_GFN', 'VCPU_FREE_GFN', 'GET_NEXT_AVAILABLE_GFN', // EPT remapping
  'GET_MAP_TOKEN', // needs the guest-side /dev/kvmmem agent and KVM hypercalls
  'GET_MTRR_TYPE', // not implemented
  'VCPU_SET_XSAVE', // not implemented
  'PAUSE_ALL_VCPUS', // the RFC v5 command; v7 batches PAUSE_VCPU instead
]);

/** Commands whose reply carries data: with replies switched off they close the connection. */
export const COMMANDS_WITH_DATA: ReadonlySet<KvmiCommand> = new Set<KvmiCommand>([
  'GET_VERSION', 'GET_GUEST_INFO', 'GET_VCPU_INFO', 'GET_REGISTERS', 'GET_CPUID', 'GET_XSAVE',
  'READ_PHYSICAL', 'GET_PAGE_ACCESS', 'GET_MAX_GFN', 'VCPU_TRANSLATE_GVA', 'VCPU_GET_XCR',
  'QUERY_PHYSICAL',
]);

/** Events nodevisor never raises. */
export const UNSUPPORTED_EVENTS: ReadonlySet<KvmiEventName> = new Set<KvmiEventName>([
  'CR', 'XSETBV', 'DESCRIPTOR', 'CPUID', 'HYPERCALL',
  'TRAP', // whether an injected exception was delivered or overridden is not observable
]);

/** Events enabled VM-wide with CONTROL_VM_EVENTS. */
export const VM_EVENTS: ReadonlySet<KvmiEventName> = new Set<KvmiEventName>(['UNHOOK', 'CREATE_VCPU']);

/** Events enabled per vCPU with CONTROL_EVENTS (PAUSE_VCPU is always on: PAUSE_VCPU asks for it). */
export const VCPU_EVENTS: ReadonlySet<KvmiEventName> = new Set<KvmiEventName>([
  'BREAKPOINT', 'MSR', 'PF', 'SINGLESTEP', 'CR', 'XSETBV', 'DESCRIPTOR', 'CPUID', 'HYPERCALL', 'TRAP',
]);

/** The actions KVMI defines for each event nodevisor raises. */
export const EVENT_ACTIONS: Partial<Record<KvmiEventName, ReadonlySet<KvmiAction>>> = {
  BREAKPOINT: new Set(['continue', 'retry', 'crash']),
  PF: new Set(['continue', 'retry', 'crash']),
  MSR: new Set(['continue', 'crash']),
  SINGLESTEP: new Set(['continue', 'crash']),
  CREATE_VCPU: new Set(['continue', 'crash']),
  PAUSE_VCPU: new Set(['continue', 'crash']),
};

/** CONTROL_MSR accepts the two ranges of the VMX MSR bitmaps. */
export function controllableMsr(msr: number): boolean {
  return msr <= 0x1fff || (msr >= 0xc000_0000 && msr <= 0xc000_1fff);
}

/** KVM never lets user space filter the x2APIC MSRs. */
export function filterableMsr(msr: number): boolean {
  return !(msr >= 0x800 && msr <= 0x8ff);
}

/** Exceptions that push an error code. */
export const VECTORS_WITH_ERROR_CODE: ReadonlySet<number> = new Set([8, 10, 11, 12, 13, 14, 17, 21, 29, 30]);
