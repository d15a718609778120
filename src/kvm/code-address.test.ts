import { test } from 'node:test';
import assert from 'node:assert/strict';

import { requireKvmGuests } from '../testing/kvm-guests.js';
import { Kvm, KvmVcpu } from './kvm.js';

test('getCodeAddress reads what KVM_GET_REGS and KVM_GET_SREGS report, without decoding the rest', () => {
  requireKvmGuests();
  const kvm = Kvm.open();
  const vm = kvm.createVm();
  const fd = vm.createVcpu(0);
  try {
    const runSize = kvm.vcpuMmapSize();
    const vcpu = new KvmVcpu(fd, vm.mapRun(fd, runSize), runSize);
    assert.equal(vcpu.getCodeAddress().cr0, vcpu.getSregs().cr0, 'at reset');
    // PE and NE set, then PE alone (PG needs page tables this test has no use for).
    for (const cr0 of [0x31n, 0x11n]) {
      vcpu.setSregs({ ...vcpu.getSregs(), cr0 });
      assert.equal(vcpu.getCodeAddress().cr0, cr0);
    }
    const sregs = vcpu.getSregs();
    vcpu.setSregs({ ...sregs, cs: { ...sregs.cs, base: 0x12340n } });
    vcpu.setRegs({ ...vcpu.getRegs(), rip: 0xbeefn });
    assert.deepEqual(vcpu.getCodeAddress(), { rip: 0xbeefn, csBase: 0x12340n, cr0: 0x11n });
  } finally {
    vm.closeVcpu(fd);
    vm.close();
    kvm.close();
  }
});
