// Plays Linux's 8250 driver (drivers/tty/serial/8250/8250_port.c) against the model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SharedArena } from '../shared-state.js';
import type { ByteSink } from '../device.js';
import {
  Serial8250, UART_DLL, UART_DLM, UART_FCR, UART_IER, UART_IER_RDI, UART_IER_RLSI, UART_IER_THRI, UART_IIR,
  UART_LCR, UART_LCR_DLAB, UART_LSR, UART_LSR_DR, UART_LSR_OE, UART_LSR_TEMT, UART_LSR_THRE, UART_MCR,
  UART_MCR_LOOP, UART_MCR_OUT2, UART_MSR, UART_RX, UART_SCR, UART_TX,
} from './serial-8250.js';
import { RecordingIrq } from '../test-doubles.js';


class Collect implements ByteSink {
  bytes: number[] = [];
  write(b: Uint8Array): void {
    this.bytes.push(...b);
  }
}

function setup() {
  const arena = SharedArena.create(4096);
  const region = arena.alloc(Serial8250.STATE_BYTES);
  const irq = new RecordingIrq();
  const out = new Collect();
  const uart = new Serial8250(region, irq, out);
  const inb = (reg: number): number => {
    const d = new Uint8Array(1);
    uart.read(reg, d);
    return d[0]!;
  };
  const outb = (reg: number, v: number): void => uart.write(reg, Uint8Array.of(v));
  return { region, irq, out, uart, inb, outb };
}

void test('power-on state matches QEMU: THR empty, MCR.OUT2 set, 9600 baud, no interrupt', () => {
  const { inb, outb } = setup();
  assert.equal(inb(UART_LSR), UART_LSR_THRE | UART_LSR_TEMT);
  assert.equal(inb(UART_IIR), 0x01);
  assert.equal(inb(UART_MCR), UART_MCR_OUT2);
  assert.equal(inb(UART_MSR), 0xb0); // DCD | DSR | CTS
  outb(UART_LCR, UART_LCR_DLAB);
  assert.equal(inb(UART_DLL), 0x0c);
  assert.equal(inb(UART_DLM), 0x00);
});

void test('autoconfig probe: IER, scratch, loopback MSR, FIFO type', () => {
  const { inb, outb } = setup();
  // IER must read back 0 and then 0x0f (upper nibble masked).
  outb(UART_IER, 0);
  assert.equal(inb(UART_IER), 0);
  outb(UART_IER, 0xff);
  assert.equal(inb(UART_IER) & 0x0f, 0x0f);
  assert.equal(inb(UART_IER), 0x0f);
  outb(UART_IER, 0);
  // Scratch register round trip.
  for (const v of [0x55, 0xaa, 0x00]) {
    outb(UART_SCR, v);
    assert.equal(inb(UART_SCR), v);
  }
  // Loopback: MCR = LOOP | OUT2 | RTS must show DCD | CTS in MSR.
  outb(UART_MCR, UART_MCR_LOOP | 0x0a);
  assert.equal(inb(UART_MSR) & 0xf0, 0x90);
  outb(UART_MCR, UART_MCR_LOOP | 0x05); // OUT1 | DTR -> RI | DSR
  assert.equal(inb(UART_MSR) & 0xf0, 0x60);
  outb(UART_MCR, UART_MCR_OUT2);
  // FCR enable: IIR bits 7:6 = 3 means a 16550A with working FIFOs.
  outb(UART_FCR, 0x01);
  assert.equal(inb(UART_IIR) >> 6, 3);
  outb(UART_FCR, 0x21); // the 16750 64-byte bit must not stick
  assert.equal((inb(UART_IIR) >> 5) & 1, 0);
  outb(UART_FCR, 0x00);
  assert.equal(inb(UART_IIR) >> 6, 0);
});

void test('baud divisor via DLAB leaves IER and THR alone', () => {
  const { inb, outb, out } = setup();
  outb(UART_IER, 0x05);
  outb(UART_LCR, UART_LCR_DLAB | 0x03);
  outb(UART_DLL, 0x01); // 115200
  outb(UART_DLM, 0x00);
  assert.equal(inb(UART_DLL), 0x01);
  assert.equal(inb(UART_DLM), 0x00);
  assert.deepEqual(out.bytes, []);
  outb(UART_LCR, 0x03);
  assert.equal(inb(UART_IER), 0x05);
  assert.equal(inb(UART_LCR), 0x03);
  outb(UART_TX, 0x41);
  assert.deepEqual(out.bytes, [0x41]);
});

void test('THRE interrupt: raised when enabled with THR empty, cleared by reading IIR, raised again by TX', () => {
  const { inb, outb, irq, out } = setup();
  outb(UART_FCR, 0x07);
  outb(UART_MCR, UART_MCR_OUT2 | 0x03);
  assert.equal(irq.level, false);
  outb(UART_IER, UART_IER_THRI);
  assert.equal(irq.level, true, 'setting IER.THRI with THR empty raises at once');
  assert.equal(inb(UART_IIR), 0xc2);
  assert.equal(irq.level, false, 'reading IIR that reports THRI clears it');
  assert.equal(inb(UART_IIR), 0xc1);
  const before = irq.levels.length;
  outb(UART_TX, 0x68);
  assert.deepEqual(out.bytes, [0x68]);
  assert.equal(irq.level, true);
  assert.deepEqual(irq.levels.slice(before), [true], 'one rising edge per emptied THR');
  assert.equal(inb(UART_LSR) & (UART_LSR_THRE | UART_LSR_TEMT), UART_LSR_THRE | UART_LSR_TEMT);
  // A second byte while the line is high: lower then raise, a fresh edge for an edge-triggered PIC.
  const n = irq.levels.length;
  outb(UART_TX, 0x69);
  assert.deepEqual(irq.levels.slice(n), [false, true]);
  // Turning THRI off drops it; on again re-raises (Linux's UART_BUG_THRE probe).
  outb(UART_IER, 0);
  assert.equal(irq.level, false);
  assert.equal(inb(UART_IIR), 0xc1);
  outb(UART_IER, UART_IER_THRI);
  assert.equal(irq.level, true);
});

void test('the IRQ line needs MCR.OUT2, as on a PC', () => {
  const { inb, outb, irq } = setup();
  outb(UART_MCR, 0x03); // DTR | RTS, no OUT2
  outb(UART_IER, UART_IER_THRI);
  assert.equal(irq.level, false, 'pending but gated');
  assert.equal(inb(UART_IIR) & 0x0f, 0x02, 'IIR still reports it');
  outb(UART_IER, 0);
  outb(UART_IER, UART_IER_THRI);
  assert.equal(irq.level, false);
  outb(UART_MCR, 0x0b);
  assert.equal(irq.level, true);
  outb(UART_MCR, 0x03);
  assert.equal(irq.level, false);
});

void test('receive with the FIFO: trigger level, timeout, full FIFO, overrun-free stop', () => {
  const { uart, inb, outb, irq } = setup();
  outb(UART_FCR, 0x87); // enable, clear both, trigger at 8 bytes
  outb(UART_IER, UART_IER_RDI | UART_IER_RLSI);
  assert.equal(uart.rxFree, 16);
  assert.equal(uart.receive(Uint8Array.of(1, 2, 3)), 3);
  assert.equal(inb(UART_LSR) & UART_LSR_DR, UART_LSR_DR);
  assert.equal(inb(UART_IIR), 0xcc, 'below the trigger level: character timeout');
  assert.equal(irq.level, true);
  assert.equal(uart.receive(new Uint8Array(5).fill(4)), 5);
  assert.equal(inb(UART_IIR), 0xc4, 'at the trigger level: received data available');
  assert.equal(uart.receive(new Uint8Array(20).fill(9)), 8, 'takes only what fits');
  assert.equal(uart.rxFree, 0);
  assert.equal(uart.receive(Uint8Array.of(7)), 0);
  assert.equal(inb(UART_LSR) & UART_LSR_OE, 0, 'flow control, not overrun');
  const got: number[] = [];
  while (inb(UART_LSR) & UART_LSR_DR) got.push(inb(UART_RX));
  assert.deepEqual(got, [1, 2, 3, 4, 4, 4, 4, 4, 9, 9, 9, 9, 9, 9, 9, 9]);
  assert.equal(inb(UART_IIR), 0xc1);
  assert.equal(irq.level, false);
  assert.equal(uart.rxFree, 16);
});

void test('receive without the FIFO: one byte in RBR, then full', () => {
  const { uart, inb, outb, irq } = setup();
  outb(UART_IER, UART_IER_RDI);
  assert.equal(uart.rxFree, 1);
  assert.equal(uart.receive(Uint8Array.of(0x61, 0x62)), 1);
  assert.equal(irq.level, true);
  assert.equal(inb(UART_IIR), 0x04);
  assert.equal(uart.rxFree, 0);
  assert.equal(inb(UART_RX), 0x61);
  assert.equal(irq.level, false);
  assert.equal(uart.receive(Uint8Array.of(0x62)), 1);
  assert.equal(inb(UART_RX), 0x62);
});

void test('FCR receiver clear empties the FIFO and drops DR', () => {
  const { uart, inb, outb } = setup();
  outb(UART_FCR, 0x01);
  uart.receive(Uint8Array.of(1, 2));
  outb(UART_FCR, 0x03);
  assert.equal(inb(UART_LSR) & UART_LSR_DR, 0);
  assert.equal(uart.rxFree, 16);
});

void test('loopback: transmitted bytes are received, not sent; host input is refused', () => {
  const { uart, inb, outb, out } = setup();
  outb(UART_FCR, 0x07);
  outb(UART_MCR, UART_MCR_LOOP | UART_MCR_OUT2);
  outb(UART_TX, 0x5a);
  outb(UART_TX, 0xa5);
  assert.deepEqual(out.bytes, []);
  assert.equal(uart.receive(Uint8Array.of(1)), 0);
  assert.equal(inb(UART_RX), 0x5a);
  assert.equal(inb(UART_RX), 0xa5);
  assert.equal(inb(UART_LSR) & UART_LSR_DR, 0);
  // Without the FIFO a second byte overruns the first; LSR read clears OE.
  outb(UART_FCR, 0x00);
  outb(UART_TX, 1);
  outb(UART_TX, 2);
  assert.equal(inb(UART_LSR) & UART_LSR_OE, UART_LSR_OE);
  assert.equal(inb(UART_LSR) & UART_LSR_OE, 0);
  assert.equal(inb(UART_RX), 2);
  outb(UART_MCR, UART_MCR_OUT2);
  outb(UART_TX, 0x21);
  assert.deepEqual(out.bytes, [0x21]);
});

void test('scratch writes touch no interrupt state', () => {
  const { uart, irq, inb } = setup();
  const d = new Uint8Array(1);
  for (let i = 0; i < 1000; i++) {
    d[0] = i & 0xff;
    uart.write(UART_SCR, d);
  }
  assert.equal(inb(UART_SCR), 999 & 0xff);
  assert.deepEqual(irq.levels, []);
});

void test('a 16-bit access is two byte accesses, as in QEMU; past the end is counted', () => {
  const { uart, inb, out } = setup();
  uart.write(UART_TX, Uint8Array.of(0x41, 0x03)); // THR then IER
  assert.deepEqual(out.bytes, [0x41]);
  assert.equal(inb(UART_IER), 0x03);
  const d = new Uint8Array(2);
  uart.read(UART_SCR, d);
  assert.equal(d[1], 0xff);
  assert.equal(uart.badAccesses, 1);
});

void test('two objects over one region (two threads) see the same registers', () => {
  const arena = SharedArena.create(4096);
  const region = arena.alloc(Serial8250.STATE_BYTES);
  const irq = new RecordingIrq();
  const a = new Serial8250(region, irq, new Collect());
  a.write(UART_SCR, Uint8Array.of(0x42));
  a.write(UART_LCR, Uint8Array.of(0x03));
  // The second object must not re-run power-on over live state.
  const b = new Serial8250(region, irq, new Collect());
  const d = new Uint8Array(1);
  b.read(UART_SCR, d);
  assert.equal(d[0], 0x42);
  b.read(UART_LCR, d);
  assert.equal(d[0], 0x03);
  a.receive(Uint8Array.of(0x7a));
  b.read(UART_RX, d);
  assert.equal(d[0], 0x7a);
  assert.equal(a.rxFree, 1);
});

void test('reset returns to power-on and lowers the line', () => {
  const { uart, inb, outb, irq } = setup();
  outb(UART_IER, UART_IER_THRI);
  assert.equal(irq.level, true);
  outb(UART_SCR, 9);
  uart.reset();
  assert.equal(irq.level, false);
  assert.equal(inb(UART_IER), 0);
  assert.equal(inb(UART_SCR), 0);
  assert.equal(inb(UART_MCR), UART_MCR_OUT2);
});
