/**
 * `-object secret`, `-object introspection` with its `-chardev socket`, and
 * `-accel kvm,introspection=` into config.introspection. Rows quoting QEMU 7.2 come from
 * qemu-system-x86_64 -display none -nodefaults ...; QEMU has no introspection object, so
 * those rows are nodevisor's own, worded as QEMU words the same problem elsewhere.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OptionError } from '../errors.js';
import { parseArgs, type ParsedCommand } from './parse-args.js';

const K = ['-kernel', 'vmlinux'];
const TOOL = ['-chardev', 'socket,id=c,path=/run/kvmi.sock'];
const KEY = ['-object', 'secret,id=k,data=hunter2'];

function run(argv: string[]): Extract<ParsedCommand, { kind: 'run' }> {
  const r = parseArgs([...argv, ...K]);
  assert.equal(r.kind, 'run', argv.join(' '));
  return r as Extract<ParsedCommand, { kind: 'run' }>;
}

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

test('introspection: the object, its client chardev and its secret become config.introspection', () => {
  const r = run([...TOOL, ...KEY, '-object', 'introspection,id=kvmi,chardev=c,key=k', '-accel', 'kvm,introspection=kvmi']);
  assert.deepEqual(r.config.introspection, {
    id: 'kvmi', path: '/run/kvmi.sock', key: bytes('hunter2'), handshakeTimeoutMs: 10_000, unhookTimeoutMs: 60_000, dialect: 'v7',
  });
  assert.equal(r.config.accel?.introspection, 'kvmi');
  assert.deepEqual(r.options.secretFiles, []);
  assert.equal(r.options.introspectionKeyFile, undefined);
  // The chardev is still listed, as a client socket: nothing listens on it.
  assert.deepEqual(r.options.chardevs, [{ id: 'c', backend: 'socket', path: '/run/kvmi.sock', server: false, wait: false }]);
  assert.deepEqual(r.options.qmp, []);

  const all = run([
    '-chardev', 'socket,id=c,path=/t,reconnect=5', '-object', 'secret,id=k,data=aHVudGVyMg==,format=base64',
    '-object', 'introspection,id=i,chardev=c,key=k,handshake-timeout=3,unhook-timeout=0x10,dialect=rfc-v5',
    '-accel', 'kvm,introspection=i,notify-vmexit=internal-error',
  ]);
  assert.deepEqual(all.config.introspection, {
    id: 'i', path: '/t', reconnect: 5, key: bytes('hunter2'), handshakeTimeoutMs: 3000, unhookTimeoutMs: 16_000, dialect: 'rfc-v5',
  });
  // reconnect=0 is QEMU's "do not reconnect"; no key is no authentication.
  const bare = run(['-chardev', 'socket,id=c,path=/t,reconnect=0', '-object', 'introspection,id=i,chardev=c', '-accel', 'kvm,introspection=i']);
  assert.deepEqual(bare.config.introspection, { id: 'i', path: '/t', handshakeTimeoutMs: 10_000, unhookTimeoutMs: 60_000, dialect: 'v7' });
  // An introspection object nothing names is checked but unused.
  assert.equal(run([...TOOL, '-object', 'introspection,id=i,chardev=c']).config.introspection, undefined);
});

test('a file secret is left for main.ts to read: secretFiles and introspectionKeyFile', () => {
  const r = run([
    ...TOOL, '-object', 'secret,id=other,file=/etc/other', '-object', 'secret,id=k,file=/etc/kvmi.key,format=base64',
    '-object', 'introspection,id=i,chardev=c,key=k', '-accel', 'kvm,introspection=i',
  ]);
  assert.deepEqual(r.options.secretFiles, [
    { id: 'other', path: '/etc/other', format: 'raw' },
    { id: 'k', path: '/etc/kvmi.key', format: 'base64' },
  ]);
  assert.equal(r.options.introspectionKeyFile, 'k');
  assert.equal(r.config.introspection?.key, undefined);
});

test('secrets: data forms', () => {
  // QEMU's base64 is glib's: newlines ignored, an unfinished last group dropped.
  const cases: Array<[string, string]> = [
    ['data=abc', 'abc'],
    ['data=', ''],
    ['data=YWJj,format=base64', 'abc'],
    ['data=YWI=,format=base64', 'ab'],
    ['data=YQ==,format=base64', 'a'],
    ['data=YWJ,format=base64', ''],
    ['data=a,format=raw,data=b', 'b'],
  ];
  for (const [props, text] of cases) {
    const r = run([...TOOL, '-object', `secret,id=k,${props}`, '-object', 'introspection,id=i,chardev=c,key=k', '-accel', 'kvm,introspection=i']);
    assert.deepEqual(r.config.introspection?.key, bytes(text), props);
  }
});

test('-object help and TYPE,help', () => {
  assert.deepEqual(parseArgs(['-object', 'help']), { kind: 'help', text: 'List of user creatable objects:\n  introspection\n  secret\n', exitStatus: 0 });
  assert.deepEqual(parseArgs(['-object', 'help,id=x']), { kind: 'help', text: 'List of user creatable objects:\n  introspection\n  secret\n', exitStatus: 0 });
  // qemu-system-x86_64 -object secret,help (exit 0), without the AES members nodevisor lacks.
  const secret = 'secret options:\n  data=<string>\n  file=<string>\n  format=<QCryptoSecretFormat>\n';
  assert.deepEqual(parseArgs(['-object', 'secret,help']), { kind: 'help', text: secret, exitStatus: 0 });
  assert.deepEqual(parseArgs(['-object', 'secret,id=s,data=a,help']), { kind: 'help', text: secret, exitStatus: 0 });
  const intro = parseArgs(['-object', 'introspection,help']);
  assert.equal(intro.kind, 'help');
  assert.match((intro as { text: string }).text, /^introspection options:\n {2}chardev=<string> {7}- .*\n {2}dialect=<IntrospectionDialect> - /);
});

const P = 'nodevisor: ';
const ERRORS: Array<[string[], string]> = [
  // qemu-system-x86_64: -object foo: Parameter 'qom-type' does not accept value 'foo'
  [['-object', 'foo'], `${P}-object foo: Parameter 'qom-type' does not accept value 'foo'`],
  // qemu-system-x86_64: -object id=x: Parameter 'qom-type' is missing
  [['-object', 'id=x'], `${P}-object id=x: Parameter 'qom-type' is missing`],
  // qemu-system-x86_64: -object secret: Parameter 'id' is missing
  [['-object', 'secret'], `${P}-object secret: Parameter 'id' is missing`],
  [['-object', 'secret,bogus=1'], `${P}-object secret,bogus=1: Parameter 'id' is missing`],
  [['-object', 'secret,id=1s,data=a'], `${P}-object secret,id=1s,data=a: Parameter 'id' expects an identifier\nIdentifiers consist of letters, digits, '-', '.', '_', starting with a letter.`],
  // qemu-system-x86_64: -object secret,id=s,data=b: Duplicate ID 's' for object (the first id= counts)
  [['-object', 'secret,id=s,data=a', '-object', 'secret,id=s,data=b'], `${P}-object secret,id=s,data=b: Duplicate ID 's' for object`],
  [['-object', 'secret,id=s,id=t,data=a', '-object', 'secret,id=s,data=b'], `${P}-object secret,id=s,data=b: Duplicate ID 's' for object`],
  [['-object', 'secret,id=s,data=a', '-object', 'foo,id=s'], `${P}-object foo,id=s: Duplicate ID 's' for object`],
  // Members in the type's order, then the unknown ones.
  [['-object', 'secret,id=s,data=a,format=foo'], `${P}-object secret,id=s,data=a,format=foo: Parameter 'format' does not accept value 'foo'`],
  [['-object', 'secret,id=s,bogus=1,format=foo'], `${P}-object secret,id=s,bogus=1,format=foo: Parameter 'format' does not accept value 'foo'`],
  [['-object', 'secret,id=s,data=a,bogus=1'], `${P}-object secret,id=s,data=a,bogus=1: Invalid parameter 'bogus'`],
  // Secrets are made with QEMU's early objects, reported without a location.
  [['-object', 'secret,id=s'], `${P}Either 'file' or 'data' must be provided`],
  [['-object', 'secret,id=s,data=a,file=/etc/hostname'], `${P}'file' and 'data' are mutually exclusive`],
  [['-object', 'secret,id=s,data=@@@,format=base64'], `${P}Base64 data contains invalid characters`],
  [['-object', 'secret,id=s', '-chardev', 'socket,id=c1'], `${P}Either 'file' or 'data' must be provided`],
  [['-object', 'secret,id=s', '-M', 'foo'], `${P}unsupported machine type\nUse -machine help to list supported machines`],
  [['-M', 'foo', '-object', 'bar'], `${P}-object bar: Parameter 'qom-type' does not accept value 'bar'`],
  // nodevisor's own.
  [['-object', 'iothread,id=io'], `${P}-object iothread,id=io: object type 'iothread' is not supported by nodevisor`],
  [['-object', 'secret,id=s,data=a,keyid=k'], `${P}-object secret,id=s,data=a,keyid=k: parameter 'keyid' is not supported by nodevisor`],
  [['-object', 'introspection,id=i'], `${P}-object introspection,id=i: Parameter 'chardev' is missing`],
  [['-object', 'introspection,id=i,chardev=c,dialect=v6'], `${P}-object introspection,id=i,chardev=c,dialect=v6: Parameter 'dialect' does not accept value 'v6'`],
  [['-object', 'introspection,id=i,chardev=c,handshake-timeout=-1'], `${P}-object introspection,id=i,chardev=c,handshake-timeout=-1: Parameter 'handshake-timeout' expects a uint64 value`],
  [['-object', 'introspection,id=i,chardev=c,unhook-timeout=4294967296'], `${P}-object introspection,id=i,chardev=c,unhook-timeout=4294967296: Parameter 'unhook-timeout' expects uint32_t`],
  [['-object', 'introspection,id=i,chardev=c,bogus=1'], `${P}-object introspection,id=i,chardev=c,bogus=1: Invalid parameter 'bogus'`],
  [['-object', 'introspection,id=i,chardev=nope'], `${P}-object introspection,id=i,chardev=nope: Property 'introspection.chardev' can't find value 'nope'`],
  [['-chardev', 'socket,id=c,host=localhost,port=4444', '-object', 'introspection,id=i,chardev=c'], `${P}-object introspection,id=i,chardev=c: chardev 'c' is not a unix socket: the introspection tool is reached through -chardev socket,path=PATH`],
  [['-chardev', 'socket,id=c,path=/t,server=on,wait=off', '-object', 'introspection,id=i,chardev=c'], `${P}-object introspection,id=i,chardev=c: chardev 'c' is a server socket: nodevisor connects to the listening introspection tool, so it needs server=off`],
  // QEMU: "-chardev socket,id=c,path=/t,wait=off: 'wait' option is incompatible with socket in client connect mode"
  [['-chardev', 'socket,id=c,path=/t,wait=off', '-object', 'introspection,id=i,chardev=c'], `${P}-chardev socket,id=c,path=/t,wait=off: 'wait' option is incompatible with socket in client connect mode`],
  // One frontend per chardev, as QEMU's "Device 'c' is in use"; the late objects come before the monitors.
  [[...TOOL, '-object', 'introspection,id=i,chardev=c', '-object', 'introspection,id=j,chardev=c'], `${P}-object introspection,id=j,chardev=c: Device 'c' is in use`],
  [['-chardev', 'socket,id=c,path=/t,server=on,wait=off', '-mon', 'c,mode=control', '-object', 'introspection,id=i,chardev=c'], `${P}-object introspection,id=i,chardev=c: chardev 'c' is a server socket: nodevisor connects to the listening introspection tool, so it needs server=off`],
  [[...TOOL, '-object', 'introspection,id=i,chardev=c', '-mon', 'c,mode=control'], `${P}-mon c,mode=control: Device 'c' is in use`],
  // qemu-system-x86_64 -object secret,id=s,data=a,keyid=t: No secret with id 't'
  [[...TOOL, '-object', 'introspection,id=i,chardev=c,key=k'], `${P}-object introspection,id=i,chardev=c,key=k: No secret with id 'k'`],
  // qemu-system-x86_64 -object iothread,id=io -object secret,id=s,data=a,keyid=io: Object with id 'io' is not a secret
  [[...TOOL, '-object', 'introspection,id=i,chardev=c,key=i'], `${P}-object introspection,id=i,chardev=c,key=i: Object with id 'i' is not a secret`],
  // Made after the accelerator: its errors come first.
  [[...TOOL, '-object', 'introspection,id=i,chardev=nope', '-accel', 'kvm,bogus=1'], `${P}-accel kvm,bogus=1: Property 'kvm-accel.bogus' not found`],
];

test('-object errors carry QEMU\'s message, or one in its style', () => {
  for (const [argv, message] of ERRORS) {
    assert.throws(() => parseArgs([...argv, ...K]), (e: unknown) => {
      assert.ok(e instanceof OptionError, `${argv.join(' ')}: ${String(e)}`);
      assert.equal(e.message, message, argv.join(' '));
      return true;
    });
  }
});
