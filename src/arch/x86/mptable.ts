import { NodevisorError } from '../../errors.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import { IOAPIC_ADDR, LAPIC_ADDR, MPTABLE_START } from './layout.js';

/**
 * Intel MultiProcessor Specification 1.4 tables (struct names and fields as Linux's
 * asm/mpspec_def.h), so a guest without ACPI finds every CPU, the IOAPIC and the ISA IRQ wiring.
 */
export const MPF_SIZE = 16; //    struct mpf_intel
export const MPC_SIZE = 44; //    struct mpc_table header
export const MPC_CPU_SIZE = 20;
export const MPC_ENTRY_SIZE = 8; // bus, ioapic, intsrc, lintsrc

export const MP_PROCESSOR = 0;
export const MP_BUS = 1;
export const MP_IOAPIC = 2;
export const MP_INTSRC = 3;
export const MP_LINTSRC = 4;
export const CPU_ENABLED = 1;
export const CPU_BOOTPROCESSOR = 2;
export const MPC_APIC_USABLE = 1;
export const MP_INT = 0;
export const MP_NMI = 1;
export const MP_EXTINT = 3;
/** Polarity and trigger "conforming to the bus" (irqflag 0). */
export const MP_IRQ_CONFORMING = 0;

const MP_SPEC_REV = 4; // MP spec 1.4
const APIC_VERSION = 0x14; // an integrated local APIC, as KVM's
const IOAPIC_VERSION = 0x11; // KVM's IOAPIC reports version 0x11
const CPU_SIGNATURE = 0x600; // family 6, model 0, stepping 0
const CPU_FEATURES = 0x201; // FPU | APIC
const ISA_BUS_ID = 0;
const ISA_IRQS = 16;
/** The PIT (IRQ0) reaches IOAPIC pin 2 on PCs; pin 0 is the 8259's ExtINT. */
const IRQ0_PIN = 2;
const ALL_LAPICS = 0xff;
/** APIC IDs are 8 bits, 0xff is broadcast, and the IOAPIC takes the ID after the CPUs. */
export const MPTABLE_MAX_CPUS = 254;

function checksum(bytes: Uint8Array): number {
  let sum = 0;
  for (const b of bytes) sum = (sum + b) & 0xff;
  return (0x100 - sum) & 0xff;
}

function ascii(v: DataView, offset: number, text: string): void {
  for (let i = 0; i < text.length; i++) v.setUint8(offset + i, text.charCodeAt(i));
}

/** Builds the floating pointer and configuration table in a buffer placed at `addr`. */
export function buildMpTable(cpus: number, addr = MPTABLE_START): Uint8Array {
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > MPTABLE_MAX_CPUS) {
    throw new NodevisorError('ERR_BAD_OPTION', `MP table: ${cpus} CPUs, must be 1 to ${MPTABLE_MAX_CPUS}`);
  }
  // Skip ISA IRQ 2: it is the 8259 cascade, and pin 2 already carries IRQ0.
  const irqs = Array.from({ length: ISA_IRQS }, (_, i) => i).filter((i) => i !== 2);
  const entries = cpus + 1 + 1 + irqs.length + 2;
  const tableLength = MPC_SIZE + cpus * MPC_CPU_SIZE + (entries - cpus) * MPC_ENTRY_SIZE;
  const buf = new Uint8Array(MPF_SIZE + tableLength);
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);

  // struct mpf_intel
  ascii(v, 0, '_MP_');
  v.setUint32(4, addr + MPF_SIZE, true); // physptr
  v.setUint8(8, 1); //                      length in 16-byte units
  v.setUint8(9, MP_SPEC_REV);
  // feature1 = 0: a configuration table is present; feature2 = 0: virtual wire mode, no IMCR.

  // struct mpc_table
  const t = MPF_SIZE;
  ascii(v, t, 'PCMP');
  v.setUint16(t + 4, tableLength, true);
  v.setUint8(t + 6, MP_SPEC_REV);
  ascii(v, t + 8, 'NODEVSR ');
  ascii(v, t + 16, 'NODEVISOR   ');
  v.setUint16(t + 34, entries, true); //    oemcount
  v.setUint32(t + 36, LAPIC_ADDR, true);

  let o = t + MPC_SIZE;
  for (let id = 0; id < cpus; id++) { // struct mpc_cpu
    v.setUint8(o, MP_PROCESSOR);
    v.setUint8(o + 1, id);
    v.setUint8(o + 2, APIC_VERSION);
    v.setUint8(o + 3, CPU_ENABLED | (id === 0 ? CPU_BOOTPROCESSOR : 0));
    v.setUint32(o + 4, CPU_SIGNATURE, true);
    v.setUint32(o + 8, CPU_FEATURES, true);
    o += MPC_CPU_SIZE;
  }
  v.setUint8(o, MP_BUS); //                 struct mpc_bus
  v.setUint8(o + 1, ISA_BUS_ID);
  ascii(v, o + 2, 'ISA   ');
  o += MPC_ENTRY_SIZE;
  const ioapicId = cpus;
  v.setUint8(o, MP_IOAPIC); //              struct mpc_ioapic
  v.setUint8(o + 1, ioapicId);
  v.setUint8(o + 2, IOAPIC_VERSION);
  v.setUint8(o + 3, MPC_APIC_USABLE);
  v.setUint32(o + 4, IOAPIC_ADDR, true);
  o += MPC_ENTRY_SIZE;
  for (const irq of irqs) { //              struct mpc_intsrc
    v.setUint8(o, MP_INTSRC);
    v.setUint8(o + 1, MP_INT);
    v.setUint16(o + 2, MP_IRQ_CONFORMING, true);
    v.setUint8(o + 4, ISA_BUS_ID);
    v.setUint8(o + 5, irq);
    v.setUint8(o + 6, ioapicId);
    v.setUint8(o + 7, irq === 0 ? IRQ0_PIN : irq);
    o += MPC_ENTRY_SIZE;
  }
  for (const [type, lint] of [[MP_EXTINT, 0], [MP_NMI, 1]] as const) { // struct mpc_lintsrc
    v.setUint8(o, MP_LINTSRC);
    v.setUint8(o + 1, type);
    v.setUint16(o + 2, MP_IRQ_CONFORMING, true);
    v.setUint8(o + 4, ISA_BUS_ID);
    v.setUint8(o + 5, 0);
    v.setUint8(o + 6, ALL_LAPICS);
    v.setUint8(o + 7, lint);
    o += MPC_ENTRY_SIZE;
  }

  v.setUint8(t + 7, checksum(buf.subarray(t, t + tableLength)));
  v.setUint8(10, checksum(buf.subarray(0, MPF_SIZE)));
  return buf;
}

/** Writes the MP floating pointer and configuration table at `addr`; returns the bytes used. */
export function writeMpTable(mem: GuestMemory, cpus: number, addr = MPTABLE_START): number {
  const table = buildMpTable(cpus, addr);
  mem.write(addr, table);
  return table.length;
}
