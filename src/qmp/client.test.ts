import { test } from 'node:test';
import assert from 'node:assert/strict';

import { QmpClient } from './client.js';
import { defineCommand } from './dispatcher.js';
import { QmpError } from './errors.js';
import { QmpServer } from './server.js';

async function serve() {
  const server = new QmpServer({
    commands: {
      'x-big': defineCommand({ args: {}, handler: () => ({ n: 18446744073709551615n, list: [1, 'a', null] }) }),
    },
    log: () => undefined,
  });
  const addr = await server.listen({ kind: 'tcp', host: '127.0.0.1', port: 0 });
  assert.equal(addr.kind, 'tcp');
  return { server, target: { host: '127.0.0.1', port: addr.kind === 'tcp' ? addr.port : 0 } };
}

test('the client reads the greeting, negotiates and returns values', async () => {
  const { server, target } = await serve();
  const c = await QmpClient.connect(target);
  assert.deepEqual(c.greeting.QMP.capabilities, ['oob']);
  await assert.rejects(c.execute('query-version'), (e: unknown) => {
    assert.ok(e instanceof QmpError);
    assert.equal(e.class, 'CommandNotFound');
    assert.equal(e.desc, "Expecting capabilities negotiation with 'qmp_capabilities'");
    return true;
  });
  await c.negotiate();
  const big = await c.execute<{ n: bigint; list: unknown[] }>('x-big');
  assert.equal(big.n, 18446744073709551615n, 'a uint64 arrives intact');
  assert.deepEqual(big.list, [1, 'a', null]);
  await assert.rejects(c.execute('set-action', { panic: 'bogus' }), /Parameter 'panic' does not accept value 'bogus'|not been found/);
  await assert.rejects(c.execute('nope'), (e: unknown) => e instanceof QmpError && e.desc === 'The command nope has not been found');
  await c.close();
  await server.close();
});

test('events are buffered from connection time and the iterator ends with the connection', async () => {
  const { server, target } = await serve();
  const c = await QmpClient.connect(target);
  await c.negotiate();
  server.broadcast({ event: 'STOP' }, { seconds: 1, microseconds: 2 });
  server.broadcast({ event: 'RESET', data: { guest: true, reason: 'guest-reset' } });
  await c.execute('query-version'); // both events were sent before this reply
  const seen: string[] = [];
  const done = (async () => {
    for await (const e of c.events()) seen.push(`${e.event}${e.data ? ` ${String(e.data.reason)}` : ''}`);
  })();
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(seen, ['STOP', 'RESET guest-reset']);
  const pending = c.execute('query-version').catch(() => undefined);
  await server.close(); // the reply may or may not make it, but nothing hangs
  await pending;
  await done;
});

test('a pending command fails when the server goes away', async () => {
  const server = new QmpServer({
    commands: { 'x-never': defineCommand({ args: {}, handler: () => new Promise(() => undefined) }) },
    log: () => undefined,
  });
  const addr = await server.listen({ kind: 'tcp', host: '127.0.0.1', port: 0 });
  const c = await QmpClient.connect({ host: '127.0.0.1', port: addr.kind === 'tcp' ? addr.port : 0 });
  await c.negotiate();
  const never = assert.rejects(c.execute('x-never'), /closed/);
  await server.close();
  await never;
});
