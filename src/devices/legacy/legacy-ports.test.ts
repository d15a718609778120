import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SharedArena } from '../shared-state.js';
import type { BusDevice } from '../device.js';
import {
  Dma8237, DmaPageRegisters, PC_LEGACY_PORTS, PciConfigStub, PostPort, SystemControlPortA, SystemControlPortB,
  type PitChannel2,
} from './legacy-ports.js';
import { RecordingRequests } from '../test-doubles.js';


const arena = (): SharedArena => SharedArena.create(4096);
const inb = (dev: BusDevice, off: number): number => {
  const d = new Uint8Array(1);
  dev.read(off, d);
  return d[0]!;
};
const outb = (dev: BusDevice, off: number, v: number): void => dev.write(off, Uint8Array.of(v));

void test('the port table has no overlaps and matches the PC layout', () => {
  const sorted = [...PC_LEGACY_PORTS].sort((a, b) => a.base - b.base);
  for (let i = 1; i < sorted.length; i++) {
    assert.ok(sorted[i - 1]!.base + sorted[i - 1]!.length <= sorted[i]!.base, `${sorted[i]!.name} overlaps`);
  }
  assert.deepEqual(PC_LEGACY_PORTS.map((p) => p.base), [0x00, 0x61, 0x80, 0x81, 0x92, 0xc0, 0xcf8]);
});

void test('POST port 0x80: writes vanish, reads are all ones (QEMU ioport80)', () => {
  const post = new PostPort();
  outb(post, 0, 0x12);
  assert.equal(inb(post, 0), 0xff);
  const d = new Uint8Array(4);
  post.read(0, d);
  assert.deepEqual([...d], [0xff, 0xff, 0xff, 0xff]);
});

void test('port 0x61: refresh bit toggles on every read, gate and speaker bits latch', () => {
  const p = new SystemControlPortB(arena().alloc(SystemControlPortB.STATE_BYTES));
  const a = inb(p, 0);
  const b = inb(p, 0);
  assert.equal((a ^ b) & 0x10, 0x10);
  assert.equal(a & 0x23, 0);
  outb(p, 0, 0x03);
  const c = inb(p, 0);
  assert.equal(c & 0x03, 0x03);
  assert.equal(c & 0x20, 0x20, 'without a PIT hook, OUT2 reads as the gate');
  outb(p, 0, 0x00);
  assert.equal(inb(p, 0) & 0x23, 0);
});

void test('port 0x61 drives PIT channel 2 through the hook when given', () => {
  const gates: boolean[] = [];
  let out = false;
  const pit: PitChannel2 = { setGate: (g) => gates.push(g), output: () => out };
  const p = new SystemControlPortB(arena().alloc(SystemControlPortB.STATE_BYTES), pit);
  outb(p, 0, 0x01);
  assert.deepEqual(gates, [true]);
  assert.equal(inb(p, 0) & 0x20, 0);
  out = true;
  assert.equal(inb(p, 0) & 0x20, 0x20);
});

void test('port 0x92: a rising edge on bit 0 resets once; the bit reads back', () => {
  const req = new RecordingRequests();
  const p = new SystemControlPortA(arena().alloc(SystemControlPortA.STATE_BYTES), req);
  assert.equal(inb(p, 0), 0);
  outb(p, 0, 0x02); // fast A20 on
  assert.equal(req.resets, 0);
  assert.equal(inb(p, 0), 0x02);
  outb(p, 0, 0x03);
  assert.equal(req.resets, 1);
  outb(p, 0, 0x03); // still high: no new edge
  assert.equal(req.resets, 1);
  p.reset?.();
  assert.equal(inb(p, 0), 0x02, 'reset clears bit 0 only');
  outb(p, 0, 0x01);
  assert.equal(req.resets, 2);
});

void test('8237: address/count through the flip-flop, mask register, master clear', () => {
  const dma = new Dma8237(arena().alloc(Dma8237.STATE_BYTES), { dshift: 0 });
  assert.equal(dma.length, 16);
  outb(dma, 0x0c, 0); // clear flip-flop
  outb(dma, 0x04, 0x34); // channel 2 address, low then high
  outb(dma, 0x04, 0x12);
  outb(dma, 0x05, 0xff); // channel 2 count
  outb(dma, 0x05, 0x01);
  outb(dma, 0x0c, 0);
  assert.deepEqual([inb(dma, 0x04), inb(dma, 0x04), inb(dma, 0x05), inb(dma, 0x05)], [0x34, 0x12, 0xff, 0x01]);
  assert.equal(inb(dma, 0x09), 0xff, 'all channels masked after power-on (QEMU reads the mask here)');
  outb(dma, 0x0a, 0x02); // unmask channel 2
  assert.equal(inb(dma, 0x09), 0xfb);
  outb(dma, 0x0e, 0); // clear all masks
  assert.equal(inb(dma, 0x09), 0x00);
  outb(dma, 0x04, 0x77); // leaves the flip-flop at "high"
  outb(dma, 0x0d, 0); // master clear: flip-flop low, everything masked
  assert.equal(inb(dma, 0x09), 0xff);
  assert.equal(inb(dma, 0x04), 0x77);
  assert.equal(inb(dma, 0x08), 0x00, 'status');
});

void test('8237 second controller: registers on even ports, odd ports alias', () => {
  const dma = new Dma8237(arena().alloc(Dma8237.STATE_BYTES), { dshift: 1 });
  assert.equal(dma.length, 0x20);
  outb(dma, 0x18, 0); // 0xd8: clear flip-flop
  outb(dma, 0x04, 0xaa); // 0xc4: channel 5 address low
  outb(dma, 0x05, 0xbb); // 0xc5 aliases 0xc4: address high
  outb(dma, 0x18, 0);
  assert.equal(inb(dma, 0x04), 0xaa);
  assert.equal(inb(dma, 0x04), 0xbb);
  outb(dma, 0x1e, 0x0e); // 0xde: write mask
  assert.equal(inb(dma, 0x12), 0x0e); // 0xd2
});

void test('DMA page registers: present ports latch, holes read all ones', () => {
  const pages = new DmaPageRegisters(arena().alloc(DmaPageRegisters.STATE_BYTES));
  const off = (port: number): number => port - 0x81;
  for (const port of [0x81, 0x82, 0x83, 0x87, 0x89, 0x8a, 0x8b, 0x8f]) {
    outb(pages, off(port), port & 0x7f);
    assert.equal(inb(pages, off(port)), port & 0x7f);
  }
  outb(pages, off(0x84), 0x12);
  assert.equal(inb(pages, off(0x84)), 0xff);
  assert.equal(pages.badAccesses, 2);
});

void test('PCI config without a host bridge: Linux type-1 probe passes, no device answers', () => {
  const req = new RecordingRequests();
  const pci = new PciConfigStub(arena().alloc(PciConfigStub.STATE_BYTES), req);
  const inl = (off: number): number => {
    const d = new Uint8Array(4);
    pci.read(off, d);
    return new DataView(d.buffer).getUint32(0, true);
  };
  const outl = (off: number, v: number): void => {
    const d = new Uint8Array(4);
    new DataView(d.buffer).setUint32(0, v, true);
    pci.write(off, d);
  };
  outb(pci, 3, 0x01); // pci_check_type1 pokes 0xcfb first: ignored
  assert.equal(inl(0), 0);
  outl(0, 0x80000000);
  assert.equal(inl(0), 0x80000000);
  outl(0, 0x80000000 | (0 << 11)); // bus 0, device 0, vendor id
  assert.equal(inl(4), 0xffffffff);
  const w = new Uint8Array(2);
  pci.read(6, w);
  assert.deepEqual([...w], [0xff, 0xff]);
  assert.equal(req.resets, 0);
});

void test('reset control at 0xcf9: bit 2 resets, bit 1 is remembered', () => {
  const req = new RecordingRequests();
  const pci = new PciConfigStub(arena().alloc(PciConfigStub.STATE_BYTES), req);
  outb(pci, 1, 0x02);
  assert.equal(inb(pci, 1), 0x02);
  assert.equal(req.resets, 0);
  outb(pci, 1, 0x06); // the sequence Linux's reboot=pci writes
  assert.equal(req.resets, 1);
  pci.reset();
  assert.equal(inb(pci, 1), 0x00);
});

void test('two objects over one region (two threads) share the DMA controller', () => {
  const region = arena().alloc(Dma8237.STATE_BYTES);
  const a = new Dma8237(region, { dshift: 0 });
  outb(a, 0x0f, 0x05);
  const b = new Dma8237(region, { dshift: 0 }); // must not master-clear live state
  assert.equal(inb(b, 0x09), 0x05);
});
