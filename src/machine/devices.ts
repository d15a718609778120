/**
 * The PC's legacy devices, built the same way in every thread of a machine. The main thread
 * and each vCPU worker call `buildDevices` with the same plan: the shared arena hands out
 * the same regions in the same order, so they all drive the same device state.
 */
import { Bus } from '../bus/bus.js';
import type { ByteSink, IrqLine, MachineRequests } from '../devices/device.js';
import { CmosRtc } from '../devices/legacy/cmos-rtc.js';
import { I8042 } from '../devices/legacy/i8042.js';
import {
  Dma8237, DmaPageRegisters, DMA1_PORT, DMA2_PORT, DMA_PAGE_PORT, PciConfigStub, PCI_CONFIG_PORT, PORT_A, POST_PORT,
  PostPort, SystemControlPortA,
} from '../devices/legacy/legacy-ports.js';
import { Serial8250 } from '../devices/legacy/serial-8250.js';
import { DeviceLock, SharedArena, SharedByteRing } from '../devices/shared-state.js';

/** Serializable: crosses to workers in workerData. */
export interface DevicePlan {
  readonly sab: SharedArrayBuffer;
  readonly lowRamBytes: number;
  readonly highRamBytes: number;
}

/** What a thread provides to its copy of the devices. */
export interface DeviceEnv {
  irq(line: number): IrqLine;
  readonly requests: MachineRequests;
  /** Wraps the shared transmit ring into this thread's sink for COM1. */
  serialSink(ring: SharedByteRing): ByteSink;
}

export interface Devices {
  readonly pio: Bus;
  readonly mmio: Bus;
  readonly lock: DeviceLock;
  readonly com1: Serial8250;
  readonly com1Tx: SharedByteRing;
  readonly i8042: I8042;
  readonly rtc: CmosRtc;
  /** Power-on state for every device (caller holds the lock). */
  reset(): void;
}

export const COM1_PORT = 0x3f8;
export const COM1_IRQ = 4;
export const I8042_PORT = 0x60;
export const I8042_KBD_IRQ = 1;
export const I8042_AUX_IRQ = 12;
export const RTC_PORT = 0x70;
export const RTC_IRQ = 8;
const COM1_TX_RING = 64 * 1024;

export function createDevicePlan(lowRamBytes: number, highRamBytes: number): DevicePlan {
  return { sab: new SharedArrayBuffer(256 * 1024), lowRamBytes, highRamBytes };
}

export function buildDevices(plan: DevicePlan, env: DeviceEnv): Devices {
  const arena = new SharedArena(plan.sab);
  const lock = new DeviceLock(arena.alloc(8));
  const com1Tx = new SharedByteRing(arena.alloc(SharedByteRing.bytesFor(COM1_TX_RING)));
  const com1 = new Serial8250(arena.alloc(Serial8250.STATE_BYTES), env.irq(COM1_IRQ), env.serialSink(com1Tx));
  const i8042 = new I8042(arena.alloc(I8042.STATE_BYTES), env.irq(I8042_KBD_IRQ), env.irq(I8042_AUX_IRQ), env.requests);
  const rtc = new CmosRtc(arena.alloc(CmosRtc.STATE_BYTES), env.irq(RTC_IRQ), {
    lowRamBytes: plan.lowRamBytes, highRamBytes: plan.highRamBytes,
  });

  const pio = new Bus('port I/O');
  pio.insert(com1, COM1_PORT, 8, 'serial0 (8250)');
  pio.insert(i8042, I8042_PORT, 5, 'i8042');
  pio.insert(rtc, RTC_PORT, 2, 'rtc (mc146818)');
  // The ports Linux pokes at on a PC. Port 0x61 is not here: KVM's PIT is created with
  // KVM_PIT_SPEAKER_DUMMY and answers it in the kernel with PIT channel 2's real output.
  pio.insert(new Dma8237(arena.alloc(Dma8237.STATE_BYTES), { dshift: 0 }), DMA1_PORT, 0x10, 'dma1 (8237)');
  pio.insert(new PostPort(), POST_PORT, 1, 'post (0x80)');
  pio.insert(new DmaPageRegisters(arena.alloc(DmaPageRegisters.STATE_BYTES)), DMA_PAGE_PORT, 0x0f, 'dma page registers');
  pio.insert(new SystemControlPortA(arena.alloc(SystemControlPortA.STATE_BYTES), env.requests), PORT_A, 1, 'port 0x92');
  pio.insert(new Dma8237(arena.alloc(Dma8237.STATE_BYTES), { dshift: 1 }), DMA2_PORT, 0x20, 'dma2 (8237)');
  pio.insert(new PciConfigStub(arena.alloc(PciConfigStub.STATE_BYTES), env.requests), PCI_CONFIG_PORT, 8, 'pci config (no host bridge)');
  const mmio = new Bus('MMIO');

  return {
    pio, mmio, lock, com1, com1Tx, i8042, rtc,
    reset(): void {
      for (const bus of [pio, mmio]) for (const e of bus.entries()) e.device.reset?.();
    },
  };
}
