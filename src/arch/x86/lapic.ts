/**
 * struct kvm_lapic_state (KVM_GET_LAPIC / KVM_SET_LAPIC): the local APIC's 4 KiB register
 * page truncated to 1 KiB, registers at their MMIO offsets, little-endian.
 */
export const KVM_APIC_REG_SIZE = 1024;

export const APIC_ID = 0x20;
export const APIC_LVT0 = 0x350;
export const APIC_LVT1 = 0x360;

export const APIC_MODE_MASK = 0x700;
export const APIC_MODE_FIXED = 0x000;
export const APIC_MODE_NMI = 0x400;
export const APIC_MODE_EXTINT = 0x700;

function view(state: Uint8Array): DataView {
  if (state.byteLength < KVM_APIC_REG_SIZE) {
    throw new RangeError(`kvm_lapic_state needs ${KVM_APIC_REG_SIZE} bytes, got ${state.byteLength}`);
  }
  return new DataView(state.buffer, state.byteOffset, state.byteLength);
}

export function getApicReg(state: Uint8Array, offset: number): number {
  return view(state).getUint32(offset, true);
}

/** Returns a copy of `state` with one register replaced. */
export function withApicReg(state: Uint8Array, offset: number, value: number): Uint8Array {
  const copy = state.slice();
  view(copy).setUint32(offset, value >>> 0, true);
  return copy;
}

/** xAPIC ID: bits 31:24 of the ID register. */
export function getApicId(state: Uint8Array): number {
  return getApicReg(state, APIC_ID) >>> 24;
}

function setDeliveryMode(lvt: number, mode: number): number {
  return ((lvt & ~APIC_MODE_MASK) | mode) >>> 0;
}

/**
 * Virtual-wire mode as firmware leaves it (Firecracker's set_lint): LINT0 receives the
 * 8259 PIC's interrupts (ExtINT), LINT1 the NMI line, so a guest that never programs its
 * local APIC still gets the legacy timer and NMIs. Other LVT bits (mask, vector) are kept.
 */
export function setLapicLint(state: Uint8Array): Uint8Array {
  const lint0 = setDeliveryMode(getApicReg(state, APIC_LVT0), APIC_MODE_EXTINT);
  const lint1 = setDeliveryMode(getApicReg(state, APIC_LVT1), APIC_MODE_NMI);
  return withApicReg(withApicReg(state, APIC_LVT0, lint0), APIC_LVT1, lint1);
}
