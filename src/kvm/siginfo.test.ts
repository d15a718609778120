import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  BUS_ADRERR, BUS_MCEERR_AO, BUS_MCEERR_AR, decodeSiginfo, describeSiginfo, encodeFaultSiginfo, memoryErrorOf,
  SIGBUS, SIGINFO_BYTES, siginfoBuffer,
} from './siginfo.js';

test('the x86_64 layout: signo 0, errno 4, code 8, si_addr 16, si_addr_lsb 24', () => {
  const b = siginfoBuffer();
  assert.equal(b.length, SIGINFO_BYTES);
  const v = new DataView(b.buffer);
  v.setInt32(0, 7, true);
  v.setInt32(4, 0, true);
  v.setInt32(8, 4, true);
  v.setBigUint64(16, 0x7f0012345000n, true);
  v.setInt16(24, 12, true);
  const i = decodeSiginfo(b);
  assert.equal(i.signo, SIGBUS);
  assert.equal(i.code, BUS_MCEERR_AR);
  assert.equal(i.addr, 0x7f0012345000n);
  assert.equal(i.addrLsb, 12);
  assert.equal(i.errno, 0);
});

test('what the kernel sends on this host for a poisoned guest page decodes to an AR memory error', () => {
  // Bytes as sigtimedwait returned them on the dev host (KVM, UFFDIO_POISON'd page).
  const i = decodeSiginfo(encodeFaultSiginfo(SIGBUS, BUS_MCEERR_AR, 0x7fbcd4c76000n, 12));
  assert.deepEqual(memoryErrorOf(i), { actionRequired: true, hostAddress: 0x7fbcd4c76000n, size: 4096 });
  assert.equal(describeSiginfo(i), 'SIGBUS BUS_MCEERR_AR addr=0x7fbcd4c76000 lsb=12');
});

test('action-optional, and a huge page (lsb 21) rounds the address down', () => {
  const i = decodeSiginfo(encodeFaultSiginfo(SIGBUS, BUS_MCEERR_AO, 0x7f0000234000n, 21));
  assert.deepEqual(memoryErrorOf(i), { actionRequired: false, hostAddress: 0x7f0000200000n, size: 2 << 20 });
});

test('an lsb of 0 is taken as a 4 KiB page', () => {
  const i = decodeSiginfo(encodeFaultSiginfo(SIGBUS, BUS_MCEERR_AR, 0x7f0000001234n, 0));
  assert.deepEqual(memoryErrorOf(i), { actionRequired: true, hostAddress: 0x7f0000001000n, size: 4096 });
});

test('a plain bus error or another signal is not a memory error', () => {
  const adrerr = decodeSiginfo(encodeFaultSiginfo(SIGBUS, BUS_ADRERR, 0x7f0000001005n));
  assert.equal(memoryErrorOf(adrerr), null);
  assert.equal(describeSiginfo(adrerr), 'SIGBUS BUS_ADRERR addr=0x7f0000001005');
  const segv = decodeSiginfo(encodeFaultSiginfo(11, BUS_MCEERR_AR, 0x1000n, 12));
  assert.equal(memoryErrorOf(segv), null);
  assert.equal(describeSiginfo(segv), 'signal 11 si_code=4');
});

test('a kick (tgkill) reads back its sender in si_pid/si_uid', () => {
  const b = siginfoBuffer();
  const v = new DataView(b.buffer);
  v.setInt32(0, 34, true);
  v.setInt32(8, -6, true); // SI_TKILL
  v.setInt32(16, 1234, true);
  v.setUint32(20, 0, true);
  const i = decodeSiginfo(b);
  assert.equal(i.pid, 1234);
  assert.equal(i.code, -6);
  assert.equal(memoryErrorOf(i), null);
});

test('decodes a subarray view, and refuses a short buffer', () => {
  const big = new Uint8Array(256);
  big.set(encodeFaultSiginfo(SIGBUS, BUS_MCEERR_AO, 0x5000n, 12), 64);
  assert.equal(decodeSiginfo(big.subarray(64, 64 + SIGINFO_BYTES)).code, BUS_MCEERR_AO);
  assert.throws(() => decodeSiginfo(new Uint8Array(16)), RangeError);
});
