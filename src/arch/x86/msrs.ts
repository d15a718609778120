/**
 * Model-specific registers a vCPU is given at power-on (KVM_SET_MSRS), as Firecracker's
 * create_boot_msr_entries sets them. Index names follow Linux's msr-index.h.
 */
export const MSR_IA32_TSC = 0x10;
export const MSR_IA32_APICBASE = 0x1b;
export const MSR_IA32_FEATURE_CONTROL = 0x3a;
export const MSR_IA32_TSC_ADJUST = 0x3b;
export const MSR_IA32_SPEC_CTRL = 0x48;
export const MSR_IA32_UCODE_REV = 0x8b;
export const MSR_IA32_ARCH_CAPABILITIES = 0x10a;
export const MSR_IA32_SYSENTER_CS = 0x174;
export const MSR_IA32_SYSENTER_ESP = 0x175;
export const MSR_IA32_SYSENTER_EIP = 0x176;
export const MSR_IA32_MCG_CAP = 0x179;
export const MSR_IA32_MCG_STATUS = 0x17a;
export const MSR_IA32_MISC_ENABLE = 0x1a0;
export const MSR_IA32_CR_PAT = 0x277;
export const MSR_MTRRcap = 0xfe;
export const MSR_MTRRdefType = 0x2ff;
export const MSR_IA32_TSC_DEADLINE = 0x6e0;
export const MSR_EFER = 0xc0000080;
export const MSR_STAR = 0xc0000081;
export const MSR_LSTAR = 0xc0000082;
export const MSR_CSTAR = 0xc0000083;
export const MSR_SYSCALL_MASK = 0xc0000084;
export const MSR_FS_BASE = 0xc0000100;
export const MSR_GS_BASE = 0xc0000101;
export const MSR_KERNEL_GS_BASE = 0xc0000102;
export const MSR_TSC_AUX = 0xc0000103;

export const MSR_KVM_WALL_CLOCK_NEW = 0x4b564d00;
export const MSR_KVM_SYSTEM_TIME_NEW = 0x4b564d01;

/** IA32_MISC_ENABLE bit 0: fast-string operations (rep movs/stos) enabled. */
export const MSR_IA32_MISC_ENABLE_FAST_STRING = 1n << 0n;
/** IA32_MTRR_DEF_TYPE bit 11: MTRRs enabled. */
export const MTRR_DEF_TYPE_E = 1n << 11n;
/** Memory type write-back, the default for RAM not covered by a variable MTRR. */
export const MTRR_TYPE_WRBACK = 6n;
/** IA32_PAT after reset: WB, WT, UC-, UC repeated (SDM vol. 3, 11.12.4). */
export const MSR_IA32_CR_PAT_DEFAULT = 0x0007040600070406n;

export interface MsrEntry {
  index: number;
  data: bigint;
}

export function bootMsrs(): MsrEntry[] {
  return [
    { index: MSR_IA32_SYSENTER_CS, data: 0n },
    { index: MSR_IA32_SYSENTER_ESP, data: 0n },
    { index: MSR_IA32_SYSENTER_EIP, data: 0n },
    // The syscall MSRs hold no stale host or previous-boot values.
    { index: MSR_STAR, data: 0n },
    { index: MSR_CSTAR, data: 0n },
    { index: MSR_KERNEL_GS_BASE, data: 0n },
    { index: MSR_SYSCALL_MASK, data: 0n },
    { index: MSR_LSTAR, data: 0n },
    { index: MSR_IA32_TSC, data: 0n },
    { index: MSR_IA32_MISC_ENABLE, data: MSR_IA32_MISC_ENABLE_FAST_STRING },
    // Without MTRRs enabled a guest kernel treats all of RAM as uncached.
    { index: MSR_MTRRdefType, data: MTRR_DEF_TYPE_E | MTRR_TYPE_WRBACK },
  ];
}
