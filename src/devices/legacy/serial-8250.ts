/**
 * A 16550A UART as QEMU 7.2 emulates it (hw/char/serial.c), at 8 consecutive ports.
 *
 * All state lives in the shared region (every thread builds its own object over it; the
 * caller holds the device lock). Transmit never blocks: each THR write goes straight to the
 * sink, so THR and the TX FIFO are always empty again by the time the guest looks.
 *
 * Differences from QEMU, on purpose:
 * - The IRQ line is gated by MCR.OUT2, as on PC boards (QEMU raises it regardless).
 * - No timers: the RX FIFO character timeout fires as soon as the FIFO holds fewer bytes
 *   than the trigger level (a host burst ending is the line going idle).
 * - Host input is refused in loopback mode (the receiver pin is disconnected there).
 */
import type { BusDevice, ByteSink, IrqLine } from '../device.js';
import type { SharedRegion } from '../shared-state.js';

// Register offsets (Linux include/uapi/linux/serial_reg.h).
export const UART_RX = 0;
export const UART_TX = 0;
export const UART_DLL = 0;
export const UART_IER = 1;
export const UART_DLM = 1;
export const UART_IIR = 2;
export const UART_FCR = 2;
export const UART_LCR = 3;
export const UART_MCR = 4;
export const UART_LSR = 5;
export const UART_MSR = 6;
export const UART_SCR = 7;

export const UART_LCR_DLAB = 0x80;

export const UART_IER_RDI = 0x01;
export const UART_IER_THRI = 0x02;
export const UART_IER_RLSI = 0x04;
export const UART_IER_MSI = 0x08;

export const UART_IIR_NO_INT = 0x01;
export const UART_IIR_ID = 0x06;
export const UART_IIR_MSI = 0x00;
export const UART_IIR_THRI = 0x02;
export const UART_IIR_RDI = 0x04;
export const UART_IIR_RLSI = 0x06;
export const UART_IIR_CTI = 0x0c;
export const UART_IIR_FIFO_ENABLED = 0xc0;

export const UART_FCR_ENABLE_FIFO = 0x01;
export const UART_FCR_CLEAR_RCVR = 0x02;
export const UART_FCR_CLEAR_XMIT = 0x04;
export const UART_FCR_TRIGGER_MASK = 0xc0;

export const UART_MCR_DTR = 0x01;
export const UART_MCR_RTS = 0x02;
export const UART_MCR_OUT1 = 0x04;
export const UART_MCR_OUT2 = 0x08;
export const UART_MCR_LOOP = 0x10;

export const UART_LSR_DR = 0x01;
export const UART_LSR_OE = 0x02;
export const UART_LSR_BI = 0x10;
export const UART_LSR_THRE = 0x20;
export const UART_LSR_TEMT = 0x40;
/** Any of the bits that raise a receiver line status interrupt (OE, PE, FE, BI). */
const UART_LSR_INT_ANY = 0x1e;

export const UART_MSR_DCTS = 0x01;
export const UART_MSR_ANY_DELTA = 0x0f;
export const UART_MSR_CTS = 0x10;
export const UART_MSR_DSR = 0x20;
export const UART_MSR_RI = 0x40;
export const UART_MSR_DCD = 0x80;

export const UART_FIFO_LENGTH = 16;
/** RX trigger levels of a 16550A, indexed by FCR bits 7:6. */
const TRIGGER_LEVELS = [1, 4, 8, 14] as const;

// Layout of the shared region (byte offsets).
const S_INIT = 0; // i32: 0 until the first object over the region set the power-on state
const S_BAD = 4; // u32: bad guest accesses
const S_RBR = 8;
const S_IER = 9;
const S_IIR = 10;
const S_LCR = 11;
const S_MCR = 12;
const S_LSR = 13;
const S_MSR = 14;
const S_SCR = 15;
const S_FCR = 16;
const S_DLL = 17;
const S_DLM = 18;
const S_THR_IPENDING = 19;
const S_TIMEOUT_IPENDING = 20;
const S_ITL = 21;
const S_IRQ_LEVEL = 22;
const S_RX_HEAD = 23;
const S_RX_COUNT = 24;
const S_THR = 25;
const S_RX_FIFO = 32;

export class Serial8250 implements BusDevice {
  static readonly STATE_BYTES = S_RX_FIFO + UART_FIFO_LENGTH;

  private readonly u8: Uint8Array;
  /** One reusable byte for the sink (no allocation per transmitted byte). */
  private readonly txByte = new Uint8Array(1);

  constructor(
    private readonly region: SharedRegion,
    private readonly irq: IrqLine,
    private readonly output: ByteSink,
  ) {
    if (region.length < Serial8250.STATE_BYTES) throw new RangeError('Serial8250: shared region too small');
    this.u8 = region.u8;
    if (Atomics.compareExchange(region.i32, S_INIT >> 2, 0, 1) === 0) this.powerOn();
  }

  /** Bad guest accesses seen so far (outside the 8 registers). */
  get badAccesses(): number {
    return this.region.view.getUint32(S_BAD, true);
  }

  read(offset: number, data: Uint8Array): void {
    // QEMU implements only byte accesses: a wider one is split into consecutive registers.
    for (let i = 0; i < data.length; i++) {
      const reg = offset + i;
      if (reg > UART_SCR) {
        data.fill(0xff, i);
        this.countBad();
        return;
      }
      data[i] = this.readReg(reg);
    }
  }

  write(offset: number, data: Uint8Array): void {
    if (offset === UART_SCR && data.length === 1) {
      // Hot path: some guests (and our benchmark) hammer the scratch register.
      this.u8[S_SCR] = data[0]!;
      return;
    }
    for (let i = 0; i < data.length; i++) {
      const reg = offset + i;
      if (reg > UART_SCR) {
        this.countBad();
        return;
      }
      this.writeReg(reg, data[i]!);
    }
  }

  reset(): void {
    this.powerOn();
    this.u8[S_IRQ_LEVEL] = 0;
    this.irq.set(false);
  }

  /** Bytes the receiver can take now (host input flow control). */
  get rxFree(): number {
    const u8 = this.u8;
    if (u8[S_MCR]! & UART_MCR_LOOP) return 0;
    if (u8[S_FCR]! & UART_FCR_ENABLE_FIFO) return UART_FIFO_LENGTH - u8[S_RX_COUNT]!;
    return u8[S_LSR]! & UART_LSR_DR ? 0 : 1;
  }

  /** Host input: takes what fits (stops when the FIFO is full); returns how many bytes. */
  receive(bytes: Uint8Array): number {
    const n = Math.min(bytes.length, this.rxFree);
    if (n === 0) return 0;
    for (let i = 0; i < n; i++) this.rxPut(bytes[i]!);
    this.updateIrq();
    return n;
  }

  private powerOn(): void {
    const u8 = this.u8;
    u8.fill(0, S_RBR, Serial8250.STATE_BYTES);
    u8[S_IIR] = UART_IIR_NO_INT;
    u8[S_LSR] = UART_LSR_TEMT | UART_LSR_THRE;
    u8[S_MSR] = UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS;
    u8[S_DLL] = 0x0c; // 9600 baud from the 1.8432 MHz clock, as QEMU resets it
    u8[S_MCR] = UART_MCR_OUT2;
    u8[S_ITL] = 1;
  }

  private countBad(): void {
    const v = this.region.view;
    v.setUint32(S_BAD, (v.getUint32(S_BAD, true) + 1) >>> 0, true);
  }

  private readReg(reg: number): number {
    const u8 = this.u8;
    switch (reg) {
      case UART_RX:
        if (u8[S_LCR]! & UART_LCR_DLAB) return u8[S_DLL]!;
        return this.readRbr();
      case UART_IER:
        return u8[S_LCR]! & UART_LCR_DLAB ? u8[S_DLM]! : u8[S_IER]!;
      case UART_IIR: {
        const iir = u8[S_IIR]!;
        // Reading IIR while it reports THRE acknowledges that interrupt.
        if ((iir & UART_IIR_ID) === UART_IIR_THRI) {
          u8[S_THR_IPENDING] = 0;
          this.updateIrq();
        }
        return iir;
      }
      case UART_LCR:
        return u8[S_LCR]!;
      case UART_MCR:
        return u8[S_MCR]!;
      case UART_LSR: {
        const lsr = u8[S_LSR]!;
        if (lsr & (UART_LSR_BI | UART_LSR_OE)) {
          u8[S_LSR] = lsr & ~(UART_LSR_BI | UART_LSR_OE);
          this.updateIrq();
        }
        return lsr;
      }
      case UART_MSR: {
        const mcr = u8[S_MCR]!;
        if (mcr & UART_MCR_LOOP) {
          // Loopback wires the modem outputs to the inputs: OUT2->DCD, OUT1->RI, RTS->CTS, DTR->DSR.
          return ((mcr & 0x0c) << 4) | ((mcr & UART_MCR_RTS) << 3) | ((mcr & UART_MCR_DTR) << 5);
        }
        const msr = u8[S_MSR]!;
        if (msr & UART_MSR_ANY_DELTA) {
          u8[S_MSR] = msr & 0xf0;
          this.updateIrq();
        }
        return msr;
      }
      default:
        return u8[S_SCR]!;
    }
  }

  private readRbr(): number {
    const u8 = this.u8;
    let ret: number;
    if (u8[S_FCR]! & UART_FCR_ENABLE_FIFO) {
      const count = u8[S_RX_COUNT]!;
      if (count === 0) {
        ret = 0;
      } else {
        const head = u8[S_RX_HEAD]!;
        ret = u8[S_RX_FIFO + head]!;
        u8[S_RX_HEAD] = (head + 1) % UART_FIFO_LENGTH;
        u8[S_RX_COUNT] = count - 1;
      }
      if (u8[S_RX_COUNT] === 0) u8[S_LSR] = u8[S_LSR]! & ~(UART_LSR_DR | UART_LSR_BI);
      this.armTimeout();
    } else {
      ret = u8[S_RBR]!;
      u8[S_LSR] = u8[S_LSR]! & ~(UART_LSR_DR | UART_LSR_BI);
    }
    this.updateIrq();
    return ret;
  }

  private writeReg(reg: number, val: number): void {
    const u8 = this.u8;
    switch (reg) {
      case UART_TX:
        if (u8[S_LCR]! & UART_LCR_DLAB) u8[S_DLL] = val;
        else this.transmit(val);
        return;
      case UART_IER: {
        if (u8[S_LCR]! & UART_LCR_DLAB) {
          u8[S_DLM] = val;
          return;
        }
        const ier = val & 0x0f;
        const changed = (u8[S_IER]! ^ ier) & 0x0f;
        u8[S_IER] = ier;
        // Turning THRI on while THR is empty raises THRE at once (Windows and Linux rely on it).
        if (changed & UART_IER_THRI) {
          u8[S_THR_IPENDING] = ier & UART_IER_THRI && u8[S_LSR]! & UART_LSR_THRE ? 1 : 0;
        }
        if (changed) this.updateIrq();
        return;
      }
      case UART_FCR:
        this.writeFcr(val);
        return;
      case UART_LCR:
        u8[S_LCR] = val;
        return;
      case UART_MCR:
        u8[S_MCR] = val & 0x1f;
        this.updateIrq(); // OUT2 gates the line
        return;
      case UART_LSR:
      case UART_MSR:
        return; // read-only
      default:
        u8[S_SCR] = val;
    }
  }

  private writeFcr(v: number): void {
    const u8 = this.u8;
    let val = v;
    // Switching the FIFOs on or off flushes both.
    if ((val ^ u8[S_FCR]!) & UART_FCR_ENABLE_FIFO) val |= UART_FCR_CLEAR_RCVR | UART_FCR_CLEAR_XMIT;
    if (val & UART_FCR_CLEAR_RCVR) {
      u8[S_LSR] = u8[S_LSR]! & ~(UART_LSR_DR | UART_LSR_BI);
      u8[S_TIMEOUT_IPENDING] = 0;
      u8[S_RX_HEAD] = 0;
      u8[S_RX_COUNT] = 0;
    }
    if (val & UART_FCR_CLEAR_XMIT) {
      u8[S_LSR] = u8[S_LSR]! | UART_LSR_THRE;
      u8[S_THR_IPENDING] = 1;
    }
    const fcr = val & 0xc9; // the bits that stick: trigger level, DMA mode, enable
    u8[S_FCR] = fcr;
    if (fcr & UART_FCR_ENABLE_FIFO) {
      u8[S_IIR] = u8[S_IIR]! | UART_IIR_FIFO_ENABLED;
      u8[S_ITL] = TRIGGER_LEVELS[fcr >> 6]!;
    } else {
      u8[S_IIR] = u8[S_IIR]! & ~UART_IIR_FIFO_ENABLED;
    }
    this.updateIrq();
  }

  private transmit(val: number): void {
    const u8 = this.u8;
    u8[S_THR] = val;
    u8[S_THR_IPENDING] = 0;
    u8[S_LSR] = u8[S_LSR]! & ~(UART_LSR_THRE | UART_LSR_TEMT);
    // Lower then raise, as QEMU does: each byte written gives the edge-triggered IRQ a fresh edge.
    this.updateIrq();
    if (u8[S_MCR]! & UART_MCR_LOOP) {
      this.rxPut(val);
    } else {
      this.txByte[0] = val;
      this.output.write(this.txByte);
    }
    u8[S_LSR] = u8[S_LSR]! | UART_LSR_THRE | UART_LSR_TEMT;
    u8[S_THR_IPENDING] = 1;
    this.updateIrq();
  }

  /** One received byte into RBR or the FIFO (overrun sets OE and drops it). */
  private rxPut(b: number): void {
    const u8 = this.u8;
    if (u8[S_FCR]! & UART_FCR_ENABLE_FIFO) {
      const count = u8[S_RX_COUNT]!;
      if (count < UART_FIFO_LENGTH) {
        u8[S_RX_FIFO + ((u8[S_RX_HEAD]! + count) % UART_FIFO_LENGTH)] = b;
        u8[S_RX_COUNT] = count + 1;
      } else {
        u8[S_LSR] = u8[S_LSR]! | UART_LSR_OE;
      }
      u8[S_LSR] = u8[S_LSR]! | UART_LSR_DR;
      this.armTimeout();
    } else {
      if (u8[S_LSR]! & UART_LSR_DR) u8[S_LSR] = u8[S_LSR]! | UART_LSR_OE;
      u8[S_RBR] = b;
      u8[S_LSR] = u8[S_LSR]! | UART_LSR_DR;
    }
  }

  /** The character timeout is due whenever data sits below the trigger level (see header). */
  private armTimeout(): void {
    const count = this.u8[S_RX_COUNT]!;
    this.u8[S_TIMEOUT_IPENDING] = count > 0 && count < this.u8[S_ITL]! ? 1 : 0;
  }

  private updateIrq(): void {
    const u8 = this.u8;
    const ier = u8[S_IER]!;
    const lsr = u8[S_LSR]!;
    let id = UART_IIR_NO_INT;
    if (ier & UART_IER_RLSI && lsr & UART_LSR_INT_ANY) {
      id = UART_IIR_RLSI;
    } else if (ier & UART_IER_RDI && u8[S_TIMEOUT_IPENDING]) {
      id = UART_IIR_CTI;
    } else if (
      ier & UART_IER_RDI && lsr & UART_LSR_DR &&
      (!(u8[S_FCR]! & UART_FCR_ENABLE_FIFO) || u8[S_RX_COUNT]! >= u8[S_ITL]!)
    ) {
      id = UART_IIR_RDI;
    } else if (ier & UART_IER_THRI && u8[S_THR_IPENDING]) {
      id = UART_IIR_THRI;
    } else if (ier & UART_IER_MSI && u8[S_MSR]! & UART_MSR_ANY_DELTA) {
      id = UART_IIR_MSI;
    }
    u8[S_IIR] = id | (u8[S_IIR]! & 0xf0);
    const level = id !== UART_IIR_NO_INT && (u8[S_MCR]! & UART_MCR_OUT2) !== 0 ? 1 : 0;
    // The last level lives in shared state so every thread agrees on when the line changes.
    if (u8[S_IRQ_LEVEL] !== level) {
      u8[S_IRQ_LEVEL] = level;
      this.irq.set(level === 1);
    }
  }
}
