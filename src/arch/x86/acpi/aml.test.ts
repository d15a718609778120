import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  buffer, concat, device, eisaId, integer, ioFixed, ioPort, irqNoFlags, name, nameSeg, nameString, pkg, pkgLength,
  resourceTemplate, scope, string,
} from './aml.js';

const bytes = (a: Uint8Array): number[] => [...a];
const ascii = (s: string): number[] => [...s].map((c) => c.charCodeAt(0));

void test('PkgLength: one byte up to 63, then 2, 3 and 4 bytes with the low nibble in the lead byte', () => {
  assert.deepEqual(bytes(pkgLength(0)), [0x01]);
  assert.deepEqual(bytes(pkgLength(62)), [0x3f]);
  assert.deepEqual(bytes(pkgLength(63)), [0x41, 0x04]); //          65 = 0x041
  assert.deepEqual(bytes(pkgLength(4093)), [0x4f, 0xff]); //        4095 = 0xfff
  assert.deepEqual(bytes(pkgLength(4094)), [0x81, 0x00, 0x01]); //  4097 = 0x01001
  assert.deepEqual(bytes(pkgLength(0xffffc)), [0x8f, 0xff, 0xff]); // 0xfffff
  assert.deepEqual(bytes(pkgLength(0xffffd)), [0xc1, 0x00, 0x00, 0x01]); // 0x100001
  assert.throws(() => pkgLength(2 ** 28), RangeError);
  assert.throws(() => pkgLength(-1), RangeError);
});

void test('integers take the shortest encoding', () => {
  assert.deepEqual(bytes(integer(0)), [0x00]);
  assert.deepEqual(bytes(integer(1)), [0x01]);
  assert.deepEqual(bytes(integer(2)), [0x0a, 0x02]);
  assert.deepEqual(bytes(integer(0xff)), [0x0a, 0xff]);
  assert.deepEqual(bytes(integer(0x100)), [0x0b, 0x00, 0x01]);
  assert.deepEqual(bytes(integer(0x10000)), [0x0c, 0x00, 0x00, 0x01, 0x00]);
  assert.deepEqual(bytes(integer(0xffffffff)), [0x0c, 0xff, 0xff, 0xff, 0xff]);
  assert.deepEqual(bytes(integer(0x1_0000_0000)), [0x0e, 0, 0, 0, 0, 1, 0, 0, 0]);
  assert.deepEqual(bytes(integer(0xffff_ffff_ffff_ffffn)), [0xff]);
  assert.throws(() => integer(-1), RangeError);
  assert.throws(() => integer(2n ** 64n), RangeError);
});

void test('name strings: segments padded with _, root and parent prefixes, dual and multi paths', () => {
  assert.deepEqual(bytes(nameSeg('_SB')), ascii('_SB_'));
  assert.deepEqual(bytes(nameString('_S5_')), ascii('_S5_'));
  assert.deepEqual(bytes(nameString('\\_SB')), [0x5c, ...ascii('_SB_')]);
  assert.deepEqual(bytes(nameString('^^FOO')), [0x5e, 0x5e, ...ascii('FOO_')]);
  assert.deepEqual(bytes(nameString('_SB.COM1')), [0x2e, ...ascii('_SB_COM1')]);
  assert.deepEqual(bytes(nameString('\\_SB.PCI0.ISA')), [0x5c, 0x2f, 3, ...ascii('_SB_PCI0ISA_')]);
  assert.deepEqual(bytes(nameString('\\')), [0x5c, 0x00]);
  for (const bad of ['com1', '1ABC', 'TOOLONG', '', 'A-B']) assert.throws(() => nameSeg(bad), RangeError, bad);
});

void test('strings and EISA ids', () => {
  assert.deepEqual(bytes(string('QEMU0001')), [0x0d, ...ascii('QEMU0001'), 0]);
  assert.throws(() => string('é'), RangeError);
  const dword = (a: Uint8Array): number => new DataView(a.buffer, a.byteOffset + 1, 4).getUint32(0, true);
  assert.equal(eisaId('PNP0501')[0], 0x0c);
  assert.equal(dword(eisaId('PNP0501')), 0x0105d041);
  assert.equal(dword(eisaId('PNP0303')), 0x0303d041);
  assert.equal(dword(eisaId('PNP0B00')), 0x000bd041);
  assert.equal(dword(eisaId('PNP0F13')), 0x130fd041);
  assert.throws(() => eisaId('pnp0501'), RangeError);
  assert.throws(() => eisaId('PNP050'), RangeError);
});

void test('Name, Package, Scope and Device wrap their bodies with the right opcodes and lengths', () => {
  assert.deepEqual(bytes(name('_S5_', pkg([integer(0), integer(0), integer(0), integer(0)]))),
    [0x08, ...ascii('_S5_'), 0x12, 0x06, 0x04, 0, 0, 0, 0]);
  assert.deepEqual(bytes(device('COM1', [])), [0x5b, 0x82, 0x05, ...ascii('COM1')]);
  assert.deepEqual(bytes(scope('\\_SB', [name('X', integer(1))])),
    [0x10, 0x0c, 0x5c, ...ascii('_SB_'), 0x08, ...ascii('X___'), 0x01]);
  assert.deepEqual(bytes(buffer(Uint8Array.of(7, 8))), [0x11, 0x05, 0x0a, 0x02, 7, 8]);
  assert.throws(() => pkg(Array.from({ length: 256 }, () => integer(0))), RangeError);
});

void test('a long body gets a multi-byte PkgLength that covers exactly the body', () => {
  const body = Array.from({ length: 40 }, (_, i) => name(`N${i}`, integer(i)));
  const s = scope('\\_SB', body);
  assert.equal(s[0], 0x10);
  const lead = s[1]!;
  assert.equal(lead >> 6, 1, 'two-byte PkgLength');
  const len = (lead & 0x0f) | (s[2]! << 4);
  assert.equal(1 + len, s.length, 'PkgLength counts itself and everything after it');
  assert.deepEqual(bytes(s.subarray(3 + 5)), bytes(concat(body)));
});

void test('resource templates: IO, IRQNoFlags and the end tag, in a Buffer', () => {
  assert.deepEqual(bytes(ioFixed(0x3f8, 8)), [0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08]);
  assert.deepEqual(bytes(irqNoFlags([4])), [0x22, 0x10, 0x00]);
  assert.deepEqual(bytes(irqNoFlags([1, 12])), [0x22, 0x02, 0x10]);
  assert.deepEqual(bytes(resourceTemplate([ioFixed(0x3f8, 8), irqNoFlags([4])])),
    [0x11, 0x10, 0x0a, 0x0d, 0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08, 0x22, 0x10, 0x00, 0x79, 0x00]);
  assert.throws(() => irqNoFlags([16]), RangeError);
  assert.throws(() => ioPort(0x10000, 0x10000, 1, 1), RangeError);
  assert.throws(() => ioPort(0x100, 0xff, 1, 1), RangeError);
  assert.throws(() => ioFixed(0x100, 256), RangeError);
});
