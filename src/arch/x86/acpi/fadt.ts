/**
 * The Fixed ACPI Description Table, signature "FACP" (ACPI 6.x, 5.2.9), revision 6. It tells
 * the OS where the fixed power-management hardware is (src/devices/acpi/pm.ts), which
 * interrupt is the SCI, how to reset the machine, and where the FACS and DSDT are.
 *
 * SMI_CMD is 0: there is no SMM handler to hand over from, so the hardware is always in
 * ACPI mode (SCI_EN reads 1). Every block is given twice, in the legacy 32-bit fields and
 * in the X_ Generic Address Structures, with the same address and width.
 */
import {
  GPE0_BLK, GPE0_BLK_LEN, PM1_CNT_LEN, PM1_EVT_LEN, PM1A_CNT_BLK, PM1A_EVT_BLK, PM_TMR_BLK, PM_TMR_LEN, SCI_IRQ,
} from '../../../devices/acpi/pm.js';
import { newTable, sealTable } from './sdt.js';

export const FADT_SIZE = 276;
export const FADT_REVISION = 6;
export const FADT_MINOR_REVISION = 0;

// Fields (byte offsets, ACPI 6.x table 5.9).
export const FADT_FIRMWARE_CTRL = 36;
export const FADT_DSDT = 40;
export const FADT_PREFERRED_PM_PROFILE = 45;
export const FADT_SCI_INT = 46; //          u16
export const FADT_SMI_CMD = 48;
export const FADT_ACPI_ENABLE = 52;
export const FADT_ACPI_DISABLE = 53;
export const FADT_PM1A_EVT_BLK = 56;
export const FADT_PM1B_EVT_BLK = 60;
export const FADT_PM1A_CNT_BLK = 64;
export const FADT_PM1B_CNT_BLK = 68;
export const FADT_PM2_CNT_BLK = 72;
export const FADT_PM_TMR_BLK = 76;
export const FADT_GPE0_BLK = 80;
export const FADT_GPE1_BLK = 84;
export const FADT_PM1_EVT_LEN = 88;
export const FADT_PM1_CNT_LEN = 89;
export const FADT_PM2_CNT_LEN = 90;
export const FADT_PM_TMR_LEN = 91;
export const FADT_GPE0_BLK_LEN = 92;
export const FADT_GPE1_BLK_LEN = 93;
export const FADT_P_LVL2_LAT = 96; //       u16
export const FADT_P_LVL3_LAT = 98; //       u16
export const FADT_CENTURY = 108;
export const FADT_IAPC_BOOT_ARCH = 109; //  u16
export const FADT_FLAGS = 112; //           u32
export const FADT_RESET_REG = 116; //       GAS
export const FADT_RESET_VALUE = 128;
export const FADT_MINOR_VERSION = 131;
export const FADT_X_FIRMWARE_CTRL = 132; // u64
export const FADT_X_DSDT = 140; //          u64
export const FADT_X_PM1A_EVT_BLK = 148; //  GAS
export const FADT_X_PM1B_EVT_BLK = 160;
export const FADT_X_PM1A_CNT_BLK = 172;
export const FADT_X_PM1B_CNT_BLK = 184;
export const FADT_X_PM2_CNT_BLK = 196;
export const FADT_X_PM_TMR_BLK = 208;
export const FADT_X_GPE0_BLK = 220;
export const FADT_X_GPE1_BLK = 232;
export const FADT_SLEEP_CONTROL_REG = 244;
export const FADT_SLEEP_STATUS_REG = 256;
export const FADT_HYPERVISOR_VENDOR_IDENTITY = 268;

// IAPC_BOOT_ARCH bits (5.2.9.3).
export const IAPC_LEGACY_DEVICES = 1 << 0; // ISA devices the OS cannot enumerate (COM1, RTC...)
export const IAPC_8042 = 1 << 1;
export const IAPC_VGA_NOT_PRESENT = 1 << 2;

// Flags bits (table 5.10).
export const FADT_WBINVD = 1 << 0;
export const FADT_PROC_C1 = 1 << 2;
export const FADT_PWR_BUTTON = 1 << 4; //   set: no fixed-feature power button
export const FADT_SLP_BUTTON = 1 << 5; //   set: no fixed-feature sleep button
export const FADT_FIX_RTC = 1 << 6; //      set: no RTC wake status in the fixed registers
export const FADT_TMR_VAL_EXT = 1 << 8; //  set: 32-bit PM timer
export const FADT_RESET_REG_SUP = 1 << 10;
export const FADT_HW_REDUCED_ACPI = 1 << 20;

// Generic Address Structure (5.2.3.2).
export const GAS_SIZE = 12;
export const ACPI_ADR_SPACE_SYSTEM_IO = 1;
export const GAS_ACCESS_UNDEFINED = 0; // the OS uses the register's natural width
export const GAS_ACCESS_BYTE = 1;

/** The PIIX reset control register, handled by PciConfigStub; 0x06 = SYS_RST | RST_CPU. */
export const RESET_REG_PORT = 0xcf9;
export const RESET_VALUE = 0x06;
/** CMOS index of the century byte (src/devices/legacy/cmos-rtc.ts RTC_CENTURY). */
const CMOS_CENTURY_INDEX = 0x32;
/** Latencies above 100 and 1000 us say C2 and C3 are not supported. */
const NO_C2_LATENCY = 101;
const NO_C3_LATENCY = 1001;

function putGas(v: DataView, offset: number, bitWidth: number, access: number, port: number): void {
  v.setUint8(offset, ACPI_ADR_SPACE_SYSTEM_IO);
  v.setUint8(offset + 1, bitWidth);
  v.setUint8(offset + 2, 0); // bit offset
  v.setUint8(offset + 3, access);
  v.setBigUint64(offset + 4, BigInt(port), true);
}

export function buildFadt(addrs: { facs: number; dsdt: number }): Uint8Array {
  const { bytes, view: v } = newTable('FACP', FADT_SIZE, FADT_REVISION);
  v.setUint32(FADT_FIRMWARE_CTRL, addrs.facs, true);
  v.setUint32(FADT_DSDT, addrs.dsdt, true);
  v.setUint16(FADT_SCI_INT, SCI_IRQ, true);
  // SMI_CMD, ACPI_ENABLE and ACPI_DISABLE stay 0: always in ACPI mode.

  const blocks: Array<[legacy: number, len: number, x: number, port: number, bytes: number]> = [
    [FADT_PM1A_EVT_BLK, FADT_PM1_EVT_LEN, FADT_X_PM1A_EVT_BLK, PM1A_EVT_BLK, PM1_EVT_LEN],
    [FADT_PM1A_CNT_BLK, FADT_PM1_CNT_LEN, FADT_X_PM1A_CNT_BLK, PM1A_CNT_BLK, PM1_CNT_LEN],
    [FADT_PM_TMR_BLK, FADT_PM_TMR_LEN, FADT_X_PM_TMR_BLK, PM_TMR_BLK, PM_TMR_LEN],
    [FADT_GPE0_BLK, FADT_GPE0_BLK_LEN, FADT_X_GPE0_BLK, GPE0_BLK, GPE0_BLK_LEN],
  ];
  for (const [legacy, len, x, port, n] of blocks) {
    v.setUint32(legacy, port, true);
    v.setUint8(len, n);
    putGas(v, x, 8 * n, GAS_ACCESS_UNDEFINED, port);
  }

  v.setUint16(FADT_P_LVL2_LAT, NO_C2_LATENCY, true);
  v.setUint16(FADT_P_LVL3_LAT, NO_C3_LATENCY, true);
  v.setUint8(FADT_CENTURY, CMOS_CENTURY_INDEX);
  // No VGA: the machine has only serial consoles.
  v.setUint16(FADT_IAPC_BOOT_ARCH, IAPC_LEGACY_DEVICES | IAPC_8042 | IAPC_VGA_NOT_PRESENT, true);
  // A fixed power button (PWR_BUTTON clear), no sleep button, no RTC wake status.
  v.setUint32(FADT_FLAGS, FADT_WBINVD | FADT_PROC_C1 | FADT_SLP_BUTTON | FADT_FIX_RTC | FADT_RESET_REG_SUP, true);
  putGas(v, FADT_RESET_REG, 8, GAS_ACCESS_BYTE, RESET_REG_PORT);
  v.setUint8(FADT_RESET_VALUE, RESET_VALUE);
  v.setUint8(FADT_MINOR_VERSION, FADT_MINOR_REVISION);
  v.setBigUint64(FADT_X_FIRMWARE_CTRL, BigInt(addrs.facs), true);
  v.setBigUint64(FADT_X_DSDT, BigInt(addrs.dsdt), true);
  return sealTable(bytes);
}
