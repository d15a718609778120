/**
 * QEMU's CPUID feature flag names (`-cpu host,+feat,-feat,feat=on`) and where each lives in
 * the CPUID table, following QEMU 7.2's feature_word_info. Names QEMU does not register
 * (osxsave, ospke, kvm-asyncpf-vmexit: dynamic or unknown to QEMU) are rejected the way QEMU
 * rejects them.
 */
import { OptionError } from '../../errors.js';
import type { CpuidEntry } from './cpuid.js';

export type CpuidRegister = 'eax' | 'ebx' | 'ecx' | 'edx';

/** One feature word of QEMU: a CPUID (leaf, subleaf, register). */
export interface FeatureWord {
  leaf: number;
  subleaf: number;
  register: CpuidRegister;
}

export interface CpuFeatureBit extends FeatureWord {
  bit: number;
}

export interface CpuFeature {
  name: string;
  /** Usually one bit; QEMU's "kvmclock" drives two (KVM_FEATURE_CLOCKSOURCE and CLOCKSOURCE2). */
  bits: readonly CpuFeatureBit[];
}

/** A feature edit as the user wrote it: `+name` (plus), `-name` (minus) or `name=on|off`. */
export interface CpuFeatureEdit {
  name: string;
  enabled: boolean;
  /** QEMU applies `name=on|off` first (in order), then every `+name`, then every `-name`. */
  form?: 'property' | 'plus' | 'minus';
}

const W1_EDX: FeatureWord = { leaf: 1, subleaf: 0, register: 'edx' };
const W1_ECX: FeatureWord = { leaf: 1, subleaf: 0, register: 'ecx' };
const W7_EBX: FeatureWord = { leaf: 7, subleaf: 0, register: 'ebx' };
const W7_ECX: FeatureWord = { leaf: 7, subleaf: 0, register: 'ecx' };
const W7_EDX: FeatureWord = { leaf: 7, subleaf: 0, register: 'edx' };
const W81_ECX: FeatureWord = { leaf: 0x80000001, subleaf: 0, register: 'ecx' };
const W81_EDX: FeatureWord = { leaf: 0x80000001, subleaf: 0, register: 'edx' };
const WKVM_EAX: FeatureWord = { leaf: 0x40000001, subleaf: 0, register: 'eax' };

/**
 * Bit number → QEMU name, per feature word (gaps are bits QEMU leaves unnamed), in QEMU's
 * FeatureWord order, which is also the order its warnings come out in.
 */
const FEATURE_WORDS: ReadonlyArray<[FeatureWord, Readonly<Record<number, string>>]> = [
  [W1_EDX, {
    0: 'fpu', 1: 'vme', 2: 'de', 3: 'pse', 4: 'tsc', 5: 'msr', 6: 'pae', 7: 'mce', 8: 'cx8',
    9: 'apic', 11: 'sep', 12: 'mtrr', 13: 'pge', 14: 'mca', 15: 'cmov', 16: 'pat', 17: 'pse36',
    18: 'pn', 19: 'clflush', 21: 'ds', 22: 'acpi', 23: 'mmx', 24: 'fxsr', 25: 'sse', 26: 'sse2',
    27: 'ss', 28: 'ht', 29: 'tm', 30: 'ia64', 31: 'pbe',
  }],
  [W1_ECX, {
    0: 'pni', 1: 'pclmulqdq', 2: 'dtes64', 3: 'monitor', 4: 'ds-cpl', 5: 'vmx', 6: 'smx', 7: 'est',
    8: 'tm2', 9: 'ssse3', 10: 'cid', 12: 'fma', 13: 'cx16', 14: 'xtpr', 15: 'pdcm', 17: 'pcid',
    18: 'dca', 19: 'sse4.1', 20: 'sse4.2', 21: 'x2apic', 22: 'movbe', 23: 'popcnt',
    24: 'tsc-deadline', 25: 'aes', 26: 'xsave', 28: 'avx', 29: 'f16c', 30: 'rdrand',
    31: 'hypervisor',
  }],
  [W7_EBX, {
    0: 'fsgsbase', 1: 'tsc-adjust', 2: 'sgx', 3: 'bmi1', 4: 'hle', 5: 'avx2', 7: 'smep', 8: 'bmi2',
    9: 'erms', 10: 'invpcid', 11: 'rtm', 14: 'mpx', 16: 'avx512f', 17: 'avx512dq', 18: 'rdseed',
    19: 'adx', 20: 'smap', 21: 'avx512ifma', 22: 'pcommit', 23: 'clflushopt', 24: 'clwb',
    25: 'intel-pt', 26: 'avx512pf', 27: 'avx512er', 28: 'avx512cd', 29: 'sha-ni',
    30: 'avx512bw', 31: 'avx512vl',
  }],
  [W7_ECX, {
    1: 'avx512vbmi', 2: 'umip', 3: 'pku', 5: 'waitpkg', 6: 'avx512vbmi2', 8: 'gfni', 9: 'vaes',
    10: 'vpclmulqdq', 11: 'avx512vnni', 12: 'avx512bitalg', 14: 'avx512-vpopcntdq', 16: 'la57',
    22: 'rdpid', 24: 'bus-lock-detect', 25: 'cldemote', 27: 'movdiri', 28: 'movdir64b',
    30: 'sgxlc', 31: 'pks',
  }],
  [W7_EDX, {
    2: 'avx512-4vnniw', 3: 'avx512-4fmaps', 4: 'fsrm', 8: 'avx512-vp2intersect', 10: 'md-clear',
    14: 'serialize', 16: 'tsx-ldtrk', 19: 'arch-lbr', 22: 'amx-bf16', 23: 'avx512-fp16',
    24: 'amx-tile', 25: 'amx-int8', 26: 'spec-ctrl', 27: 'stibp', 29: 'arch-capabilities',
    30: 'core-capability', 31: 'ssbd',
  }],
  [W81_EDX, {
    11: 'syscall', 20: 'nx', 22: 'mmxext', 25: 'fxsr-opt', 26: 'pdpe1gb', 27: 'rdtscp', 29: 'lm',
    30: '3dnowext', 31: '3dnow',
  }],
  [W81_ECX, {
    0: 'lahf-lm', 1: 'cmp-legacy', 2: 'svm', 3: 'extapic', 4: 'cr8legacy', 5: 'abm', 6: 'sse4a',
    7: 'misalignsse', 8: '3dnowprefetch', 9: 'osvw', 10: 'ibs', 11: 'xop', 12: 'skinit',
    13: 'wdt', 15: 'lwp', 16: 'fma4', 17: 'tce', 19: 'nodeid-msr', 21: 'tbm', 22: 'topoext',
    23: 'perfctr-core', 24: 'perfctr-nb',
  }],
  [WKVM_EAX, {
    0: 'kvmclock', 1: 'kvm-nopiodelay', 2: 'kvm-mmu', 3: 'kvmclock', 4: 'kvm-asyncpf',
    5: 'kvm-steal-time', 6: 'kvm-pv-eoi', 7: 'kvm-pv-unhalt', 9: 'kvm-pv-tlb-flush',
    11: 'kvm-pv-ipi', 12: 'kvm-poll-control', 13: 'kvm-pv-sched-yield', 14: 'kvm-asyncpf-int',
    15: 'kvm-msi-ext-dest-id', 24: 'kvmclock-stable-bit',
  }],
];

/** QEMU's object_property_add_alias() list for x86 CPUs: old spellings → property names. */
export const CPU_FEATURE_ALIASES: Readonly<Record<string, string>> = {
  'sse3': 'pni', 'pclmuldq': 'pclmulqdq', 'sse4-1': 'sse4.1', 'sse4-2': 'sse4.2', 'xd': 'nx',
  'ffxsr': 'fxsr-opt', 'i64': 'lm', 'ds_cpl': 'ds-cpl', 'tsc_adjust': 'tsc-adjust',
  'fxsr_opt': 'fxsr-opt', 'lahf_lm': 'lahf-lm', 'cmp_legacy': 'cmp-legacy',
  'nodeid_msr': 'nodeid-msr', 'perfctr_core': 'perfctr-core', 'perfctr_nb': 'perfctr-nb',
  'kvm_nopiodelay': 'kvm-nopiodelay', 'kvm_mmu': 'kvm-mmu', 'kvm_asyncpf': 'kvm-asyncpf',
  'kvm_asyncpf_int': 'kvm-asyncpf-int', 'kvm_steal_time': 'kvm-steal-time',
  'kvm_pv_eoi': 'kvm-pv-eoi', 'kvm_pv_unhalt': 'kvm-pv-unhalt',
  'kvm_poll_control': 'kvm-poll-control', 'sse4_1': 'sse4.1', 'sse4_2': 'sse4.2',
};

function buildFeatureTable(): Map<string, CpuFeature> {
  const table = new Map<string, { name: string; bits: CpuFeatureBit[] }>();
  for (const [word, names] of FEATURE_WORDS) {
    for (const [bitText, name] of Object.entries(names)) {
      const bit: CpuFeatureBit = { ...word, bit: Number(bitText) };
      const existing = table.get(name);
      if (existing) existing.bits.push(bit);
      else table.set(name, { name, bits: [bit] });
    }
  }
  return table;
}

/** Feature property name → its CPUID bits. */
export const CPU_FEATURES: ReadonlyMap<string, CpuFeature> = buildFeatureTable();

/** Bits of a feature word that QEMU names; unnamed bits are not passed to a `-cpu host` guest. */
export function namedFeatureMask(word: FeatureWord): number {
  let mask = 0;
  for (const [w, names] of FEATURE_WORDS) {
    if (!sameWord(w, word)) continue;
    for (const bitText of Object.keys(names)) mask |= 1 << Number(bitText);
  }
  return mask >>> 0;
}

/**
 * QEMU's feat2prop(): in the `name=value` form underscores become dashes before the lookup
 * (`sha_ni=on` works); in the `+name`/`-name` form they do not (`+sha_ni` is an error).
 */
export function featurePropertyName(key: string): string {
  return key.replaceAll('_', '-');
}

/**
 * Resolves a feature name as QEMU does (exact property name or alias, case-sensitive).
 * Unknown: OptionError with QEMU's text, e.g. "Property 'host-x86_64-cpu.bogus' not found".
 */
export function lookupCpuFeature(name: string, model = 'host'): CpuFeature {
  const feature = CPU_FEATURES.get(CPU_FEATURE_ALIASES[name] ?? name);
  if (!feature) throw new OptionError(`Property '${model}-x86_64-cpu.${name}' not found`);
  return feature;
}

function hex2(n: number): string {
  return n.toString(16).toUpperCase().padStart(2, '0');
}

/** QEMU's feature_word_description() + name: "CPUID.01H:ECX.vmx [bit 5]". */
export function describeFeatureBit(name: string, bit: CpuFeatureBit): string {
  return `CPUID.${hex2(bit.leaf)}H:${bit.register.toUpperCase()}.${name} [bit ${bit.bit}]`;
}

export function findCpuidEntry(
  table: readonly CpuidEntry[], leaf: number, subleaf: number,
): CpuidEntry | undefined {
  return table.find((e) => e.function === leaf && e.index === subleaf)
    ?? table.find((e) => e.function === leaf && (e.flags & 1) === 0);
}

function hasBit(table: readonly CpuidEntry[], bit: CpuFeatureBit): boolean {
  const entry = findCpuidEntry(table, bit.leaf, bit.subleaf);
  return entry !== undefined && ((entry[bit.register] >>> bit.bit) & 1) === 1;
}

function sameWord(a: FeatureWord, b: FeatureWord): boolean {
  return a.leaf === b.leaf && a.subleaf === b.subleaf && a.register === b.register;
}

function wordIndex(word: FeatureWord): number {
  return FEATURE_WORDS.findIndex(([w]) => sameWord(w, word));
}

const FORM_ORDER = { property: 0, plus: 1, minus: 2 } as const;

/**
 * Applies `-cpu host,...` edits to `table` in place. `host` is what the host can offer
 * (KVM_GET_SUPPORTED_CPUID plus what the VMM always provides, such as the hypervisor bit).
 * Every name is checked before anything changes. Enabling a bit the host lacks leaves it
 * clear and yields QEMU's warning ("warning: host doesn't support requested feature: ...");
 * the caller prefixes the program name.
 */
export function applyCpuFeatures(
  table: CpuidEntry[],
  host: readonly CpuidEntry[],
  edits: readonly CpuFeatureEdit[],
  model = 'host',
): string[] {
  const resolved = edits.map((edit, i) => ({ edit, i, feature: lookupCpuFeature(edit.name, model) }));
  resolved.sort((a, b) =>
    FORM_ORDER[a.edit.form ?? 'property'] - FORM_ORDER[b.edit.form ?? 'property'] || a.i - b.i);
  const wanted = new Map<string, { bit: CpuFeatureBit; name: string; on: boolean }>();
  for (const { edit, feature } of resolved) {
    for (const bit of feature.bits) {
      wanted.set(`${bit.leaf}:${bit.subleaf}:${bit.register}:${bit.bit}`, { bit, name: feature.name, on: edit.enabled });
    }
  }
  const warnings: Array<{ order: number; text: string }> = [];
  for (const { bit, name, on } of wanted.values()) {
    const entry = findCpuidEntry(table, bit.leaf, bit.subleaf);
    const supported = hasBit(host, bit);
    if (on && !supported) {
      warnings.push({
        order: wordIndex(bit) * 32 + bit.bit,
        text: `warning: host doesn't support requested feature: ${describeFeatureBit(name, bit)}`,
      });
    }
    if (!entry) continue;
    const mask = (1 << bit.bit) >>> 0;
    entry[bit.register] = (on && supported ? entry[bit.register] | mask : entry[bit.register] & ~mask) >>> 0;
  }
  return warnings.sort((a, b) => a.order - b.order).map((w) => w.text);
}
