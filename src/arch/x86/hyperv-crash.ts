/**
 * The Hyper-V guest crash enlightenment (`-cpu host,hv-crash` in QEMU 7.2): the Hyper-V CPUID
 * leaves that advertise it, and the crash MSRs through which a guest (Windows, or Linux's
 * hyperv_report_panic) reports a crash with five parameters.
 *
 * CPUID layout, as QEMU 7.2 builds it for the `pc` machine (7.2 machine defaults) with
 * hv-crash as the only enlightenment:
 *   0x40000000  EAX 0x40000005 (last Hyper-V leaf), "Microsoft Hv" in EBX, ECX, EDX
 *   0x40000001  EAX "Hv#1" (interface signature)
 *   0x40000002  build 14393, version 10.0 (Windows Server 2016 identity)
 *   0x40000003  EAX HYPERCALL_AVAILABLE (always, with any enlightenment),
 *               EDX CPU_DYNAMIC_PARTITIONING_AVAILABLE | GUEST_CRASH_MSR_AVAILABLE
 *   0x40000004  EBX 0xffffffff (never notify about spinlocks)
 *   0x40000005  EAX 0xffffffff (max virtual processors: unset), EBX 64 (logical processors)
 *   0x40000100  KVM's signature leaf, moved up (EAX 0x40000101), and 0x40000101 its features
 * This host's KVM (PVM) reports no KVM_CAP_HYPERV, and QEMU 7.2 then silently drops hv-crash:
 * the guest sees KVM's leaves at 0x40000000 and a #GP on the crash MSRs. The layout above
 * therefore comes from QEMU's source, not from a run here (docs/guest-events-qemu.md).
 *
 * The crash MSRs are partition-wide (KVM keeps them per VM, not per vCPU), so they live in a
 * shared region that every vCPU thread sees; each is one atomic 64-bit word, no lock needed.
 */
import type { GuestPanicInformationHyperV } from '../../runstate/events.js';
import type { SharedRegion } from '../../devices/shared-state.js';
import type { CpuidEntry } from './cpuid.js';

export const HV_CPUID_VENDOR_AND_MAX_FUNCTIONS = 0x40000000;
export const HV_CPUID_INTERFACE = 0x40000001;
export const HV_CPUID_VERSION = 0x40000002;
export const HV_CPUID_FEATURES = 0x40000003;
export const HV_CPUID_ENLIGHTMENT_INFO = 0x40000004;
export const HV_CPUID_IMPLEMENT_LIMITS = 0x40000005;
/** Where KVM's own leaves go when Hyper-V takes 0x40000000 (QEMU's KVM_CPUID_SIGNATURE_NEXT). */
export const KVM_CPUID_SIGNATURE_NEXT = 0x40000100;

/** 0x40000003 EAX: the hypercall MSRs exist; QEMU sets it with any enlightenment. */
export const HV_HYPERCALL_AVAILABLE = 1 << 5;
/** 0x40000003 EDX: QEMU always sets it (Windows needs it for CPU hot-plug). */
export const HV_CPU_DYNAMIC_PARTITIONING_AVAILABLE = 1 << 3;
/** 0x40000003 EDX: the guest crash MSRs exist. */
export const HV_GUEST_CRASH_MSR_AVAILABLE = 1 << 10;

export const HV_X64_MSR_CRASH_P0 = 0x40000100;
export const HV_X64_MSR_CRASH_P1 = 0x40000101;
export const HV_X64_MSR_CRASH_P2 = 0x40000102;
export const HV_X64_MSR_CRASH_P3 = 0x40000103;
export const HV_X64_MSR_CRASH_P4 = 0x40000104;
export const HV_X64_MSR_CRASH_CTL = 0x40000105;
/** CRASH_CTL bit 63: reads say notification is supported; a write with it set reports the crash. */
export const HV_CRASH_CTL_CRASH_NOTIFY = 1n << 63n;
const CRASH_PARAMS = 5;

// "Microsoft Hv" and "Hv#1" as little-endian register words.
const HV_VENDOR = [0x7263694d, 0x666f736f, 0x76482074] as const;
const HV_INTERFACE_SIGNATURE = 0x31237648;
const HV_VERSION_BUILD = 14393;
const HV_VERSION_MAJOR = 10;
const HV_VERSION_MINOR = 0;
const HV_SPINLOCK_NEVER_NOTIFY = 0xffffffff;
const HV_MAX_VPS_UNSET = 0xffffffff;
const HV_MAX_LOGICAL_PROCESSORS = 64;

const KVM_CPUID_SIGNATURE = 0x40000000;
const KVM_CPUID_FEATURES = 0x40000001;
const HYPERVISOR_RANGE_END = 0x40000100; // 0x40000000..0x400000ff: the first hypervisor's leaves

function leaf(fn: number, eax: number, ebx = 0, ecx = 0, edx = 0): CpuidEntry {
  return { function: fn, index: 0, flags: 0, eax: eax >>> 0, ebx: ebx >>> 0, ecx: ecx >>> 0, edx: edx >>> 0 };
}

/** The Hyper-V leaves 0x40000000..0x40000005 offering the crash MSRs. */
export function hypervCrashLeaves(): CpuidEntry[] {
  return [
    leaf(HV_CPUID_VENDOR_AND_MAX_FUNCTIONS, HV_CPUID_IMPLEMENT_LIMITS, ...HV_VENDOR),
    leaf(HV_CPUID_INTERFACE, HV_INTERFACE_SIGNATURE),
    leaf(HV_CPUID_VERSION, HV_VERSION_BUILD, (HV_VERSION_MAJOR << 16) | HV_VERSION_MINOR),
    leaf(HV_CPUID_FEATURES, HV_HYPERCALL_AVAILABLE, 0, 0, HV_CPU_DYNAMIC_PARTITIONING_AVAILABLE | HV_GUEST_CRASH_MSR_AVAILABLE),
    leaf(HV_CPUID_ENLIGHTMENT_INFO, 0, HV_SPINLOCK_NEVER_NOTIFY),
    leaf(HV_CPUID_IMPLEMENT_LIMITS, HV_MAX_VPS_UNSET, HV_MAX_LOGICAL_PROCESSORS),
  ];
}

/**
 * A vCPU's CPUID table with hv-crash on: the Hyper-V leaves at 0x40000000 and KVM's
 * signature and features leaves moved to 0x40000100/0x40000101 (their contents kept, the
 * signature's max leaf adjusted). Anything else in 0x40000000..0x400000ff is dropped, as QEMU
 * builds that range from scratch. The input is not modified; the result is sorted.
 */
export function withHypervCrash(table: readonly CpuidEntry[]): CpuidEntry[] {
  const out: CpuidEntry[] = [];
  for (const e of table) {
    if (e.function < KVM_CPUID_SIGNATURE || e.function >= HYPERVISOR_RANGE_END) {
      out.push({ ...e });
    } else if (e.function === KVM_CPUID_SIGNATURE) {
      out.push({ ...e, function: KVM_CPUID_SIGNATURE_NEXT, eax: KVM_CPUID_SIGNATURE_NEXT + 1 });
    } else if (e.function === KVM_CPUID_FEATURES) {
      out.push({ ...e, function: KVM_CPUID_SIGNATURE_NEXT + 1 });
    }
  }
  out.push(...hypervCrashLeaves());
  return out.sort((a, b) => a.function - b.function || a.index - b.index);
}

/** Where a crash report goes; called on the vCPU thread that wrote CRASH_CTL. */
export interface HypervCrashEvents {
  crashed(info: GuestPanicInformationHyperV): void;
}

/**
 * HV_X64_MSR_CRASH_P0..P4 and HV_X64_MSR_CRASH_CTL for one VM. Route the guest's RDMSR and
 * WRMSR exits here: `undefined` / `false` means the MSR is not one of these (the caller then
 * does what it does for an unknown MSR, a #GP).
 */
export class HypervCrashMsrs {
  static readonly STATE_BYTES = CRASH_PARAMS * 8;

  private readonly params: BigUint64Array;

  constructor(
    region: SharedRegion,
    private readonly events: HypervCrashEvents,
  ) {
    if (region.length < HypervCrashMsrs.STATE_BYTES) throw new RangeError('HypervCrashMsrs: shared region too small');
    this.params = new BigUint64Array(region.sab, region.offset, CRASH_PARAMS);
  }

  /** The value a guest RDMSR returns, or undefined if `index` is not a crash MSR. */
  rdmsr(index: number): bigint | undefined {
    if (index === HV_X64_MSR_CRASH_CTL) return HV_CRASH_CTL_CRASH_NOTIFY; // guest writes never change it
    const p = index - HV_X64_MSR_CRASH_P0;
    if (p >= 0 && p < CRASH_PARAMS) return Atomics.load(this.params, p);
    return undefined;
  }

  /** Takes a guest WRMSR; false if `index` is not a crash MSR. Writes without NOTIFY are ignored. */
  wrmsr(index: number, value: bigint): boolean {
    const v = BigInt.asUintN(64, value);
    if (index === HV_X64_MSR_CRASH_CTL) {
      if (v & HV_CRASH_CTL_CRASH_NOTIFY) this.events.crashed(this.info());
      return true;
    }
    const p = index - HV_X64_MSR_CRASH_P0;
    if (p >= 0 && p < CRASH_PARAMS) {
      Atomics.store(this.params, p, v);
      return true;
    }
    return false;
  }

  /** A machine reset clears the parameters. */
  reset(): void {
    for (let p = 0; p < CRASH_PARAMS; p++) Atomics.store(this.params, p, 0n);
  }

  /** What GUEST_PANICKED carries: arg1..arg5 are P0..P4. */
  info(): GuestPanicInformationHyperV {
    const p = (i: number): bigint => Atomics.load(this.params, i);
    return { type: 'hyper-v', arg1: p(0), arg2: p(1), arg3: p(2), arg4: p(3), arg5: p(4) };
  }
}
