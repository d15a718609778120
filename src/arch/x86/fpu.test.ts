import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeKvmFpu, defaultFpu, encodeKvmFpu, KVM_FPU_SIZE } from './fpu.js';

void test('power-on kvm_fpu: fcw 0x37f at 128, mxcsr 0x1f80 at 408, rest zero', () => {
  const bytes = encodeKvmFpu(defaultFpu());
  assert.equal(bytes.length, KVM_FPU_SIZE);
  assert.deepEqual([bytes[128], bytes[129]], [0x7f, 0x03]);
  assert.deepEqual([...bytes.subarray(408, 412)], [0x80, 0x1f, 0, 0]);
  assert.equal(bytes.reduce((n, b) => n + (b ? 1 : 0), 0), 4);
});

void test('every field round-trips at its kernel offset, also from a view with a byteOffset', () => {
  const f = defaultFpu();
  f.fpr[7]?.fill(0xaa);
  f.xmm[15]?.fill(0xbb);
  Object.assign(f, { fsw: 0x1234, ftwx: 0x81, lastOpcode: 0x55d, lastIp: 0x1122334455667788n, lastDp: 0x99n });
  const bytes = encodeKvmFpu(f);
  assert.equal(bytes[7 * 16], 0xaa);
  assert.equal(bytes[152 + 15 * 16 + 15], 0xbb);
  assert.equal(bytes[132], 0x81);
  assert.equal(bytes[134], 0x5d);
  assert.equal(bytes[136], 0x88);
  assert.equal(bytes[144], 0x99);
  const shifted = new Uint8Array(KVM_FPU_SIZE + 8);
  shifted.set(bytes, 8);
  assert.deepEqual(decodeKvmFpu(shifted.subarray(8)), f);
  assert.throws(() => decodeKvmFpu(new Uint8Array(100)), RangeError);
});
