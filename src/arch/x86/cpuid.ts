/**
 * Per-vCPU CPUID table built from KVM_GET_SUPPORTED_CPUID, the way QEMU 7.2 (`-cpu host`)
 * and Firecracker do it: KVM says what the host can offer, the VMM fills in what only it
 * knows (APIC IDs, topology) and applies the user's `+feat`/`-feat` edits.
 * Topology is one socket of `cpus` cores with one thread each.
 */
import { applyCpuFeatures, findCpuidEntry, namedFeatureMask, type CpuFeatureEdit } from './cpu-features.js';

/** struct kvm_cpuid_entry2 (padding omitted); every field a u32. */
export interface CpuidEntry {
  function: number;
  index: number;
  flags: number;
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

/** The leaf's output depends on ECX (the subleaf). */
export const KVM_CPUID_FLAG_SIGNIFCANT_INDEX = 1;

export const CPUID_1_ECX_HYPERVISOR = 1 << 31;
export const CPUID_1_EDX_HTT = 1 << 28;
/** CLFLUSH line size in 8-byte units (64 bytes); Linux relies on it. */
const CLFLUSH_LINE_QWORDS = 8;

export const CPUID_TOPOLOGY_LEVEL_INVALID = 0;
export const CPUID_TOPOLOGY_LEVEL_SMT = 1;
export const CPUID_TOPOLOGY_LEVEL_CORE = 2;

export const KVM_CPUID_SIGNATURE = 0x40000000;
export const KVM_CPUID_FEATURES = 0x40000001;
/** "KVMKVMKVM\0\0\0" as EBX, ECX, EDX. */
const KVM_SIGNATURE = [0x4b4d564b, 0x564b4d56, 0x0000004d] as const;

export interface VcpuCpuidOptions {
  /** QEMU's cpu_index; the CPUID contents depend only on apicId here. */
  vcpuIndex: number;
  apicId: number;
  cpus: number;
  features: readonly CpuFeatureEdit[];
}

export interface VcpuCpuid {
  entries: CpuidEntry[];
  /** QEMU's "warning: host doesn't support requested feature: ..." (QEMU prints them per vCPU). */
  warnings: string[];
}

function copyEntry(e: CpuidEntry): CpuidEntry {
  return {
    function: e.function >>> 0, index: e.index >>> 0, flags: e.flags >>> 0,
    eax: e.eax >>> 0, ebx: e.ebx >>> 0, ecx: e.ecx >>> 0, edx: e.edx >>> 0,
  };
}

/** Bits needed to number `count` items (QEMU's apicid_bitwidth_for_count). */
export function bitWidthForCount(count: number): number {
  return count <= 1 ? 0 : 32 - Math.clz32(count - 1);
}

function setField(value: number, shift: number, width: number, field: number): number {
  const mask = ((2 ** width - 1) * 2 ** shift) >>> 0;
  return ((value & ~mask) | ((field * 2 ** shift) & mask)) >>> 0;
}

/** Leaf 0xB: one entry per level, ending with the invalid level as QEMU exposes it. */
function x2apicTopology(leaf: number, apicId: number, cpus: number): CpuidEntry[] {
  const coreShift = bitWidthForCount(1);
  const pkgShift = coreShift + bitWidthForCount(cpus);
  const levels: Array<[number, number, number]> = [
    [coreShift, 1, CPUID_TOPOLOGY_LEVEL_SMT],
    [pkgShift, cpus, CPUID_TOPOLOGY_LEVEL_CORE],
    [0, 0, CPUID_TOPOLOGY_LEVEL_INVALID],
  ];
  return levels.map(([shift, count, type], index) => ({
    function: leaf, index, flags: KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
    eax: shift & 0x1f, ebx: count & 0xffff, ecx: ((type << 8) | index) >>> 0, edx: apicId >>> 0,
  }));
}

export function vcpuCpuid(supported: readonly CpuidEntry[], opts: VcpuCpuidOptions): VcpuCpuid {
  const { apicId, cpus } = opts;
  let table = supported.map(copyEntry);

  // What `-cpu host` starts from: KVM's bits, plus the hypervisor bit QEMU always offers.
  const leaf1 = findCpuidEntry(table, 1, 0);
  if (leaf1) leaf1.ecx = (leaf1.ecx | CPUID_1_ECX_HYPERVISOR) >>> 0;
  const kvmFeatures = findCpuidEntry(table, KVM_CPUID_FEATURES, 0);
  // Bits QEMU has no name for (e.g. KVM_FEATURE_ASYNC_PF_VMEXIT) never reach its guests.
  if (kvmFeatures) kvmFeatures.eax = (kvmFeatures.eax & namedFeatureMask({ leaf: KVM_CPUID_FEATURES, subleaf: 0, register: 'eax' })) >>> 0;
  const host = table.map(copyEntry);

  const warnings = applyCpuFeatures(table, host, opts.features);

  if (leaf1) {
    // Initial APIC ID, logical processors per package (only when more than one), CLFLUSH size.
    leaf1.ebx = (((apicId & 0xff) << 24) | ((cpus > 1 ? cpus & 0xff : 0) << 16) | (CLFLUSH_LINE_QWORDS << 8)) >>> 0;
    leaf1.edx = (cpus > 1 ? leaf1.edx | CPUID_1_EDX_HTT : leaf1.edx & ~CPUID_1_EDX_HTT) >>> 0;
  }

  for (const e of table) {
    // Deterministic cache parameters: cores per package, and who shares each cache level.
    if (e.function === 4 && (e.eax & 0x1f) !== 0) {
      const level = (e.eax >>> 5) & 0x7;
      e.eax = setField(e.eax, 26, 6, cpus - 1);
      e.eax = setField(e.eax, 14, 12, level >= 3 ? cpus - 1 : 0);
    }
    // No PMU is offered (QEMU's default with KVM on this class of host).
    if (e.function === 0xa) e.eax = e.ebx = e.ecx = e.edx = 0;
    // QEMU zeroes V2 extended topology unless there are several dies.
    if (e.function === 0x1f) e.eax = e.ebx = e.ecx = e.edx = 0;
  }

  if (table.some((e) => e.function === 0xb)) {
    table = table.filter((e) => e.function !== 0xb);
    table.push(...x2apicTopology(0xb, apicId, cpus));
  }

  const signature = findCpuidEntry(table, KVM_CPUID_SIGNATURE, 0);
  const sig: CpuidEntry = signature ?? { function: KVM_CPUID_SIGNATURE, index: 0, flags: 0, eax: 0, ebx: 0, ecx: 0, edx: 0 };
  sig.eax = KVM_CPUID_FEATURES;
  [sig.ebx, sig.ecx, sig.edx] = KVM_SIGNATURE;
  if (!signature) table.push(sig);
  if (!findCpuidEntry(table, KVM_CPUID_FEATURES, 0)) {
    table.push({ function: KVM_CPUID_FEATURES, index: 0, flags: 0, eax: 0, ebx: 0, ecx: 0, edx: 0 });
  }

  return { entries: table.sort((a, b) => a.function - b.function || a.index - b.index), warnings };
}
