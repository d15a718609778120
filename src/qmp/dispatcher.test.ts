import { test } from 'node:test';
import assert from 'node:assert/strict';

import { NodevisorError } from '../errors.js';
import { coreCommands, type QmpVersion } from './commands-core.js';
import { machineCommands } from './commands-machine.js';
import { defineCommand, QmpDispatcher } from './dispatcher.js';
import { QmpError } from './errors.js';
import { FakeMachine } from './fake-machine.js';
import { QmpSession } from './session.js';
import { play } from './transcript.js';

/** QEMU's own version string, so that replies can be compared with QEMU's byte for byte. */
const QEMU_DEBIAN: QmpVersion = { qemu: { major: 7, minor: 2, micro: 22 }, package: 'Debian 1:7.2+dfsg-7+deb12u18+b3' };

function setup(extra = {}) {
  const machine = new FakeMachine();
  const dispatcher = new QmpDispatcher({ ...coreCommands(QEMU_DEBIAN), ...machineCommands(machine, QEMU_DEBIAN), ...extra });
  return { machine, dispatcher, session: new QmpSession() };
}

/** Request → reply pairs captured from qemu-system-x86_64 7.2 (-M pc -S), in order on one connection. */
const BEFORE_AND_AFTER_NEGOTIATION: [string, string][] = [
  ['{"execute":"query-status"}', `{"error": {"class": "CommandNotFound", "desc": "Expecting capabilities negotiation with 'qmp_capabilities'"}}`],
  ['{"execute":"query-status","arguments":{"x":1},"id":3}', `{"id": 3, "error": {"class": "CommandNotFound", "desc": "Expecting capabilities negotiation with 'qmp_capabilities'"}}`],
  ['{"execute":"qmp_capabilities","arguments":{"enable":[1]}}', `{"error": {"class": "GenericError", "desc": "Invalid parameter type for 'enable[0]', expected: string"}}`],
  ['{"execute":"qmp_capabilities","arguments":{"enable":"oob"}}', `{"error": {"class": "GenericError", "desc": "Invalid parameter type for 'enable', expected: array"}}`],
  ['{"execute":"qmp_capabilities","arguments":{"enable":["oob"],"x":1}}', `{"error": {"class": "GenericError", "desc": "Parameter 'x' is unexpected"}}`],
  ['{"execute":"qmp_capabilities","arguments":{"enable":["bogus"]}}', `{"error": {"class": "GenericError", "desc": "Parameter 'null' does not accept value 'bogus'"}}`],
  ['{"exec-oob":"qmp_capabilities"}', `{"error": {"class": "GenericError", "desc": "QMP input member 'exec-oob' is unexpected"}}`],
  ['{"execute":42}', `{"error": {"class": "GenericError", "desc": "QMP input member 'execute' must be a string"}}`],
  ['{"execute":"qmp_capabilities","id":1}', '{"return": {}, "id": 1}'],
  ['{"execute":"qmp_capabilities","id":2}', `{"id": 2, "error": {"class": "CommandNotFound", "desc": "Capabilities negotiation is already complete, command ignored"}}`],
  ['[]', '{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}'],
  ['42', '{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}'],
  ['"str"', '{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}'],
  ['null', '{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}'],
  ['{}', `{"error": {"class": "GenericError", "desc": "QMP input lacks member 'execute'"}}`],
  ['{"id":1}', `{"id": 1, "error": {"class": "GenericError", "desc": "QMP input lacks member 'execute'"}}`],
  ['{"arguments":{}}', `{"error": {"class": "GenericError", "desc": "QMP input lacks member 'execute'"}}`],
  ['{"execute":"nope"}', '{"error": {"class": "CommandNotFound", "desc": "The command nope has not been found"}}'],
  ['{"execute":"nope","id":5}', '{"id": 5, "error": {"class": "CommandNotFound", "desc": "The command nope has not been found"}}'],
  ['{"execute":"query-status","foo":1}', `{"error": {"class": "GenericError", "desc": "QMP input member 'foo' is unexpected"}}`],
  ['{"execute":"query-status","arguments":[]}', `{"error": {"class": "GenericError", "desc": "QMP input member 'arguments' must be an object"}}`],
  ['{"execute":"query-name","arguments":null}', `{"error": {"class": "GenericError", "desc": "QMP input member 'arguments' must be an object"}}`],
  ['{"execute":"query-status","arguments":{"x":1}}', `{"error": {"class": "GenericError", "desc": "Parameter 'x' is unexpected"}}`],
  ['{"execute":"set-action","arguments":{"panic":1}}', `{"error": {"class": "GenericError", "desc": "Invalid parameter type for 'panic', expected: string"}}`],
  ['{"execute":"set-action","arguments":{"panic":null}}', `{"error": {"class": "GenericError", "desc": "Invalid parameter type for 'panic', expected: string"}}`],
  ['{"execute":"set-action","arguments":{"panic":"bogus"}}', `{"error": {"class": "GenericError", "desc": "Parameter 'panic' does not accept value 'bogus'"}}`],
  ['{"execute":"set-action","arguments":{"reboot":"none"}}', `{"error": {"class": "GenericError", "desc": "Parameter 'reboot' does not accept value 'none'"}}`],
  ['{"execute":"set-action","arguments":{"panic":"poweroff"}}', `{"error": {"class": "GenericError", "desc": "Parameter 'panic' does not accept value 'poweroff'"}}`],
  ['{"execute":"watchdog-set-action","arguments":{}}', `{"error": {"class": "GenericError", "desc": "Parameter 'action' is missing"}}`],
  ['{"execute":"query-version","arguments":{"a":null}}', `{"error": {"class": "GenericError", "desc": "Parameter 'a' is unexpected"}}`],
  ['{"execute":"query-status","id":"s"}', '{"return": {"status": "prelaunch", "singlestep": false, "running": false}, "id": "s"}'],
  ['{"execute":"query-status","id":{"a":[1]}}', '{"return": {"status": "prelaunch", "singlestep": false, "running": false}, "id": {"a": [1]}}'],
  ['{"execute":"query-status","id":[1,2]}', '{"return": {"status": "prelaunch", "singlestep": false, "running": false}, "id": [1, 2]}'],
  ['{"execute":"query-status","id":null}', '{"return": {"status": "prelaunch", "singlestep": false, "running": false}, "id": null}'],
  ['{"execute":"query-status","id":1.5}', '{"return": {"status": "prelaunch", "singlestep": false, "running": false}, "id": 1.5}'],
  ['{"execute":"query-name","id":{"b":1,"a":2,"c":3}}', '{"return": {}, "id": {"a": 2, "b": 1, "c": 3}}'],
  ['{"execute":"query-name","id":"é😀\\u0001\\u007f/"}', '{"return": {}, "id": "\\u00E9\\uD83D\\uDE00\\u0001\\u007F/"}'],
  ['{"execute":"query-name","id":18446744073709551615}', '{"return": {}, "id": 18446744073709551615}'],
  ['{"exec-oob":"query-status"}', `{"error": {"class": "GenericError", "desc": "QMP input member 'exec-oob' is unexpected"}}`],
  ['{"exec-oob":"query-status","execute":"query-status"}', `{"error": {"class": "GenericError", "desc": "QMP input member 'exec-oob' is unexpected"}}`],
  ['{"execute":"query-version"}', '{"return": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}}'],
  ['{"execute":"query-name"}', '{"return": {}}'],
  ['{"execute":"query-uuid"}', '{"return": {"UUID": "00000000-0000-0000-0000-000000000000"}}'],
  ['{"execute":"query-kvm"}', '{"return": {"enabled": true, "present": true}}'],
  ['{"execute":"human-monitor-command","arguments":{"command-line":"info status"}}', '{"return": "VM status: paused (prelaunch)\\r\\n"}'],
  ['{"execute":"human-monitor-command","arguments":{"command-line":"bogus"}}', `{"return": "unknown command: 'bogus'\\r\\n"}`],
  ['{"execute":"human-monitor-command","arguments":{"command-line":"info bogus"}}', `{"return": "unknown command: 'info bogus'\\r\\n"}`],
  ['{"execute":"human-monitor-command","arguments":{"command-line":""}}', '{"return": ""}'],
  ['{"execute":"human-monitor-command","arguments":{}}', `{"error": {"class": "GenericError", "desc": "Parameter 'command-line' is missing"}}`],
  ['{"execute":"human-monitor-command","arguments":{"command-line":true}}', `{"error": {"class": "GenericError", "desc": "Invalid parameter type for 'command-line', expected: string"}}`],
  ['{"execute":"human-monitor-command","arguments":{"command-line":"info status","cpu-index":99}}', `{"error": {"class": "GenericError", "desc": "Parameter 'cpu-index' expects a CPU number"}}`],
  ['{"execute":"human-monitor-command","arguments":{"command-line":"info status","cpu-index":-1}}', `{"error": {"class": "GenericError", "desc": "Parameter 'cpu-index' expects a CPU number"}}`],
  ['{"execute":"human-monitor-command","arguments":{"command-line":"info status","cpu-index":"0"}}', `{"error": {"class": "GenericError", "desc": "Invalid parameter type for 'cpu-index', expected: integer"}}`],
  ['{"execute":"human-monitor-command","arguments":{"command-line":"info status","cpu-index":99999999999999999999}}', `{"error": {"class": "GenericError", "desc": "Invalid parameter type for 'cpu-index', expected: integer"}}`],
  ['{"execute":"human-monitor-command","arguments":{"command-line":"info status","cpu-index":0}}', '{"return": "VM status: paused (prelaunch)\\r\\n"}'],
  ['{"execute":"system_wakeup"}', '{"error": {"class": "GenericError", "desc": "Unable to wake up: guest is not in suspended state"}}'],
  ['{"execute":"inject-nmi"}', '{"return": {}}'],
  ['{"execute":"set-action","arguments":{}}', '{"return": {}}'],
  ['{"execute":"set-action","arguments":{"reboot":"reset","shutdown":"pause","panic":"exit-failure","watchdog":"inject-nmi"}}', '{"return": {}}'],
  ['{"execute":"watchdog-set-action","arguments":{"action":"debug"}}', '{"return": {}}'],
  ['{"execute":"query-status","arguments":{}}', '{"return": {"status": "prelaunch", "singlestep": false, "running": false}}'],
  ['{"execute":"query-name",}', '{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}'],
];

test('one client: every reply is byte-identical to what QEMU 7.2 sent', async () => {
  const { dispatcher, session, machine } = setup();
  for (const [request, reply] of BEFORE_AND_AFTER_NEGOTIATION) {
    assert.deepEqual(await play(dispatcher, session, `${request}\n`), [reply], request);
  }
  assert.deepEqual(machine.actions, { reboot: 'reset', shutdown: 'pause', panic: 'exit-failure', watchdog: 'debug' });
  assert.ok(machine.calls.includes('injectNmi'));
});

test('exec-oob once oob is negotiated: QEMU 7.2 replies', async () => {
  const { dispatcher, session } = setup();
  const lines = [
    '{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}',
    '{"exec-oob":"query-status","id":"oob1"}',
    '{"exec-oob":"stop","id":"x"}',
    '{"exec-oob":"nope","id":"x"}',
    '{"exec-oob":42,"id":"x"}',
  ];
  assert.deepEqual(await play(dispatcher, session, lines.join('\n')), [
    '{"return": {}}',
    '{"id": "oob1", "error": {"class": "GenericError", "desc": "The command query-status does not support OOB"}}',
    '{"id": "x", "error": {"class": "GenericError", "desc": "The command stop does not support OOB"}}',
    '{"id": "x", "error": {"class": "CommandNotFound", "desc": "The command nope has not been found"}}',
    `{"id": "x", "error": {"class": "GenericError", "desc": "QMP input member 'exec-oob' must be a string"}}`,
  ]);
  assert.ok(session.oob);
  assert.ok(dispatcher.isOutOfBand({ 'exec-oob': 'x' }, session));
  assert.ok(!dispatcher.isOutOfBand({ 'exec-oob': 'x', execute: 'y' }, session));
});

test('an oob-capable command runs with exec-oob; both exec keys clash (as QEMU 7.2 says)', async () => {
  const { dispatcher, session } = setup({
    'x-oob-test': defineCommand({ args: {}, oob: true, handler: () => 'fast' }),
  });
  const replies = await play(
    dispatcher,
    session,
    '{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}{"exec-oob":"x-oob-test","id":1}' +
      '{"exec-oob":"x-oob-test","execute":"x-oob-test"}{"execute":"x-oob-test","exec-oob":"x-oob-test"}',
  );
  const clash = `{"error": {"class": "GenericError", "desc": "QMP input member 'execute' clashes with 'exec-oob'"}}`;
  assert.deepEqual(replies.slice(1), ['{"return": "fast", "id": 1}', clash, clash]);
});

test('a client without oob on offer cannot enable it', async () => {
  const { dispatcher } = setup();
  const session = new QmpSession([]);
  assert.deepEqual(await play(dispatcher, session, '{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}'), [
    `{"error": {"class": "GenericError", "desc": "Capability 'oob' not available"}}`,
  ]);
  assert.ok(!session.negotiated);
});

test('handler failures become GenericError without a stack; QmpErrors keep their class', async () => {
  const { dispatcher, session } = setup({
    boom: defineCommand({ args: {}, handler: () => { throw new TypeError('x is not a function\n    at foo (file.js:1:1)'); } }),
    bad: defineCommand({ args: {}, handler: () => { throw new NodevisorError('ERR_BAD_STATE', 'invalid runstate transition'); } }),
    odd: defineCommand({ args: {}, handler: () => { throw 42; } }),
    dev: defineCommand({ args: {}, handler: async () => { throw new QmpError('DeviceNotFound', "Device 'x' not found"); } }),
    fn: defineCommand({ args: {}, handler: () => () => 1 }),
  });
  session.negotiated = true;
  const replies = await play(dispatcher, session, '{"execute":"boom"}{"execute":"bad"}{"execute":"odd"}{"execute":"dev","id":"d"}{"execute":"fn"}');
  assert.deepEqual(replies, [
    '{"error": {"class": "GenericError", "desc": "internal error: x is not a function"}}',
    '{"error": {"class": "GenericError", "desc": "invalid runstate transition"}}',
    '{"error": {"class": "GenericError", "desc": "internal error"}}',
    `{"id": "d", "error": {"class": "DeviceNotFound", "desc": "Device 'x' not found"}}`,
    '{"error": {"class": "GenericError", "desc": "internal error: function has no JSON form"}}',
  ]);
});

test('query-commands lists every command in QEMU order', async () => {
  const { dispatcher, session } = setup();
  session.negotiated = true;
  const [reply] = await play(dispatcher, session, '{"execute":"query-commands"}');
  const names = (JSON.parse(reply ?? '') as { return: { name: string }[] }).return.map((c) => c.name);
  assert.equal(names.length, 19);
  assert.equal(names[0], 'human-monitor-command');
  // QEMU's commands in QEMU's order, then nodevisor's own (x-query-accel).
  assert.equal(names.at(-2), 'query-status');
  assert.equal(names.at(-1), 'x-query-accel');
  assert.deepEqual([...names].sort(), [...dispatcher.commandNames].sort());
});
