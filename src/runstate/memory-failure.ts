/**
 * What the VMM does about a hardware memory error (a SIGBUS with BUS_MCEERR_AR/AO), as pure
 * functions: QEMU 7.2's kvm_arch_on_sigbus_vcpu (target/i386/kvm/kvm.c), kvm_mce_inject and
 * do_inject_x86_mce (target/i386/helper.c), including the MEMORY_FAILURE event each path
 * emits. The caller gathers the facts (whose page, the vCPU's CR4 and MCG registers), follows
 * `next`, and emits `event` (when not null) before doing so.
 *
 * QEMU's paths, for the vCPU thread that received the SIGBUS:
 * - Guest RAM, and the vCPU model has MCA recovery (MCG_CAP.SER_P): QEMU remembers the page
 *   (replaced at the next system reset) and builds a machine check for it, which
 *   do_inject_x86_mce then judges:
 *     - action-optional while the guest is still in an earlier #MC (MCG_STATUS.MCIP):
 *       'ignore', recursive
 *     - guest turned uncorrected-error reporting off (MCG_CTL / MCi_CTL not all ones):
 *       nothing at all, no event (the guest resumes)
 *     - CR4.MCE clear, or (action-required and) MCIP set: 'reset' (a guest-reset request;
 *       real hardware would triple-fault)
 *     - otherwise 'inject': the bank registers and a #MC
 *   then logs "Guest MCE Memory Error ... injected" whatever the outcome.
 * - Anything else (the VMM's own memory, or no MCA recovery in the vCPU model):
 *   action-required is 'fatal' for recipient 'hypervisor' and QEMU exits with status 1;
 *   action-optional is 'ignore' for recipient 'hypervisor'.
 */
import type { X86Mce } from '../kvm/hwpoison.js';
import type { MemoryFailureAction, MemoryFailureRecipient, QmpEvent } from './events.js';

export type MemoryFailureEventData = Extract<QmpEvent, { event: 'MEMORY_FAILURE' }>['data'];

// IA32_MCi_STATUS bits.
export const MCI_STATUS_VAL = 1n << 63n;
export const MCI_STATUS_OVER = 1n << 62n;
export const MCI_STATUS_UC = 1n << 61n;
export const MCI_STATUS_EN = 1n << 60n;
export const MCI_STATUS_MISCV = 1n << 59n;
export const MCI_STATUS_ADDRV = 1n << 58n;
export const MCI_STATUS_S = 1n << 56n;
export const MCI_STATUS_AR = 1n << 55n;
// IA32_MCG_STATUS bits.
export const MCG_STATUS_RIPV = 1n << 0n;
export const MCG_STATUS_EIPV = 1n << 1n;
export const MCG_STATUS_MCIP = 1n << 2n;
export const MCG_STATUS_LMCE = 1n << 3n;
// IA32_MCG_CAP bits (low byte: bank count).
export const MCG_CTL_P = 1n << 8n;
export const MCG_SER_P = 1n << 24n;
export const MCG_LMCE_P = 1n << 27n;
/** QEMU's default MCG_CAP for a vCPU model with MCE and MCA: MCG_CTL_P | MCG_SER_P, 10 banks. */
export const QEMU_MCG_CAP = MCG_CTL_P | MCG_SER_P | 10n;
/** QEMU reports memory errors in bank 9. */
export const MCE_BANK = 9;
/** MCi_MISC for them: address mode physical (2 << 6), least significant valid bit 12. */
export const MCE_MISC = (2n << 6n) | 0xcn;

// MSRs the caller reads (KVM_GET_MSRS) to fill in the facts.
export const MSR_MCG_CAP = 0x179;
export const MSR_MCG_STATUS = 0x17a;
export const MSR_MCG_CTL = 0x17b;
export const MSR_MCG_EXT_CTL = 0x4d0;
export const MSR_MC0_CTL = 0x400;
/** MCi_CTL of the bank QEMU uses (0x424). */
export const MSR_MCE_BANK_CTL = MSR_MC0_CTL + 4 * MCE_BANK;
/** CR4.MCE. */
export const CR4_MCE = 1n << 6n;

/** The machine-check state of one vCPU, read from it (KVM_GET_SREGS, KVM_GET_MSRS). */
export interface VcpuMceState {
  /** CR4.MCE: the guest is ready to take #MC. */
  guestMceEnabled: boolean;
  /** MCG_STATUS.MCIP: the guest is still handling an earlier machine check. */
  recursive: boolean;
  /**
   * The guest turned reporting of uncorrected errors off: MCG_CTL (when MCG_CAP.MCG_CTL_P)
   * or the bank's MCi_CTL is not all ones. KVM_X86_SETUP_MCE sets both to all ones.
   */
  reportingDisabled?: boolean;
  /** MCG_EXT_CTL.LMCE_EN: the error is signalled to this vCPU only (never on this host: KVM lacks MCG_LMCE_P). */
  localMce?: boolean;
}

export interface MemoryFailureInput extends VcpuMceState {
  /** Whose page is bad: guest RAM (si_addr inside a memory slot) or the VMM's own memory. */
  owner: MemoryFailureRecipient;
  /** si_code BUS_MCEERR_AR (true) or BUS_MCEERR_AO (false). */
  actionRequired: boolean;
  /**
   * The vCPU model has machine-check banks with software error recovery (MCG_CAP.SER_P, set
   * up with KVM_X86_SETUP_MCE). QEMU's `env->mcg_cap & MCG_SER_P`; without it even guest RAM
   * is treated as the hypervisor's. Default true.
   */
  mcaRecovery?: boolean;
  /** si_addr, for the log line. */
  hostAddress?: bigint;
  /** The guest-physical address of the page (guest RAM only): the MCE's MCi_ADDR. */
  guestAddress?: bigint;
}

export type MemoryFailureNext =
  /** KVM_X86_SET_MCE with `mce` on this vCPU (its own thread, outside KVM_RUN), then resume it. */
  | { kind: 'inject'; mce: X86Mce }
  /** A system reset request with this cause (resetOutcome() decides reset or shutdown). */
  | { kind: 'reset'; cause: 'guest-reset' }
  /** The process ends with this status right after the event, with no SHUTDOWN event. */
  | { kind: 'exit'; status: 1 }
  /** Resume the vCPU: nothing else to do. */
  | { kind: 'continue' };

export interface MemoryFailureDecision {
  /** The MEMORY_FAILURE event to emit first, or null when QEMU emits none. */
  event: MemoryFailureEventData | null;
  next: MemoryFailureNext;
  /**
   * Remember this guest page as poisoned and put a fresh page in its place at the next system
   * reset (QEMU: kvm_hwpoison_page_add, then kvm_unpoison_all on reset).
   */
  trackPage: boolean;
  /** What QEMU 7.2 prints (error_report / warn_report; the caller adds its program-name prefix). */
  log: { level: 'error' | 'warning'; text: string } | null;
}

/** glibc's %p. */
function pointer(addr: bigint | undefined): string {
  return addr === undefined || addr === 0n ? '(nil)' : `0x${addr.toString(16)}`;
}

function codeName(actionRequired: boolean): string {
  return actionRequired ? 'BUS_MCEERR_AR' : 'BUS_MCEERR_AO';
}

function eventData(recipient: MemoryFailureRecipient, action: MemoryFailureAction, actionRequired: boolean,
  recursive: boolean): MemoryFailureEventData {
  return { recipient, action, flags: { 'action-required': actionRequired, recursive } };
}

/** The machine check QEMU builds for a poisoned guest page (kvm_mce_inject). */
export function memoryErrorMce(actionRequired: boolean, guestAddress: bigint, localMce = false): X86Mce {
  let status = MCI_STATUS_VAL | MCI_STATUS_UC | MCI_STATUS_EN | MCI_STATUS_MISCV | MCI_STATUS_ADDRV | MCI_STATUS_S;
  let mcgStatus = MCG_STATUS_MCIP | MCG_STATUS_RIPV;
  if (actionRequired) {
    status |= MCI_STATUS_AR | 0x134n; // data load error
    mcgStatus |= MCG_STATUS_EIPV;
  } else {
    status |= 0xc0n; // memory scrubbing error
  }
  if (localMce) mcgStatus |= MCG_STATUS_LMCE;
  return { bank: MCE_BANK, status, addr: guestAddress, misc: MCE_MISC, mcgStatus };
}

/**
 * The machine check every other vCPU gets when QEMU broadcasts one (MCE_INJECT_BROADCAST):
 * bank 1, "valid, uncorrected", no address.
 */
export function broadcastMce(): X86Mce {
  return { bank: 1, status: MCI_STATUS_VAL | MCI_STATUS_UC, addr: 0n, misc: 0n, mcgStatus: MCG_STATUS_MCIP | MCG_STATUS_RIPV };
}

/**
 * Whether QEMU broadcasts the machine check to all vCPUs (cpu_x86_support_mca_broadcast):
 * CPUID.1:EAX family 6 model >= 14, or family > 6 (base family field only, as QEMU reads it),
 * unless the guest enabled LMCE. QEMU's default qemu64 model (family 15) broadcasts.
 */
export function mcaBroadcast(cpuid1Eax: number, localMce = false): boolean {
  if (localMce) return false;
  const family = (cpuid1Eax >>> 8) & 0x0f;
  const model = ((cpuid1Eax >>> 12) & 0xf0) + ((cpuid1Eax >>> 4) & 0x0f);
  return (family === 6 && model >= 14) || family > 6;
}

/**
 * do_inject_x86_mce: what becomes of machine check `mce` on a vCPU in state `s` (the event is
 * recipient 'guest'). For a memory error on the faulting vCPU and for a broadcast one alike.
 */
export function judgeMceInjection(mce: X86Mce, s: VcpuMceState): Pick<MemoryFailureDecision, 'event' | 'next'> {
  const ar = (mce.status & MCI_STATUS_AR) !== 0n;
  const recursive = s.recursive;
  // An action-optional error while an earlier #MC is being handled: dropped.
  if (!ar && recursive) return { event: eventData('guest', 'ignore', ar, recursive), next: { kind: 'continue' } };
  if ((mce.status & MCI_STATUS_UC) !== 0n) {
    // Reporting disabled by the guest: QEMU only tells the monitor (none here), no event.
    if (s.reportingDisabled) return { event: null, next: { kind: 'continue' } };
    if (!s.guestMceEnabled || recursive) {
      return { event: eventData('guest', 'reset', ar, recursive), next: { kind: 'reset', cause: 'guest-reset' } };
    }
  }
  return { event: eventData('guest', 'inject', ar, recursive), next: { kind: 'inject', mce } };
}

/**
 * kvm_arch_on_sigbus_vcpu for the vCPU whose thread received the SIGBUS (BUS_MCEERR_AR from
 * KVM, or an AO routed to a vCPU). With a broadcast (mcaBroadcast), QEMU then judges
 * broadcastMce() on every other vCPU in index order (judgeMceInjection, one event each),
 * and prints `log` after all of them.
 */
export function decideMemoryFailure(input: MemoryFailureInput): MemoryFailureDecision {
  const ar = input.actionRequired;
  const mcaRecovery = input.mcaRecovery ?? true;
  if (mcaRecovery && input.owner === 'guest') {
    const paddr = input.guestAddress ?? 0n;
    const { event, next } = judgeMceInjection(memoryErrorMce(ar, paddr, input.localMce ?? false), input);
    return {
      event,
      next,
      trackPage: true,
      log: {
        level: ar ? 'error' : 'warning',
        text: `Guest MCE Memory Error at QEMU addr ${pointer(input.hostAddress)} and GUEST addr 0x${paddr.toString(16)} of type ${codeName(ar)} injected`,
      },
    };
  }
  if (ar) {
    return {
      event: eventData('hypervisor', 'fatal', true, false),
      next: { kind: 'exit', status: 1 },
      trackPage: false,
      log: { level: 'error', text: `QEMU got Hardware memory error at addr ${pointer(input.hostAddress)}` },
    };
  }
  // "Hope we are lucky for AO MCE": the warning only when MCA recovery is on.
  const warn = mcaRecovery && input.hostAddress !== undefined && input.hostAddress !== 0n;
  return {
    event: eventData('hypervisor', 'ignore', false, false),
    next: { kind: 'continue' },
    trackPage: false,
    log: warn
      ? {
        level: 'warning',
        text: `Hardware memory error at addr ${pointer(input.hostAddress)} of type BUS_MCEERR_AO for memory used by QEMU itself instead of guest system!`,
      }
      : null,
  };
}

/** The state facts from raw registers: CR4, MCG_CAP, MCG_STATUS, MCG_CTL, MCi_CTL, MCG_EXT_CTL. */
export function vcpuMceState(r: {
  cr4: bigint; mcgCap: bigint; mcgStatus: bigint; mcgCtl: bigint; bankCtl: bigint; mcgExtCtl?: bigint;
}): VcpuMceState {
  const ones = 0xffffffffffffffffn;
  return {
    guestMceEnabled: (r.cr4 & CR4_MCE) !== 0n,
    recursive: (r.mcgStatus & MCG_STATUS_MCIP) !== 0n,
    reportingDisabled: ((r.mcgCap & MCG_CTL_P) !== 0n && r.mcgCtl !== ones) || r.bankCtl !== ones,
    localMce: ((r.mcgExtCtl ?? 0n) & 1n) !== 0n && (r.mcgCap & MCG_LMCE_P) !== 0n,
  };
}
