// Plays a guest's Hyper-V detection (CPUID 0x40000000/0x40000003) and Linux's
// hyperv_report_panic (P0..P4, then CRASH_CTL = CRASH_NOTIFY) against the model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SharedArena } from '../../devices/shared-state.js';
import type { GuestPanicInformationHyperV } from '../../runstate/events.js';
import { vcpuCpuid, type CpuidEntry } from './cpuid.js';
import { PVM_SUPPORTED_CPUID } from './fixtures/pvm-supported-cpuid.js';
import {
  HV_CRASH_CTL_CRASH_NOTIFY, HV_GUEST_CRASH_MSR_AVAILABLE, HV_X64_MSR_CRASH_CTL, HV_X64_MSR_CRASH_P0,
  HV_X64_MSR_CRASH_P4, HypervCrashMsrs, hypervCrashLeaves, withHypervCrash,
} from './hyperv-crash.js';

function get(entries: readonly CpuidEntry[], fn: number): CpuidEntry {
  const e = entries.find((x) => x.function === fn && x.index === 0);
  assert.ok(e, `leaf ${fn.toString(16)}`);
  return e;
}

function text(...words: number[]): string {
  const b = Buffer.alloc(words.length * 4);
  words.forEach((w, i) => b.writeUInt32LE(w, i * 4));
  return b.toString('latin1').replace(/\0+$/, '');
}

const host = vcpuCpuid(PVM_SUPPORTED_CPUID, { vcpuIndex: 0, apicId: 0, cpus: 1, features: [] }).entries;

void test('a guest finds "Microsoft Hv" with leaves up to 0x40000005 and "Hv#1"', () => {
  const t = withHypervCrash(host);
  const vendor = get(t, 0x40000000);
  assert.equal(vendor.eax, 0x40000005);
  assert.equal(text(vendor.ebx, vendor.ecx, vendor.edx), 'Microsoft Hv');
  assert.equal(text(get(t, 0x40000001).eax), 'Hv#1');
});

void test('0x40000003 offers the crash MSRs (EDX bit 10), as QEMU lays the Hyper-V leaves out', () => {
  const t = withHypervCrash(host);
  const features = get(t, 0x40000003);
  assert.equal(features.edx & HV_GUEST_CRASH_MSR_AVAILABLE, 1 << 10);
  const regs = (fn: number): number[] => {
    const e = get(t, fn);
    return [e.eax, e.ebx, e.ecx, e.edx];
  };
  assert.deepEqual(regs(0x40000002), [14393, 0x000a0000, 0, 0]);
  assert.deepEqual(regs(0x40000003), [0x20, 0, 0, 0x408]);
  assert.deepEqual(regs(0x40000004), [0, 0xffffffff, 0, 0]);
  assert.deepEqual(regs(0x40000005), [0xffffffff, 64, 0, 0]);
});

void test("KVM's leaves move to 0x40000100 with their contents; nothing else is left in the first range", () => {
  const t = withHypervCrash(host);
  const kvmSig = get(host, 0x40000000);
  const moved = get(t, 0x40000100);
  assert.deepEqual(moved, { ...kvmSig, function: 0x40000100, eax: 0x40000101 });
  assert.equal(text(moved.ebx, moved.ecx, moved.edx), 'KVMKVMKVM');
  assert.deepEqual(get(t, 0x40000101), { ...get(host, 0x40000001), function: 0x40000101 });
  assert.equal(get(t, 0x40000101).eax, 0x01007afb);
  const firstRange = t.filter((e) => e.function >= 0x40000000 && e.function < 0x40000100).map((e) => e.function);
  assert.deepEqual(firstRange, [0x40000000, 0x40000001, 0x40000002, 0x40000003, 0x40000004, 0x40000005]);
});

void test('the rest of the table is kept, sorted, and the input is not modified', () => {
  const before = JSON.stringify(host);
  const t = withHypervCrash(host);
  assert.equal(JSON.stringify(host), before);
  const others = (xs: readonly CpuidEntry[]): CpuidEntry[] => xs.filter((e) => e.function < 0x40000000 || e.function >= 0x80000000);
  assert.deepEqual(others(t), others(host));
  const keys = t.map((e) => e.function * 256 + e.index);
  assert.deepEqual(keys, [...keys].sort((a, b) => a - b));
  assert.equal(t.length, host.length + hypervCrashLeaves().length);
});

void test('a table without KVM leaves gets only the Hyper-V ones', () => {
  const t = withHypervCrash([{ function: 0, index: 0, flags: 0, eax: 0xd, ebx: 0, ecx: 0, edx: 0 }]);
  assert.deepEqual(t.map((e) => e.function), [0, 0x40000000, 0x40000001, 0x40000002, 0x40000003, 0x40000004, 0x40000005]);
});

function setup() {
  const region = SharedArena.create(4096).alloc(HypervCrashMsrs.STATE_BYTES);
  const crashes: GuestPanicInformationHyperV[] = [];
  const msrs = new HypervCrashMsrs(region, { crashed: (info) => crashes.push(info) });
  return { region, msrs, crashes };
}

void test('CRASH_CTL reads CRASH_NOTIFY (bit 63); the parameters start at 0', () => {
  const { msrs } = setup();
  assert.equal(msrs.rdmsr(HV_X64_MSR_CRASH_CTL), 1n << 63n);
  for (let i = HV_X64_MSR_CRASH_P0; i <= HV_X64_MSR_CRASH_P4; i++) assert.equal(msrs.rdmsr(i), 0n);
});

void test('hyperv_report_panic: P0..P4 then CRASH_CTL = NOTIFY reports arg1..arg5', () => {
  const { msrs, crashes } = setup();
  for (let i = 0; i < 5; i++) assert.equal(msrs.wrmsr(HV_X64_MSR_CRASH_P0 + i, BigInt(i + 1)), true);
  assert.deepEqual(crashes, []);
  assert.equal(msrs.wrmsr(HV_X64_MSR_CRASH_CTL, HV_CRASH_CTL_CRASH_NOTIFY), true);
  assert.deepEqual(crashes, [{ type: 'hyper-v', arg1: 1n, arg2: 2n, arg3: 3n, arg4: 4n, arg5: 5n }]);
  assert.equal(msrs.rdmsr(HV_X64_MSR_CRASH_P0 + 2), 3n, 'parameters read back');
  assert.equal(msrs.rdmsr(HV_X64_MSR_CRASH_CTL), HV_CRASH_CTL_CRASH_NOTIFY, 'a guest write does not change CTL');
});

void test('full 64-bit parameters (Linux passes a register dump and a message address)', () => {
  const { msrs, crashes } = setup();
  msrs.wrmsr(HV_X64_MSR_CRASH_P0, 0xffffffff_fffffff0n);
  msrs.wrmsr(HV_X64_MSR_CRASH_P4, -1n); // as a signed view: stored as 2^64 - 1
  msrs.wrmsr(HV_X64_MSR_CRASH_CTL, HV_CRASH_CTL_CRASH_NOTIFY | 0x1234n);
  assert.equal(crashes[0]?.arg1, 0xffffffff_fffffff0n);
  assert.equal(crashes[0]?.arg5, 0xffffffff_ffffffffn);
});

void test('a CRASH_CTL write without NOTIFY is accepted and reports nothing', () => {
  const { msrs, crashes } = setup();
  assert.equal(msrs.wrmsr(HV_X64_MSR_CRASH_CTL, 0n), true);
  assert.equal(msrs.wrmsr(HV_X64_MSR_CRASH_CTL, (1n << 62n) | 1n), true);
  assert.deepEqual(crashes, []);
});

void test('every NOTIFY write reports, with the parameters of the moment', () => {
  const { msrs, crashes } = setup();
  msrs.wrmsr(HV_X64_MSR_CRASH_CTL, HV_CRASH_CTL_CRASH_NOTIFY);
  msrs.wrmsr(HV_X64_MSR_CRASH_P0, 7n);
  msrs.wrmsr(HV_X64_MSR_CRASH_CTL, HV_CRASH_CTL_CRASH_NOTIFY);
  assert.deepEqual(crashes.map((c) => c.arg1), [0n, 7n]);
});

void test('other MSRs are not ours', () => {
  const { msrs } = setup();
  for (const index of [0x40000000, 0x40000001, 0x400000ff, 0x40000106, 0x4b564d00, 0x10, 0]) {
    assert.equal(msrs.rdmsr(index), undefined, index.toString(16));
    assert.equal(msrs.wrmsr(index, 1n), false, index.toString(16));
  }
});

void test('partition-wide: what one vCPU thread writes, another reads; a reset clears the parameters', () => {
  const a = setup();
  const crashes: GuestPanicInformationHyperV[] = [];
  const b = new HypervCrashMsrs(a.region, { crashed: (info) => crashes.push(info) });
  a.msrs.wrmsr(HV_X64_MSR_CRASH_P0 + 1, 42n);
  assert.equal(b.rdmsr(HV_X64_MSR_CRASH_P0 + 1), 42n);
  b.wrmsr(HV_X64_MSR_CRASH_CTL, HV_CRASH_CTL_CRASH_NOTIFY);
  assert.equal(crashes[0]?.arg2, 42n);
  assert.deepEqual(a.crashes, [], 'the report goes through the writing vCPU');
  a.msrs.reset();
  assert.equal(b.rdmsr(HV_X64_MSR_CRASH_P0 + 1), 0n);
});
