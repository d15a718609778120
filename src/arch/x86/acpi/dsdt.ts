/**
 * The Differentiated System Description Table (ACPI 6.x, 5.2.11.1): AML for what the fixed
 * tables cannot say. Here: the sleep states' SLP_TYP values (\_S0_, \_S3_, \_S4_, \_S5_),
 * a processor device per CPU matching the MADT's processor UIDs, and the ISA devices the OS
 * cannot probe (COM1, the i8042's keyboard and mouse ports, the RTC, and pvpanic when
 * present) with the resources they decode.
 *
 * There is no PCI host bridge in nodevisor, so the devices sit directly under \_SB. Both
 * i8042 ports are listed because Linux's i8042 driver takes a keyboard without a mouse in
 * the ACPI namespace to mean the AUX port is disabled.
 */
import { SLP_TYP_S3, SLP_TYP_S4, SLP_TYP_S5 } from '../../../devices/acpi/pm.js';
import {
  concat, device, eisaId, integer, ioFixed, irqNoFlags, name, pkg, resourceTemplate, scope, string, type Aml,
} from './aml.js';
import type { AcpiDescription } from './description.js';
import { MADT_MAX_CPUS } from './madt.js';
import { newTable, sealTable, SDT_HEADER_SIZE } from './sdt.js';

/** Revision 2: AML integers are 64 bits wide. */
export const DSDT_REVISION = 2;

// The PC's fixed ISA devices, at the ports and IRQs src/machine/devices.ts gives them.
export const COM1_IO = 0x3f8;
export const COM1_IO_LEN = 8;
export const COM1_IRQ = 4;
export const I8042_DATA_IO = 0x60;
export const I8042_COMMAND_IO = 0x64;
export const I8042_KBD_IRQ = 1;
export const I8042_AUX_IRQ = 12;
export const RTC_IO = 0x70;
export const RTC_IO_LEN = 2;
export const RTC_IRQ = 8;
/** pvpanic's _STA: present, enabled and functioning, but not shown in a UI. */
export const PVPANIC_STA = 0x0b;

/** The ACPI 6.x \_Sx_ package: SLP_TYPa, SLP_TYPb, two reserved. There is no PM1b block. */
function sleepPackage(slpTyp: number): Aml {
  return pkg([integer(slpTyp), integer(slpTyp), integer(0), integer(0)]);
}

/** Processor devices C000, C001...: the _UID is the MADT's ACPI processor UID. */
function processors(cpus: number): Aml[] {
  return Array.from({ length: cpus }, (_, uid) =>
    device(`C${uid.toString(16).toUpperCase().padStart(3, '0')}`, [
      name('_HID', string('ACPI0007')),
      name('_UID', integer(uid)),
    ]));
}

/** The AML body (the DSDT without its header), for tests and tools. */
export function dsdtAml(desc: AcpiDescription): Aml {
  if (!Number.isInteger(desc.cpus) || desc.cpus < 1 || desc.cpus > MADT_MAX_CPUS) {
    throw new RangeError(`DSDT: ${desc.cpus} CPUs, must be 1 to ${MADT_MAX_CPUS}`);
  }
  const isa: Aml[] = [
    device('COM1', [
      name('_HID', eisaId('PNP0501')), // 16550A-compatible UART
      name('_UID', integer(1)),
      name('_CRS', resourceTemplate([ioFixed(COM1_IO, COM1_IO_LEN), irqNoFlags([COM1_IRQ])])),
    ]),
    device('KBD', [
      name('_HID', eisaId('PNP0303')), // IBM Enhanced (101/102-key) keyboard
      name('_CRS', resourceTemplate([
        ioFixed(I8042_DATA_IO, 1), ioFixed(I8042_COMMAND_IO, 1), irqNoFlags([I8042_KBD_IRQ]),
      ])),
    ]),
    device('MOU', [
      name('_HID', eisaId('PNP0F13')), // PS/2 mouse
      name('_CRS', resourceTemplate([irqNoFlags([I8042_AUX_IRQ])])),
    ]),
    device('RTC', [
      name('_HID', eisaId('PNP0B00')), // AT real-time clock
      name('_CRS', resourceTemplate([ioFixed(RTC_IO, RTC_IO_LEN), irqNoFlags([RTC_IRQ])])),
    ]),
  ];
  if (desc.pvpanicPort !== undefined) {
    isa.push(device('PVPN', [
      name('_HID', string('QEMU0001')),
      name('_STA', integer(PVPANIC_STA)),
      name('_CRS', resourceTemplate([ioFixed(desc.pvpanicPort, 1)])),
    ]));
  }
  return concat([
    // _S0_ is only read on wake-up (its SLP_TYP is written without SLP_EN).
    name('_S0_', sleepPackage(0)),
    name('_S3_', sleepPackage(SLP_TYP_S3)),
    name('_S4_', sleepPackage(SLP_TYP_S4)),
    name('_S5_', sleepPackage(SLP_TYP_S5)),
    scope('\\_SB', [...processors(desc.cpus), ...isa]),
  ]);
}

export function buildDsdt(desc: AcpiDescription): Uint8Array {
  const aml = dsdtAml(desc);
  const { bytes } = newTable('DSDT', SDT_HEADER_SIZE + aml.length, DSDT_REVISION);
  bytes.set(aml, SDT_HEADER_SIZE);
  return sealTable(bytes);
}
