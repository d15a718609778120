import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OptsSyntaxError } from './opts-error.js';
import { memorySizeFromOption, parseSizeValue, qemuStrtosz } from './size.js';

const KiB = 1024n;
const MiB = KiB * KiB;
const GiB = MiB * KiB;

test('qemuStrtosz reads what QEMU 7.2 reads', () => {
  const cases: Array<[string, bigint]> = [
    ['0', 0n],
    ['512', 512n],
    ['512b', 512n],
    ['1k', KiB],
    ['1048576K', GiB],
    ['512M', 512n * MiB],
    ['2g', 2n * GiB],
    ['1T', 1024n * GiB],
    ['1.5G', 3n * (GiB / 2n)],
    ['1.k', KiB], // a lone dot is skipped
    ['0x10', 16n],
    ['0x10M', 16n * MiB], // deprecated but accepted by 7.2
    [' 256', 256n],
    ['+256', 256n],
    ['1.5e', 3n << 59n], // `e` without digits is the exabyte suffix
  ];
  for (const [text, bytes] of cases) {
    assert.deepEqual(qemuStrtosz(text), { ok: true, bytes, hexWithSuffix: text === '0x10M' }, text);
  }
});

test('qemuStrtosz refuses what QEMU refuses', () => {
  for (const text of ['', 'foo', '-1', '0.5', '1.5', '1e3', '1.5e3', '64MB', '256x', '0x1.5', '2 G']) {
    assert.deepEqual(qemuStrtosz(text), { ok: false, reason: 'invalid' }, text);
  }
  for (const text of ['16E', '20000000000000000000', '17179869184T']) {
    assert.deepEqual(qemuStrtosz(text), { ok: false, reason: 'range' }, text);
  }
  // Overflow followed by more text is "invalid", as QEMU's early exit makes it.
  assert.deepEqual(qemuStrtosz('99999999999999999999G'), { ok: false, reason: 'invalid' });
});

test('parseSizeValue words errors as QEMU', () => {
  // qemu-system-x86_64 -m foo:
  //   qemu-system-x86_64: -m foo: Parameter 'size' expects a non-negative number below 2^64
  //   Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-
  //   and exabytes, respectively.
  assert.throws(() => parseSizeValue('size', 'foo'), {
    name: 'OptsSyntaxError',
    message:
      "Parameter 'size' expects a non-negative number below 2^64\n" +
      'Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\n' +
      'and exabytes, respectively.',
  });
  // qemu-system-x86_64 -m 16E: ... -m 16E: Value '16E' is out of range for parameter 'size'
  assert.throws(() => parseSizeValue('size', '16E'), new OptsSyntaxError("Value '16E' is out of range for parameter 'size'"));
});

test('-m: digits mean MiB, 0 means the default, sizes round up to 8 KiB', () => {
  assert.equal(memorySizeFromOption('256').bytes, 256n * MiB);
  assert.equal(memorySizeFromOption('2G').bytes, 2n * GiB);
  assert.equal(memorySizeFromOption('0').bytes, undefined);
  // Checked with QMP query-memory-size-summary: -m 1000001K → 1024008192, -m 512b → 8192.
  assert.equal(memorySizeFromOption('1000001K').bytes, 1024008192n);
  assert.equal(memorySizeFromOption('512b').bytes, 8192n);
  assert.equal(memorySizeFromOption('1.k').bytes, 8192n);
  // -m 0x100 → 256 MiB and "warning: Using a multiplier suffix on hex numbers is deprecated: 0x100M"
  assert.deepEqual(memorySizeFromOption('0x100'), {
    bytes: 256n * MiB,
    warning: 'warning: Using a multiplier suffix on hex numbers is deprecated: 0x100M',
  });
  // -m 17592186044416 (2^44 MiB = 2^64): "Parameter 'memory.size' expects size"
  assert.throws(() => memorySizeFromOption('17592186044416'), { message: "Parameter 'memory.size' expects size" });
});
