/**
 * The small PC ports Linux pokes at during boot, answered as QEMU 7.2's `-M pc` answers them
 * (behaviour taken from QEMU's source: hw/i386/pc.c ioport80, hw/audio/pcspk.c, hw/isa/port92
 * in hw/i386/pc.c, hw/dma/i8257.c, hw/pci/pci_host.c, the PIIX3 reset control register).
 *
 * Where each goes (see PC_LEGACY_PORTS):
 *   0x00-0x0f  Dma8237 (dshift 0)      0x61  SystemControlPortB   0x80  PostPort
 *   0x81-0x8f  DmaPageRegisters        0x92  SystemControlPortA   0xc0-0xdf  Dma8237 (dshift 1)
 *   0xcf8-0xcff PciConfigStub (with the reset control register at 0xcf9)
 *
 * Unlike QEMU's PC there is no PCI host bridge: config data reads are all ones, so Linux
 * finds no PCI bus.
 */
import type { BusDevice, MachineRequests } from '../device.js';
import type { SharedRegion } from '../shared-state.js';

export const POST_PORT = 0x80;
export const PORT_B = 0x61;
export const PORT_A = 0x92;
export const DMA1_PORT = 0x00;
export const DMA_PAGE_PORT = 0x81;
export const DMA2_PORT = 0xc0;
export const PCI_CONFIG_PORT = 0xcf8;

/** Where the devices of this file sit on a PC's port bus. */
export const PC_LEGACY_PORTS: ReadonlyArray<{ readonly name: string; readonly base: number; readonly length: number }> = [
  { name: 'dma1 (8237)', base: DMA1_PORT, length: 0x10 },
  { name: 'port 0x61 (system control B)', base: PORT_B, length: 1 },
  { name: 'post (0x80)', base: POST_PORT, length: 1 },
  { name: 'dma page registers', base: DMA_PAGE_PORT, length: 0x0f },
  { name: 'port 0x92 (system control A)', base: PORT_A, length: 1 },
  { name: 'dma2 (8237)', base: DMA2_PORT, length: 0x20 },
  { name: 'pci config (no host bridge)', base: PCI_CONFIG_PORT, length: 8 },
];

const S_INIT = 0; // i32: 0 until the first object over the region set the power-on state
const S_BAD = 4; // u32: bad guest accesses

function countBad(region: SharedRegion): void {
  region.view.setUint32(S_BAD, (region.view.getUint32(S_BAD, true) + 1) >>> 0, true);
}

/** Port 0x80, the POST code / I/O delay port: writes vanish, reads are all ones. */
export class PostPort implements BusDevice {
  static readonly STATE_BYTES = 0;
  read(_offset: number, data: Uint8Array): void {
    data.fill(0xff);
  }
  write(_offset: number, _data: Uint8Array): void {}
}

// Port 0x61 bits.
export const PORT61_TIMER2_GATE = 0x01;
export const PORT61_SPEAKER_DATA = 0x02;
export const PORT61_REFRESH_CLOCK = 0x10;
export const PORT61_TIMER2_OUT = 0x20;

/** Channel 2 of the PIT, which lives in KVM (KVM_GET_PIT2 / KVM_SET_PIT2 reach it). */
export interface PitChannel2 {
  setGate(high: boolean): void;
  output(): boolean;
}

/**
 * Port 0x61 as QEMU's pcspk answers it: PIT channel 2 gate, speaker data, a refresh bit that
 * toggles on every read (old delay loops poll it) and channel 2's output. KVM's in-kernel PIT
 * handles this port itself only when created with KVM_PIT_SPEAKER_DUMMY; otherwise this model
 * serves it, through `pit` when the machine provides it. Without `pit`, channel 2's output
 * reads as the gate (the count has always run out), so Linux's PIT TSC calibration loop ends
 * at once and falls back rather than spinning forever.
 */
export class SystemControlPortB implements BusDevice {
  static readonly STATE_BYTES = 16;
  private static readonly S_GATE = 8;
  private static readonly S_DATA_ON = 9;
  private static readonly S_REFRESH = 10;

  constructor(private readonly region: SharedRegion, private readonly pit?: PitChannel2) {
    if (region.length < SystemControlPortB.STATE_BYTES) throw new RangeError('SystemControlPortB: shared region too small');
  }

  read(_offset: number, data: Uint8Array): void {
    const u8 = this.region.u8;
    const refresh = u8[SystemControlPortB.S_REFRESH]! ^ PORT61_REFRESH_CLOCK;
    u8[SystemControlPortB.S_REFRESH] = refresh;
    const gate = u8[SystemControlPortB.S_GATE]!;
    const out = this.pit ? this.pit.output() : gate === 1;
    data.fill(0);
    data[0] = gate | (u8[SystemControlPortB.S_DATA_ON]! << 1) | refresh | (out ? PORT61_TIMER2_OUT : 0);
  }

  write(_offset: number, data: Uint8Array): void {
    const u8 = this.region.u8;
    const val = data[0]!;
    u8[SystemControlPortB.S_DATA_ON] = (val >> 1) & 1;
    u8[SystemControlPortB.S_GATE] = val & PORT61_TIMER2_GATE;
    this.pit?.setGate((val & PORT61_TIMER2_GATE) !== 0);
  }

  reset(): void {
    // The PIT's reset drops channel 2's gate; the speaker data bit follows.
    this.region.u8.fill(0, SystemControlPortB.S_GATE, SystemControlPortB.STATE_BYTES);
  }
}

// Port 0x92 bits.
export const PORT92_FAST_RESET = 0x01;
export const PORT92_A20 = 0x02;

/** Port 0x92, "fast A20 and reset": a rising edge on bit 0 resets the machine. */
export class SystemControlPortA implements BusDevice {
  static readonly STATE_BYTES = 16;
  private static readonly S_OUTPORT = 8;

  constructor(private readonly region: SharedRegion, private readonly requests: MachineRequests) {
    if (region.length < SystemControlPortA.STATE_BYTES) throw new RangeError('SystemControlPortA: shared region too small');
  }

  read(_offset: number, data: Uint8Array): void {
    data.fill(0);
    data[0] = this.region.u8[SystemControlPortA.S_OUTPORT]!;
  }

  write(_offset: number, data: Uint8Array): void {
    const u8 = this.region.u8;
    const old = u8[SystemControlPortA.S_OUTPORT]!;
    const val = data[0]!;
    u8[SystemControlPortA.S_OUTPORT] = val;
    // A20 (bit 1) is not wired: KVM guests run with A20 enabled.
    if (val & PORT92_FAST_RESET && !(old & PORT92_FAST_RESET)) this.requests.reset('guest-reset');
  }

  reset(): void {
    const u8 = this.region.u8;
    u8[SystemControlPortA.S_OUTPORT] = u8[SystemControlPortA.S_OUTPORT]! & ~PORT92_FAST_RESET;
  }
}

// 8237 controller registers, as offsets from the controller's base in units of 1 << dshift.
export const DMA_REG_CMD = 0x08; // write: command; read: status
export const DMA_REG_REQ = 0x09;
export const DMA_REG_MASK = 0x0a; // single channel mask
export const DMA_REG_MODE = 0x0b;
export const DMA_REG_CLEAR_FF = 0x0c;
export const DMA_REG_MASTER_CLEAR = 0x0d;
export const DMA_REG_CLEAR_MASK = 0x0e;
export const DMA_REG_WRITE_MASK = 0x0f;

/**
 * One 8237 DMA controller: the first (8-bit, ports 0x00-0x0f, dshift 0) or the second (16-bit,
 * ports 0xc0-0xdf, dshift 1: registers on even ports, odd ports alias them). Registers latch
 * and read back as QEMU's i8257 does with no transfer ever running; no ISA device uses DMA here.
 */
export class Dma8237 implements BusDevice {
  static readonly STATE_BYTES = 32;
  private static readonly S_FLIP_FLOP = 8;
  private static readonly S_COMMAND = 9;
  private static readonly S_MASK = 10;
  private static readonly S_STATUS = 11;
  private static readonly S_MODE = 12; // 4 bytes, one per channel
  private static readonly S_BASE = 16; // 4 channels x (address, count), u16 little endian

  readonly length: number;
  private readonly dshift: number;

  constructor(private readonly region: SharedRegion, opts: { dshift: 0 | 1 }) {
    if (region.length < Dma8237.STATE_BYTES) throw new RangeError('Dma8237: shared region too small');
    this.dshift = opts.dshift;
    this.length = 16 << opts.dshift;
    if (Atomics.compareExchange(region.i32, S_INIT >> 2, 0, 1) === 0) this.reset();
  }

  get badAccesses(): number {
    return this.region.view.getUint32(S_BAD, true);
  }

  // QEMU implements byte accesses only: a wider one walks on to the next port.
  read(offset: number, data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) {
      const off = offset + i;
      if (off >= this.length) {
        data.fill(0xff, i);
        countBad(this.region);
        return;
      }
      const reg = (off >> this.dshift) & 0x0f;
      data[i] = reg < 8 ? this.readChannel(reg) : this.readControl(reg);
    }
  }

  write(offset: number, data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) {
      const off = offset + i;
      if (off >= this.length) {
        countBad(this.region);
        return;
      }
      const reg = (off >> this.dshift) & 0x0f;
      if (reg < 8) this.writeChannel(reg, data[i]!);
      else this.writeControl(reg, data[i]!);
    }
  }

  /** Master clear. */
  reset(): void {
    const u8 = this.region.u8;
    u8[Dma8237.S_FLIP_FLOP] = 0;
    u8[Dma8237.S_MASK] = 0xff;
    u8[Dma8237.S_STATUS] = 0;
    u8[Dma8237.S_COMMAND] = 0;
  }

  /** Address (even) or count (odd) of a channel, a byte at a time as the flip-flop says. */
  private readChannel(reg: number): number {
    const u8 = this.region.u8;
    const ff = u8[Dma8237.S_FLIP_FLOP]!;
    u8[Dma8237.S_FLIP_FLOP] = ff ^ 1;
    return u8[Dma8237.S_BASE + reg * 2 + ff]!;
  }

  private writeChannel(reg: number, val: number): void {
    const u8 = this.region.u8;
    const ff = u8[Dma8237.S_FLIP_FLOP]!;
    u8[Dma8237.S_FLIP_FLOP] = ff ^ 1;
    u8[Dma8237.S_BASE + reg * 2 + ff] = val;
  }

  private readControl(reg: number): number {
    const u8 = this.region.u8;
    switch (reg) {
      case DMA_REG_CMD: {
        const status = u8[Dma8237.S_STATUS]!;
        u8[Dma8237.S_STATUS] = status & 0xf0; // reading clears the terminal-count bits
        return status;
      }
      case DMA_REG_REQ:
        return u8[Dma8237.S_MASK]!; // QEMU answers the mask here
      default:
        return 0;
    }
  }

  private writeControl(reg: number, val: number): void {
    const u8 = this.region.u8;
    const chan = val & 3;
    switch (reg) {
      case DMA_REG_CMD:
        u8[Dma8237.S_COMMAND] = val;
        break;
      case DMA_REG_REQ: {
        let status = u8[Dma8237.S_STATUS]!;
        status = val & 4 ? status | (1 << (chan + 4)) : status & ~(1 << (chan + 4));
        u8[Dma8237.S_STATUS] = status & ~(1 << chan);
        break;
      }
      case DMA_REG_MASK:
        u8[Dma8237.S_MASK] = val & 4 ? u8[Dma8237.S_MASK]! | (1 << chan) : u8[Dma8237.S_MASK]! & ~(1 << chan);
        break;
      case DMA_REG_MODE:
        u8[Dma8237.S_MODE + chan] = val;
        break;
      case DMA_REG_CLEAR_FF:
        u8[Dma8237.S_FLIP_FLOP] = 0;
        break;
      case DMA_REG_MASTER_CLEAR:
        this.reset();
        break;
      case DMA_REG_CLEAR_MASK:
        u8[Dma8237.S_MASK] = 0;
        break;
      default: // DMA_REG_WRITE_MASK
        u8[Dma8237.S_MASK] = val;
    }
  }
}

/**
 * The DMA page registers at 0x81-0x8f (offset 0 is port 0x81; 0x80 is the POST port). Ports
 * 0x81-0x83 and 0x87 belong to the first controller, 0x89-0x8b and 0x8f to the second; they
 * read back what was written. The other ports have nothing behind them in QEMU: all ones.
 */
export class DmaPageRegisters implements BusDevice {
  static readonly STATE_BYTES = 24;
  private static readonly S_PAGES = 8; // indexed by port - 0x80
  private static readonly PRESENT = 0x8e8e; // bit n: port 0x80 + n is a page register

  constructor(private readonly region: SharedRegion) {
    if (region.length < DmaPageRegisters.STATE_BYTES) throw new RangeError('DmaPageRegisters: shared region too small');
  }

  get badAccesses(): number {
    return this.region.view.getUint32(S_BAD, true);
  }

  read(offset: number, data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) {
      const n = offset + i + 1;
      if (n < 16 && (DmaPageRegisters.PRESENT >> n) & 1) data[i] = this.region.u8[DmaPageRegisters.S_PAGES + n]!;
      else {
        data[i] = 0xff;
        countBad(this.region);
      }
    }
  }

  write(offset: number, data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) {
      const n = offset + i + 1;
      if (n < 16 && (DmaPageRegisters.PRESENT >> n) & 1) this.region.u8[DmaPageRegisters.S_PAGES + n] = data[i]!;
      else countBad(this.region);
    }
  }
}

export const PCI_CONFIG_ADDRESS = 0; // 0xcf8
export const PIIX_RCR = 1; // 0xcf9, reset control register
export const PCI_CONFIG_DATA = 4; // 0xcfc
export const RCR_SYS_RST = 0x02; // full (not soft) reset; QEMU only remembers it
export const RCR_RST_CPU = 0x04;

/**
 * PCI configuration mechanism #1 with no host bridge behind it, plus the PIIX reset control
 * register that shares the range at 0xcf9. CONFIG_ADDRESS latches only 32-bit writes (so
 * Linux's type-1 probe reads back what it wrote); configuration data reads are all ones.
 * RCR: writing bit 2 resets the machine, as in QEMU (which does not require bit 1 as well).
 */
export class PciConfigStub implements BusDevice {
  static readonly STATE_BYTES = 16;
  private static readonly S_CONFIG_ADDRESS = 8; // u32
  private static readonly S_RCR = 12;

  constructor(private readonly region: SharedRegion, private readonly requests: MachineRequests) {
    if (region.length < PciConfigStub.STATE_BYTES) throw new RangeError('PciConfigStub: shared region too small');
  }

  read(offset: number, data: Uint8Array): void {
    data.fill(0xff);
    if (offset === PIIX_RCR && data.length === 1) {
      data[0] = this.region.u8[PciConfigStub.S_RCR]!;
    } else if (offset < PCI_CONFIG_DATA) {
      // QEMU hands back CONFIG_ADDRESS whatever the offset and size, cut to the access size.
      const addr = this.region.view.getUint32(PciConfigStub.S_CONFIG_ADDRESS, true);
      for (let i = 0; i < data.length && i < 4; i++) data[i] = (addr >>> (8 * i)) & 0xff;
    }
  }

  write(offset: number, data: Uint8Array): void {
    if (offset === PCI_CONFIG_ADDRESS && data.length === 4) {
      this.region.view.setUint32(PciConfigStub.S_CONFIG_ADDRESS, new DataView(data.buffer, data.byteOffset, 4).getUint32(0, true), true);
    } else if (offset === PIIX_RCR && data.length === 1) {
      const val = data[0]!;
      if (val & RCR_RST_CPU) {
        this.requests.reset('guest-reset');
        return;
      }
      this.region.u8[PciConfigStub.S_RCR] = val & RCR_SYS_RST;
    }
    // Other writes (byte pokes at 0xcf8-0xcfb, configuration data) go nowhere, as in QEMU.
  }

  reset(): void {
    this.region.u8[PciConfigStub.S_RCR] = 0;
    this.region.view.setUint32(PciConfigStub.S_CONFIG_ADDRESS, 0, true);
  }
}
