import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OptionError } from '../../errors.js';
import type { CpuidEntry } from './cpuid.js';
import { applyCpuFeatures, featurePropertyName, lookupCpuFeature } from './cpu-features.js';

function leaf1(ecx: number, edx = 0): CpuidEntry[] {
  return [{ function: 1, index: 0, flags: 0, eax: 0, ebx: 0, ecx, edx }];
}

void test('names map to the bits QEMU 7.2 reports in its warnings', () => {
  const bit = (n: string): string => {
    const b = lookupCpuFeature(n).bits[0];
    assert.ok(b);
    return `${b.leaf.toString(16)}.${b.subleaf}.${b.register}.${b.bit}`;
  };
  assert.equal(bit('vmx'), '1.0.ecx.5');
  assert.equal(bit('sse4_1'), '1.0.ecx.19');
  assert.equal(bit('sse3'), '1.0.ecx.0');
  assert.equal(bit('ht'), '1.0.edx.28');
  assert.equal(bit('sha-ni'), '7.0.ebx.29');
  assert.equal(bit('avx512f'), '7.0.ebx.16');
  assert.equal(bit('avx512vbmi'), '7.0.ecx.1');
  assert.equal(bit('waitpkg'), '7.0.ecx.5');
  assert.equal(bit('avx512-4vnniw'), '7.0.edx.2');
  assert.equal(bit('svm'), '80000001.0.ecx.2');
  assert.equal(bit('perfctr_core'), '80000001.0.ecx.23');
  assert.equal(bit('pdpe1gb'), '80000001.0.edx.26');
  assert.equal(bit('3dnow'), '80000001.0.edx.31');
  assert.equal(bit('kvm_mmu'), '40000001.0.eax.2');
  assert.equal(bit('kvm-msi-ext-dest-id'), '40000001.0.eax.15');
  assert.equal(lookupCpuFeature('kvmclock').bits.length, 2);
});

void test('unknown names fail with QEMU\'s message; +name does not rewrite underscores', () => {
  assert.throws(() => lookupCpuFeature('bogus'),
    (e: unknown) => e instanceof OptionError && e.message === "Property 'host-x86_64-cpu.bogus' not found");
  // QEMU registers no property for these (dynamic or unknown bits).
  for (const name of ['osxsave', 'ospke', 'kvm-asyncpf-vmexit', 'sha_ni', 'SSE3']) {
    assert.throws(() => lookupCpuFeature(name), OptionError);
  }
  assert.equal(lookupCpuFeature(featurePropertyName('sha_ni')).name, 'sha-ni');
});

void test('+feat the host lacks warns like QEMU and stays clear', () => {
  const table = leaf1(0);
  const warnings = applyCpuFeatures(table, leaf1(0), [{ name: 'vmx', enabled: true, form: 'plus' }]);
  assert.deepEqual(warnings, ["warning: host doesn't support requested feature: CPUID.01H:ECX.vmx [bit 5]"]);
  assert.equal(table[0]?.ecx, 0);
});

void test('warnings come out in QEMU feature-word order, names canonical', () => {
  const table = [...leaf1(0), { function: 0x80000001, index: 0, flags: 0, eax: 0, ebx: 0, ecx: 0, edx: 0 }];
  const warnings = applyCpuFeatures(table, table.map((e) => ({ ...e })), [
    { name: 'svm', enabled: true }, { name: 'sse4_1', enabled: true }, { name: 'ffxsr', enabled: true },
  ]);
  assert.deepEqual(warnings, [
    "warning: host doesn't support requested feature: CPUID.01H:ECX.sse4.1 [bit 19]",
    "warning: host doesn't support requested feature: CPUID.80000001H:EDX.fxsr-opt [bit 25]",
    "warning: host doesn't support requested feature: CPUID.80000001H:ECX.svm [bit 2]",
  ]);
});

void test('-feat clears; minus beats plus whatever the order; plus beats name=off', () => {
  const host = leaf1(1 << 13 | 1 << 21, 1);
  const t1 = leaf1(1 << 13 | 1 << 21, 1);
  assert.deepEqual(applyCpuFeatures(t1, host, [
    { name: 'cx16', enabled: false, form: 'minus' }, { name: 'cx16', enabled: true, form: 'plus' },
    { name: 'fpu', enabled: false },
  ]), []);
  assert.equal(t1[0]?.ecx, 1 << 21);
  assert.equal(t1[0]?.edx, 0);
  const t2 = leaf1(0);
  applyCpuFeatures(t2, host, [{ name: 'cx16', enabled: true, form: 'plus' }, { name: 'cx16', enabled: false, form: 'property' }]);
  assert.equal(t2[0]?.ecx, 1 << 13);
});

void test('an unknown name is reported before any warning and nothing changes', () => {
  const table = leaf1(1 << 13);
  assert.throws(() => applyCpuFeatures(table, leaf1(0), [
    { name: 'cx16', enabled: false }, { name: 'vmx', enabled: true }, { name: 'bogus', enabled: true },
  ]), /bogus/);
  assert.equal(table[0]?.ecx, 1 << 13);
});
