import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bitWidthForCount, vcpuCpuid, type CpuidEntry } from './cpuid.js';
import { PVM_SUPPORTED_CPUID } from './fixtures/pvm-supported-cpuid.js';

function get(entries: readonly CpuidEntry[], fn: number, index = 0): CpuidEntry {
  const e = entries.find((x) => x.function === fn && x.index === index);
  assert.ok(e, `leaf ${fn.toString(16)}.${index}`);
  return e;
}

const one = { vcpuIndex: 0, apicId: 0, cpus: 1, features: [] };

// Expected values are what a guest read with CPUID under QEMU 7.2 `-cpu host` on this host.
void test('single vCPU: leaf 1 EBX has no logical count and HTT is clear (QEMU -smp 1)', () => {
  const { entries, warnings } = vcpuCpuid(PVM_SUPPORTED_CPUID, one);
  assert.deepEqual(warnings, []);
  assert.equal(get(entries, 1).ebx, 0x00000800);
  assert.equal(get(entries, 1).edx & (1 << 28), 0);
  assert.equal(get(entries, 1).ecx >>> 31, 1);
  assert.equal(get(entries, 4, 0).eax, 0x00000121);
  assert.equal(get(entries, 4, 3).eax, 0x00000163);
  assert.deepEqual(get(entries, 0xb, 0), { function: 0xb, index: 0, flags: 1, eax: 0, ebx: 1, ecx: 0x100, edx: 0 });
  assert.deepEqual(get(entries, 0xb, 1), { function: 0xb, index: 1, flags: 1, eax: 0, ebx: 1, ecx: 0x201, edx: 0 });
  assert.equal(get(entries, 0x1f).edx, 0);
  assert.equal(get(entries, 0x40000001).eax, 0x01007afb);
});

void test('second of two vCPUs: APIC ID, count, HTT, cache sharing, x2APIC topology (QEMU -smp 2)', () => {
  const { entries } = vcpuCpuid(PVM_SUPPORTED_CPUID, { vcpuIndex: 1, apicId: 1, cpus: 2, features: [] });
  assert.equal(get(entries, 1).ebx, 0x01020800);
  assert.equal(get(entries, 1).edx & (1 << 28), 1 << 28);
  assert.equal(get(entries, 4, 0).eax, 0x04000121);
  assert.equal(get(entries, 4, 3).eax, 0x04004163);
  assert.equal(get(entries, 4, 4).eax, 0); // the terminating null cache entry stays null
  assert.deepEqual(get(entries, 0xb, 1), { function: 0xb, index: 1, flags: 1, eax: 1, ebx: 2, ecx: 0x201, edx: 1 });
  assert.deepEqual(get(entries, 0xb, 2), { function: 0xb, index: 2, flags: 1, eax: 0, ebx: 0, ecx: 2, edx: 1 });
});

void test('KVM signature leaf is forced and the features leaf ensured', () => {
  const supported = PVM_SUPPORTED_CPUID.filter((e) => e.function < 0x40000000 || e.function >= 0x80000000);
  const { entries } = vcpuCpuid(supported, one);
  assert.deepEqual(get(entries, 0x40000000), {
    function: 0x40000000, index: 0, flags: 0, eax: 0x40000001, ebx: 0x4b4d564b, ecx: 0x564b4d56, edx: 0x4d,
  });
  assert.equal(get(entries, 0x40000001).eax, 0);
});

void test('feature edits apply; hypervisor can be removed; the input is not modified', () => {
  const before = JSON.stringify(PVM_SUPPORTED_CPUID);
  const { entries, warnings } = vcpuCpuid(PVM_SUPPORTED_CPUID, {
    ...one, features: [{ name: 'x2apic', enabled: false }, { name: 'hypervisor', enabled: false }, { name: 'vmx', enabled: true }],
  });
  assert.equal(get(entries, 1).ecx & (1 << 21 | 1 << 31), 0);
  assert.deepEqual(warnings, ["warning: host doesn't support requested feature: CPUID.01H:ECX.vmx [bit 5]"]);
  assert.equal(JSON.stringify(PVM_SUPPORTED_CPUID), before);
});

void test('APIC ID bit widths', () => {
  assert.deepEqual([1, 2, 3, 4, 5, 8, 9].map(bitWidthForCount), [0, 1, 2, 2, 3, 3, 4]);
});
