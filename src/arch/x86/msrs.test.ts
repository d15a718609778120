import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bootMsrs, MSR_IA32_MISC_ENABLE, MSR_LSTAR, MSR_MTRRdefType, MSR_SYSCALL_MASK } from './msrs.js';

void test('boot MSRs: fast strings on, MTRRs on with write-back default, syscall MSRs zero', () => {
  const msrs = new Map(bootMsrs().map((m) => [m.index, m.data]));
  assert.equal(msrs.get(MSR_IA32_MISC_ENABLE), 1n);
  assert.equal(msrs.get(MSR_MTRRdefType), 0x806n);
  assert.equal(msrs.get(MSR_LSTAR), 0n);
  assert.equal(msrs.get(MSR_SYSCALL_MASK), 0n);
  assert.equal(msrs.get(0x174), 0n);
  assert.equal(msrs.get(0x10), 0n);
  assert.equal(msrs.size, 11);
});
