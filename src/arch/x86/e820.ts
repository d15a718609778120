import {
  BIOS_END, BIOS_START, EBDA_START, FOUR_GIB, HIMEM_START, LOW_RAM_MAX_NO_HOLE, MMIO_HOLE_START,
} from './layout.js';

export const E820_RAM = 1;
export const E820_RESERVED = 2;
export const E820_ACPI = 3;

export interface E820Entry {
  readonly addr: number;
  readonly size: number;
  readonly type: number;
}

/** Guest RAM split around the 32-bit MMIO hole. These become the KVM memory slots. */
export interface RamLayout {
  readonly ramSize: number;
  /** RAM below 4 GiB: [0, lowSize). */
  readonly lowSize: number;
  /** RAM from 4 GiB: [4 GiB, 4 GiB + highSize). */
  readonly highSize: number;
}

export function ramLayout(ramSize: number): RamLayout {
  const lowSize = ramSize >= LOW_RAM_MAX_NO_HOLE ? MMIO_HOLE_START : ramSize;
  return { ramSize, lowSize, highSize: ramSize - lowSize };
}

/**
 * The e820 map handed to the guest. It describes exactly the memory slots: the low slot
 * minus the EBDA and BIOS areas (which stay backed but reserved), and the high slot.
 */
export function e820Map(layout: RamLayout): E820Entry[] {
  const map: E820Entry[] = [
    { addr: 0, size: EBDA_START, type: E820_RAM },
    { addr: EBDA_START, size: 0xa0000 - EBDA_START, type: E820_RESERVED },
    { addr: BIOS_START, size: BIOS_END - BIOS_START, type: E820_RESERVED },
  ];
  if (layout.lowSize > HIMEM_START) map.push({ addr: HIMEM_START, size: layout.lowSize - HIMEM_START, type: E820_RAM });
  if (layout.highSize > 0) map.push({ addr: FOUR_GIB, size: layout.highSize, type: E820_RAM });
  return map;
}
