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
import { Ib700, IB700_BASE_PORT, IB700_PORT_COUNT } from '../devices/legacy/ib700.js';
import { Pvpanic, PVPANIC_PORT_COUNT } from '../devices/legacy/pvpanic.js';
import { HypervCrashMsrs } from '../arch/x86/hyperv-crash.js';
import { DeviceLock, SharedArena, SharedByteRing } from '../devices/shared-state.js';
import type { GuestPanicInformation } from '../runstate/events.js';
import { AcpiPm, GPE0_BLK, GPE0_BLK_LEN, PM_IO_BASE, PM_IO_LENGTH, SCI_IRQ, type SleepState } from '../devices/acpi/pm.js';
import type { DeviceConfig } from './config.js';

/** Serializable: crosses to workers in workerData. */
export interface DevicePlan {
  readonly sab: SharedArrayBuffer;
  readonly lowRamBytes: number;
  readonly highRamBytes: number;
  /** `-device` additions, in command-line order. */
  readonly extra: readonly DeviceConfig[];
  /** `-cpu host,hv-crash`: the Hyper-V crash MSRs. */
  readonly hvCrash: boolean;
}

/**
 * What the guest did that the machine must act on, raised from whichever thread ran the
 * access. The vCPU thread that raised a panic or a sleep request stops after that exit and
 * waits for the machine to decide; the others are notices.
 */
export interface GuestEvents {
  panicked(info?: GuestPanicInformation): void;
  crashLoaded(): void;
  /** The guest wrote SLP_TYP|SLP_EN to PM1a_CNT. */
  sleep(state: SleepState): void;
}

/** What a thread provides to its copy of the devices. */
export interface DeviceEnv {
  irq(line: number): IrqLine;
  readonly requests: MachineRequests;
  /** Wraps the shared transmit ring into this thread's sink for COM1. */
  serialSink(ring: SharedByteRing): ByteSink;
  readonly guest: GuestEvents;
}

export interface Devices {
  readonly pio: Bus;
  readonly mmio: Bus;
  readonly lock: DeviceLock;
  readonly com1: Serial8250;
  readonly com1Tx: SharedByteRing;
  readonly i8042: I8042;
  readonly rtc: CmosRtc;
  readonly ib700: Ib700 | null;
  /** ACPI power management: PM1 event/control, PM timer, GPE0, the SCI. */
  readonly pm: AcpiPm;
  /** The Hyper-V crash MSRs (user-space MSRs behind the MSR filter), with hv-crash. */
  readonly hvCrash: HypervCrashMsrs | null;
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

export function createDevicePlan(
  lowRamBytes: number, highRamBytes: number, extra: readonly DeviceConfig[] = [], hvCrash = false,
): DevicePlan {
  return { sab: new SharedArrayBuffer(256 * 1024), lowRamBytes, highRamBytes, extra, hvCrash };
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
  const pm = new AcpiPm(arena.alloc(AcpiPm.STATE_BYTES), { sci: env.irq(SCI_IRQ), sleep: (state) => env.guest.sleep(state) });
  pio.insert(pm, PM_IO_BASE, PM_IO_LENGTH, 'acpi pm (piix4)');
  pio.insert(pm.gpe0, GPE0_BLK, GPE0_BLK_LEN, 'acpi gpe0');
  let ib700: Ib700 | null = null;
  for (const d of plan.extra) {
    if (d.driver === 'pvpanic') {
      pio.insert(new Pvpanic(env.guest), d.ioport, PVPANIC_PORT_COUNT, 'pvpanic');
    } else {
      ib700 = new Ib700(arena.alloc(Ib700.STATE_BYTES), { changed: () => undefined });
      pio.insert(ib700, IB700_BASE_PORT, IB700_PORT_COUNT, 'ib700');
    }
  }
  const hvCrash = plan.hvCrash
    ? new HypervCrashMsrs(arena.alloc(HypervCrashMsrs.STATE_BYTES), { crashed: (info) => env.guest.panicked(info) })
    : null;
  const mmio = new Bus('MMIO');

  return {
    pio, mmio, lock, com1, com1Tx, i8042, rtc, ib700, pm, hvCrash,
    reset(): void {
      for (const bus of [pio, mmio]) for (const e of bus.entries()) e.device.reset?.();
      hvCrash?.reset();
    },
  };
}
