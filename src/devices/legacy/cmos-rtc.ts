/**
 * The MC146818 RTC and its 128 bytes of CMOS at ports 0x70 (index) and 0x71 (data), as QEMU
 * 7.2 shows it to a PC guest (hw/rtc/mc146818rtc.c, pc_cmos_init in hw/i386/pc.c).
 *
 * The time registers are computed from host UTC plus a guest-set offset whenever the guest
 * reads them, so no timer runs. Not modelled: periodic, alarm and update-ended interrupts
 * (REG_C reads and clears correctly, but nothing sets its flags), the UIP window of REG_A
 * (never set; guests that poll it see a stable clock at once), and the divider reset that
 * stops the clock. CMOS contents, memory sizes included, survive a guest reset, as in QEMU.
 */
import type { BusDevice, IrqLine } from '../device.js';
import type { SharedRegion } from '../shared-state.js';

export const RTC_INDEX = 0; // port 0x70
export const RTC_DATA = 1; // port 0x71

// Register indices (Linux include/linux/mc146818rtc.h).
export const RTC_SECONDS = 0x00;
export const RTC_SECONDS_ALARM = 0x01;
export const RTC_MINUTES = 0x02;
export const RTC_MINUTES_ALARM = 0x03;
export const RTC_HOURS = 0x04;
export const RTC_HOURS_ALARM = 0x05;
export const RTC_DAY_OF_WEEK = 0x06;
export const RTC_DAY_OF_MONTH = 0x07;
export const RTC_MONTH = 0x08;
export const RTC_YEAR = 0x09;
export const RTC_REG_A = 0x0a;
export const RTC_REG_B = 0x0b;
export const RTC_REG_C = 0x0c;
export const RTC_REG_D = 0x0d;
export const RTC_CENTURY = 0x32;

export const REG_A_UIP = 0x80;
export const REG_B_SET = 0x80;
export const REG_B_PIE = 0x40;
export const REG_B_AIE = 0x20;
export const REG_B_UIE = 0x10;
export const REG_B_SQWE = 0x08;
export const REG_B_DM = 0x04; // 1 = binary, 0 = BCD
export const REG_B_24H = 0x02;
export const REG_C_IRQF = 0x80;
export const REG_C_PF = 0x40;
export const REG_C_AF = 0x20;
export const REG_C_UF = 0x10;
const REG_C_MASK = 0x70;
export const REG_D_VRT = 0x80;

// Memory size bytes that BIOSes and boot loaders read, filled as QEMU's pc_cmos_init does.
export const CMOS_BASE_MEM_LO = 0x15;
export const CMOS_BASE_MEM_HI = 0x16;
export const CMOS_EXT_MEM_LO = 0x17;
export const CMOS_EXT_MEM_HI = 0x18;
export const CMOS_EXT_MEM2_LO = 0x30;
export const CMOS_EXT_MEM2_HI = 0x31;
export const CMOS_MEM_ABOVE_16M_LO = 0x34;
export const CMOS_MEM_ABOVE_16M_HI = 0x35;
export const CMOS_MEM_ABOVE_4G = 0x5b; // three bytes, 0x5b..0x5d

const KiB = 1024;
const MiB = 1024 * KiB;
const CMOS_BYTES = 128;

// Layout of the shared region (byte offsets).
const S_INIT = 0; // i32
const S_BAD = 4; // u32
const S_INDEX = 8;
const S_IRQ_LEVEL = 9;
const S_OFFSET_MS = 16; // f64: guest time minus host time
const S_CMOS = 24;

export interface CmosRtcOptions {
  /** Guest RAM below 4 GiB, in bytes. */
  lowRamBytes: number;
  /** Guest RAM above 4 GiB, in bytes. */
  highRamBytes: number;
  /** Host clock in ms since the epoch (UTC); tests inject one. */
  now?: () => number;
}

export class CmosRtc implements BusDevice {
  static readonly STATE_BYTES = S_CMOS + CMOS_BYTES;

  private readonly u8: Uint8Array;
  private readonly cmos: Uint8Array;
  private readonly now: () => number;

  constructor(
    private readonly region: SharedRegion,
    private readonly irq: IrqLine,
    opts: CmosRtcOptions,
  ) {
    if (region.length < CmosRtc.STATE_BYTES) throw new RangeError('CmosRtc: shared region too small');
    this.u8 = region.u8;
    this.cmos = region.u8.subarray(S_CMOS, S_CMOS + CMOS_BYTES);
    this.now = opts.now ?? Date.now;
    if (Atomics.compareExchange(region.i32, S_INIT >> 2, 0, 1) === 0) this.powerOn(opts);
  }

  /** Bad guest accesses seen so far. */
  get badAccesses(): number {
    return this.region.view.getUint32(S_BAD, true);
  }

  read(offset: number, data: Uint8Array): void {
    // QEMU implements byte accesses only: a wider one walks on to the next port.
    for (let i = 0; i < data.length; i++) {
      const port = offset + i;
      if (port === RTC_INDEX) data[i] = 0xff; // the index register is write-only
      else if (port === RTC_DATA) data[i] = this.readData();
      else {
        data.fill(0xff, i);
        this.countBad();
        return;
      }
    }
  }

  write(offset: number, data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) {
      const port = offset + i;
      // Bit 7 of the index is the NMI mask on a PC; KVM delivers NMIs regardless.
      if (port === RTC_INDEX) this.u8[S_INDEX] = data[i]! & 0x7f;
      else if (port === RTC_DATA) this.writeData(data[i]!);
      else {
        this.countBad();
        return;
      }
    }
  }

  /** A guest reset: the interrupt enables and flags clear; the clock and CMOS stay. */
  reset(): void {
    const c = this.cmos;
    c[RTC_REG_B] = c[RTC_REG_B]! & ~(REG_B_PIE | REG_B_AIE | REG_B_SQWE);
    c[RTC_REG_C] = c[RTC_REG_C]! & ~(REG_C_UF | REG_C_IRQF | REG_C_PF | REG_C_AF);
    this.u8[S_IRQ_LEVEL] = 0;
    this.irq.set(false);
  }

  private powerOn(opts: CmosRtcOptions): void {
    this.u8.fill(0, S_INDEX, CmosRtc.STATE_BYTES);
    const c = this.cmos;
    c[RTC_REG_A] = 0x26; // 32.768 kHz time base, 1024 Hz periodic rate
    c[RTC_REG_B] = REG_B_24H; // BCD, 24-hour
    c[RTC_REG_C] = 0;
    c[RTC_REG_D] = REG_D_VRT;
    this.setMemorySizes(opts.lowRamBytes, opts.highRamBytes);
    this.refreshTime();
  }

  private setMemorySizes(low: number, high: number): void {
    const c = this.cmos;
    const put16 = (idx: number, v: number): void => {
      c[idx] = v & 0xff;
      c[idx + 1] = (v >> 8) & 0xff;
    };
    put16(CMOS_BASE_MEM_LO, Math.min(Math.floor(low / KiB), 640));
    const ext = low > MiB ? Math.min(Math.floor((low - MiB) / KiB), 0xffff) : 0;
    put16(CMOS_EXT_MEM_LO, ext);
    put16(CMOS_EXT_MEM2_LO, ext);
    const above16m = low > 16 * MiB ? Math.min(Math.floor((low - 16 * MiB) / (64 * KiB)), 0xffff) : 0;
    put16(CMOS_MEM_ABOVE_16M_LO, above16m);
    const above4g = Math.floor(high / (64 * KiB));
    c[CMOS_MEM_ABOVE_4G] = above4g & 0xff;
    c[CMOS_MEM_ABOVE_4G + 1] = (above4g >>> 8) & 0xff;
    c[CMOS_MEM_ABOVE_4G + 2] = (above4g >>> 16) & 0xff;
  }

  private countBad(): void {
    const v = this.region.view;
    v.setUint32(S_BAD, (v.getUint32(S_BAD, true) + 1) >>> 0, true);
  }

  private running(): boolean {
    return (this.cmos[RTC_REG_B]! & REG_B_SET) === 0;
  }

  private guestMs(): number {
    return this.now() + this.region.view.getFloat64(S_OFFSET_MS, true);
  }

  private readData(): number {
    const c = this.cmos;
    const idx = this.u8[S_INDEX]!;
    switch (idx) {
      case RTC_SECONDS:
      case RTC_MINUTES:
      case RTC_HOURS:
      case RTC_DAY_OF_WEEK:
      case RTC_DAY_OF_MONTH:
      case RTC_MONTH:
      case RTC_YEAR:
      case RTC_CENTURY:
        // In SET mode the registers hold what the guest wrote; otherwise they follow the clock.
        if (this.running()) this.refreshTime();
        return c[idx]!;
      case RTC_REG_C: {
        const ret = c[RTC_REG_C]!;
        c[RTC_REG_C] = 0;
        this.setLine(false);
        return ret;
      }
      default:
        return c[idx]!;
    }
  }

  private writeData(val: number): void {
    const c = this.cmos;
    const idx = this.u8[S_INDEX]!;
    switch (idx) {
      case RTC_SECONDS:
      case RTC_MINUTES:
      case RTC_HOURS:
      case RTC_DAY_OF_WEEK:
      case RTC_DAY_OF_MONTH:
      case RTC_MONTH:
      case RTC_YEAR:
        if (this.running()) {
          // A write outside SET mode changes the clock at once.
          this.refreshTime();
          c[idx] = val;
          this.setClockFromRegisters();
        } else {
          c[idx] = val;
        }
        return;
      case RTC_REG_A:
        c[RTC_REG_A] = (val & ~REG_A_UIP) | (c[RTC_REG_A]! & REG_A_UIP);
        return;
      case RTC_REG_B: {
        let v = val;
        if (v & REG_B_SET) {
          // Freeze the registers at the moment the clock stops.
          if (this.running()) this.refreshTime();
          c[RTC_REG_A] = c[RTC_REG_A]! & ~REG_A_UIP;
          v &= ~REG_B_UIE;
        } else if (!this.running()) {
          this.setClockFromRegisters(); // leaving SET mode starts the clock from the registers
        }
        // A flag already set whose interrupt becomes enabled interrupts at once.
        if (v & c[RTC_REG_C]! & REG_C_MASK) {
          c[RTC_REG_C] = c[RTC_REG_C]! | REG_C_IRQF;
          this.setLine(true);
        } else {
          c[RTC_REG_C] = c[RTC_REG_C]! & ~REG_C_IRQF;
          this.setLine(false);
        }
        c[RTC_REG_B] = v;
        return;
      }
      case RTC_REG_C:
      case RTC_REG_D:
        return; // read-only
      default:
        c[idx] = val;
    }
  }

  private setLine(high: boolean): void {
    const level = high ? 1 : 0;
    if (this.u8[S_IRQ_LEVEL] !== level) {
      this.u8[S_IRQ_LEVEL] = level;
      this.irq.set(high);
    }
  }

  private toBcd(v: number): number {
    return this.cmos[RTC_REG_B]! & REG_B_DM ? v : (Math.floor(v / 10) << 4) | (v % 10);
  }

  private fromBcd(v: number): number {
    return this.cmos[RTC_REG_B]! & REG_B_DM ? v : (v >> 4) * 10 + (v & 0x0f);
  }

  /** Write the guest clock into the time registers, in the format REG_B asks for. */
  private refreshTime(): void {
    const c = this.cmos;
    const t = new Date(this.guestMs());
    const hour = t.getUTCHours();
    c[RTC_SECONDS] = this.toBcd(t.getUTCSeconds());
    c[RTC_MINUTES] = this.toBcd(t.getUTCMinutes());
    if (c[RTC_REG_B]! & REG_B_24H) {
      c[RTC_HOURS] = this.toBcd(hour);
    } else {
      c[RTC_HOURS] = this.toBcd(hour % 12 || 12) | (hour >= 12 ? 0x80 : 0);
    }
    c[RTC_DAY_OF_WEEK] = this.toBcd(t.getUTCDay() + 1);
    c[RTC_DAY_OF_MONTH] = this.toBcd(t.getUTCDate());
    c[RTC_MONTH] = this.toBcd(t.getUTCMonth() + 1);
    const year = t.getUTCFullYear();
    c[RTC_YEAR] = this.toBcd(year % 100);
    c[RTC_CENTURY] = this.toBcd(Math.floor(year / 100));
  }

  /** Set the guest clock from the time registers, keeping the current fraction of a second. */
  private setClockFromRegisters(): void {
    const c = this.cmos;
    const hoursReg = c[RTC_HOURS]!;
    let hour = this.fromBcd(hoursReg & 0x7f);
    if (!(c[RTC_REG_B]! & REG_B_24H)) {
      hour %= 12;
      if (hoursReg & 0x80) hour += 12;
    }
    const year = this.fromBcd(c[RTC_CENTURY]!) * 100 + this.fromBcd(c[RTC_YEAR]!);
    const ms = Date.UTC(
      year,
      this.fromBcd(c[RTC_MONTH]!) - 1,
      this.fromBcd(c[RTC_DAY_OF_MONTH]!),
      hour,
      this.fromBcd(c[RTC_MINUTES]!),
      this.fromBcd(c[RTC_SECONDS]!),
    );
    const frac = ((this.guestMs() % 1000) + 1000) % 1000;
    // Date.UTC maps years 0-99 to 1900-1999; setUTCFullYear does not.
    const d = new Date(ms);
    d.setUTCFullYear(year);
    if (!Number.isFinite(d.getTime())) return; // nonsense in the registers: keep the clock
    this.region.view.setFloat64(S_OFFSET_MS, d.getTime() + frac - this.now(), true);
  }
}
