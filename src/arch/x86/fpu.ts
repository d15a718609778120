/**
 * struct kvm_fpu (KVM_GET_FPU / KVM_SET_FPU, 416 bytes) and the x87/SSE state of a vCPU at
 * power-on: FNINIT's control word and the MXCSR reset value, everything else zero.
 */
export const KVM_FPU_SIZE = 416;

export interface KvmFpu {
  /** 8 x87 registers, 16 bytes each (80-bit value + padding). */
  fpr: Uint8Array[];
  fcw: number;
  fsw: number;
  /** Abridged tag word, one bit per register (FXSAVE format). */
  ftwx: number;
  lastOpcode: number;
  lastIp: bigint;
  lastDp: bigint;
  /** 16 XMM registers, 16 bytes each. */
  xmm: Uint8Array[];
  mxcsr: number;
}

/** FNINIT: all exceptions masked, 64-bit precision, round to nearest. */
export const FCW_RESET = 0x37f;
/** All SIMD exceptions masked, round to nearest. */
export const MXCSR_RESET = 0x1f80;

const FPR_OFFSET = 0;
const FCW_OFFSET = 128;
const FSW_OFFSET = 130;
const FTWX_OFFSET = 132;
const LAST_OPCODE_OFFSET = 134;
const LAST_IP_OFFSET = 136;
const LAST_DP_OFFSET = 144;
const XMM_OFFSET = 152;
const MXCSR_OFFSET = 408;

export function defaultFpu(): KvmFpu {
  return {
    fpr: Array.from({ length: 8 }, () => new Uint8Array(16)),
    fcw: FCW_RESET, fsw: 0, ftwx: 0, lastOpcode: 0, lastIp: 0n, lastDp: 0n,
    xmm: Array.from({ length: 16 }, () => new Uint8Array(16)),
    mxcsr: MXCSR_RESET,
  };
}

function copyRegs(out: Uint8Array, offset: number, regs: readonly Uint8Array[], count: number): void {
  for (let i = 0; i < count; i++) {
    const reg = regs[i];
    if (reg) out.set(reg.subarray(0, 16), offset + i * 16);
  }
}

export function encodeKvmFpu(f: KvmFpu): Uint8Array {
  const out = new Uint8Array(KVM_FPU_SIZE);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  copyRegs(out, FPR_OFFSET, f.fpr, 8);
  view.setUint16(FCW_OFFSET, f.fcw, true);
  view.setUint16(FSW_OFFSET, f.fsw, true);
  view.setUint8(FTWX_OFFSET, f.ftwx);
  view.setUint16(LAST_OPCODE_OFFSET, f.lastOpcode, true);
  view.setBigUint64(LAST_IP_OFFSET, f.lastIp, true);
  view.setBigUint64(LAST_DP_OFFSET, f.lastDp, true);
  copyRegs(out, XMM_OFFSET, f.xmm, 16);
  view.setUint32(MXCSR_OFFSET, f.mxcsr, true);
  return out;
}

export function decodeKvmFpu(bytes: Uint8Array): KvmFpu {
  if (bytes.byteLength < KVM_FPU_SIZE) {
    throw new RangeError(`kvm_fpu needs ${KVM_FPU_SIZE} bytes, got ${bytes.byteLength}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const regs = (offset: number, count: number): Uint8Array[] =>
    Array.from({ length: count }, (_, i) => bytes.slice(offset + i * 16, offset + i * 16 + 16));
  return {
    fpr: regs(FPR_OFFSET, 8),
    fcw: view.getUint16(FCW_OFFSET, true),
    fsw: view.getUint16(FSW_OFFSET, true),
    ftwx: view.getUint8(FTWX_OFFSET),
    lastOpcode: view.getUint16(LAST_OPCODE_OFFSET, true),
    lastIp: view.getBigUint64(LAST_IP_OFFSET, true),
    lastDp: view.getBigUint64(LAST_DP_OFFSET, true),
    xmm: regs(XMM_OFFSET, 16),
    mxcsr: view.getUint32(MXCSR_OFFSET, true),
  };
}
