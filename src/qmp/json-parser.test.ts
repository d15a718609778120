import { test } from 'node:test';
import assert from 'node:assert/strict';

import { DirectParser } from './json-parser.js';
import { formatQmpJson } from './json-writer.js';

const LIMITS = { maxBytes: 1 << 20, maxDepth: 1024, maxTokens: 2 << 20 };

/** The direct parser on a latin1 byte string: [value as QEMU prints it, end index], or 'gives up'. */
function direct(input: string, limits = LIMITS, start = 0): [string, number] | 'gives up' {
  const parser = new DirectParser(limits);
  const bytes = Buffer.from(input, 'latin1');
  const end = parser.parse(bytes, start, bytes.length);
  return end < 0 ? 'gives up' : [formatQmpJson(parser.value), end];
}

test('the direct parser takes common messages and stops right after their last token', () => {
  const cases: [string, string][] = [
    ['{"execute":"query-status"}', '{"execute": "query-status"}'],
    ['{"execute":"query-status","id":12}\r\n', '{"execute": "query-status", "id": 12}'],
    ['{ "execute" : "stop" , "arguments" : { } }\n', '{"execute": "stop", "arguments": {}}'],
    ["{'execute':'cont','id':'x\"y'}", '{"execute": "cont", "id": "x\\"y"}'],
    ['{"id":[1,-2,0,-0,true,false,null,[],{}]}', '{"id": [1, -2, 0, 0, true, false, null, [], {}]}'],
    ['{"id":999999999999999}', '{"id": 999999999999999}'],
    ['{"id":-999999999999999}', '{"id": -999999999999999}'],
    ['{"__proto__":1}', '{"__proto__": 1}'],
    ['{"a":"\x7f"}', '{"a": "\\u007F"}'],
    ['[{"a":1}]{"b":2}', '[{"a": 1}]'],
    ['{}}', '{}'],
  ];
  for (const [input, printed] of cases) {
    const got = direct(input);
    assert.notEqual(got, 'gives up', input);
    const [value, end] = got as [string, number];
    assert.equal(value, printed, input);
    // The end is the byte after the closing brace or bracket of the first message.
    assert.ok(input[end - 1] === '}' || input[end - 1] === ']', `${input}: end ${end}`);
  }
  assert.deepEqual(direct('xx{"a":1}', LIMITS, 2), ['{"a": 1}', 9]);
});

test('the direct parser gives up on anything the lexer and token parser must judge', () => {
  const cases = [
    '{"a":1', // incomplete: the rest may come in the next chunk
    '{"a":',
    '{"a"',
    '{',
    '[',
    '{"a":tru',
    '{"a":12', // a number may go on in the next chunk
    '{"a":"\\n"}', // escapes
    '{"a":"\xc3\xa9"}', // UTF-8
    '{"a":"\x01"}', // a control character: a lexical error
    '{"a":1.5}', // floats
    '{"a":1e5}',
    '{"a":0e5}', // 0, then the keyword e
    '{"a":01}', // a lexical error
    '{"a":-}',
    '{"a":1234567890123456}', // 16 digits: the BigInt path decides
    '{"a":truex}',
    '{"a":nul}',
    '{"a":true1}',
    '{"a":1,}',
    '{"a":1 "b":2}',
    '{1:2}',
    '{"a" 1}',
    '{"a":1,"a":2}', // duplicate key
    '[1,]',
    '[1 2]',
    '[1}',
    '{"a":1]',
    '{"a":\f1}', // form feed is not whitespace to the lexer
    '{"a":\v1}',
    '{"a":\xff}',
    '{"a":@}',
  ];
  for (const input of cases) assert.equal(direct(input), 'gives up', JSON.stringify(input));
});

test('the direct parser gives up at the stream limits, never past them', () => {
  // Tokens: { "a" : [ 1 , 2 ] } is 9.
  const message = '{"a":[1,2]}';
  assert.notEqual(direct(message, { ...LIMITS, maxTokens: 9 }), 'gives up');
  assert.equal(direct(message, { ...LIMITS, maxTokens: 8 }), 'gives up');
  assert.notEqual(direct(message, { ...LIMITS, maxDepth: 2 }), 'gives up');
  assert.equal(direct(message, { ...LIMITS, maxDepth: 1 }), 'gives up');
  assert.notEqual(direct(message, { ...LIMITS, maxBytes: message.length }), 'gives up');
  assert.equal(direct(message, { ...LIMITS, maxBytes: message.length - 1 }), 'gives up');
  // Whitespace counts against the span here, so a message that only fits without it is left to the lexer.
  assert.equal(direct('{ "a" : 1 }', { ...LIMITS, maxBytes: 8 }), 'gives up');
  // Deep nesting is left to the lexer, whatever the limit, so the direct path never recurses deeply.
  assert.equal(direct(`${'['.repeat(300)}${']'.repeat(300)}`), 'gives up');
  assert.notEqual(direct(`${'['.repeat(200)}${']'.repeat(200)}`), 'gives up');
});

test('repeated strings come from the cache and are equal to fresh ones', () => {
  const parser = new DirectParser(LIMITS);
  const seen: string[] = [];
  for (const text of ['{"execute":"query-status"}', '{"execute":"query-statuz"}', '{"execute":"query-status"}']) {
    const bytes = Buffer.from(text);
    assert.ok(parser.parse(bytes, 0, bytes.length) > 0);
    seen.push(formatQmpJson(parser.value));
  }
  assert.deepEqual(seen, ['{"execute": "query-status"}', '{"execute": "query-statuz"}', '{"execute": "query-status"}']);
  const long = `{"id":"${'x'.repeat(40)}"}`;
  assert.deepEqual(direct(long), [`{"id": "${'x'.repeat(40)}"}`, long.length]);
});
