import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  broadcastMce, CR4_MCE, decideMemoryFailure, judgeMceInjection, MCE_BANK, MCE_MISC, mcaBroadcast, MCG_CTL_P,
  MCG_LMCE_P, MCG_SER_P, MCG_STATUS_LMCE, MCG_STATUS_MCIP, memoryErrorMce, QEMU_MCG_CAP, vcpuMceState,
  type MemoryFailureInput,
} from './memory-failure.js';

const HVA = 0x7f0012345000n;
const GPA = 0x3000n;
const guest = (over: Partial<MemoryFailureInput>): MemoryFailureInput => ({
  owner: 'guest', actionRequired: true, guestMceEnabled: true, recursive: false, hostAddress: HVA, guestAddress: GPA, ...over,
});
const flags = (ar: boolean, recursive: boolean): { 'action-required': boolean; recursive: boolean } =>
  ({ 'action-required': ar, recursive });

test('action-required on guest RAM, guest has MCE enabled: inject, then resume', () => {
  const d = decideMemoryFailure(guest({}));
  assert.deepEqual(d.event, { recipient: 'guest', action: 'inject', flags: flags(true, false) });
  assert.equal(d.next.kind, 'inject');
  assert.equal(d.trackPage, true);
  assert.deepEqual(d.log, {
    level: 'error',
    text: 'Guest MCE Memory Error at QEMU addr 0x7f0012345000 and GUEST addr 0x3000 of type BUS_MCEERR_AR injected',
  });
});

test("the machine check QEMU injects for an action-required error (what KVM_X86_SET_MCE gets)", () => {
  const d = decideMemoryFailure(guest({}));
  assert.ok(d.next.kind === 'inject');
  // Measured on the dev host: KVM loads exactly these into MC9_STATUS / MCG_STATUS / MC9_ADDR.
  assert.deepEqual(d.next.mce, { bank: 9, status: 0xbd80000000000134n, addr: 0x3000n, misc: 0x8cn, mcgStatus: 0x7n });
});

test('action-optional on guest RAM: scrub error, RIPV only', () => {
  const d = decideMemoryFailure(guest({ actionRequired: false }));
  assert.deepEqual(d.event, { recipient: 'guest', action: 'inject', flags: flags(false, false) });
  assert.ok(d.next.kind === 'inject');
  assert.deepEqual(d.next.mce, { bank: MCE_BANK, status: 0xbd000000000000c0n, addr: GPA, misc: MCE_MISC, mcgStatus: 0x5n });
  assert.equal(d.log?.level, 'warning');
  assert.match(d.log?.text ?? '', /of type BUS_MCEERR_AO injected$/);
});

test('guest without CR4.MCE: reset (cause guest-reset), for AR and AO alike', () => {
  for (const ar of [true, false]) {
    const d = decideMemoryFailure(guest({ actionRequired: ar, guestMceEnabled: false }));
    assert.deepEqual(d.event, { recipient: 'guest', action: 'reset', flags: flags(ar, false) });
    assert.deepEqual(d.next, { kind: 'reset', cause: 'guest-reset' });
    assert.equal(d.trackPage, true, 'the page is replaced at that reset');
    // QEMU logs "... injected" even then.
    assert.match(d.log?.text ?? '', /injected$/);
  }
});

test('a second error while the guest is still handling one (MCG_STATUS.MCIP)', () => {
  const ar = decideMemoryFailure(guest({ recursive: true }));
  assert.deepEqual(ar.event, { recipient: 'guest', action: 'reset', flags: flags(true, true) });
  assert.deepEqual(ar.next, { kind: 'reset', cause: 'guest-reset' });
  const ao = decideMemoryFailure(guest({ actionRequired: false, recursive: true }));
  assert.deepEqual(ao.event, { recipient: 'guest', action: 'ignore', flags: flags(false, true) });
  assert.deepEqual(ao.next, { kind: 'continue' });
  // The AO check comes first in QEMU: ignored even when CR4.MCE is clear.
  const aoNoMce = decideMemoryFailure(guest({ actionRequired: false, recursive: true, guestMceEnabled: false }));
  assert.equal(aoNoMce.event?.action, 'ignore');
  // CR4.MCE clear and MCIP set: reset, recursive reported.
  const both = decideMemoryFailure(guest({ recursive: true, guestMceEnabled: false }));
  assert.deepEqual(both.event, { recipient: 'guest', action: 'reset', flags: flags(true, true) });
});

test('guest turned uncorrected-error reporting off: no event, nothing done', () => {
  const d = decideMemoryFailure(guest({ reportingDisabled: true }));
  assert.equal(d.event, null);
  assert.deepEqual(d.next, { kind: 'continue' });
  assert.equal(d.trackPage, true);
});

test("the VMM's own memory: AR is fatal (exit 1), AO is ignored", () => {
  const ar = decideMemoryFailure({ owner: 'hypervisor', actionRequired: true, guestMceEnabled: true, recursive: true, hostAddress: HVA });
  assert.deepEqual(ar.event, { recipient: 'hypervisor', action: 'fatal', flags: flags(true, false) });
  assert.deepEqual(ar.next, { kind: 'exit', status: 1 });
  assert.equal(ar.trackPage, false);
  assert.deepEqual(ar.log, { level: 'error', text: 'QEMU got Hardware memory error at addr 0x7f0012345000' });
  const ao = decideMemoryFailure({ owner: 'hypervisor', actionRequired: false, guestMceEnabled: true, recursive: false, hostAddress: HVA });
  assert.deepEqual(ao.event, { recipient: 'hypervisor', action: 'ignore', flags: flags(false, false) });
  assert.deepEqual(ao.next, { kind: 'continue' });
  assert.deepEqual(ao.log, {
    level: 'warning',
    text: 'Hardware memory error at addr 0x7f0012345000 of type BUS_MCEERR_AO for memory used by QEMU itself instead of guest system!',
  });
});

test('no MCA recovery in the vCPU model: even guest RAM is handled as the hypervisor\'s', () => {
  const ar = decideMemoryFailure(guest({ mcaRecovery: false }));
  assert.deepEqual(ar.event, { recipient: 'hypervisor', action: 'fatal', flags: flags(true, false) });
  assert.deepEqual(ar.next, { kind: 'exit', status: 1 });
  const ao = decideMemoryFailure(guest({ mcaRecovery: false, actionRequired: false }));
  assert.deepEqual(ao.event, { recipient: 'hypervisor', action: 'ignore', flags: flags(false, false) });
  assert.equal(ao.log, null, 'QEMU warns only with MCG_SER_P');
});

test('the hypervisor event never reports recursive, and a missing address prints (nil)', () => {
  const d = decideMemoryFailure({ owner: 'hypervisor', actionRequired: true, guestMceEnabled: false, recursive: true });
  assert.equal(d.event?.flags.recursive, false);
  assert.equal(d.log?.text, 'QEMU got Hardware memory error at addr (nil)');
});

test('every combination yields an event, except reporting disabled by the guest', () => {
  for (const owner of ['guest', 'hypervisor'] as const) {
    for (const actionRequired of [true, false]) {
      for (const guestMceEnabled of [true, false]) {
        for (const recursive of [true, false]) {
          for (const mcaRecovery of [true, false]) {
            const d = decideMemoryFailure({ owner, actionRequired, guestMceEnabled, recursive, mcaRecovery });
            assert.notEqual(d.event, null);
            assert.equal(d.event?.flags['action-required'], actionRequired);
            const expected = { inject: 'inject', reset: 'reset', exit: 'fatal', continue: 'ignore' }[d.next.kind];
            assert.equal(d.event?.action, expected, JSON.stringify({ owner, actionRequired, guestMceEnabled, recursive, mcaRecovery }));
            if (d.event?.recipient === 'hypervisor') assert.ok(owner === 'hypervisor' || !mcaRecovery);
          }
        }
      }
    }
  }
});

test('LMCE: MCG_STATUS.LMCE set and no broadcast', () => {
  assert.equal(memoryErrorMce(true, GPA, true).mcgStatus & MCG_STATUS_LMCE, MCG_STATUS_LMCE);
  assert.equal(memoryErrorMce(true, GPA).mcgStatus & MCG_STATUS_LMCE, 0n);
  assert.equal(mcaBroadcast(0x663, true), false);
});

test('broadcast: which CPU models, and what the other vCPUs get', () => {
  assert.equal(mcaBroadcast(0xf61), true, 'qemu64: family 15');
  assert.equal(mcaBroadcast(0x6e0), true, 'family 6 model 14');
  assert.equal(mcaBroadcast(0x106a5), true, 'family 6 model 0x1a (extended model)');
  assert.equal(mcaBroadcast(0x6d0), false, 'family 6 model 13');
  assert.equal(mcaBroadcast(0x5a0), false, 'family 5');
  const b = broadcastMce();
  assert.deepEqual(b, { bank: 1, status: 0xa000000000000000n, addr: 0n, misc: 0n, mcgStatus: 0x5n });
  // On another vCPU it is action-optional: ignored while that vCPU is in #MC.
  assert.deepEqual(judgeMceInjection(b, { guestMceEnabled: true, recursive: false }).event,
    { recipient: 'guest', action: 'inject', flags: flags(false, false) });
  assert.equal(judgeMceInjection(b, { guestMceEnabled: true, recursive: true }).event?.action, 'ignore');
  assert.equal(judgeMceInjection(b, { guestMceEnabled: false, recursive: false }).event?.action, 'reset');
});

test('a corrected error (no UC) is injected whatever CR4.MCE says', () => {
  const corrected = { bank: 1, status: 1n << 63n, addr: 0n, misc: 0n, mcgStatus: 0n };
  assert.equal(judgeMceInjection(corrected, { guestMceEnabled: false, recursive: false }).event?.action, 'inject');
});

test('vcpuMceState reads the registers the way QEMU does', () => {
  const ones = 0xffffffffffffffffn;
  const ready = vcpuMceState({ cr4: 0x20n | CR4_MCE, mcgCap: QEMU_MCG_CAP, mcgStatus: 0n, mcgCtl: ones, bankCtl: ones });
  assert.deepEqual(ready, { guestMceEnabled: true, recursive: false, reportingDisabled: false, localMce: false });
  const busy = vcpuMceState({ cr4: 0n, mcgCap: QEMU_MCG_CAP, mcgStatus: MCG_STATUS_MCIP, mcgCtl: ones, bankCtl: ones });
  assert.deepEqual(busy, { guestMceEnabled: false, recursive: true, reportingDisabled: false, localMce: false });
  assert.equal(vcpuMceState({ cr4: 0n, mcgCap: QEMU_MCG_CAP, mcgStatus: 0n, mcgCtl: 0n, bankCtl: ones }).reportingDisabled, true);
  // MCG_CTL only counts when MCG_CAP has MCG_CTL_P.
  assert.equal(vcpuMceState({ cr4: 0n, mcgCap: MCG_SER_P | 10n, mcgStatus: 0n, mcgCtl: 0n, bankCtl: ones }).reportingDisabled, false);
  assert.equal(vcpuMceState({ cr4: 0n, mcgCap: QEMU_MCG_CAP, mcgStatus: 0n, mcgCtl: ones, bankCtl: 0n }).reportingDisabled, true);
  assert.equal(vcpuMceState({ cr4: 0n, mcgCap: QEMU_MCG_CAP | MCG_LMCE_P, mcgStatus: 0n, mcgCtl: ones, bankCtl: ones, mcgExtCtl: 1n }).localMce, true);
  assert.equal(vcpuMceState({ cr4: 0n, mcgCap: QEMU_MCG_CAP, mcgStatus: 0n, mcgCtl: ones, bankCtl: ones, mcgExtCtl: 1n }).localMce, false);
  assert.equal(QEMU_MCG_CAP, MCG_CTL_P | MCG_SER_P | 10n);
});
