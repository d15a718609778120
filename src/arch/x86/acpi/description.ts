/** What the ACPI tables describe: the machine as nodevisor builds it. */
export interface AcpiDescription {
  /** vCPUs, 1 to 254: local APIC IDs and ACPI processor UIDs 0..cpus-1; the IOAPIC takes ID `cpus`. */
  readonly cpus: number;
  /** The I/O port of the pvpanic device (QEMU's default is 0x505), when the machine has one. */
  readonly pvpanicPort?: number;
}
