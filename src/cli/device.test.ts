/**
 * `-device pvpanic` and `-device ib700` into config.devices, and QEMU 7.2's errors (quoted
 * above each row, from qemu-system-x86_64 -accel kvm -display none -nodefaults ...).
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

test('-device forms, in command-line order', () => {
  const cases: Array<[string[], unknown]> = [
    [[], []],
    [['-device', 'pvpanic'], [{ driver: 'pvpanic', ioport: 0x505 }]],
    [['-device', 'pvpanic,ioport=0x600'], [{ driver: 'pvpanic', ioport: 0x600 }]],
    [['-device', 'pvpanic,ioport=1280'], [{ driver: 'pvpanic', ioport: 1280 }]],
    [['-device', 'pvpanic,ioport=010,ioport=-0'], [{ driver: 'pvpanic', ioport: 0 }]],
    [['-device', 'driver=pvpanic,id=p1,bus=isa.0'], [{ driver: 'pvpanic', ioport: 0x505 }]],
    [['-device', 'ib700'], [{ driver: 'ib700' }]],
    // QEMU 7.2 accepts two ib700s (both at 0x441/0x443).
    [['-device', 'ib700', '-device', 'pvpanic', '-device', 'ib700,id=w2'], [{ driver: 'ib700' }, { driver: 'pvpanic', ioport: 0x505 }, { driver: 'ib700' }]],
  ];
  for (const [argv, devices] of cases) assert.deepEqual(run(argv).config.devices, devices, argv.join(' '));
});

test('-device help and -device DRIVER,help come after -cpu help, in QEMU\'s layout', () => {
  const list = 'Misc devices:\nname "pvpanic", bus ISA\n\nWatchdog devices:\nname "ib700", bus ISA, desc "iBASE 700"\n';
  assert.deepEqual(parseArgs(['-device', 'help', '-M', 'foo']), { kind: 'help', text: list, exitStatus: 0 });
  assert.deepEqual(parseArgs(['-device', '?']), { kind: 'help', text: list, exitStatus: 0 });
  // qemu-system-x86_64 -device pvpanic,help (exit 0), here without QEMU's events property.
  const pvpanic = 'pvpanic options:\n  ioport=<uint16>        -  (default: 1285)\n';
  assert.deepEqual(parseArgs(['-device', 'pvpanic,help']), { kind: 'help', text: pvpanic, exitStatus: 0 });
  assert.deepEqual(parseArgs(['-device', 'pvpanic,help=off']), { kind: 'help', text: pvpanic, exitStatus: 0 });
  assert.deepEqual(parseArgs(['-device', 'ib700,help']), { kind: 'help', text: 'There are no options for ib700.\n', exitStatus: 0 });
  // qemu-system-x86_64 -device foo,help: "-device foo,help: Device 'foo' not found" on stderr, exit 0.
  assert.deepEqual(parseArgs(['-device', 'foo,help']), {
    kind: 'help', text: "nodevisor: -device foo,help: Device 'foo' not found\n", exitStatus: 0, stream: 'stderr',
  });
  // -cpu help first; the first -device that asks wins.
  assert.equal((parseArgs(['-device', 'pvpanic,help', '-cpu', 'help']) as { text: string }).text.split('\n')[0], 'Available CPUs:');
  assert.deepEqual(parseArgs(['-device', 'ib700,help', '-device', 'help']), { kind: 'help', text: 'There are no options for ib700.\n', exitStatus: 0 });
});

const P = 'nodevisor: ';
const ERRORS: Array<[string[], string]> = [
  // qemu-system-x86_64: -device foo: 'foo' is not a valid device model name
  [['-device', 'foo'], `${P}-device foo: 'foo' is not a valid device model name`],
  // qemu-system-x86_64: -device : Parameter 'driver' is missing
  [['-device', ''], `${P}-device : Parameter 'driver' is missing`],
  // qemu-system-x86_64: -device pvpanic,ioport=70000: Parameter 'ioport' expects uint16_t
  [['-device', 'pvpanic,ioport=70000'], `${P}-device pvpanic,ioport=70000: Parameter 'ioport' expects uint16_t`],
  [['-device', 'pvpanic,ioport=-1'], `${P}-device pvpanic,ioport=-1: Parameter 'ioport' expects uint16_t`],
  // qemu-system-x86_64: -device pvpanic,ioport=abc: Parameter 'ioport' expects integer
  [['-device', 'pvpanic,ioport=abc'], `${P}-device pvpanic,ioport=abc: Parameter 'ioport' expects integer`],
  [['-device', 'pvpanic,ioport=5.0'], `${P}-device pvpanic,ioport=5.0: Parameter 'ioport' expects integer`],
  [['-device', 'pvpanic,ioport='], `${P}-device pvpanic,ioport=: Parameter 'ioport' expects integer`],
  // qemu-system-x86_64: -device pvpanic,bogus=1: Property 'pvpanic.bogus' not found
  [['-device', 'pvpanic,bogus=1'], `${P}-device pvpanic,bogus=1: Property 'pvpanic.bogus' not found`],
  [['-device', 'ib700,ioport=5'], `${P}-device ib700,ioport=5: Property 'ib700.ioport' not found`],
  // qemu-system-x86_64: -device pvpanic,bus=foo: Bus 'foo' not found
  [['-device', 'pvpanic,bus=foo'], `${P}-device pvpanic,bus=foo: Bus 'foo' not found`],
  // qemu-system-x86_64: -device pvpanic,ioport=0x601: duplicate fw_cfg file name: etc/pvpanic-port
  [['-device', 'pvpanic,ioport=0x600', '-device', 'pvpanic,ioport=0x601'], `${P}-device pvpanic,ioport=0x601: duplicate fw_cfg file name: etc/pvpanic-port`],
  // The id is checked when the option is met, before its other items (no warning for `x`).
  [['-device', 'pvpanic,id=1p,x'], `${P}-device pvpanic,id=1p,x: Parameter 'id' expects an identifier\nIdentifiers consist of letters, digits, '-', '.', '_', starting with a letter.`],
  // qemu-system-x86_64: -device ib700,id=a: Duplicate ID 'a' for device (before -M foo is looked at)
  [['-device', 'pvpanic,id=a', '-device', 'ib700,id=a', '-M', 'foo'], `${P}-device ib700,id=a: Duplicate ID 'a' for device`],
  // Devices are made after the CPU, in order.
  [['-device', 'foo', '-cpu', 'bar'], `${P}unable to find CPU model 'bar'`],
  [['-device', 'foo', '-accel', 'kvm,bogus=1'], `${P}-accel kvm,bogus=1: Property 'kvm-accel.bogus' not found`],
  [['-device', 'pvpanic', '-device', 'pvpanic', '-device', 'foo'], `${P}-device pvpanic: duplicate fw_cfg file name: etc/pvpanic-port`],
  // qemu-system-x86_64 7.2 has no -watchdog any more: -watchdog: invalid option
  [['-watchdog', 'ib700'], `${P}-watchdog: invalid option`],
  // nodevisor's own: no PCI bus (QEMU's words for a machine without one, and why).
  [['-device', 'i6300esb'], `${P}-device i6300esb: No 'PCI' bus found for device 'i6300esb' (nodevisor has no PCI bus)`],
  [['-device', 'i6300esb,bogus=1'], `${P}-device i6300esb,bogus=1: No 'PCI' bus found for device 'i6300esb' (nodevisor has no PCI bus)`],
  [['-device', 'i6300esb,help'], `${P}-device i6300esb,help: No 'PCI' bus found for device 'i6300esb' (nodevisor has no PCI bus)`],
  [['-device', 'pvpanic-pci'], `${P}-device pvpanic-pci: No 'PCI' bus found for device 'pvpanic-pci' (nodevisor has no PCI bus)`],
  [['-device', 'pvpanic,events=1'], `${P}-device pvpanic,events=1: property 'events' is not supported by nodevisor`],
];

test('-device errors carry QEMU\'s message', () => {
  for (const [argv, message] of ERRORS) {
    assert.throws(() => parseArgs([...argv, ...K]), (e: unknown) => {
      assert.ok(e instanceof OptionError, `${argv.join(' ')}: ${String(e)}`);
      assert.equal(e.message, message, argv.join(' '));
      return true;
    });
  }
});
