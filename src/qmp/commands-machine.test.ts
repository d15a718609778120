import { test } from 'node:test';
import assert from 'node:assert/strict';

import type { QmpEvent } from '../runstate/events.js';
import type { RunState } from '../runstate/run-state.js';
import { coreCommands, type QmpVersion } from './commands-core.js';
import { machineCommands } from './commands-machine.js';
import { QmpDispatcher } from './dispatcher.js';
import { FakeMachine } from './fake-machine.js';
import { formatQmpJson } from './json-writer.js';
import { QmpSession } from './session.js';
import { play } from './transcript.js';

const VERSION: QmpVersion = { qemu: { major: 7, minor: 2, micro: 22 }, package: 'Debian 1:7.2+dfsg-7+deb12u18+b3' };

function setup(state: RunState = 'prelaunch', cpus = 1) {
  const machine = new FakeMachine(state, cpus);
  const events: string[] = [];
  machine.emit = (e: QmpEvent) => events.push('data' in e ? `${e.event} ${JSON.stringify(e.data)}` : e.event);
  const dispatcher = new QmpDispatcher({ ...coreCommands(VERSION), ...machineCommands(machine, VERSION) });
  const session = new QmpSession();
  session.negotiated = true;
  const run = async (line: string): Promise<string> => (await play(dispatcher, session, line))[0] ?? '';
  const hmp = async (cmd: string): Promise<string> =>
    run(JSON.stringify({ execute: 'human-monitor-command', arguments: { 'command-line': cmd } }));
  return { machine, events, run, hmp };
}

test('stop, cont and system_reset follow the captured QEMU session', async () => {
  const { run, hmp, events, machine } = setup();
  assert.equal(await run('{"execute":"stop","id":"stop"}'), '{"return": {}, "id": "stop"}');
  assert.equal(await run('{"execute":"query-status"}'), '{"return": {"status": "prelaunch", "singlestep": false, "running": false}}');
  assert.equal(await run('{"execute":"cont"}'), '{"return": {}}');
  assert.equal(await hmp('info status'), '{"return": "VM status: running\\r\\n"}');
  assert.equal(await run('{"execute":"stop"}'), '{"return": {}}');
  assert.equal(await hmp('info status'), '{"return": "VM status: paused\\r\\n"}');
  assert.equal(await run('{"execute":"system_reset"}'), '{"return": {}}');
  assert.equal(await hmp('info status'), '{"return": "VM status: paused (prelaunch)\\r\\n"}');
  assert.equal(await run('{"execute":"system_powerdown"}'), '{"return": {}}');
  assert.deepEqual(events, ['RESUME', 'STOP', 'RESET {"guest":false,"reason":"host-qmp-system-reset"}', 'POWERDOWN']);
  assert.deepEqual(machine.calls, ['stop', 'cont', 'stop', 'systemReset', 'systemPowerdown']);
});

test('cont refuses a VM that needs a reset, and resumes a panicked one', async () => {
  for (const state of ['shutdown', 'internal-error'] as const) {
    const { run, machine } = setup(state);
    assert.equal(
      await run('{"execute":"cont"}'),
      '{"error": {"class": "GenericError", "desc": "Resetting the Virtual Machine is required"}}',
    );
    assert.deepEqual(machine.calls, []);
  }
  const panicked = setup('guest-panicked');
  assert.equal(await panicked.run('{"execute":"cont"}'), '{"return": {}}');
  assert.equal(panicked.machine.runState.state, 'running');
  const suspended = setup('suspended');
  assert.equal(await suspended.run('{"execute":"cont"}'), '{"return": {}}');
  assert.deepEqual(suspended.machine.calls, [], 'cont on a suspended guest does nothing');
  assert.equal(await suspended.run('{"execute":"system_wakeup"}'), '{"return": {}}');
  assert.deepEqual(suspended.events, ['WAKEUP']);
  const nowake = setup('suspended');
  nowake.machine.wakeupSupported = false;
  assert.equal(
    await nowake.run('{"execute":"system_wakeup"}'),
    '{"error": {"class": "GenericError", "desc": "wake-up from suspend is not supported by this guest"}}',
  );
});

test('info status names every stopped state but paused', async () => {
  const cases: [RunState, string][] = [
    ['shutdown', 'VM status: paused (shutdown)'],
    ['guest-panicked', 'VM status: paused (guest-panicked)'],
    ['internal-error', 'VM status: paused (internal-error)'],
    ['watchdog', 'VM status: paused (watchdog)'],
    ['paused', 'VM status: paused'],
    ['running', 'VM status: running'],
  ];
  for (const [state, text] of cases) {
    assert.equal(await setup(state).hmp('info status'), formatQmpJson({ return: `${text}\r\n` }));
  }
});

test('HMP texts captured from QEMU 7.2', async () => {
  const { hmp, machine, events } = setup('prelaunch', 2);
  const expect = async (cmd: string, text: string) => assert.equal(await hmp(cmd), formatQmpJson({ return: text }), cmd);
  await expect('info name', '');
  machine.name = 'guest1';
  machine.uuid = '12345678-1234-1234-1234-123456789abc';
  await expect('info name', 'guest1\r\n');
  await expect('info uuid', '12345678-1234-1234-1234-123456789abc\r\n');
  await expect('info kvm', 'kvm support: enabled\r\n');
  await expect('info version', '7.2.22Debian 1:7.2+dfsg-7+deb12u18+b3\r\n');
  await expect('  info   status  ', 'VM status: paused (prelaunch)\r\n');
  await expect('\tinfo\tstatus', 'VM status: paused (prelaunch)\r\n');
  await expect('info status extra', 'status: extraneous characters at the end of line\r\nTry "help info status" for more information\r\n');
  await expect('stop x', 'stop|s: extraneous characters at the end of line\r\nTry "help stop" for more information\r\n');
  await expect('c x', 'cont|c: extraneous characters at the end of line\r\nTry "help c" for more information\r\n');
  await expect('info/x status', "unknown command: 'info'\r\n");
  await expect('INFO status', "unknown command: 'INFO'\r\n");
  await expect('info stat', "unknown command: 'info stat'\r\n");
  await expect('system_wakeup', 'Error: Unable to wake up: guest is not in suspended state\r\n');
  await expect('watchdog_action pause', '');
  await expect('watchdog_action bogus', 'Error: invalid parameter value: bogus\r\n');
  await expect('watchdog_action', 'watchdog_action: string expected\r\nTry "help watchdog_action" for more information\r\n');
  await expect('info cpus', '* CPU #0: thread_id=1000\r\n  CPU #1: thread_id=1001\r\n');
  assert.equal(
    await setup('prelaunch', 2).run('{"execute":"human-monitor-command","arguments":{"command-line":"info cpus","cpu-index":1}}'),
    formatQmpJson({ return: '  CPU #0: thread_id=1000\r\n* CPU #1: thread_id=1001\r\n' }),
  );
  await expect('c', '');
  await expect('s', '');
  await expect('system_reset', '');
  await expect('nmi', '');
  assert.equal(machine.actions.watchdog, 'pause');
  assert.deepEqual(events, ['RESUME', 'STOP', 'RESET {"guest":false,"reason":"host-qmp-system-reset"}']);
  machine.kvm = { enabled: false, present: true };
  await expect('info kvm', 'kvm support: disabled\r\n');
  machine.kvm = { enabled: false, present: false };
  await expect('info kvm', 'kvm support: not compiled\r\n');
});

test('query-cpus-fast, query-name, query-uuid in QEMU shape', async () => {
  const { run, machine } = setup();
  // QEMU 7.2 printed: {"thread-id": …, "props": {"core-id": 0, "thread-id": 0, "socket-id": 0}, "qom-path": …, "cpu-index": 0, "target": "x86_64"}
  assert.equal(
    await run('{"execute":"query-cpus-fast"}'),
    '{"return": [{"thread-id": 1000, "props": {"core-id": 0, "thread-id": 0, "socket-id": 0}, "qom-path": "/machine/unattached/device[0]", "cpu-index": 0, "target": "x86_64"}]}',
  );
  machine.name = 'vm"1';
  assert.equal(await run('{"execute":"query-name"}'), '{"return": {"name": "vm\\"1"}}');
});

test('quit emits SHUTDOWN before its reply is written', async () => {
  const { run, events } = setup('running');
  assert.equal(await run('{"execute":"quit","id":"q"}'), '{"return": {}, "id": "q"}');
  assert.deepEqual(events, ['SHUTDOWN {"guest":false,"reason":"host-qmp-quit"}']);
});

test('system_reset under -no-reboot is a SHUTDOWN with the reset reason', async () => {
  const { run, events, machine } = setup('running');
  machine.actions.reboot = 'shutdown';
  await run('{"execute":"system_reset"}');
  assert.deepEqual(events, ['SHUTDOWN {"guest":false,"reason":"host-qmp-system-reset"}']);
});
