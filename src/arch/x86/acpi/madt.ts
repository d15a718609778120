/**
 * The Multiple APIC Description Table, signature "APIC" (ACPI 6.x, 5.2.12): the same machine
 * the MP table describes (src/arch/x86/mptable.ts) and KVM's routing implements
 * (src/arch/x86/irq-routing.ts). One local APIC per CPU with APIC ID = ACPI processor UID =
 * CPU index; one IOAPIC with ID = number of CPUs and GSI base 0; ISA IRQs map to the GSI of
 * the same number except the timer (IRQ0 -> GSI 2) and the SCI, which is level, active high.
 */
import { SCI_IRQ } from '../../../devices/acpi/pm.js';
import { IOAPIC_ADDR, LAPIC_ADDR } from '../layout.js';
import { newTable, sealTable } from './sdt.js';

export const MADT_REVISION = 4; // ACPI 6.0 errata A to 6.2: before the Online Capable flag
/** APIC IDs are 8 bits, 0xff is broadcast, and the IOAPIC takes the ID after the CPUs. */
export const MADT_MAX_CPUS = 254;

// Fields (byte offsets).
export const MADT_LOCAL_APIC_ADDRESS = 36;
export const MADT_FLAGS = 40;
export const MADT_ENTRIES = 44;
export const MADT_PCAT_COMPAT = 1 << 0; // the 8259 pair is present too

// Interrupt controller structure types and lengths.
export const MADT_LOCAL_APIC = 0;
export const MADT_LOCAL_APIC_SIZE = 8;
export const MADT_IO_APIC = 1;
export const MADT_IO_APIC_SIZE = 12;
export const MADT_INTERRUPT_OVERRIDE = 2;
export const MADT_INTERRUPT_OVERRIDE_SIZE = 10;
export const MADT_LOCAL_APIC_NMI = 4;
export const MADT_LOCAL_APIC_NMI_SIZE = 6;

export const LOCAL_APIC_ENABLED = 1 << 0;
/** MPS INTI flags (table 5.26): polarity in bits 1:0, trigger mode in bits 3:2. */
export const MPS_INTI_CONFORMS = 0;
export const MPS_INTI_ACTIVE_HIGH = 1;
export const MPS_INTI_LEVEL = 3 << 2;
const ISA_BUS = 0;
const ALL_PROCESSORS = 0xff;
const LINT1 = 1;

/** The ISA IRQs whose GSI or flags differ from the ISA defaults (same number, edge, high). */
export const ISA_OVERRIDES: ReadonlyArray<{ readonly irq: number; readonly gsi: number; readonly flags: number }> = [
  { irq: 0, gsi: 2, flags: MPS_INTI_CONFORMS },
  { irq: SCI_IRQ, gsi: SCI_IRQ, flags: MPS_INTI_LEVEL | MPS_INTI_ACTIVE_HIGH },
];

export function buildMadt(cpus: number): Uint8Array {
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > MADT_MAX_CPUS) {
    throw new RangeError(`MADT: ${cpus} CPUs, must be 1 to ${MADT_MAX_CPUS}`);
  }
  const length = MADT_ENTRIES + cpus * MADT_LOCAL_APIC_SIZE + MADT_IO_APIC_SIZE +
    ISA_OVERRIDES.length * MADT_INTERRUPT_OVERRIDE_SIZE + MADT_LOCAL_APIC_NMI_SIZE;
  const { bytes, view: v } = newTable('APIC', length, MADT_REVISION);
  v.setUint32(MADT_LOCAL_APIC_ADDRESS, LAPIC_ADDR, true);
  v.setUint32(MADT_FLAGS, MADT_PCAT_COMPAT, true);

  let o = MADT_ENTRIES;
  for (let id = 0; id < cpus; id++) {
    v.setUint8(o, MADT_LOCAL_APIC);
    v.setUint8(o + 1, MADT_LOCAL_APIC_SIZE);
    v.setUint8(o + 2, id); //                   ACPI processor UID (the DSDT's processor _UID)
    v.setUint8(o + 3, id); //                   APIC ID
    v.setUint32(o + 4, LOCAL_APIC_ENABLED, true);
    o += MADT_LOCAL_APIC_SIZE;
  }
  v.setUint8(o, MADT_IO_APIC);
  v.setUint8(o + 1, MADT_IO_APIC_SIZE);
  v.setUint8(o + 2, cpus); //                   IOAPIC ID
  v.setUint32(o + 4, IOAPIC_ADDR, true);
  v.setUint32(o + 8, 0, true); //                global system interrupt base
  o += MADT_IO_APIC_SIZE;
  for (const { irq, gsi, flags } of ISA_OVERRIDES) {
    v.setUint8(o, MADT_INTERRUPT_OVERRIDE);
    v.setUint8(o + 1, MADT_INTERRUPT_OVERRIDE_SIZE);
    v.setUint8(o + 2, ISA_BUS);
    v.setUint8(o + 3, irq);
    v.setUint32(o + 4, gsi, true);
    v.setUint16(o + 8, flags, true);
    o += MADT_INTERRUPT_OVERRIDE_SIZE;
  }
  // NMIs reach every CPU's LINT1, as the MP table's local interrupt entry says.
  v.setUint8(o, MADT_LOCAL_APIC_NMI);
  v.setUint8(o + 1, MADT_LOCAL_APIC_NMI_SIZE);
  v.setUint8(o + 2, ALL_PROCESSORS);
  v.setUint16(o + 3, MPS_INTI_CONFORMS, true);
  v.setUint8(o + 5, LINT1);
  return sealTable(bytes);
}
