/**
 * A vCPU's state as it crosses threads: kvm_regs, kvm_sregs and struct kvm_msrs (its nmsrs:
 * the MSRs KVM read), back to back, exactly as KVM fills them. Posting these bytes to another
 * thread costs about 3 us here; posting the same state decoded into objects of bigints costs
 * about 60 us (structured clone), more than the rest of an introspection event.
 */
import type { Regs, Sregs } from '../hypervisor/x86-state.js';
import {
  decodeMsrs, decodeRegs, decodeSregs, KVM_MSR_ENTRY_SIZE, KVM_REGS_SIZE, KVM_SREGS_SIZE, type MsrEntry,
} from './structs.js';

const MSRS_AT = KVM_REGS_SIZE + KVM_SREGS_SIZE;

/** One block from KVM_GET_REGS, KVM_GET_SREGS and KVM_GET_MSRS buffers (`msrs`: struct kvm_msrs). */
export function stateBlock(regs: Uint8Array, sregs: Uint8Array, msrs: Uint8Array, read: number): Uint8Array {
  const out = new Uint8Array(MSRS_AT + 8 + read * KVM_MSR_ENTRY_SIZE);
  out.set(regs.subarray(0, KVM_REGS_SIZE), 0);
  out.set(sregs.subarray(0, KVM_SREGS_SIZE), KVM_REGS_SIZE);
  out.set(msrs.subarray(8, 8 + read * KVM_MSR_ENTRY_SIZE), MSRS_AT + 8);
  new DataView(out.buffer).setUint32(MSRS_AT, read, true);
  return out;
}

export interface DecodedState {
  regs: Regs;
  sregs: Sregs;
  /** The MSRs read, in the order asked. */
  msrs: MsrEntry[];
}

/** Throws RangeError on a block too short for what it says it holds. */
export function decodeStateBlock(b: Uint8Array): DecodedState {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const n = view.getUint32(MSRS_AT, true);
  if (b.byteLength < MSRS_AT + 8 + n * KVM_MSR_ENTRY_SIZE) throw new RangeError(`state block of ${b.byteLength} bytes holds no ${n} MSRs`);
  return {
    regs: decodeRegs(b.subarray(0, KVM_REGS_SIZE)),
    sregs: decodeSregs(b.subarray(KVM_REGS_SIZE, MSRS_AT)),
    msrs: decodeMsrs(b.subarray(MSRS_AT), n),
  };
}
