import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OptsSyntaxError } from './opts-error.js';
import { parseEnumProperty, parseUintProperty, parseUnsigned } from './qemu-values.js';

function message(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof OptsSyntaxError);
    return e.message;
  }
  return '';
}

test('parseUnsigned reads as strtoull with base 0 over the whole text', () => {
  const cases: Array<[string, bigint | undefined]> = [
    ['0', 0n], ['10', 10n], ['0x10', 16n], ['0X1f', 31n], ['010', 8n], [' 5', 5n], ['\t+5', 5n],
    ['-0', 0n], ['-1', (1n << 64n) - 1n], ['18446744073709551615', (1n << 64n) - 1n],
    ['18446744073709551616', undefined], ['', undefined], ['-', undefined], ['0x', undefined],
    ['08', undefined], ['5 ', undefined], ['1k', undefined], ['5.0', undefined], ['abc', undefined],
  ];
  for (const [text, value] of cases) assert.equal(parseUnsigned(text), value, JSON.stringify(text));
  // QEMU's parse_uint (the -object path) refuses a minus sign, even -0.
  assert.equal(parseUnsigned('-0', false), undefined);
  assert.equal(parseUnsigned(' +7', false), 7n);
});

test('parseUintProperty words each failure as the path the value took', () => {
  assert.equal(parseUintProperty('notify-window', '4294967295', 32, 'accel'), 4294967295);
  assert.equal(message(() => parseUintProperty('notify-window', 'abc', 32, 'accel')), "Parameter 'notify-window' expects uint64");
  assert.equal(message(() => parseUintProperty('notify-window', '-1', 32, 'accel')), "Parameter 'notify-window' expects uint32_t");
  assert.equal(message(() => parseUintProperty('ioport', 'abc', 16, 'device')), "Parameter 'ioport' expects integer");
  assert.equal(message(() => parseUintProperty('ioport', '65536', 16, 'device')), "Parameter 'ioport' expects uint16_t");
  assert.equal(message(() => parseUintProperty('x', '-1', 32, 'object')), "Parameter 'x' expects a uint64 value");
  assert.equal(message(() => parseUintProperty('x', '4294967296', 32, 'object')), "Parameter 'x' expects uint32_t");
});

test('parseEnumProperty takes exactly one of the names', () => {
  assert.equal(parseEnumProperty('kernel-irqchip', 'split', ['on', 'off', 'split']), 'split');
  assert.equal(message(() => parseEnumProperty('kernel-irqchip', 'On', ['on', 'off'])), "Parameter 'kernel-irqchip' does not accept value 'On'");
});
