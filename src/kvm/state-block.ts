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

/**
 * One block from KVM_GET_REGS, KVM_GET_SREGS and KVM_GET_MSRS buffers (`msrs`: struct kvm_msrs),
 * written to the start of `into` when it is long enough (the result is then a view of it).
 */
export function stateBlock(regs: Uint8Array, sregs: Uint8Array, msrs: Uint8Array, read: number, into?: Uint8Array): Uint8Array {
  // On every introspection event: no views made that are not needed, and with `into` (a
  // buffer the caller reuses) no memory allocated, which costs about 0.5 us a block here.
  const msrsSize = 8 + read * KVM_MSR_ENTRY_SIZE;
  const size = MSRS_AT + msrsSize;
  const out = into !== undefined && into.length >= size ? into.subarray(0, size) : new Uint8Array(size);
  out.set(regs.length === KVM_REGS_SIZE ? regs : regs.subarray(0, KVM_REGS_SIZE), 0);
  out.set(sregs.length === KVM_SREGS_SIZE ? sregs : sregs.subarray(0, KVM_SREGS_SIZE), KVM_REGS_SIZE);
  out.set(msrs.length === msrsSize ? msrs : msrs.subarray(0, msrsSize), MSRS_AT);
  // struct kvm_msrs {u32 nmsrs; u32 pad}: nmsrs is what KVM read, little-endian.
  out[MSRS_AT] = read & 0xff;
  out[MSRS_AT + 1] = (read >>> 8) & 0xff;
  out[MSRS_AT + 2] = (read >>> 16) & 0xff;
  out[MSRS_AT + 3] = read >>> 24;
  out.fill(0, MSRS_AT + 4, MSRS_AT + 8);
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
