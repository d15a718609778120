/** KVM_EXIT_* numbers from <linux/kvm.h>. */
export const KVM_EXIT = {
  UNKNOWN: 0, EXCEPTION: 1, IO: 2, HYPERCALL: 3, DEBUG: 4, HLT: 5, MMIO: 6, IRQ_WINDOW_OPEN: 7,
  SHUTDOWN: 8, FAIL_ENTRY: 9, INTR: 10, SET_TPR: 11, TPR_ACCESS: 12, NMI: 16, INTERNAL_ERROR: 17,
  SYSTEM_EVENT: 24, IOAPIC_EOI: 26, HYPERV: 27, X86_RDMSR: 29, X86_WRMSR: 30, DIRTY_RING_FULL: 31,
  AP_RESET_HOLD: 32, X86_BUS_LOCK: 33, NOTIFY: 37, MEMORY_FAULT: 39,
} as const;

export const KVM_EXIT_IO_IN = 0;
export const KVM_EXIT_IO_OUT = 1;

/** KVM_SYSTEM_EVENT_* types. */
export const KVM_SYSTEM_EVENT = { SHUTDOWN: 1, RESET: 2, CRASH: 3, WAKEUP: 4, SUSPEND: 5, SEV_TERM: 6 } as const;

/** KVM_INTERNAL_ERROR_* suberrors. */
export const KVM_INTERNAL_ERROR = { EMULATION: 1, SIMUL_EX: 2, DELIVERY_EV: 3, UNEXPECTED_EXIT_REASON: 4 } as const;

const NAMES = new Map<number, string>(Object.entries(KVM_EXIT).map(([k, v]) => [v, `KVM_EXIT_${k}`]));

export function exitReasonName(reason: number): string {
  return NAMES.get(reason) ?? `exit reason ${reason}`;
}
