/**
 * -S, -no-shutdown, -action, -watchdog-action, -uuid, -qmp, -chardev and -mon. QEMU 7.2's
 * output for each error row is quoted above it (run with `-display none -nodefaults -S`).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OptionError } from '../errors.js';
import { parseArgs, type ParsedCommand } from './parse-args.js';

const K = ['-kernel', 'vmlinux'];

function run(argv: string[]): Extract<ParsedCommand, { kind: 'run' }> {
  const r = parseArgs([...argv, ...K]);
  assert.equal(r.kind, 'run', argv.join(' '));
  return r as Extract<ParsedCommand, { kind: 'run' }>;
}

test('-S and -no-shutdown', () => {
  const d = run([]).options;
  assert.equal(d.startPaused, false);
  assert.equal(d.noShutdown, false);
  assert.equal(d.uuid, undefined);
  assert.deepEqual(d.actions, { reboot: 'reset', shutdown: 'poweroff', panic: 'shutdown', watchdog: 'reset' });
  const r = run(['-S', '-no-shutdown']);
  assert.equal(r.options.startPaused, true);
  assert.equal(r.options.noShutdown, true);
  assert.equal(r.options.actions.shutdown, 'pause');
  assert.equal(run(['--S']).options.startPaused, true);
});

test('-action, -watchdog-action, -no-reboot, -no-shutdown merge in order, the last value winning', () => {
  const cases: Array<[string[], Record<string, string>, boolean]> = [
    [['-action', 'reboot=shutdown,shutdown=pause,panic=none,watchdog=inject-nmi'], { reboot: 'shutdown', shutdown: 'pause', panic: 'none', watchdog: 'inject-nmi' }, true],
    [['-action', 'panic=pause', '-action', 'panic=exit-failure'], { panic: 'exit-failure' }, false],
    [['-no-reboot'], { reboot: 'shutdown' }, true],
    [['-no-reboot', '-action', 'reboot=reset'], { reboot: 'reset' }, false],
    [['-action', 'reboot=reset', '-no-reboot'], { reboot: 'shutdown' }, true],
    [['-no-shutdown', '-action', 'shutdown=poweroff'], { shutdown: 'poweroff' }, false],
    [['-action', 'shutdown=poweroff', '-no-shutdown'], { shutdown: 'pause' }, false],
    [['-watchdog-action', 'pause'], { watchdog: 'pause' }, false],
    [['-watchdog-action', 'pause', '-action', 'watchdog=debug'], { watchdog: 'debug' }, false],
    [['-action', 'watchdog=debug', '-watchdog-action', 'poweroff'], { watchdog: 'poweroff' }, false],
    // QEMU checks the values only after all options: a bad value replaced later is fine
    // (qemu-system-x86_64 -action panic=bogus -action panic=none runs; so does
    // -action reboot=bogus -no-reboot, and -watchdog-action bogus -action watchdog=none).
    [['-action', 'panic=bogus', '-action', 'panic=none'], { panic: 'none' }, false],
    [['-action', 'reboot=bogus', '-no-reboot'], { reboot: 'shutdown' }, true],
    [['-action', 'reboot=bogus,reboot=shutdown'], { reboot: 'shutdown' }, true],
    [['-watchdog-action', 'bogus', '-action', 'watchdog=none'], { watchdog: 'none' }, false],
    [['-action', ''], {}, false],
  ];
  for (const [argv, changed, noReboot] of cases) {
    const { config, options } = run(argv);
    const expected = { reboot: 'reset', shutdown: 'poweroff', panic: 'shutdown', watchdog: 'reset', ...changed };
    assert.deepEqual(options.actions, expected, argv.join(' '));
    assert.equal(config.noReboot, noReboot, argv.join(' '));
  }
});

test('-action help lists its keys and exits 1, as QEMU', () => {
  // qemu-system-x86_64 -action help (and -action reboot=shutdown,help), exit status 1
  const text = 'action options:\n  panic=<str>\n  reboot=<str>\n  shutdown=<str>\n  watchdog=<str>\n';
  assert.deepEqual(parseArgs(['-action', 'help']), { kind: 'help', text, exitStatus: 1 });
  assert.deepEqual(parseArgs(['-action', 'reboot=shutdown,help']), { kind: 'help', text, exitStatus: 1 });
});

test('-uuid', () => {
  assert.equal(run(['-uuid', '12345678-1234-1234-1234-1234567890ab']).options.uuid, '12345678-1234-1234-1234-1234567890ab');
  // query-uuid after -uuid 12345678-1234-1234-1234-1234567890AB: {"UUID": "12345678-1234-1234-1234-1234567890ab"}
  assert.equal(run(['-uuid', '12345678-1234-1234-1234-1234567890AB']).options.uuid, '12345678-1234-1234-1234-1234567890ab');
  assert.equal(run(['-uuid', '00000000-0000-0000-0000-000000000000', '-uuid', 'AAAAAAAA-0000-0000-0000-000000000000']).options.uuid, 'aaaaaaaa-0000-0000-0000-000000000000');
});

test('-qmp forms', () => {
  const cases: Array<[string, unknown]> = [
    ['unix:/tmp/q.sock,server=on,wait=off', { kind: 'unix', path: '/tmp/q.sock', server: true, wait: false }],
    // QEMU's legacy syntax gives no short-form warnings here.
    ['unix:/tmp/q.sock,server,nowait', { kind: 'unix', path: '/tmp/q.sock', server: true, wait: false }],
    ['unix:/tmp/a,,b,server=on,wait=off', { kind: 'unix', path: '/tmp/a,b', server: true, wait: false }],
    ['unix:/tmp/a,path=/tmp/b,server=on,wait=off', { kind: 'unix', path: '/tmp/b', server: true, wait: false }],
    ['tcp:127.0.0.1:4444,server=on,wait=off', { kind: 'tcp', host: '127.0.0.1', port: 4444, server: true, wait: false }],
    ['tcp:localhost:0,server=on,wait=off', { kind: 'tcp', host: 'localhost', port: 0, server: true, wait: false }],
    ['tcp::4444,server=on,wait=off', { kind: 'tcp', host: '', port: 4444, server: true, wait: false }],
    ['stdio', { kind: 'stdio' }],
  ];
  for (const [dev, spec] of cases) {
    const { options } = run(['-qmp', dev]);
    assert.deepEqual(options.qmp, [spec], dev);
    assert.deepEqual(options.chardevs, [], dev);
    assert.deepEqual(options.warnings, [], dev);
  }
  const two = run(['-qmp', 'unix:/a,server=on,wait=off', '-qmp', 'tcp::1,server=on,wait=off']).options.qmp;
  assert.deepEqual(two.map((s) => s.kind), ['unix', 'tcp']);
});

test('-qmp stdio and the serial port', () => {
  // qemu-system-x86_64 -display none -S -qmp stdio runs: COM1 goes to the invisible vc.
  const r = run(['-qmp', 'stdio']);
  assert.deepEqual(r.config.serial, { kind: 'null' });
  assert.deepEqual(run(['-qmp', 'stdio', '-serial', 'vc']).config.serial, { kind: 'null' });
  assert.deepEqual(run(['-qmp', 'stdio', '-serial', 'unix:/s,server=on,wait=off']).config.serial, {
    kind: 'unix', path: '/s', server: true, wait: false,
  });
  assert.deepEqual(run(['-nographic', '-qmp', 'unix:/q,server=on,wait=off']).config.serial, { kind: 'stdio' });
});

test('-chardev socket with -mon mode=control, and -qmp chardev:ID', () => {
  const r = run([
    '-chardev', 'socket,id=qmp0,path=/tmp/q0,server=on,wait=off',
    '-chardev', 'socket,id=qmp1,host=127.0.0.1,port=4444,server=on,wait=off',
    '-chardev', 'socket,id=spare,path=/tmp/spare,reconnect=5',
    '-chardev', 'socket,id=tcpany,port=5555,server=on',
    '-mon', 'chardev=qmp0,mode=control',
    '-mon', 'qmp1,mode=control,pretty=on',
  ]);
  assert.deepEqual(r.options.qmp, [
    { kind: 'unix', path: '/tmp/q0', server: true, wait: false },
    { kind: 'tcp', host: '127.0.0.1', port: 4444, server: true, wait: false },
  ]);
  assert.deepEqual(r.options.chardevs, [
    { id: 'qmp0', backend: 'socket', path: '/tmp/q0', server: true, wait: false },
    { id: 'qmp1', backend: 'socket', host: '127.0.0.1', port: 4444, server: true, wait: false },
    { id: 'spare', backend: 'socket', path: '/tmp/spare', server: false, wait: false, reconnect: 5 },
    { id: 'tcpany', backend: 'socket', host: '', port: 5555, server: true, wait: true },
  ]);
  // The -mon may come before its -chardev; QEMU's id is the first id= given.
  const late = run(['-mon', 'c,mode=control', '-chardev', 'socket,id=c,id=d,path=/q,server=on,wait=off']);
  assert.deepEqual(late.options.qmp, [{ kind: 'unix', path: '/q', server: true, wait: false }]);
  assert.equal(late.options.chardevs[0]?.id, 'c');
  const viaQmp = run(['-qmp', 'chardev:c', '-chardev', 'socket,id=c,path=/q,server=on,wait=off']);
  assert.deepEqual(viaQmp.options.qmp, [{ kind: 'unix', path: '/q', server: true, wait: false }]);
  // -chardev's short-form booleans warn, as QEMU:
  // qemu-system-x86_64: -chardev socket,id=c1,path=/tmp/qx1,server,nowait: warning: short-form boolean option 'server' deprecated
  // Please use server=on instead
  // qemu-system-x86_64: -chardev socket,id=c1,path=/tmp/qx1,server,nowait: warning: short-form boolean option 'nowait' deprecated
  // Please use wait=off instead
  const loc = '-chardev socket,id=c1,path=/q,server,nowait';
  assert.deepEqual(run(['-chardev', 'socket,id=c1,path=/q,server,nowait', '-mon', 'c1,mode=control']).options.warnings, [
    `nodevisor: ${loc}: warning: short-form boolean option 'server' deprecated\nPlease use server=on instead`,
    `nodevisor: ${loc}: warning: short-form boolean option 'nowait' deprecated\nPlease use wait=off instead`,
  ]);
});

test('-chardev help', () => {
  // qemu-system-x86_64 -chardev help lists backends (exit 0); -chardev socket,help its keys (exit 1).
  assert.deepEqual(parseArgs(['-chardev', 'help']), { kind: 'help', text: 'Available chardev backend types: \n  socket\n', exitStatus: 0 });
  const keys = parseArgs(['-chardev', 'socket,help']);
  assert.equal(keys.kind === 'help' && keys.exitStatus, 1);
  assert.match(keys.kind === 'help' ? keys.text : '', /^chardev options:\n {2}backend=<str>\n/);
});

const P = "nodevisor: ";
const ERRORS: Array<[string[], string]> = [
  // qemu-system-x86_64: -action panic=bogus: Parameter 'panic' does not accept value 'bogus'
  [['-action', 'panic=bogus'], `${P}-action panic=bogus: Parameter 'panic' does not accept value 'bogus'`],
  // qemu-system-x86_64: -action bogus=1: Invalid parameter 'bogus'
  [['-action', 'bogus=1'], `${P}-action bogus=1: Invalid parameter 'bogus'`],
  // qemu-system-x86_64: -action panic=y,reboot=x: Parameter 'reboot' does not accept value 'x'
  [['-action', 'panic=y,reboot=x'], `${P}-action panic=y,reboot=x: Parameter 'reboot' does not accept value 'x'`],
  // qemu-system-x86_64: -action panic=a,,b: Parameter 'panic' does not accept value 'a,b'
  [['-action', 'panic=a,,b'], `${P}-action panic=a,,b: Parameter 'panic' does not accept value 'a,b'`],
  // qemu-system-x86_64: -action reboot: warning: short-form boolean option 'reboot' deprecated
  // Please use reboot=on instead
  // qemu-system-x86_64: -action reboot: Parameter 'reboot' does not accept value 'on'
  [['-action', 'reboot'], `${P}-action reboot: warning: short-form boolean option 'reboot' deprecated\nPlease use reboot=on instead\n${P}-action reboot: Parameter 'reboot' does not accept value 'on'`],
  // qemu-system-x86_64: -action noreboot: warning: short-form boolean option 'noreboot' deprecated
  // Please use reboot=off instead
  // qemu-system-x86_64: -action noreboot: Parameter 'reboot' does not accept value 'off'
  [['-action', 'noreboot'], `${P}-action noreboot: warning: short-form boolean option 'noreboot' deprecated\nPlease use reboot=off instead\n${P}-action noreboot: Parameter 'reboot' does not accept value 'off'`],
  // qemu-system-x86_64: -action reboot,bogus=1: warning: short-form boolean option 'reboot' deprecated
  // Please use reboot=on instead
  // qemu-system-x86_64: -action reboot,bogus=1: Invalid parameter 'bogus'
  [['-action', 'reboot,bogus=1'], `${P}-action reboot,bogus=1: warning: short-form boolean option 'reboot' deprecated\nPlease use reboot=on instead\n${P}-action reboot,bogus=1: Invalid parameter 'bogus'`],
  // Values are checked after all options, and reported at the option that began the list:
  // qemu-system-x86_64: -action reboot=shutdown: Parameter 'panic' does not accept value 'bogus'
  [['-action', 'reboot=shutdown', '-action', 'panic=bogus'], `${P}-action reboot=shutdown: Parameter 'panic' does not accept value 'bogus'`],
  // qemu-system-x86_64: -no-reboot: Parameter 'reboot' does not accept value 'bogus'
  [['-no-reboot', '-action', 'reboot=bogus'], `${P}-no-reboot: Parameter 'reboot' does not accept value 'bogus'`],
  [['-no-shutdown', '-action', 'shutdown=bogus'], `${P}-no-shutdown: Parameter 'shutdown' does not accept value 'bogus'`],
  // qemu-system-x86_64: -watchdog-action bogus -action panic=bogus → -watchdog-action bogus: Parameter 'panic' does not accept value 'bogus'
  [['-watchdog-action', 'bogus', '-action', 'panic=bogus'], `${P}-watchdog-action bogus: Parameter 'panic' does not accept value 'bogus'`],
  // qemu-system-x86_64: -action panic=bogus: ... (an unknown key later is found first: it is read at once)
  [['-action', 'panic=bogus', '-action', 'bogus=1'], `${P}-action bogus=1: Invalid parameter 'bogus'`],
  // qemu-system-x86_64: -watchdog-action bogus: Parameter 'watchdog' does not accept value 'bogus'
  [['-watchdog-action', 'bogus'], `${P}-watchdog-action bogus: Parameter 'watchdog' does not accept value 'bogus'`],
  [['-watchdog-action', 'help'], `${P}-watchdog-action help: Parameter 'watchdog' does not accept value 'help'`],
  // Order: -append without -kernel, then the actions, then the machine, smp, memory, accel.
  [['-action', 'panic=bogus', '-M', 'foo', '-smp', '999', '-accel', 'foo'], `${P}-action panic=bogus: Parameter 'panic' does not accept value 'bogus'`],
  // qemu-system-x86_64: -uuid bogus: failed to parse UUID string: wrong format
  [['-uuid', 'bogus'], `${P}-uuid bogus: failed to parse UUID string: wrong format`],
  [['-uuid', ''], `${P}-uuid : failed to parse UUID string: wrong format`],
  [['-uuid', '12345678123412341234123456789012'], `${P}-uuid 12345678123412341234123456789012: failed to parse UUID string: wrong format`],
  [['-uuid', '{12345678-1234-1234-1234-1234567890ab}'], `${P}-uuid {12345678-1234-1234-1234-1234567890ab}: failed to parse UUID string: wrong format`],
  [['-uuid', '12345678-1234-1234-1234-1234567890ag'], `${P}-uuid 12345678-1234-1234-1234-1234567890ag: failed to parse UUID string: wrong format`],
  // -uuid is checked as it is read: qemu-system-x86_64 -action panic=bogus -uuid x → -uuid x: ...
  [['-action', 'panic=bogus', '-uuid', 'x'], `${P}-uuid x: failed to parse UUID string: wrong format`],
  // qemu-system-x86_64: -qmp bogus: 'bogus' is not a valid char driver
  // qemu-system-x86_64: -qmp bogus: parse error: bogus
  [['-qmp', 'bogus'], `${P}-qmp bogus: 'bogus' is not a valid char driver\n${P}-qmp bogus: parse error: bogus`],
  [['-qmp', ''], `${P}-qmp : '' is not a valid char driver\n${P}-qmp : parse error: `],
  [['-qmp', 'stdio,bogus'], `${P}-qmp stdio,bogus: 'stdio,bogus' is not a valid char driver\n${P}-qmp stdio,bogus: parse error: stdio,bogus`],
  // qemu-system-x86_64: -qmp tcp:localhost,server=on,wait=off: parse error: tcp:localhost,server=on,wait=off
  [['-qmp', 'tcp:localhost,server=on,wait=off'], `${P}-qmp tcp:localhost,server=on,wait=off: parse error: tcp:localhost,server=on,wait=off`],
  [['-qmp', 'tcp:4444'], `${P}-qmp tcp:4444: parse error: tcp:4444`],
  // qemu-system-x86_64: -qmp unix:/tmp/qx5,server=on,wait=off,bogus=1: Invalid parameter 'bogus'
  // qemu-system-x86_64: -qmp unix:/tmp/qx5,server=on,wait=off,bogus=1: parse error: unix:/tmp/qx5,server=on,wait=off,bogus=1
  [['-qmp', 'unix:/q,bogus=1'], `${P}-qmp unix:/q,bogus=1: Invalid parameter 'bogus'\n${P}-qmp unix:/q,bogus=1: parse error: unix:/q,bogus=1`],
  // qemu-system-x86_64: -qmp unix:/tmp/qx5,server=maybe: Parameter 'server' expects 'on' or 'off'  (+ parse error line)
  [['-qmp', 'unix:/q,server=maybe'], `${P}-qmp unix:/q,server=maybe: Parameter 'server' expects 'on' or 'off'\n${P}-qmp unix:/q,server=maybe: parse error: unix:/q,server=maybe`],
  // qemu-system-x86_64: -qmp unix:/tmp/qa,server=on,wait=off,reconnect=1: 'reconnect' option is incompatible with socket in server listen mode
  [['-qmp', 'unix:/q,server=on,wait=off,reconnect=1'], `${P}-qmp unix:/q,server=on,wait=off,reconnect=1: 'reconnect' option is incompatible with socket in server listen mode`],
  // qemu-system-x86_64: -qmp chardev:nope: chardev "nope" not found
  [['-qmp', 'chardev:nope'], `${P}-qmp chardev:nope: chardev "nope" not found`],
  // qemu-system-x86_64: -qmp stdio (twice): -qmp stdio: cannot use stdio by multiple character devices
  [['-qmp', 'stdio', '-qmp', 'stdio'], `${P}-qmp stdio: cannot use stdio by multiple character devices`],
  // qemu-system-x86_64 -nographic -qmp stdio:
  // qemu-system-x86_64: cannot use stdio by multiple character devices
  // qemu-system-x86_64: could not connect serial device to character backend 'stdio'
  [['-nographic', '-qmp', 'stdio'], `${P}cannot use stdio by multiple character devices\n${P}could not connect serial device to character backend 'stdio'`],
  [['-qmp', 'stdio', '-nographic'], `${P}cannot use stdio by multiple character devices\n${P}could not connect serial device to character backend 'stdio'`],
  // qemu-system-x86_64: -serial stdio: cannot use stdio by multiple character devices
  // qemu-system-x86_64: -serial stdio: could not connect serial device to character backend 'stdio'
  [['-serial', 'stdio', '-qmp', 'stdio'], `${P}-serial stdio: cannot use stdio by multiple character devices\n${P}-serial stdio: could not connect serial device to character backend 'stdio'`],
  [['-serial', 'mon:stdio', '-qmp', 'stdio'], `${P}-serial mon:stdio: cannot use stdio by multiple character devices\n${P}-serial mon:stdio: could not connect serial device to character backend 'mon:stdio'`],
  // qemu-system-x86_64: -mon chardev=nope,mode=control: chardev "nope" not found
  [['-mon', 'chardev=nope,mode=control'], `${P}-mon chardev=nope,mode=control: chardev "nope" not found`],
  // qemu-system-x86_64: -mon help: chardev "help" not found
  [['-mon', 'help'], `${P}-mon help: chardev "help" not found`],
  // qemu-system-x86_64: -mon mode=control: Parameter 'chardev' is missing
  [['-mon', 'mode=control'], `${P}-mon mode=control: Parameter 'chardev' is missing`],
  // qemu-system-x86_64: -mon chardev=c1,mode=bogus: Parameter 'mode' does not accept value 'bogus'
  [['-mon', 'chardev=c1,mode=bogus'], `${P}-mon chardev=c1,mode=bogus: Parameter 'mode' does not accept value 'bogus'`],
  // qemu-system-x86_64: -mon chardev=c1,bogus=1: Invalid parameter 'bogus'
  [['-mon', 'chardev=c1,bogus=1'], `${P}-mon chardev=c1,bogus=1: Invalid parameter 'bogus'`],
  // qemu-system-x86_64: -mon pretty=x: Parameter 'pretty' expects 'on' or 'off'
  [['-mon', 'pretty=x'], `${P}-mon pretty=x: Parameter 'pretty' expects 'on' or 'off'`],
  // qemu-system-x86_64: -mon chardev=c1,mode=control: Device 'c1' is in use
  [['-chardev', 'socket,id=c1,path=/q,server=on,wait=off', '-mon', 'c1,mode=control', '-mon', 'chardev=c1,mode=control'], `${P}-mon chardev=c1,mode=control: Device 'c1' is in use`],
  // qemu-system-x86_64: -mon chardev=compat_monitor0: Device 'compat_monitor0' is in use
  [['-qmp', 'unix:/q,server=on,wait=off', '-mon', 'chardev=compat_monitor0'], `${P}-mon chardev=compat_monitor0: Device 'compat_monitor0' is in use`],
  // qemu-system-x86_64: -chardev socket,id=c1,...: Duplicate ID 'c1' for chardev
  [['-chardev', 'socket,id=c1,path=/a', '-chardev', 'socket,id=c1,path=/b'], `${P}-chardev socket,id=c1,path=/b: Duplicate ID 'c1' for chardev`],
  // qemu-system-x86_64: -chardev socket,path=/tmp/qx6,server=on,wait=off: chardev: no id specified
  [['-chardev', 'socket,path=/q'], `${P}-chardev socket,path=/q: chardev: no id specified`],
  [['-chardev', 'bogus'], `${P}-chardev bogus: chardev: no id specified`],
  // qemu-system-x86_64: -chardev id=c1: chardev: "c1" missing backend
  [['-chardev', 'id=c1'], `${P}-chardev id=c1: chardev: "c1" missing backend`],
  // qemu-system-x86_64: -chardev bogus,id=c1: 'bogus' is not a valid char driver name
  [['-chardev', 'bogus,id=c1'], `${P}-chardev bogus,id=c1: 'bogus' is not a valid char driver name`],
  // qemu-system-x86_64: -chardev socket,id=c1: Unable to parse FD number 
  [['-chardev', 'socket,id=c1'], `${P}-chardev socket,id=c1: Unable to parse FD number `],
  // qemu-system-x86_64: -chardev socket,id=c1,host=127.0.0.1,server=on,wait=off: chardev: socket: no port given
  [['-chardev', 'socket,id=c1,host=h'], `${P}-chardev socket,id=c1,host=h: chardev: socket: no port given`],
  // qemu-system-x86_64: -chardev ...: None or one of 'path', 'fd' or 'host' option required.
  [['-chardev', 'socket,id=c1,path=/q,host=h'], `${P}-chardev socket,id=c1,path=/q,host=h: None or one of 'path', 'fd' or 'host' option required.`],
  // qemu-system-x86_64: -chardev socket,id=c1,path=/tmp/qx8,bogus=1: Invalid parameter 'bogus'
  [['-chardev', 'socket,id=c1,path=/q,bogus=1'], `${P}-chardev socket,id=c1,path=/q,bogus=1: Invalid parameter 'bogus'`],
  // qemu-system-x86_64: -chardev ...,reconnect=x: Parameter 'reconnect' expects a number
  [['-chardev', 'socket,id=c1,path=/q,reconnect=x'], `${P}-chardev socket,id=c1,path=/q,reconnect=x: Parameter 'reconnect' expects a number`],
  // qemu-system-x86_64: -chardev socket,id=1c,...: Parameter 'id' expects an identifier
  // Identifiers consist of letters, digits, '-', '.', '_', starting with a letter.
  [['-chardev', 'socket,id=1c,path=/q'], `${P}-chardev socket,id=1c,path=/q: Parameter 'id' expects an identifier\nIdentifiers consist of letters, digits, '-', '.', '_', starting with a letter.`],
  // Chardevs are created after the machine, smp, memory and accel checks, before monitors and serial:
  // qemu-system-x86_64 -chardev socket,id=c2 -M foo → unsupported machine type
  [['-chardev', 'socket,id=c2', '-M', 'foo'], `${P}unsupported machine type\nUse -machine help to list supported machines`],
  [['-chardev', 'socket,id=c2', '-smp', '999', '-serial', 'bogus'], `${P}-chardev socket,id=c2: Unable to parse FD number `],
  [['-mon', 'chardev=nope', '-accel', 'foo'], `${P}-accel foo: invalid accelerator foo`],
  [['-mon', 'chardev=nope', '-serial', 'bogus', '-cpu', 'foo'], `${P}-mon chardev=nope: chardev "nope" not found`],
  [['-mon', 'chardev=nope', '-chardev', 'socket,id=c2'], `${P}-chardev socket,id=c2: Unable to parse FD number `],
  // Not QEMU's: what nodevisor does not do.
  [['-qmp', 'unix:/q'], `${P}-qmp unix:/q: only server=on is supported`],
  [['-qmp', 'unix:/q,server=off,wait=off'], `${P}-qmp unix:/q,server=off,wait=off: only server=on is supported`],
  // QEMU 7.2 waits for a client by default: "info: QEMU waiting for connection on: disconnected:unix:/tmp/qx1,server=on"
  [['-qmp', 'unix:/q,server=on'], `${P}-qmp unix:/q,server=on: only wait=off is supported (QEMU would wait for a client, as wait=on is the default)`],
  [['-qmp', 'tcp::4444,server=on,wait=on'], `${P}-qmp tcp::4444,server=on,wait=on: only wait=off is supported (QEMU would wait for a client)`],
  [['-qmp', 'tcp::http,server=on,wait=off'], `${P}-qmp tcp::http,server=on,wait=off: port 'http' is not supported by nodevisor: give a number from 0 to 65535`],
  [['-qmp', 'unix:,server=on,wait=off'], `${P}-qmp unix:,server=on,wait=off: an empty socket path is not supported by nodevisor`],
  [['-qmp', 'null'], `${P}-qmp null: 'null' is not supported by nodevisor: use unix:PATH, tcp:HOST:PORT or stdio`],
  [['-chardev', 'socket,id=c1,path=/q,server=on', '-mon', 'c1,mode=control'], `${P}-chardev socket,id=c1,path=/q,server=on: only wait=off is supported (QEMU would wait for a client, as wait=on is the default)`],
  [['-chardev', 'socket,id=c1,path=/q', '-mon', 'c1,mode=control'], `${P}-chardev socket,id=c1,path=/q: only server=on is supported`],
  [['-chardev', 'socket,id=c1,path=/q,server=on,wait=off', '-mon', 'c1'], `${P}-mon c1: the human monitor is not supported: use mode=control (QMP)`],
  [['-chardev', 'socket,id=c1,path=/q,server=on,wait=off', '-mon', 'c1,mode=readline'], `${P}-mon c1,mode=readline: the human monitor is not supported: use mode=control (QMP)`],
  [['-chardev', 'stdio,id=c1'], `${P}-chardev stdio,id=c1: chardev backend 'stdio' is not supported by nodevisor (only socket)`],
  [['-chardev', 'socket,id=c1,path=/q,nodelay=on'], `${P}-chardev socket,id=c1,path=/q,nodelay=on: parameter 'nodelay' is not supported by nodevisor`],
];

test('errors carry QEMU\'s message with our program name', () => {
  // Without -kernel: qemu-system-x86_64 -append x -action panic=bogus → -append only allowed with -kernel option
  assert.throws(() => parseArgs(['-append', 'x', '-action', 'panic=bogus']), { message: `${P}-append only allowed with -kernel option` });
  for (const [argv, message] of ERRORS) {
    assert.throws(() => parseArgs([...argv, ...K]), (e: unknown) => {
      assert.ok(e instanceof OptionError, `${argv.join(' ')}: not an OptionError: ${String(e)}`);
      assert.equal(e.message, message, argv.join(' '));
      return true;
    });
  }
});

test('-h lists the new options', () => {
  const help = parseArgs(['-h']);
  const text = help.kind === 'help' ? help.text : '';
  for (const opt of ['-S', '-no-shutdown', '-action', '-watchdog-action', '-qmp', '-chardev', '-mon', '-uuid']) {
    assert.ok(text.includes(`\n${opt} `), opt);
  }
});
