/**
 * The ACPI fixed-hardware power-management registers (ACPI 6.x, 4.8), at the ports QEMU 7.2's
 * PIIX4 PM function uses on `-M pc`, and described to the guest by the FADT.
 *
 * Port layout (register both ranges; the SCI is ISA IRQ / GSI 9, level, active high):
 *   PM_IO_BASE 0x600, PM_IO_LENGTH 0x40 -> AcpiPm itself
 *     0x600 PM1a_EVT_BLK (4): PM1_STS (u16) at +0, PM1_EN (u16) at +2
 *     0x604 PM1a_CNT_BLK (2): PM1_CNT (u16)
 *     0x608 PM_TMR_BLK   (4): PM_TMR (24 bits, read-only)
 *     the rest of the window (0x606-0x607, 0x60c-0x63f) holds nothing: reads all ones.
 *   GPE0_BLK 0xafe0, GPE0_BLK_LEN 4 -> AcpiPm.gpe0: GPE0_STS (u16) at +0, GPE0_EN (u16) at +2
 *
 * There is no SMI_CMD, so the hardware is always in ACPI mode: SCI_EN reads 1 and cannot be
 * cleared. Status bits are write-1-to-clear. Any access width works (accesses are taken a
 * byte at a time, the PM timer sampled once per access).
 *
 * Sleep: writing SLP_EN with SLP_TYP 0 asks for S5 (soft off), 1 for S3, 2 for S4, as on
 * QEMU's PIIX4 (the DSDT's \_S3_, \_S4_, \_S5_ packages carry these values); other
 * SLP_TYP values are ignored. For an S3 resume the machine resets the devices, then calls
 * `wake()` so the OS finds WAK_STS set.
 *
 * TMR_STS is computed when the guest looks: it is set once bit 23 of the counter has
 * flipped since it was last cleared. No host timer runs, so with TMR_EN set the SCI for it
 * is raised only at the guest's next access to these registers (Linux never sets TMR_EN).
 *
 * All state lives in the shared region; callers hold the machine's device lock.
 */
import type { BusDevice, IrqLine } from '../device.js';
import type { SharedRegion } from '../shared-state.js';

/** Where the PM1 event, PM1 control and PM timer blocks sit on the port bus. */
export const PM_IO_BASE = 0x600;
export const PM_IO_LENGTH = 0x40;
export const PM1A_EVT_BLK = PM_IO_BASE;
export const PM1_EVT_LEN = 4;
export const PM1A_CNT_BLK = PM_IO_BASE + 0x04;
export const PM1_CNT_LEN = 2;
export const PM_TMR_BLK = PM_IO_BASE + 0x08;
export const PM_TMR_LEN = 4;
/** General-purpose event block 0: status half then enable half. */
export const GPE0_BLK = 0xafe0;
export const GPE0_BLK_LEN = 4;
/** The System Control Interrupt: ISA IRQ 9 (the MADT makes it level, active high). */
export const SCI_IRQ = 9;

// Register offsets inside the PM_IO_BASE window.
export const PM1_STS = 0;
export const PM1_EN = 2;
export const PM1_CNT = PM1A_CNT_BLK - PM_IO_BASE;
export const PM_TMR = PM_TMR_BLK - PM_IO_BASE;
// Register offsets inside GPE0_BLK.
export const GPE0_STS = 0;
export const GPE0_EN = GPE0_BLK_LEN / 2;

// PM1_STS bits (ACPI 6.x, 4.8.3.1.1).
export const TMR_STS = 1 << 0;
export const BM_STS = 1 << 4;
export const GBL_STS = 1 << 5;
export const PWRBTN_STS = 1 << 8;
export const SLPBTN_STS = 1 << 9;
export const RTC_STS = 1 << 10;
export const WAK_STS = 1 << 15;
// PM1_EN bits (4.8.3.1.2).
export const TMR_EN = 1 << 0;
export const GBL_EN = 1 << 5;
export const PWRBTN_EN = 1 << 8;
export const SLPBTN_EN = 1 << 9;
export const RTC_EN = 1 << 10;
export const PCIEXP_WAKE_DIS = 1 << 14;
// PM1_CNT bits (4.8.3.2.1).
export const SCI_EN = 1 << 0;
export const BM_RLD = 1 << 1;
export const GBL_RLS = 1 << 2;
export const SLP_TYP_SHIFT = 10;
export const SLP_TYP_MASK = 7 << SLP_TYP_SHIFT;
export const SLP_EN = 1 << 13;

/** SLP_TYP values this hardware implements (what the DSDT's \_Sx_ packages say). */
export const SLP_TYP_S5 = 0;
export const SLP_TYP_S3 = 1;
export const SLP_TYP_S4 = 2;

/** The PM timer's frequency (ACPI 6.x, 4.8.3.3): 3.579545 MHz. */
export const PM_TIMER_FREQUENCY = 3_579_545;
const PM_TMR_MASK = 0xff_ffff;
/** TMR_STS is set each time bit 23 flips, every 2^23 ticks. */
const TMR_STS_PERIOD = 2 ** 23;
const NS_PER_S = 1_000_000_000n;

// Bits the guest can set in PM1_EN and PM1_CNT; SLP_EN and GBL_RLS only act, they never stick.
const PM1_EN_MASK = TMR_EN | GBL_EN | PWRBTN_EN | SLPBTN_EN | RTC_EN | PCIEXP_WAKE_DIS;
const PM1_CNT_MASK = BM_RLD | SLP_TYP_MASK;
// The PM1 events that have a source here, hence the ones that can raise the SCI.
const PM1_SCI_EVENTS = TMR_STS | PWRBTN_STS;

export type SleepState = 'S3' | 'S4' | 'S5';

/** What the PM block reaches out to: its interrupt line and the machine's sleep handling. */
export interface AcpiPmCallbacks {
  /** The SCI, level-triggered: high while any enabled event is pending. */
  readonly sci: IrqLine;
  /** The guest wrote SLP_EN: enter this state (called under the device lock). */
  sleep(state: SleepState): void;
}

export interface AcpiPmOptions {
  /** Host monotonic clock in nanoseconds, the same in every thread; tests inject one. */
  now?: () => bigint;
}

// Layout of the shared region (byte offsets).
const S_INIT = 0; //      i32: 0 until the first object over the region set the power-on state
const S_BAD = 4; //       u32: bad guest accesses
const S_PM1_STS = 8; //   u16, without TMR_STS (computed)
const S_PM1_EN = 10; //   u16
const S_PM1_CNT = 12; //  u16, without SCI_EN (always 1)
const S_SCI_LEVEL = 14; // u8
const S_GPE0_STS = 16; // u16
const S_GPE0_EN = 18; //  u16
const S_TMR_BASE = 24; // i64: host ns at which the counter read 0
const S_TMR_EPOCH = 32; // f64: ticks / 2^23 (rounded down) when TMR_STS was last cleared

function countBad(region: SharedRegion): void {
  region.view.setUint32(S_BAD, (region.view.getUint32(S_BAD, true) + 1) >>> 0, true);
}

/** The PM1 event, PM1 control and PM timer registers, at PM_IO_BASE; GPE0 through `gpe0`. */
export class AcpiPm implements BusDevice {
  static readonly STATE_BYTES = 40;

  /** The GPE0 block, a second bus device over the same state (register at GPE0_BLK). */
  readonly gpe0: BusDevice;
  private readonly view: DataView;
  private readonly now: () => bigint;

  constructor(
    private readonly region: SharedRegion,
    private readonly callbacks: AcpiPmCallbacks,
    opts: AcpiPmOptions = {},
  ) {
    if (region.length < AcpiPm.STATE_BYTES) throw new RangeError('AcpiPm: shared region too small');
    this.view = region.view;
    this.now = opts.now ?? (() => process.hrtime.bigint());
    this.gpe0 = {
      read: (offset, data) => this.readGpe0(offset, data),
      write: (offset, data) => this.writeGpe0(offset, data),
      // No reset here: AcpiPm.reset covers the whole state.
    };
    if (Atomics.compareExchange(region.i32, S_INIT >> 2, 0, 1) === 0) this.powerOn();
  }

  /** Bad guest accesses seen so far (outside the registers). */
  get badAccesses(): number {
    return this.view.getUint32(S_BAD, true);
  }

  /** The current SCI level, as last driven. */
  get sciLevel(): boolean {
    return this.view.getUint8(S_SCI_LEVEL) === 1;
  }

  read(offset: number, data: Uint8Array): void {
    let tmr = -1;
    for (let i = 0; i < data.length; i++) {
      const off = offset + i;
      let reg: number;
      let shift: number;
      if (off < PM1_EN) {
        reg = this.pm1Status();
        shift = off - PM1_STS;
      } else if (off < PM1_CNT) {
        reg = this.view.getUint16(S_PM1_EN, true);
        shift = off - PM1_EN;
      } else if (off < PM1_CNT + PM1_CNT_LEN) {
        reg = this.view.getUint16(S_PM1_CNT, true) | SCI_EN;
        shift = off - PM1_CNT;
      } else if (off >= PM_TMR && off < PM_TMR + PM_TMR_LEN) {
        if (tmr < 0) tmr = this.timer(); // one sample for the whole access
        reg = tmr;
        shift = off - PM_TMR;
      } else {
        data.fill(0xff, i);
        countBad(this.region);
        break;
      }
      data[i] = (reg >>> (8 * shift)) & 0xff;
    }
    // A read may be the first to see the counter's bit 23 flip.
    this.updateSci();
  }

  write(offset: number, data: Uint8Array): void {
    let sleep: SleepState | undefined;
    for (let i = 0; i < data.length; i++) {
      const off = offset + i;
      const val = data[i]!;
      if (off < PM1_EN) this.clearPm1Status(val << (8 * off));
      else if (off < PM1_CNT) this.setByte(S_PM1_EN, off - PM1_EN, val, PM1_EN_MASK);
      else if (off < PM1_CNT + PM1_CNT_LEN) {
        this.setByte(S_PM1_CNT, off - PM1_CNT, val, PM1_CNT_MASK);
        // SLP_TYP and SLP_EN share the high byte, so the state comes from this very write.
        if (off === PM1_CNT + 1 && (val << 8) & SLP_EN) sleep = this.sleepState() ?? sleep;
      } else if (off >= PM_TMR && off < PM_TMR + PM_TMR_LEN) {
        // The timer is read-only: writes vanish.
      } else {
        countBad(this.region);
        break;
      }
    }
    this.updateSci();
    if (sleep !== undefined) this.callbacks.sleep(sleep);
  }

  /** Power-on state: no events pending or enabled, SLP_TYP 0, the timer from 0, SCI low. */
  reset(): void {
    this.powerOn();
    this.view.setUint8(S_SCI_LEVEL, 0);
    this.callbacks.sci.set(false);
  }

  /** The host pressed the power button: PWRBTN_STS, and the SCI if PWRBTN_EN. */
  pressPowerButton(): void {
    this.setPm1Status(PWRBTN_STS);
  }

  /** The machine resumed from S3: WAK_STS tells the OS it woke up. */
  wake(): void {
    this.setPm1Status(WAK_STS);
  }

  /** A general-purpose event `bit` (0-15) happened: GPE0_STS, and the SCI if enabled. */
  raiseGpe0(bit: number): void {
    if (!Number.isInteger(bit) || bit < 0 || bit >= 8 * GPE0_EN) throw new RangeError(`AcpiPm: no GPE0 bit ${bit}`);
    this.view.setUint16(S_GPE0_STS, this.view.getUint16(S_GPE0_STS, true) | (1 << bit), true);
    this.updateSci();
  }

  private powerOn(): void {
    this.region.u8.fill(0, S_PM1_STS, AcpiPm.STATE_BYTES);
    this.view.setBigInt64(S_TMR_BASE, this.now(), true);
  }

  private readGpe0(offset: number, data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) {
      const off = offset + i;
      if (off >= GPE0_BLK_LEN) {
        data.fill(0xff, i);
        countBad(this.region);
        return;
      }
      data[i] = this.view.getUint8((off < GPE0_EN ? S_GPE0_STS : S_GPE0_EN) + (off & 1));
    }
  }

  private writeGpe0(offset: number, data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) {
      const off = offset + i;
      if (off >= GPE0_BLK_LEN) {
        countBad(this.region);
        break;
      }
      const at = (off < GPE0_EN ? S_GPE0_STS : S_GPE0_EN) + (off & 1);
      const old = this.view.getUint8(at);
      this.view.setUint8(at, off < GPE0_EN ? old & ~data[i]! : data[i]!);
    }
    this.updateSci();
  }

  private setByte(at: number, byte: number, val: number, mask: number): void {
    const shift = 8 * byte;
    const old = this.view.getUint16(at, true);
    const keep = old & ~(0xff << shift);
    this.view.setUint16(at, (keep | ((val << shift) & mask)) & 0xffff, true);
  }

  private setPm1Status(bits: number): void {
    this.view.setUint16(S_PM1_STS, this.view.getUint16(S_PM1_STS, true) | bits, true);
    this.updateSci();
  }

  private clearPm1Status(bits: number): void {
    this.view.setUint16(S_PM1_STS, this.view.getUint16(S_PM1_STS, true) & ~bits, true);
    if (bits & TMR_STS) this.view.setFloat64(S_TMR_EPOCH, this.timerEpoch(), true);
  }

  /** PM1_STS as the guest sees it: the stored bits plus the computed TMR_STS. */
  private pm1Status(): number {
    return this.view.getUint16(S_PM1_STS, true) | (this.timerOverflowed() ? TMR_STS : 0);
  }

  private sleepState(): SleepState | undefined {
    switch ((this.view.getUint16(S_PM1_CNT, true) & SLP_TYP_MASK) >> SLP_TYP_SHIFT) {
      case SLP_TYP_S5: return 'S5';
      case SLP_TYP_S3: return 'S3';
      case SLP_TYP_S4: return 'S4';
      default: return undefined;
    }
  }

  /** Timer ticks since power-on, unwrapped. */
  private ticks(): number {
    const elapsed = this.now() - this.view.getBigInt64(S_TMR_BASE, true);
    if (elapsed <= 0n) return 0;
    return Number((elapsed * BigInt(PM_TIMER_FREQUENCY)) / NS_PER_S);
  }

  private timer(): number {
    return this.ticks() % (PM_TMR_MASK + 1);
  }

  private timerEpoch(): number {
    return Math.floor(this.ticks() / TMR_STS_PERIOD);
  }

  private timerOverflowed(): boolean {
    return this.timerEpoch() !== this.view.getFloat64(S_TMR_EPOCH, true);
  }

  private updateSci(): void {
    const en = this.view.getUint16(S_PM1_EN, true);
    let pending = this.view.getUint16(S_PM1_STS, true) & en & PM1_SCI_EVENTS;
    // Reading the clock only matters when the timer's event is enabled.
    if (en & TMR_EN && this.timerOverflowed()) pending |= TMR_STS;
    pending |= this.view.getUint16(S_GPE0_STS, true) & this.view.getUint16(S_GPE0_EN, true);
    const level = pending !== 0 ? 1 : 0;
    // The last level lives in shared state so every thread agrees on when the line changes.
    if (this.view.getUint8(S_SCI_LEVEL) !== level) {
      this.view.setUint8(S_SCI_LEVEL, level);
      this.callbacks.sci.set(level === 1);
    }
  }
}
