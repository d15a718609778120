/**
 * What a device is to the rest of the VMM. A device only knows its own registers: the bus
 * hands it an offset from the start of its range and the access bytes (little endian,
 * length 1, 2, 4 or 8). It never sees its base address or the machine.
 */
export interface BusDevice {
  /** Fill `data` with the value read at `offset`. */
  read(offset: number, data: Uint8Array): void;
  /** Take the value in `data` written at `offset`. */
  write(offset: number, data: Uint8Array): void;
  /** Return to the power-on state (a machine reset). */
  reset?(): void;
}

/** An interrupt line into the in-kernel irqchip (ISA IRQ / GSI). Level semantics. */
export interface IrqLine {
  set(level: boolean): void;
}

/** Where a device's output bytes go (a UART's transmitter). */
export interface ByteSink {
  write(bytes: Uint8Array): void;
}

/** Requests a device makes of the machine, raised from whichever thread ran the access. */
export interface MachineRequests {
  /** The guest pulled the reset line (i8042 0xFE, port 0xCF9, ...). */
  reset(reason: 'guest-reset'): void;
  /** The guest asked to power off (ACPI S5 and similar). */
  shutdown(reason: 'guest-shutdown'): void;
}
