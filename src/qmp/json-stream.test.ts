import { test } from 'node:test';
import assert from 'node:assert/strict';

import { JsonStream, type JsonStreamItem } from './json-stream.js';
import { formatQmpJson } from './json-writer.js';
import { prng } from '../testing/prng.js';

/** Items as one string each: a value as QEMU prints it, an error as "E: desc". */
const show = (items: JsonStreamItem[]): string[] =>
  items.map((i) => (i.kind === 'value' ? formatQmpJson(i.value) : `E: ${i.message}`));

const bytes = (s: string): Uint8Array => Buffer.from(s, 'latin1');
const feedAll = (input: Uint8Array, stream = new JsonStream()): string[] => show(stream.feed(input));

// Inputs sent to QEMU 7.2 over QMP, one connection each, and what it made of them (an object
// value here became a command; a non-object became "QMP input must be a JSON object").
// Strings are byte strings: each char is one byte.
const CAPTURED: [string, string[]][] = [
  ['{"execute":"query-name",}\n', ['E: JSON parse error, expecting value']],
  ['{"execute":"query-name" "x"}\n', ['E: JSON parse error, expected separator in dict']],
  ['@\n', ["E: JSON parse error, stray '@'"]],
  ['}\n', ['E: JSON parse error, expecting value']],
  [']\n', ['E: JSON parse error, expecting value']],
  ['[1,]\n', ['E: JSON parse error, expecting value']],
  ['{"a":}\n', ['E: JSON parse error, expecting value']],
  ['{,}\n', ['E: JSON parse error, expecting value']],
  ['{"a" 1}\n', ['E: JSON parse error, missing : in object pair']],
  ['{1:2}\n', ['E: JSON parse error, key is not a string in object']],
  ["{'execute':'query-name'}\n", ['{"execute": "query-name"}']],
  ['"abc\n"\n', ['E: JSON parse error, stray \'"abc\n\'']],
  ['tru\n', ["E: JSON parse error, invalid keyword 'tru'"]],
  ['truex\n', ["E: JSON parse error, invalid keyword 'truex'"]],
  ['TRUE\n', ["E: JSON parse error, stray 'T'"]],
  ['true1\n', ['true', '1']],
  ['01\n', ["E: JSON parse error, stray '01'"]],
  ['1.\n', ["E: JSON parse error, stray '1.\n'"]],
  ['-\n', ["E: JSON parse error, stray '-\n'"]],
  ['1e\n', ["E: JSON parse error, stray '1e\n'"]],
  ['0e5\n', ['0', "E: JSON parse error, invalid keyword 'e'", '5']],
  ['0.5e\n', ["E: JSON parse error, stray '0.5e\n'"]],
  ['1.5x\n', ['1.5', "E: JSON parse error, invalid keyword 'x'"]],
  ['-a\n', ["E: JSON parse error, stray '-a'"]],
  ['"\\x"\n', ['E: JSON parse error, invalid escape sequence in string']],
  ['"\\u12"\n', ['E: JSON parse error, \\u12" is not a valid Unicode character']],
  ['"\\u0000"\n', ['"\\u0000"']],
  ['"\\uD800"\n', ['E: JSON parse error, \\uD800 is not a valid Unicode character']],
  ['"\\uDC00"\n', ['E: JSON parse error, \\uDC00 is not a valid Unicode character']],
  ['["\\uFFFE","\\uFDD0"]\n', ['E: JSON parse error, \\uFFFE is not a valid Unicode character']],
  ['"\\uD83D\\uDE00"\n', ['"\\uD83D\\uDE00"']],
  ['"\xff"\n', ["E: JSON parse error, stray '\"\uFFFD'"]],
  ['"\xfe"\n', ["E: JSON parse error, stray '\"\uFFFD'"]],
  ['"\xc3"\n', ['E: JSON parse error, invalid UTF-8 sequence in string']],
  ['"\xc3\xa9"\n', ['"\\u00E9"']],
  ['"\xe0\x80\x80"\n', ['E: JSON parse error, invalid UTF-8 sequence in string']],
  ['"\xef\xbf\xbe"\n', ['E: JSON parse error, invalid UTF-8 sequence in string']],
  ['"\xc0\x80"\n', ['"\\u0000"']],
  ['"\xed\xa0\x80"\n', ['E: JSON parse error, invalid UTF-8 sequence in string']],
  ['"\xf0\x9f\x98\x80"\n', ['"\\uD83D\\uDE00"']],
  ['"\xf4\x90\x80\x80"\n', ['E: JSON parse error, invalid UTF-8 sequence in string']],
  ['\xff\n', ["E: JSON parse error, stray '\uFFFD'"]],
  ['%\n', ["E: JSON parse error, stray '%'"]],
  ['{"execute":"query-name"}{"execute":"query-name","id":2}', ['{"execute": "query-name"}', '{"execute": "query-name", "id": 2}']],
  ['1 2 3\n', ['1', '2', '3']],
  ['[\n', []],
  ['{"id":"a"}x{"id":"b"}\n', ['{"id": "a"}', "E: JSON parse error, invalid keyword 'x'", '{"id": "b"}']],
  ['{"a":1,"a":2}\n', ['E: JSON parse error, duplicate key']],
  ['[1 2]\n', ['E: JSON parse error, expected separator in list']],
  ['\t\r\n  {"id":3}  \n', ['{"id": 3}']],
  ['{"id":"x\x01y"}\n', ['E: JSON parse error, stray \'"x\u0001\'', 'E: JSON parse error, expecting value']],
  ['{"execute":"q"\x00,"id":4}\n', [
    "E: JSON parse error, stray ''",
    'E: JSON parse error, expecting value',
    '"id"',
    'E: JSON parse error, expecting value',
    '4',
    'E: JSON parse error, expecting value',
  ]],
  ['"a\x00,1\n', ['E: JSON parse error, stray \'"a\'', 'E: JSON parse error, expecting value', '1']],
  ['\x01,1\n', ["E: JSON parse error, stray '\u0001'", 'E: JSON parse error, expecting value', '1']],
  ['\f,1\n', ["E: JSON parse error, stray '\f'", 'E: JSON parse error, expecting value', '1']],
  ['1\xc3\n', ['1', "E: JSON parse error, stray '\uFFFD'"]],
  ['[1\xc3]\n', ["E: JSON parse error, stray '\uFFFD'", 'E: JSON parse error, expecting value']],
  ['\x04{"id":7}\n', ["E: JSON parse error, stray '\u0004'", '{"id": 7}']],
  ['{"e" \xff {"id":9}\n', ["E: JSON parse error, stray '\uFFFD'", '{"id": 9}']],
  ['"ab\\\x00"\n', ['E: JSON parse error, stray \'"ab\\\'']],
  ['"a\tb"\n', ['E: JSON parse error, stray \'"a\t\'']],
  ['[[[]]]]\n', ['[[[]]]', 'E: JSON parse error, expecting value']],
  ['{"id":1}}\n', ['{"id": 1}', 'E: JSON parse error, expecting value']],
  ['  \n', []],
  ['{"id": 00}\n', ["E: JSON parse error, stray '00'", 'E: JSON parse error, expecting value']],
  ['[0.1,1e300,-0,1E2,18446744073709551615,9223372036854775807,9223372036854775808,-9223372036854775809,100000000000000000000]', [
    '[0.10000000000000001, 1.0000000000000001e+300, 0, 100, 18446744073709551615, 9223372036854775807, 9223372036854775808, -9.2233720368547758e+18, 1e+20]',
  ]],
  ['[-0.0e0,1.5E+2,1E-400,1.0,true,false,null]', ['[-0, 150, 0, 1, true, false, null]']],
  ['{"b":1,"a":2,"c":3}', ['{"a": 2, "b": 1, "c": 3}']],
];

test('inputs QEMU 7.2 was given are split into the same values and errors', () => {
  for (const [input, expected] of CAPTURED) {
    assert.deepEqual(feedAll(bytes(input)), expected, JSON.stringify(input));
  }
});

test('nodevisor refuses numbers QEMU would turn into inf (a documented difference)', () => {
  assert.deepEqual(feedAll(bytes('[1e400]')), ["E: JSON parse error, number '1e400' is out of range"]);
});

test('every input gives the same result when split at any byte, or fed a byte at a time', () => {
  for (const [input, expected] of CAPTURED) {
    const all = bytes(input);
    for (let cut = 1; cut < all.length; cut++) {
      const s = new JsonStream();
      const got = [...feedAll(all.subarray(0, cut), s), ...feedAll(all.subarray(cut), s)];
      assert.deepEqual(got, expected, `${JSON.stringify(input)} cut at ${cut}`);
    }
    const s = new JsonStream();
    const got = [...all].flatMap((b) => feedAll(Uint8Array.of(b), s));
    assert.deepEqual(got, expected, `${JSON.stringify(input)} byte by byte`);
  }
});

test('messages glued together with or without whitespace, split inside UTF-8 sequences', () => {
  const messages = [
    '{"execute":"query-status","id":"é😀"}',
    '{"execute":"cont"}',
    '[1,{"a":[true,null]}]',
    '"x\\u00e9y"',
    '-12.5e-3',
    '{}',
  ];
  const expected = [
    '{"execute": "query-status", "id": "\\u00E9\\uD83D\\uDE00"}',
    '{"execute": "cont"}',
    '[1, {"a": [true, null]}]',
    '"x\\u00E9y"',
    '-0.012500000000000001',
    '{}',
  ];
  for (const sep of ['', '\n', ' ', '\r\n', '\t \n']) {
    // A number needs a terminator; the others are self-delimiting.
    const text = messages.map((m) => (m.startsWith('-') && sep === '' ? `${m} ` : m)).join(sep);
    const all = Buffer.from(text, 'utf8');
    assert.deepEqual(feedAll(all), expected, `sep ${JSON.stringify(sep)}`);
    for (let cut = 1; cut < all.length; cut++) {
      const s = new JsonStream();
      assert.deepEqual([...feedAll(all.subarray(0, cut), s), ...feedAll(all.subarray(cut), s)], expected, `cut ${cut}`);
    }
  }
});

test('nesting deeper than 1024 is refused and the stream recovers', () => {
  assert.deepEqual(feedAll(bytes(`${'['.repeat(1024)}${']'.repeat(1024)}\n`)), [`${'['.repeat(1024)}${']'.repeat(1024)}`]);
  const got = feedAll(bytes(`${'['.repeat(1025)}${']'.repeat(1025)}\n{"id":1}`));
  // Captured from QEMU 7.2: one limit error, then each of the 1025 ']' is "expecting value".
  assert.equal(got[0], 'E: JSON nesting depth limit exceeded');
  assert.equal(got.length, 1 + 1025 + 1);
  assert.ok(got.slice(1, 1026).every((g) => g === 'E: JSON parse error, expecting value'));
  assert.equal(got[1026], '{"id": 1}');
  const obj = feedAll(bytes(`${'{"a":'.repeat(1025)}1${'}'.repeat(1025)}\n`));
  assert.equal(obj[0], 'E: JSON nesting depth limit exceeded');
  assert.equal(obj.filter((g) => g === '"a"' || g === '1').length, 2);
  assert.equal(obj.filter((g) => g === 'E: JSON parse error, expecting value').length, 1026);
});

test('an endless string costs at most the message limit, then the stream recovers', () => {
  const s = new JsonStream({ maxMessageBytes: 64 * 1024 });
  const got: string[] = [];
  got.push(...feedAll(bytes('{"execute":"x","id":"'), s));
  const chunk = Buffer.alloc(64 * 1024, 'a');
  let peak = 0;
  for (let i = 0; i < 160; i++) {
    // 10 MiB in all, never terminated
    got.push(...feedAll(chunk, s));
    peak = Math.max(peak, s.bufferedBytes);
  }
  assert.ok(peak <= 64 * 1024 + 1, `peak ${peak}`);
  assert.deepEqual(got, ['E: JSON token size limit exceeded']);
  got.length = 0;
  got.push(...feedAll(bytes('"}\n{"id":2}\n'), s));
  assert.deepEqual(got.at(-1), '{"id": 2}');
});

test('many small tokens also stop at the limit', () => {
  const s = new JsonStream({ maxMessageBytes: 1000 });
  const got = feedAll(bytes(`[${'1,'.repeat(1000)}1]\n{"id":1}`), s);
  assert.equal(got[0], 'E: JSON token size limit exceeded');
  assert.equal(got.at(-1), '{"id": 1}');
  assert.ok(s.bufferedBytes === 0);
  const c = new JsonStream({ maxTokens: 10 });
  assert.equal(feedAll(bytes('[1,2,3,4,5,6]'), c)[0], 'E: JSON token count limit exceeded');
});

test('the default limit admits a 512 KiB message and refuses a 2 MiB one', () => {
  const ok = `{"id":"${'b'.repeat(512 * 1024)}"}`;
  assert.equal(feedAll(bytes(ok)).length, 1);
  assert.ok(!feedAll(bytes(ok))[0]?.startsWith('E:'));
  const big = feedAll(bytes(`{"id":"${'b'.repeat(2 << 20)}"}\n`));
  assert.equal(big[0], 'E: JSON token size limit exceeded');
});


// Values in and just outside the direct path's subset, so that both paths are exercised.
const SCALARS = [
  '0', '-0', '7', '-12', '999999999999999', '1000000000000000', '-999999999999999', '01', '1.5', '1e3', '0e5', '-',
  'true', 'false', 'null', 'nul', 'truex', '"x"', "'y'", '"a\\"b"', '"\\u00e9"', '"é"', '"\x7f"', '"\x01"', '""',
  '"execute"', '"query-status"', `"${'k'.repeat(40)}"`, '@',
];
const SPACES = ['', '', '', ' ', '\n', '\r\n', '\t', '\f'];

function randomMessage(rand: () => number, depth = 0): string {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
  const sp = (): string => (rand() < 0.8 ? '' : pick(SPACES));
  const r = rand();
  if (depth > 3 || (depth > 0 && r < 0.4)) return pick(SCALARS);
  const n = Math.floor(rand() * 4);
  const items = Array.from({ length: n }, () => randomMessage(rand, depth + 1));
  let body: string;
  if (r < 0.75) {
    const keys = ['"execute"', '"id"', '"arguments"', '"a"', "'b'", '"__proto__"', '1'];
    body = `{${items.map((v) => `${sp()}${pick(keys)}${sp()}:${sp()}${v}${sp()}`).join(',')}}`;
  } else {
    body = `[${items.map((v) => `${sp()}${v}${sp()}`).join(',')}]`;
  }
  // Now and then a cut-off message, an extra comma, a deep nest.
  const q = depth === 0 ? rand() : 1;
  if (q < 0.05) return body.slice(0, -1);
  if (q < 0.1) return `${body.slice(0, -1)},${body.slice(-1)}`;
  if (q < 0.12) return `${'['.repeat(300)}${body}${']'.repeat(300)}`;
  return body;
}

test('the direct path and the byte-by-byte lexer agree: whole, glued, split anywhere', () => {
  const rand = prng(0xd1ec7);
  for (let round = 0; round < 300; round++) {
    const count = 1 + Math.floor(rand() * 4);
    const text = Array.from({ length: count }, () => randomMessage(rand)).join(SPACES[Math.floor(rand() * SPACES.length)] ?? '');
    const all = Buffer.from(`${text}\n`, 'latin1');
    // A byte at a time never leaves a whole message in one chunk: the lexer and token parser alone.
    const s = new JsonStream();
    const reference = [...all].flatMap((b) => feedAll(Uint8Array.of(b), s));
    assert.deepEqual(feedAll(all), reference, `whole: ${JSON.stringify(text)}`);
    for (let k = 0; k < 10; k++) {
      const cut = 1 + Math.floor(rand() * (all.length - 1));
      const split = new JsonStream();
      const got = [...feedAll(all.subarray(0, cut), split), ...feedAll(all.subarray(cut), split)];
      assert.deepEqual(got, reference, `${JSON.stringify(text)} cut at ${cut}`);
    }
  }
});

test('a message completed across chunks is followed by direct-path messages in the same chunk', () => {
  const first = '{"execute":"query-status","id":1}';
  const rest = '{"execute":"query-name","id":2}\r\n{"execute":"query-kvm","id":3}';
  for (let cut = 1; cut < first.length; cut++) {
    const s = new JsonStream();
    assert.deepEqual(feedAll(bytes(first.slice(0, cut)), s), []);
    assert.deepEqual(feedAll(bytes(first.slice(cut) + rest), s), [
      '{"execute": "query-status", "id": 1}',
      '{"execute": "query-name", "id": 2}',
      '{"execute": "query-kvm", "id": 3}',
    ]);
    assert.equal(s.bufferedBytes, 0);
  }
  // After an error, the lexer skips to a resynchronisation point, then direct messages follow.
  const s = new JsonStream();
  assert.deepEqual(feedAll(bytes('{"a" @@@ \n{"id":1} {"id":2}{"id":'), s), [
    "E: JSON parse error, stray '@'",
    '{"id": 1}',
    '{"id": 2}',
  ]);
  assert.deepEqual(feedAll(bytes('3}'), s), ['{"id": 3}']);
});

test('a burst of 1000 glued requests in one chunk', () => {
  const one = '{"execute":"query-status","id":';
  const text = Array.from({ length: 1000 }, (_, i) => `${one}${i}}`).join(i2s(3));
  const got = feedAll(bytes(text));
  assert.equal(got.length, 1000);
  assert.equal(got[999], '{"execute": "query-status", "id": 999}');
});

/** Separators between glued messages: none, or whitespace. */
function i2s(n: number): string {
  return ['', ' ', '\n', '\r\n'][n % 4] ?? '';
}

test('the limits hold on the direct path too', () => {
  /** Whole, and a byte at a time (the lexer alone): the same items. */
  const both = (limits: ConstructorParameters<typeof JsonStream>[0], text: string): string[] => {
    const whole = feedAll(bytes(text), new JsonStream(limits));
    const s = new JsonStream(limits);
    assert.deepEqual(whole, [...bytes(text)].flatMap((b) => feedAll(Uint8Array.of(b), s)), text);
    return whole;
  };
  // { "a" : [ 1 , 2 ] } is 9 tokens; the 10th token, ']' of the second message, is one too many.
  assert.deepEqual(both({ maxTokens: 9 }, '{"a":[1,2]}{"a":[1,2,3]}{"a":1}'), [
    '{"a": [1, 2]}',
    'E: JSON token count limit exceeded',
    'E: JSON parse error, expecting value',
    '{"a": 1}',
  ]);
  assert.deepEqual(both({ maxDepth: 2 }, '[[1]][[[1]]]\n').slice(0, 2), ['[[1]]', 'E: JSON nesting depth limit exceeded']);
  // 11 bytes of tokens, 15 with the spaces: it fits the 12-byte limit, which counts tokens only.
  assert.deepEqual(both({ maxMessageBytes: 12 }, '{ "a" : [1,2] }{"a":[1,2,33]}').slice(0, 2), [
    '{"a": [1, 2]}',
    'E: JSON token size limit exceeded',
  ]);
});
