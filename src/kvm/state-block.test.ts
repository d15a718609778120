import assert from 'node:assert/strict';
import { test } from 'node:test';
import { zeroRegs } from '../hypervisor/x86-state.js';
import { decodeStateBlock, stateBlock } from './state-block.js';
import { decodeSregs, encodeMsrs, encodeRegs, encodeSregs, KVM_SREGS_SIZE } from './structs.js';

test('a state block carries regs, sregs and the MSRs KVM read, and decodes to the same values', () => {
  const regs = { ...zeroRegs(), rax: 0x1122_3344_5566_7788n, rip: 0xffff_ffff_8100_0010n, rflags: 0x202n };
  const sregs = { ...decodeSregs(new Uint8Array(KVM_SREGS_SIZE)), cr3: 0x8000n, efer: 0x500n };
  const msrs = encodeMsrs([{ index: 0x174, data: 0x10n }, { index: 0xc000_0082, data: 0xffff_ffff_8100_0000n }, { index: 0x277, data: 7n }]);
  // KVM read two of the three: the block says two.
  const b = decodeStateBlock(stateBlock(encodeRegs(regs), encodeSregs(sregs), msrs, 2));
  assert.deepEqual(b.regs, regs);
  assert.deepEqual(b.sregs, sregs);
  assert.deepEqual(b.msrs, [{ index: 0x174, data: 0x10n }, { index: 0xc000_0082, data: 0xffff_ffff_8100_0000n }]);
});

test('a block cut short is refused, not read past its end', () => {
  const whole = stateBlock(encodeRegs(zeroRegs()), new Uint8Array(KVM_SREGS_SIZE), encodeMsrs([{ index: 1, data: 1n }]), 1);
  assert.throws(() => decodeStateBlock(whole.subarray(0, whole.length - 1)), RangeError);
});
