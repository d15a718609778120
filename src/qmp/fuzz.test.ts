/**
 * Random bytes and random JSON-ish input into the stream reader and dispatcher: nothing
 * throws, every reply is well-formed JSON with exactly `return` or a proper `error`, and how
 * the input is split into chunks never changes the result. Seeded, so failures reproduce.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { coreCommands, nodevisorQmpVersion } from './commands-core.js';
import { machineCommands } from './commands-machine.js';
import { errorReply, QmpDispatcher } from './dispatcher.js';
import { genericError, QMP_ERROR_CLASSES } from './errors.js';
import { FakeMachine } from './fake-machine.js';
import { JsonStream, type JsonStreamItem } from './json-stream.js';
import { formatQmpJson } from './json-writer.js';
import { QmpSession } from './session.js';
import { prng } from '../testing/prng.js';


const FRAGMENTS = [
  '{', '}', '[', ']', ':', ',', ' ', '\n', '\t', '"execute"', '"exec-oob"', '"arguments"', '"id"', '"enable"',
  '"qmp_capabilities"', '"query-status"', '"cont"', '"stop"', '"system_reset"', '"quit"', '"set-action"',
  '"human-monitor-command"', '"command-line"', '"info status"', '"panic"', '"pause"', '"oob"', '"cpu-index"',
  '0', '-1', '1.5e3', '18446744073709551615', '99999999999999999999', '1e400', 'true', 'false', 'null', 'nul',
  "'single'", '"\\u00e9"', '"\\uD800"', '"\\u', '"é😀"', '\xff', '\x00', '\x04', '"unterminated', '@', '-', '01',
];

const RAW_BYTE_FRAGMENTS = new Set(['\xff', '\x00', '\x04']);

function randomInput(rand: () => number): Uint8Array {
  const parts: Buffer[] = [];
  const n = 1 + Math.floor(rand() * 40);
  for (let i = 0; i < n; i++) {
    const r = rand();
    if (r < 0.15) {
      parts.push(Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 8) }, () => Math.floor(rand() * 256))));
    } else {
      const f = FRAGMENTS[Math.floor(rand() * FRAGMENTS.length)] ?? '';
      // The raw-byte fragments are written as latin1; the rest (é😀 included) as UTF-8.
      parts.push(RAW_BYTE_FRAGMENTS.has(f) ? Buffer.from(f, 'latin1') : Buffer.from(f, 'utf8'));
    }
  }
  return Buffer.concat(parts);
}

function randomValue(rand: () => number, depth = 0): unknown {
  const r = rand();
  if (depth > 3 || r < 0.3) return [null, true, 1, -2.5, 'x', 'oob', 'info status', 2n ** 64n - 1n][Math.floor(rand() * 8)];
  if (r < 0.6) return Array.from({ length: Math.floor(rand() * 3) }, () => randomValue(rand, depth + 1));
  const o: Record<string, unknown> = {};
  const keys = ['execute', 'arguments', 'id', 'enable', 'panic', 'command-line', 'cpu-index', 'foo'];
  for (let i = Math.floor(rand() * 4); i > 0; i--) o[keys[Math.floor(rand() * keys.length)] ?? 'k'] = randomValue(rand, depth + 1);
  return o;
}

function randomRequest(rand: () => number): Uint8Array {
  const commands = [...new Set([...Object.keys(coreCommands(nodevisorQmpVersion())), 'cont', 'stop', 'quit', 'nope'])];
  const req: Record<string, unknown> = { execute: commands[Math.floor(rand() * commands.length)] };
  if (rand() < 0.5) req.arguments = randomValue(rand);
  if (rand() < 0.5) req.id = randomValue(rand);
  if (rand() < 0.1) req[rand() < 0.5 ? 'exec-oob' : 'bogus'] = 'stop';
  return Buffer.from(`${formatQmpJson(req)}\n`);
}

function checkReply(line: string): void {
  assert.ok(!line.includes('\n'), 'one line per reply');
  const reply = JSON.parse(line) as Record<string, unknown>;
  const keys = Object.keys(reply).sort();
  assert.ok(['error', 'return'].some((k) => keys.includes(k)) && !(keys.includes('error') && keys.includes('return')), line);
  assert.ok(keys.every((k) => k === 'error' || k === 'return' || k === 'id'), line);
  if ('error' in reply) {
    const err = reply.error as Record<string, unknown>;
    assert.deepEqual(Object.keys(err).sort(), ['class', 'desc'], line);
    assert.ok((QMP_ERROR_CLASSES as readonly string[]).includes(String(err.class)), line);
    assert.equal(typeof err.desc, 'string');
    assert.ok(!String(err.desc).includes('    at '), 'no stack trace');
  }
}

const show = (items: JsonStreamItem[]): string[] =>
  items.map((i) => (i.kind === 'value' ? formatQmpJson(i.value) : `E ${i.message}`));

test('random input never throws and always yields well-formed replies', async () => {
  const rand = prng(0x5eed);
  const version = nodevisorQmpVersion();
  let replies = 0;
  for (let round = 0; round < 400; round++) {
    const machine = new FakeMachine(rand() < 0.5 ? 'prelaunch' : 'running');
    const dispatcher = new QmpDispatcher({ ...coreCommands(version), ...machineCommands(machine, version) });
    const session = new QmpSession();
    if (rand() < 0.5) session.negotiated = true;
    if (rand() < 0.3) session.oob = true;
    const input = Buffer.concat(
      Array.from({ length: 1 + Math.floor(rand() * 6) }, () => (rand() < 0.5 ? randomInput(rand) : randomRequest(rand))),
    );
    // Whole, then in random chunks: the same items.
    const whole = show(new JsonStream().feed(input));
    const chunked = new JsonStream();
    const items: JsonStreamItem[] = [];
    for (let i = 0; i < input.length; ) {
      const n = 1 + Math.floor(rand() * 7);
      items.push(...chunked.feed(input.subarray(i, i + n)));
      i += n;
    }
    assert.deepEqual(show(items), whole, `round ${round}: ${input.toString('latin1')}`);
    for (const item of items) {
      const reply =
        item.kind === 'error' ? errorReply(genericError(item.message)) : await dispatcher.dispatch(item.value, session);
      checkReply(formatQmpJson(reply));
      replies++;
    }
  }
  assert.ok(replies > 400, `only ${replies} replies: the generator is too timid`);
});
