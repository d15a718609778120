import { test } from 'node:test';
import assert from 'node:assert/strict';
import { APIC_LVT0, APIC_LVT1, getApicId, getApicReg, KVM_APIC_REG_SIZE, setLapicLint, withApicReg } from './lapic.js';

void test('LINT0 becomes ExtINT and LINT1 NMI; mask and vector kept; input untouched', () => {
  let state: Uint8Array = new Uint8Array(KVM_APIC_REG_SIZE);
  state = withApicReg(state, APIC_LVT0, 0x10000); // masked, as KVM resets it
  state = withApicReg(state, APIC_LVT1, 0x10000 | 0x200 | 0x31);
  const out = setLapicLint(state);
  assert.equal(getApicReg(out, APIC_LVT0), 0x10700);
  assert.equal(getApicReg(out, APIC_LVT1), 0x10431);
  assert.equal(getApicReg(state, APIC_LVT0), 0x10000);
});

void test('APIC ID is bits 31:24 of the register at 0x20', () => {
  const state = withApicReg(new Uint8Array(KVM_APIC_REG_SIZE), 0x20, 0x03000000);
  assert.equal(getApicId(state), 3);
  assert.throws(() => getApicId(new Uint8Array(16)), RangeError);
});
