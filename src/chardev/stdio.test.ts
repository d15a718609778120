import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { openChardev } from './open.js';

function streams(): { input: PassThrough; output: PassThrough; out: () => string } {
  const input = new PassThrough();
  const output = new PassThrough();
  let text = '';
  output.on('data', (d: Buffer) => (text += d.toString('latin1')));
  return { input, output, out: () => text };
}

test('mux stdio: escapes are handled, the rest reaches the guest', async () => {
  const s = streams();
  let quits = 0;
  const dev = await openChardev({ kind: 'stdio' }, { mux: true, onQuit: () => quits++, input: s.input, output: s.output });
  const got: number[] = [];
  dev.onInput((b) => got.push(...b));
  s.input.write(Buffer.from([0x61, 0x03, 0x01, 0x01, 0x01, 0x68]));
  s.input.write(Buffer.from([0x01, 0x63, 0x62, 0x01, 0x78]));
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(got, [0x61, 0x03, 0x01, 0x62]);
  assert.ok(s.out().includes('C-a x    exit emulator'));
  assert.ok(s.out().includes('no monitor'));
  assert.ok(s.out().endsWith('nodevisor: Terminated\n\r'));
  assert.equal(quits, 1);
  dev.write(Uint8Array.from([0x4f, 0x4b]));
  await dev.flush();
  assert.ok(s.out().endsWith('OK'));
  await dev.close();
});

test('plain stdio passes ctrl-a through; one stdio chardev at a time', async () => {
  const s = streams();
  const dev = await openChardev({ kind: 'stdio' }, { input: s.input, output: s.output });
  await assert.rejects(openChardev({ kind: 'stdio' }, { input: s.input, output: s.output }), {
    message: 'cannot use stdio by multiple character devices',
  });
  const got: number[] = [];
  dev.onInput((b) => got.push(...b));
  s.input.write(Buffer.from([0x01, 0x78]));
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(got, [0x01, 0x78]);
  await dev.close();
  // Closed: a new one may open.
  await (await openChardev({ kind: 'stdio' }, { input: s.input, output: s.output })).close();
});
