import { test } from 'node:test';
import assert from 'node:assert/strict';

import { formatDouble, formatQmpJson, formatString, qdictOrder } from './json-writer.js';

test("object members come out in QEMU's QDict order (captured from QEMU 7.2)", () => {
  // Each pair: keys in the order QEMU inserts them → the order QEMU 7.2 printed them.
  const seen: [string[], string[]][] = [
    [['return', 'id'], ['return', 'id']],
    [['error', 'id'], ['id', 'error']],
    [['class', 'desc'], ['class', 'desc']],
    [['running', 'singlestep', 'status'], ['status', 'singlestep', 'running']],
    [['b', 'a', 'c'], ['a', 'b', 'c']],
    [['timestamp', 'event', 'data'], ['timestamp', 'event', 'data']],
    [['seconds', 'microseconds'], ['seconds', 'microseconds']],
    [['guest', 'reason'], ['guest', 'reason']],
    [['version', 'capabilities'], ['version', 'capabilities']],
    [['qemu', 'package'], ['qemu', 'package']],
    [['major', 'minor', 'micro'], ['micro', 'minor', 'major']],
    [['enabled', 'present'], ['enabled', 'present']],
    [['cpu-index', 'qom-path', 'thread-id', 'props', 'target'], ['thread-id', 'props', 'qom-path', 'cpu-index', 'target']],
    [['socket-id', 'core-id', 'thread-id'], ['core-id', 'thread-id', 'socket-id']],
  ];
  for (const [inserted, printed] of seen) assert.deepEqual(qdictOrder(inserted), printed, inserted.join(','));
});

test('a greeting is byte-identical to QEMU 7.2 (with its Debian package string)', () => {
  const greeting = {
    QMP: {
      version: { qemu: { major: 7, minor: 2, micro: 22 }, package: 'Debian 1:7.2+dfsg-7+deb12u18+b3' },
      capabilities: ['oob'],
    },
  };
  assert.equal(
    formatQmpJson(greeting),
    '{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "capabilities": ["oob"]}}',
  );
  assert.equal(formatQmpJson({ return: {}, id: [1, 2] }), '{"return": {}, "id": [1, 2]}');
  assert.equal(formatQmpJson({ a: undefined, b: [] }), '{"b": []}');
});

test('doubles print as %.17g', () => {
  assert.equal(formatDouble(0.1), '0.10000000000000001');
  assert.equal(formatDouble(1e300), '1.0000000000000001e+300');
  assert.equal(formatDouble(1e20), '1e+20');
  assert.equal(formatDouble(-(2 ** 63)), '-9.2233720368547758e+18');
  assert.equal(formatDouble(1.5), '1.5');
  assert.equal(formatDouble(150), '150');
  assert.equal(formatDouble(-0), '-0');
  assert.equal(formatDouble(1e-5), '1.0000000000000001e-05');
  assert.equal(formatDouble(0.0001), '0.0001');
  assert.equal(formatDouble(1.2345678901234568e29), '1.2345678901234568e+29');
  assert.equal(formatQmpJson([0.1, 100, -0, 18446744073709551615n, Infinity]), '[0.10000000000000001, 100, -0, 18446744073709551615, null]');
});

test('strings escape as QEMU does', () => {
  // Captured: the id "é😀\u0001\u007f/" came back like this.
  assert.equal(formatString('é😀\u0001\u007f/'), '"\\u00E9\\uD83D\\uDE00\\u0001\\u007F/"');
  assert.equal(formatString('/\b\f\n\r\t"\\\u00e9\u007f \u0080\''), '"/\\b\\f\\n\\r\\t\\"\\\\\\u00E9\\u007F \\u0080\'"');
  assert.equal(formatString('\ud800x\ufffe'), '"\\uFFFDx\\uFFFD"');
  assert.equal(formatString('\u0000'), '"\\u0000"');
});

test('values without a JSON form are refused', () => {
  assert.throws(() => formatQmpJson(() => 1), TypeError);
  assert.throws(() => formatQmpJson(new Map()), TypeError);
});
