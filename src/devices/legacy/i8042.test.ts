// Plays Linux's i8042 probe (drivers/input/serio/i8042.c), atkbd and psmouse against the model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SharedArena } from '../shared-state.js';
import {
  I8042, I8042_COMMAND, I8042_DATA, KBD_STAT_MOUSE_OBF, KBD_STAT_OBF, KBD_STAT_SELFTEST,
} from './i8042.js';
import { RecordingIrq, RecordingRequests } from '../test-doubles.js';



function setup(region = SharedArena.create(4096).alloc(I8042.STATE_BYTES)) {
  const kbd = new RecordingIrq();
  const aux = new RecordingIrq();
  const req = new RecordingRequests();
  const dev = new I8042(region, kbd, aux, req);
  const inb = (off: number): number => {
    const d = new Uint8Array(1);
    dev.read(off, d);
    return d[0]!;
  };
  const outb = (off: number, v: number): void => dev.write(off, Uint8Array.of(v));
  const status = (): number => inb(I8042_COMMAND);
  const command = (cmd: number, param?: number): void => {
    assert.equal(status() & 0x02, 0, 'input buffer must be empty before a write');
    outb(I8042_COMMAND, cmd);
    if (param !== undefined) outb(I8042_DATA, param);
  };
  /** Everything in the output buffer, with the status seen before each byte. */
  const drain = (): Array<[number, number]> => {
    const got: Array<[number, number]> = [];
    for (let st = status(); st & KBD_STAT_OBF && got.length < 32; st = status()) got.push([st, inb(I8042_DATA)]);
    return got;
  };
  const bytes = (): number[] => drain().map(([, b]) => b);
  return { region, dev, kbd, aux, req, inb, outb, status, command, drain, bytes };
}

void test('power-on status and unused ports', () => {
  const { status, inb, dev } = setup();
  assert.equal(status(), 0x18); // CMD | UNLOCKED, output buffer empty
  for (const off of [1, 2, 3]) assert.equal(inb(off), 0xff);
  assert.equal(dev.badAccesses, 3);
});

void test('Linux probe: flush, self test, CTR read/write, interface tests, AUX loopback', () => {
  const { command, bytes, drain, status, kbd, aux } = setup();
  assert.deepEqual(bytes(), []); // i8042_flush finds nothing
  command(0xaa);
  assert.deepEqual(bytes(), [0x55]);
  assert.equal(status() & KBD_STAT_SELFTEST, KBD_STAT_SELFTEST, 'system flag after self test');
  command(0x20);
  assert.deepEqual(bytes(), [0x03]); // KBDINT | AUXINT from reset
  // Linux disables both ports and their interrupts while probing.
  command(0x60, 0x74); // KBDDIS | AUXDIS | XLATE | SYS... minus ints
  command(0x20);
  assert.deepEqual(bytes(), [0x74]);
  command(0xab);
  assert.deepEqual(bytes(), [0x00]);
  // i8042_check_aux: loopback through the AUX port comes back flagged as AUX data.
  command(0xd3, 0x5a);
  const [[st, b]] = drain() as [[number, number]];
  assert.equal(b, 0x5a);
  assert.equal(st & KBD_STAT_MOUSE_OBF, KBD_STAT_MOUSE_OBF);
  command(0xa9);
  assert.deepEqual(bytes(), [0x00]);
  // i8042_toggle_aux: the AUXDIS bit must follow 0xA7/0xA8.
  command(0xa8);
  command(0x20);
  assert.equal(bytes()[0]! & 0x20, 0);
  command(0xa7);
  command(0x20);
  assert.equal(bytes()[0]! & 0x20, 0x20);
  assert.equal(kbd.level, false);
  assert.equal(aux.level, false, 'interrupts disabled in CTR: no IRQs so far');
});

void test('IRQ12 for AUX data and IRQ1 for keyboard data when the CTR enables them', () => {
  const { command, inb, status, kbd, aux } = setup();
  command(0x60, 0x03);
  command(0xd3, 0xa5); // the AUX IRQ test Linux runs
  assert.equal(aux.level, true);
  assert.equal(kbd.level, false);
  assert.equal(status() & 0x21, 0x21);
  assert.equal(inb(I8042_DATA), 0xa5);
  assert.equal(aux.level, false);
  command(0xd2, 0x1c); // as if typed
  assert.equal(kbd.level, true);
  assert.equal(inb(I8042_DATA), 0x1c);
  assert.equal(kbd.level, false);
  // With KBDINT off the byte waits without an interrupt.
  command(0x60, 0x02);
  command(0xd2, 0x1d);
  assert.equal(kbd.level, false);
  assert.equal(status() & KBD_STAT_OBF, KBD_STAT_OBF);
});

void test('keyboard: reset, get id, LEDs, unknown command', () => {
  const { outb, bytes, command, kbd } = setup();
  command(0x60, 0x03);
  outb(I8042_DATA, 0xff);
  assert.equal(kbd.level, true);
  assert.deepEqual(bytes(), [0xfa, 0xaa]);
  outb(I8042_DATA, 0xf2);
  assert.deepEqual(bytes(), [0xfa, 0xab, 0x83]);
  command(0x60, 0x43); // XLATE on: the id a translated keyboard reports
  outb(I8042_DATA, 0xf2);
  assert.deepEqual(bytes(), [0xfa, 0xab, 0x41]);
  outb(I8042_DATA, 0xed);
  assert.deepEqual(bytes(), [0xfa]);
  outb(I8042_DATA, 0x07);
  assert.deepEqual(bytes(), [0xfa]);
  // A new command drops an unread reply (QEMU's command queue reset); atkbd reads each ACK.
  outb(I8042_DATA, 0xf4);
  outb(I8042_DATA, 0xf5);
  assert.deepEqual(bytes(), [0xfa]);
  outb(I8042_DATA, 0xee);
  assert.deepEqual(bytes(), [0xee]);
  outb(I8042_DATA, 0xf0);
  assert.deepEqual(bytes(), [0xfa]);
  outb(I8042_DATA, 0x00);
  assert.deepEqual(bytes(), [0xfa, 0x41]); // set 2, as reported through translation
  outb(I8042_DATA, 0x42);
  assert.deepEqual(bytes(), [0xfe]);
});

void test('keyboard data port write re-enables a disabled keyboard interface', () => {
  const { outb, command, bytes } = setup();
  command(0xad);
  command(0x20);
  assert.equal(bytes()[0]! & 0x10, 0x10);
  outb(I8042_DATA, 0xf4);
  assert.deepEqual(bytes(), [0xfa]);
  command(0x20);
  assert.equal(bytes()[0]! & 0x10, 0);
});

void test('mouse behind 0xD4 answers as QEMU: reset, id, IntelliMouse knock, status', () => {
  const { command, drain, bytes, aux } = setup();
  command(0x60, 0x03);
  command(0xd4, 0xff);
  assert.equal(aux.level, true);
  const got = drain();
  assert.deepEqual(got.map(([, b]) => b), [0xfa, 0xaa, 0x00]);
  for (const [st] of got) assert.equal(st & KBD_STAT_MOUSE_OBF, KBD_STAT_MOUSE_OBF);
  for (const rate of [200, 100, 80]) {
    command(0xd4, 0xf3);
    command(0xd4, rate);
  }
  assert.deepEqual(bytes(), [0xfa, 0xfa, 0xfa, 0xfa, 0xfa, 0xfa]); // the mouse queue keeps every ACK
  command(0xd4, 0xf2);
  assert.deepEqual(bytes(), [0xfa, 0x03]);
  command(0xd4, 0xe9);
  assert.deepEqual(bytes(), [0xfa, 0x00, 0x02, 80]);
});

void test('0xFE pulses the reset line exactly once; output port bit 0 low resets too', () => {
  const { command, bytes, req } = setup();
  command(0xfe);
  assert.equal(req.resets, 1);
  command(0xff); // pulse nothing
  command(0xfd); // pulse bit 1 only
  assert.equal(req.resets, 1);
  command(0xd0);
  assert.deepEqual(bytes(), [0xcf]);
  command(0xd1, 0xdf); // A20 on, reset line high: nothing happens
  assert.equal(req.resets, 1);
  command(0xd1, 0xde);
  assert.equal(req.resets, 2);
  assert.equal(req.shutdowns, 0);
});

void test('two objects over one region (two threads) share the controller', () => {
  const region = SharedArena.create(4096).alloc(I8042.STATE_BYTES);
  const a = setup(region);
  a.command(0x60, 0x47);
  const b = setup(region);
  b.command(0x20);
  assert.deepEqual(a.bytes(), [0x47]);
});

void test('reset empties the buffer and lowers both lines', () => {
  const { command, dev, kbd, status } = setup();
  command(0xd2, 0x11);
  assert.equal(kbd.level, true);
  dev.reset();
  assert.equal(kbd.level, false);
  assert.equal(status(), 0x18);
});
