/** KVM_EXIT_* numbers from <linux/kvm.h>. */
export const KVM_EXIT = {
  UNKNOWN: 0, EXCEPTION: 1, IO: 2, HYPERCALL: 3, DEBUG: 4, HLT: 5, MMIO: 6, IRQ_WINDOW_OPEN: 7,
  SHUTDOWN: 8, FAIL_ENTRY: 9, INTR: 10, SET_TPR: 11, TPR_ACCESS: 12, S390_SIEIC: 13, S390_RESET: 14,
  DCR: 15, NMI: 16, INTERNAL_ERROR: 17, OSI: 18, PAPR_HCALL: 19, S390_UCONTROL: 20, WATCHDOG: 21,
  S390_TSCH: 22, EPR: 23, SYSTEM_EVENT: 24, S390_STSI: 25, IOAPIC_EOI: 26, HYPERV: 27, ARM_NISV: 28,
  X86_RDMSR: 29, X86_WRMSR: 30, DIRTY_RING_FULL: 31, AP_RESET_HOLD: 32, X86_BUS_LOCK: 33, XEN: 34,
  RISCV_SBI: 35, RISCV_CSR: 36, NOTIFY: 37, LOONGARCH_IOCSR: 38, MEMORY_FAULT: 39,
} as const;

/** Exits KVM returns only on other architectures (s390, PowerPC, Arm, RISC-V, LoongArch). */
export const NON_X86_EXITS: ReadonlySet<number> = new Set([
  KVM_EXIT.S390_SIEIC, KVM_EXIT.S390_RESET, KVM_EXIT.DCR, KVM_EXIT.OSI, KVM_EXIT.PAPR_HCALL,
  KVM_EXIT.S390_UCONTROL, KVM_EXIT.WATCHDOG, KVM_EXIT.S390_TSCH, KVM_EXIT.EPR, KVM_EXIT.S390_STSI,
  KVM_EXIT.ARM_NISV, KVM_EXIT.RISCV_SBI, KVM_EXIT.RISCV_CSR, KVM_EXIT.LOONGARCH_IOCSR,
]);

/** kvm_run.msr.reason: why an MSR access came to user space. */
export const KVM_MSR_EXIT_REASON = { INVAL: 1 << 0, UNKNOWN: 1 << 1, FILTER: 1 << 2 } as const;

/** kvm_run.notify.flags. */
export const KVM_NOTIFY_CONTEXT_INVALID = 1 << 0;

/** kvm_run.memory_fault.flags. */
export const KVM_MEMORY_EXIT_FLAG_PRIVATE = 1n << 3n;

/** kvm_run.flags: the exit came after a bus lock (KVM_CAP_X86_BUS_LOCK_EXIT). */
export const KVM_RUN_X86_BUS_LOCK = 1 << 2;

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
