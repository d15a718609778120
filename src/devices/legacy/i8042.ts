/**
 * The PC's i8042 keyboard controller with its PS/2 keyboard and mouse, as QEMU 7.2 models
 * them (hw/input/pckbd.c with extended state, hw/input/ps2.c). One device over ports
 * 0x60..0x64: offset 0 is the data port, offset 4 status (read) / command (write).
 *
 * State lives in the shared region; the caller holds the device lock. Differences from QEMU:
 * no keyboard throttle timer (the next byte is in the output buffer as soon as the last one is
 * read), no host key or mouse input yet, and the A20 gate is not wired (KVM guests keep A20 on).
 */
import type { BusDevice, IrqLine, MachineRequests } from '../device.js';
import type { SharedRegion } from '../shared-state.js';

export const I8042_DATA = 0; // port 0x60
export const I8042_COMMAND = 4; // port 0x64

// Controller commands (written to port 0x64).
export const KBD_CCMD_READ_MODE = 0x20;
export const KBD_CCMD_WRITE_MODE = 0x60;
export const KBD_CCMD_MOUSE_DISABLE = 0xa7;
export const KBD_CCMD_MOUSE_ENABLE = 0xa8;
export const KBD_CCMD_TEST_MOUSE = 0xa9;
export const KBD_CCMD_SELF_TEST = 0xaa;
export const KBD_CCMD_KBD_TEST = 0xab;
export const KBD_CCMD_KBD_DISABLE = 0xad;
export const KBD_CCMD_KBD_ENABLE = 0xae;
export const KBD_CCMD_READ_INPORT = 0xc0;
export const KBD_CCMD_READ_OUTPORT = 0xd0;
export const KBD_CCMD_WRITE_OUTPORT = 0xd1;
export const KBD_CCMD_WRITE_OBUF = 0xd2;
export const KBD_CCMD_WRITE_AUX_OBUF = 0xd3;
export const KBD_CCMD_WRITE_MOUSE = 0xd4;
export const KBD_CCMD_DISABLE_A20 = 0xdd;
export const KBD_CCMD_ENABLE_A20 = 0xdf;
export const KBD_CCMD_PULSE_BITS_3_0 = 0xf0;
export const KBD_CCMD_RESET = 0xfe;
export const KBD_CCMD_NO_OP = 0xff;

// Keyboard commands and replies.
export const KBD_CMD_SET_LEDS = 0xed;
export const KBD_CMD_ECHO = 0xee;
export const KBD_CMD_SCANCODE = 0xf0;
export const KBD_CMD_GET_ID = 0xf2;
export const KBD_CMD_SET_RATE = 0xf3;
export const KBD_CMD_ENABLE = 0xf4;
export const KBD_CMD_RESET_DISABLE = 0xf5;
export const KBD_CMD_RESET_ENABLE = 0xf6;
export const KBD_CMD_SET_TYPEMATIC = 0xf7;
export const KBD_CMD_SET_MAKE_BREAK = 0xfc;
export const KBD_CMD_RESET = 0xff;
export const KBD_REPLY_POR = 0xaa;
export const KBD_REPLY_ID = 0xab;
export const KBD_REPLY_ACK = 0xfa;
export const KBD_REPLY_RESEND = 0xfe;

// Status register.
export const KBD_STAT_OBF = 0x01;
export const KBD_STAT_IBF = 0x02;
export const KBD_STAT_SELFTEST = 0x04; // the "system flag"
export const KBD_STAT_CMD = 0x08; // A2: QEMU leaves it set from reset on
export const KBD_STAT_UNLOCKED = 0x10;
export const KBD_STAT_MOUSE_OBF = 0x20;

// Controller mode ("command byte").
export const KBD_MODE_KBD_INT = 0x01;
export const KBD_MODE_MOUSE_INT = 0x02;
export const KBD_MODE_SYS = 0x04;
export const KBD_MODE_DISABLE_KBD = 0x10;
export const KBD_MODE_DISABLE_MOUSE = 0x20;
export const KBD_MODE_KCC = 0x40;

// Output port.
export const KBD_OUT_RESET = 0x01; // 0 holds the CPU in reset
export const KBD_OUT_A20 = 0x02;
export const KBD_OUT_OBF = 0x10;
export const KBD_OUT_MOUSE_OBF = 0x20;
const KBD_OUT_ONES = 0xcc;

// PS/2 mouse commands.
export const AUX_SET_SCALE11 = 0xe6;
export const AUX_SET_SCALE21 = 0xe7;
export const AUX_SET_RES = 0xe8;
export const AUX_GET_SCALE = 0xe9;
export const AUX_SET_STREAM = 0xea;
export const AUX_POLL = 0xeb;
export const AUX_RESET_WRAP = 0xec;
export const AUX_SET_WRAP = 0xee;
export const AUX_SET_REMOTE = 0xf0;
export const AUX_GET_TYPE = 0xf2;
export const AUX_SET_SAMPLE = 0xf3;
export const AUX_ENABLE_DEV = 0xf4;
export const AUX_DISABLE_DEV = 0xf5;
export const AUX_SET_DEFAULT = 0xf6;
export const AUX_RESET = 0xff;
export const AUX_ACK = 0xfa;

const MOUSE_STATUS_REMOTE = 0x40;
const MOUSE_STATUS_ENABLED = 0x20;
const MOUSE_STATUS_SCALE21 = 0x10;

// Who has data for the output buffer. The device bits equal the mode bits that disable them.
const KBD_PENDING_CTRL_KBD = 0x04;
const KBD_PENDING_CTRL_AUX = 0x08;
const KBD_PENDING_KBD = KBD_MODE_DISABLE_KBD;
const KBD_PENDING_AUX = KBD_MODE_DISABLE_MOUSE;

const KBD_OBSRC_KBD = 0x01;
const KBD_OBSRC_MOUSE = 0x02;
const KBD_OBSRC_CTRL = 0x04;

/** Scan code set numbers as reported with translation on (QEMU's translate_table). */
const TRANSLATED_SET = [0xff, 0x43, 0x41, 0x3f] as const;

const PS2_QUEUE_SIZE = 16;

// Layout of the shared region (byte offsets).
const S_INIT = 0; // i32
const S_BAD = 4; // u32
const S_STATUS = 8;
const S_MODE = 9;
const S_OUTPORT = 10;
const S_WRITE_CMD = 11;
const S_PENDING = 12; // controller replies only; device data is pending when its queue is not empty
const S_OBSRC = 13;
const S_OBDATA = 14;
const S_CBDATA = 15;
const S_KBD_IRQ = 16;
const S_AUX_IRQ = 17;
const S_KBD_WRITE_CMD = 18;
const S_KBD_SCAN_ENABLED = 19;
const S_KBD_SCANCODE_SET = 20;
const S_KBD_TRANSLATE = 21;
const S_KBD_LEDS = 22;
const S_AUX_WRITE_CMD = 23;
const S_MOUSE_STATUS = 24;
const S_MOUSE_RES = 25;
const S_MOUSE_RATE = 26;
const S_MOUSE_TYPE = 27;
const S_MOUSE_DETECT = 28;
const S_MOUSE_WRAP = 29;
// A PS/2 queue: read index, count, last byte read, then the bytes.
const Q_RPTR = 0;
const Q_COUNT = 1;
const Q_LAST = 2;
const Q_DATA = 4;
const S_KBD_QUEUE = 32;
const S_AUX_QUEUE = S_KBD_QUEUE + Q_DATA + PS2_QUEUE_SIZE;

export class I8042 implements BusDevice {
  static readonly STATE_BYTES = S_AUX_QUEUE + Q_DATA + PS2_QUEUE_SIZE;

  private readonly u8: Uint8Array;

  constructor(
    private readonly region: SharedRegion,
    private readonly kbdIrq: IrqLine,
    private readonly auxIrq: IrqLine,
    private readonly requests: MachineRequests,
  ) {
    if (region.length < I8042.STATE_BYTES) throw new RangeError('I8042: shared region too small');
    this.u8 = region.u8;
    if (Atomics.compareExchange(region.i32, S_INIT >> 2, 0, 1) === 0) this.powerOn();
  }

  /** Bad guest accesses seen so far (the unused ports 0x61-0x63). */
  get badAccesses(): number {
    return this.region.view.getUint32(S_BAD, true);
  }

  // Only the low byte of a wider access counts, as in QEMU's i8042 port handlers.
  read(offset: number, data: Uint8Array): void {
    data.fill(0xff);
    if (offset === I8042_DATA) data[0] = this.readData();
    else if (offset === I8042_COMMAND) data[0] = this.u8[S_STATUS]!;
    else this.countBad();
  }

  write(offset: number, data: Uint8Array): void {
    const val = data[0]!;
    if (offset === I8042_DATA) this.writeData(val);
    else if (offset === I8042_COMMAND) this.writeCommand(val);
    else this.countBad();
  }

  reset(): void {
    const u8 = this.u8;
    u8[S_MODE] = KBD_MODE_KBD_INT | KBD_MODE_MOUSE_INT;
    u8[S_STATUS] = KBD_STAT_CMD | KBD_STAT_UNLOCKED;
    u8[S_OUTPORT] = KBD_OUT_RESET | KBD_OUT_A20 | KBD_OUT_ONES;
    u8[S_PENDING] = 0;
    u8[S_WRITE_CMD] = 0;
    this.resetKeyboard();
    u8[S_KBD_TRANSLATE] = 0;
    this.resetMouse();
    u8[S_MOUSE_TYPE] = 0;
    u8[S_MOUSE_WRAP] = 0;
    this.queueReset(S_AUX_QUEUE);
    u8[S_KBD_WRITE_CMD] = 0;
    u8[S_AUX_WRITE_CMD] = 0;
    // Force both lines low, whatever the shared state believed.
    u8[S_KBD_IRQ] = 1;
    u8[S_AUX_IRQ] = 1;
    this.deassertIrq();
  }

  private powerOn(): void {
    this.u8.fill(0, S_STATUS, I8042.STATE_BYTES);
    const u8 = this.u8;
    u8[S_MODE] = KBD_MODE_KBD_INT | KBD_MODE_MOUSE_INT;
    u8[S_STATUS] = KBD_STAT_CMD | KBD_STAT_UNLOCKED;
    u8[S_OUTPORT] = KBD_OUT_RESET | KBD_OUT_A20 | KBD_OUT_ONES;
    u8[S_KBD_SCAN_ENABLED] = 1;
    u8[S_KBD_SCANCODE_SET] = 2;
  }

  private countBad(): void {
    const v = this.region.view;
    v.setUint32(S_BAD, (v.getUint32(S_BAD, true) + 1) >>> 0, true);
  }

  // ---- controller ----

  private writeCommand(v: number): void {
    const u8 = this.u8;
    let val = v;
    // 0xF0-0xFF pulse output port bits 3-0 (0 = pulse); only bit 0, the CPU reset, matters.
    if ((val & KBD_CCMD_PULSE_BITS_3_0) === KBD_CCMD_PULSE_BITS_3_0) val = val & 1 ? KBD_CCMD_NO_OP : KBD_CCMD_RESET;
    switch (val) {
      case KBD_CCMD_READ_MODE:
        this.ctrlQueue(u8[S_MODE]!, false);
        break;
      case KBD_CCMD_WRITE_MODE:
      case KBD_CCMD_WRITE_OBUF:
      case KBD_CCMD_WRITE_AUX_OBUF:
      case KBD_CCMD_WRITE_MOUSE:
      case KBD_CCMD_WRITE_OUTPORT:
        u8[S_WRITE_CMD] = val;
        break;
      case KBD_CCMD_MOUSE_DISABLE:
        u8[S_MODE] = u8[S_MODE]! | KBD_MODE_DISABLE_MOUSE;
        break;
      case KBD_CCMD_MOUSE_ENABLE:
        u8[S_MODE] = u8[S_MODE]! & ~KBD_MODE_DISABLE_MOUSE;
        this.safeUpdateIrq();
        break;
      case KBD_CCMD_TEST_MOUSE:
      case KBD_CCMD_KBD_TEST:
        this.ctrlQueue(0x00, false); // interface OK
        break;
      case KBD_CCMD_SELF_TEST:
        u8[S_STATUS] = u8[S_STATUS]! | KBD_STAT_SELFTEST;
        this.ctrlQueue(0x55, false);
        break;
      case KBD_CCMD_KBD_DISABLE:
        u8[S_MODE] = u8[S_MODE]! | KBD_MODE_DISABLE_KBD;
        break;
      case KBD_CCMD_KBD_ENABLE:
        u8[S_MODE] = u8[S_MODE]! & ~KBD_MODE_DISABLE_KBD;
        this.safeUpdateIrq();
        break;
      case KBD_CCMD_READ_INPORT:
        this.ctrlQueue(0x80, false);
        break;
      case KBD_CCMD_READ_OUTPORT:
        this.ctrlQueue(u8[S_OUTPORT]!, false);
        break;
      case KBD_CCMD_ENABLE_A20:
        u8[S_OUTPORT] = u8[S_OUTPORT]! | KBD_OUT_A20;
        break;
      case KBD_CCMD_DISABLE_A20:
        u8[S_OUTPORT] = u8[S_OUTPORT]! & ~KBD_OUT_A20;
        break;
      case KBD_CCMD_RESET:
        this.requests.reset('guest-reset');
        break;
      case KBD_CCMD_NO_OP:
        break;
      default:
        this.countBad(); // unsupported command: QEMU logs it as a guest error
    }
  }

  private writeData(val: number): void {
    const u8 = this.u8;
    switch (u8[S_WRITE_CMD]) {
      case 0:
        this.keyboardWrite(val);
        // Talking to the keyboard re-enables its interface.
        u8[S_MODE] = u8[S_MODE]! & ~KBD_MODE_DISABLE_KBD;
        this.safeUpdateIrq();
        break;
      case KBD_CCMD_WRITE_MODE:
        u8[S_MODE] = val;
        u8[S_KBD_TRANSLATE] = val & KBD_MODE_KCC ? 1 : 0;
        this.updateIrqLines(); // interrupt enables act at once
        this.safeUpdateIrq(); // re-enabled interfaces may have data waiting
        break;
      case KBD_CCMD_WRITE_OBUF:
        this.ctrlQueue(val, false);
        break;
      case KBD_CCMD_WRITE_AUX_OBUF:
        this.ctrlQueue(val, true);
        break;
      case KBD_CCMD_WRITE_OUTPORT:
        u8[S_OUTPORT] = val;
        if (!(val & KBD_OUT_RESET)) this.requests.reset('guest-reset');
        break;
      case KBD_CCMD_WRITE_MOUSE:
        this.mouseWrite(val);
        u8[S_MODE] = u8[S_MODE]! & ~KBD_MODE_DISABLE_MOUSE;
        this.safeUpdateIrq();
        break;
    }
    u8[S_WRITE_CMD] = 0;
  }

  private readData(): number {
    const u8 = this.u8;
    if (u8[S_STATUS]! & KBD_STAT_OBF) {
      this.deassertIrq();
      const src = u8[S_OBSRC]!;
      if (src & KBD_OBSRC_KBD) u8[S_OBDATA] = this.queueRead(S_KBD_QUEUE);
      else if (src & KBD_OBSRC_MOUSE) u8[S_OBDATA] = this.queueRead(S_AUX_QUEUE);
      else if (src & KBD_OBSRC_CTRL) {
        u8[S_OBDATA] = u8[S_CBDATA]!;
        u8[S_PENDING] = u8[S_PENDING]! & ~(KBD_PENDING_CTRL_KBD | KBD_PENDING_CTRL_AUX);
      }
      // The next byte, if any, moves into the output buffer.
      if (this.pending()) this.updateIrq();
    }
    // With the buffer empty, QEMU returns the last byte again.
    return u8[S_OBDATA]!;
  }

  /** A controller reply (one byte, replacing any unread one). */
  private ctrlQueue(b: number, aux: boolean): void {
    const u8 = this.u8;
    u8[S_CBDATA] = b;
    u8[S_PENDING] = (u8[S_PENDING]! & ~(KBD_PENDING_CTRL_KBD | KBD_PENDING_CTRL_AUX)) |
      (aux ? KBD_PENDING_CTRL_AUX : KBD_PENDING_CTRL_KBD);
    this.safeUpdateIrq();
  }

  /** Sources with data, less the device interfaces the mode byte disables. */
  private pending(): number {
    const u8 = this.u8;
    let p = u8[S_PENDING]!;
    if (u8[S_KBD_QUEUE + Q_COUNT]) p |= KBD_PENDING_KBD;
    if (u8[S_AUX_QUEUE + Q_COUNT]) p |= KBD_PENDING_AUX;
    return p & (~u8[S_MODE]! | ~(KBD_PENDING_KBD | KBD_PENDING_AUX));
  }

  /** Load the output buffer from the highest-priority source: controller, keyboard, mouse. */
  private updateIrq(): void {
    const u8 = this.u8;
    const pending = this.pending();
    let status = u8[S_STATUS]! & ~(KBD_STAT_OBF | KBD_STAT_MOUSE_OBF);
    let outport = u8[S_OUTPORT]! & ~(KBD_OUT_OBF | KBD_OUT_MOUSE_OBF);
    if (pending) {
      status |= KBD_STAT_OBF;
      outport |= KBD_OUT_OBF;
      if (pending & KBD_PENDING_CTRL_KBD) {
        u8[S_OBSRC] = KBD_OBSRC_CTRL;
      } else if (pending & KBD_PENDING_CTRL_AUX) {
        status |= KBD_STAT_MOUSE_OBF;
        outport |= KBD_OUT_MOUSE_OBF;
        u8[S_OBSRC] = KBD_OBSRC_CTRL;
      } else if (pending & KBD_PENDING_KBD) {
        u8[S_OBSRC] = KBD_OBSRC_KBD;
      } else {
        status |= KBD_STAT_MOUSE_OBF;
        outport |= KBD_OUT_MOUSE_OBF;
        u8[S_OBSRC] = KBD_OBSRC_MOUSE;
      }
    }
    u8[S_STATUS] = status;
    u8[S_OUTPORT] = outport;
    this.updateIrqLines();
  }

  /** Only load the output buffer when it is empty (a full one reloads when read). */
  private safeUpdateIrq(): void {
    if (this.u8[S_STATUS]! & KBD_STAT_OBF) return;
    if (this.pending()) this.updateIrq();
  }

  private deassertIrq(): void {
    const u8 = this.u8;
    u8[S_STATUS] = u8[S_STATUS]! & ~(KBD_STAT_OBF | KBD_STAT_MOUSE_OBF);
    u8[S_OUTPORT] = u8[S_OUTPORT]! & ~(KBD_OUT_OBF | KBD_OUT_MOUSE_OBF);
    this.updateIrqLines();
  }

  private updateIrqLines(): void {
    const u8 = this.u8;
    const status = u8[S_STATUS]!;
    const mode = u8[S_MODE]!;
    let kbd = 0;
    let aux = 0;
    if (status & KBD_STAT_OBF) {
      if (status & KBD_STAT_MOUSE_OBF) aux = mode & KBD_MODE_MOUSE_INT ? 1 : 0;
      else kbd = mode & KBD_MODE_KBD_INT && !(mode & KBD_MODE_DISABLE_KBD) ? 1 : 0;
    }
    if (u8[S_KBD_IRQ] !== kbd) {
      u8[S_KBD_IRQ] = kbd;
      this.kbdIrq.set(kbd === 1);
    }
    if (u8[S_AUX_IRQ] !== aux) {
      u8[S_AUX_IRQ] = aux;
      this.auxIrq.set(aux === 1);
    }
  }

  // ---- PS/2 device queues ----

  private queueReset(q: number): void {
    this.u8[q + Q_RPTR] = 0;
    this.u8[q + Q_COUNT] = 0;
  }

  /** Device data for the controller (dropped when the queue is full, as in QEMU). */
  private queue(q: number, ...bytes: number[]): void {
    const u8 = this.u8;
    for (const b of bytes) {
      const count = u8[q + Q_COUNT]!;
      if (count >= PS2_QUEUE_SIZE) break;
      u8[q + Q_DATA + ((u8[q + Q_RPTR]! + count) % PS2_QUEUE_SIZE)] = b;
      u8[q + Q_COUNT] = count + 1;
    }
  }

  private queueRead(q: number): number {
    const u8 = this.u8;
    const count = u8[q + Q_COUNT]!;
    if (count === 0) return u8[q + Q_LAST]!;
    const rptr = u8[q + Q_RPTR]!;
    const b = u8[q + Q_DATA + rptr]!;
    u8[q + Q_RPTR] = (rptr + 1) % PS2_QUEUE_SIZE;
    u8[q + Q_COUNT] = count - 1;
    u8[q + Q_LAST] = b;
    return b;
  }

  // ---- PS/2 keyboard (an MF2 keyboard, as QEMU's) ----

  private resetKeyboard(): void {
    const u8 = this.u8;
    u8[S_KBD_SCAN_ENABLED] = 1;
    u8[S_KBD_SCANCODE_SET] = 2;
    u8[S_KBD_LEDS] = 0;
    this.queueReset(S_KBD_QUEUE);
  }

  private keyboardWrite(val: number): void {
    const u8 = this.u8;
    const q = S_KBD_QUEUE;
    // A new command drops replies the guest did not read (QEMU's command queue reset).
    this.queueReset(q);
    const cmd = u8[S_KBD_WRITE_CMD]!;
    u8[S_KBD_WRITE_CMD] = 0;
    switch (cmd) {
      case KBD_CMD_SCANCODE:
        if (val === 0) {
          const set = u8[S_KBD_SCANCODE_SET]!;
          this.queue(q, KBD_REPLY_ACK, u8[S_KBD_TRANSLATE] ? TRANSLATED_SET[set]! : set);
        } else if (val <= 3) {
          u8[S_KBD_SCANCODE_SET] = val;
          this.queue(q, KBD_REPLY_ACK);
        } else {
          this.queue(q, KBD_REPLY_RESEND);
        }
        return;
      case KBD_CMD_SET_LEDS:
        u8[S_KBD_LEDS] = val;
        this.queue(q, KBD_REPLY_ACK);
        return;
      case KBD_CMD_SET_RATE:
      case KBD_CMD_SET_MAKE_BREAK:
        this.queue(q, KBD_REPLY_ACK);
        return;
    }
    switch (val) {
      case 0x00:
        this.queue(q, KBD_REPLY_ACK);
        break;
      case KBD_CMD_GET_ID:
        this.queue(q, KBD_REPLY_ACK, KBD_REPLY_ID, u8[S_KBD_TRANSLATE] ? 0x41 : 0x83);
        break;
      case KBD_CMD_ECHO:
        this.queue(q, KBD_CMD_ECHO);
        break;
      case KBD_CMD_ENABLE:
        u8[S_KBD_SCAN_ENABLED] = 1;
        this.queue(q, KBD_REPLY_ACK);
        break;
      case KBD_CMD_SCANCODE:
      case KBD_CMD_SET_LEDS:
      case KBD_CMD_SET_RATE:
      case KBD_CMD_SET_MAKE_BREAK:
        u8[S_KBD_WRITE_CMD] = val; // a parameter byte follows
        this.queue(q, KBD_REPLY_ACK);
        break;
      case KBD_CMD_RESET_DISABLE:
        this.resetKeyboard();
        u8[S_KBD_SCAN_ENABLED] = 0;
        this.queue(q, KBD_REPLY_ACK);
        break;
      case KBD_CMD_RESET_ENABLE:
        this.resetKeyboard();
        this.queue(q, KBD_REPLY_ACK);
        break;
      case KBD_CMD_RESET:
        this.resetKeyboard();
        this.queue(q, KBD_REPLY_ACK, KBD_REPLY_POR);
        break;
      case KBD_CMD_SET_TYPEMATIC:
        this.queue(q, KBD_REPLY_ACK);
        break;
      default:
        this.queue(q, KBD_REPLY_RESEND);
    }
  }

  // ---- PS/2 mouse ----

  private resetMouse(): void {
    const u8 = this.u8;
    u8[S_MOUSE_STATUS] = 0;
    u8[S_MOUSE_RES] = 0;
    u8[S_MOUSE_RATE] = 0;
    u8[S_MOUSE_DETECT] = 0;
  }

  private mouseWrite(val: number): void {
    const u8 = this.u8;
    const q = S_AUX_QUEUE;
    const cmd = u8[S_AUX_WRITE_CMD]!;
    if (cmd === AUX_SET_SAMPLE) {
      u8[S_MOUSE_RATE] = val;
      this.detectWheel(val);
      this.queue(q, AUX_ACK);
      u8[S_AUX_WRITE_CMD] = 0;
      return;
    }
    if (cmd === AUX_SET_RES) {
      u8[S_MOUSE_RES] = val;
      this.queue(q, AUX_ACK);
      u8[S_AUX_WRITE_CMD] = 0;
      return;
    }
    if (u8[S_MOUSE_WRAP]) {
      // Wrap (echo) mode: everything but "reset wrap" and "reset" comes straight back.
      if (val === AUX_RESET_WRAP) {
        u8[S_MOUSE_WRAP] = 0;
        this.queue(q, AUX_ACK);
        return;
      }
      if (val !== AUX_RESET) {
        this.queue(q, val);
        return;
      }
    }
    const status = u8[S_MOUSE_STATUS]!;
    switch (val) {
      case AUX_SET_SCALE11:
        u8[S_MOUSE_STATUS] = status & ~MOUSE_STATUS_SCALE21;
        this.queue(q, AUX_ACK);
        break;
      case AUX_SET_SCALE21:
        u8[S_MOUSE_STATUS] = status | MOUSE_STATUS_SCALE21;
        this.queue(q, AUX_ACK);
        break;
      case AUX_SET_STREAM:
        u8[S_MOUSE_STATUS] = status & ~MOUSE_STATUS_REMOTE;
        this.queue(q, AUX_ACK);
        break;
      case AUX_SET_WRAP:
        u8[S_MOUSE_WRAP] = 1;
        this.queue(q, AUX_ACK);
        break;
      case AUX_SET_REMOTE:
        u8[S_MOUSE_STATUS] = status | MOUSE_STATUS_REMOTE;
        this.queue(q, AUX_ACK);
        break;
      case AUX_GET_TYPE:
        this.queue(q, AUX_ACK, u8[S_MOUSE_TYPE]!);
        break;
      case AUX_SET_RES:
      case AUX_SET_SAMPLE:
        u8[S_AUX_WRITE_CMD] = val;
        this.queue(q, AUX_ACK);
        break;
      case AUX_GET_SCALE:
        this.queue(q, AUX_ACK, status, u8[S_MOUSE_RES]!, u8[S_MOUSE_RATE]!);
        break;
      case AUX_POLL: {
        // A packet with no motion and no buttons (bit 3 is always one).
        const wheel = u8[S_MOUSE_TYPE] === 3 || u8[S_MOUSE_TYPE] === 4;
        this.queue(q, AUX_ACK, 0x08, 0, 0);
        if (wheel) this.queue(q, 0);
        break;
      }
      case AUX_ENABLE_DEV:
        u8[S_MOUSE_STATUS] = status | MOUSE_STATUS_ENABLED;
        this.queue(q, AUX_ACK);
        break;
      case AUX_DISABLE_DEV:
        u8[S_MOUSE_STATUS] = status & ~MOUSE_STATUS_ENABLED;
        this.queue(q, AUX_ACK);
        break;
      case AUX_SET_DEFAULT:
        u8[S_MOUSE_RATE] = 100;
        u8[S_MOUSE_RES] = 2;
        u8[S_MOUSE_STATUS] = 0;
        this.queue(q, AUX_ACK);
        break;
      case AUX_RESET:
        u8[S_MOUSE_RATE] = 100;
        u8[S_MOUSE_RES] = 2;
        u8[S_MOUSE_STATUS] = 0;
        u8[S_MOUSE_TYPE] = 0;
        this.queueReset(q);
        this.queue(q, AUX_ACK, 0xaa, 0);
        break;
      default:
        break; // QEMU's mouse ignores unknown commands without a reply
    }
  }

  /** The sample-rate knocks 200,100,80 (IntelliMouse) and 200,200,80 (Explorer). */
  private detectWheel(rate: number): void {
    const u8 = this.u8;
    switch (u8[S_MOUSE_DETECT]) {
      case 1:
        u8[S_MOUSE_DETECT] = rate === 100 ? 2 : rate === 200 ? 3 : 0;
        break;
      case 2:
        if (rate === 80) u8[S_MOUSE_TYPE] = 3;
        u8[S_MOUSE_DETECT] = 0;
        break;
      case 3:
        if (rate === 80) u8[S_MOUSE_TYPE] = 4;
        u8[S_MOUSE_DETECT] = 0;
        break;
      default:
        if (rate === 200) u8[S_MOUSE_DETECT] = 1;
    }
  }
}
