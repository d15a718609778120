/**
 * `-accel kvm,...` and `-machine kernel-irqchip=` into config.accel. QEMU 7.2's output for each
 * error row is quoted above it (qemu-system-x86_64 -display none -nodefaults ...); the
 * conformance test re-checks most of them against QEMU itself.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OptionError } from '../errors.js';
import { DEFAULT_ACCEL, type AccelConfig } from '../machine/config.js';
import { kvmAccelHelpText } from './accel.js';
import { parseArgs, type ParsedCommand } from './parse-args.js';

const K = ['-kernel', 'vmlinux'];

function run(argv: string[]): Extract<ParsedCommand, { kind: 'run' }> {
  const r = parseArgs([...argv, ...K]);
  assert.equal(r.kind, 'run', argv.join(' '));
  return r as Extract<ParsedCommand, { kind: 'run' }>;
}

function accel(argv: string[]): AccelConfig {
  return run(argv).config.accel ?? assert.fail('config.accel is always set');
}

test('config.accel: QEMU\'s defaults, whether or not an accelerator is named', () => {
  for (const argv of [[], ['-accel', 'kvm'], ['-enable-kvm'], ['-M', 'accel=kvm'], ['-accel', 'accel=kvm,id=a']]) {
    assert.deepEqual(accel(argv), DEFAULT_ACCEL, argv.join(' '));
  }
  assert.equal(run([]).options.accelLoc, undefined);
  assert.equal(run(['-enable-kvm']).options.accelLoc, undefined);
  assert.equal(run(['-accel', 'kvm']).options.accelLoc, '-accel kvm');
});

test('-accel kvm properties', () => {
  const cases: Array<[string, Partial<AccelConfig>]> = [
    ['notify-vmexit=run', { notifyVmexit: 'run', notifyVmexitRequested: true }],
    ['notify-vmexit=internal-error', { notifyVmexit: 'internal-error', notifyVmexitRequested: true }],
    ['notify-vmexit=disable,notify-window=5', { notifyVmexit: 'disable', notifyWindow: 5, notifyVmexitRequested: true }],
    // strtoull, base 0: hex, octal, leading blanks and a sign are all numbers to QEMU.
    ['notify-window=0x10', { notifyWindow: 16, notifyVmexitRequested: true }],
    ['notify-window=010', { notifyWindow: 8, notifyVmexitRequested: true }],
    ['notify-window= +5', { notifyWindow: 5, notifyVmexitRequested: true }],
    ['notify-window=4294967295', { notifyWindow: 4294967295, notifyVmexitRequested: true }],
    ['kernel-irqchip=on', { kernelIrqchip: 'on' }],
    ['kernel-irqchip=off', { kernelIrqchip: 'off' }],
    // QEMU runs with split; the machine refuses it (no user-space IOAPIC).
    ['kernel-irqchip=split', { kernelIrqchip: 'split' }],
    ['dirty-ring-size=0', { dirtyRingSize: 0 }],
    ['dirty-ring-size=4096', { dirtyRingSize: 4096 }],
    ['dirty-ring-size=0x80000000', { dirtyRingSize: 0x80000000 }],
    ['dirty-ring-size=3,dirty-ring-size=4', { dirtyRingSize: 4 }],
  ];
  for (const [props, expected] of cases) {
    assert.deepEqual(accel(['-accel', `kvm,${props}`]), { ...DEFAULT_ACCEL, ...expected }, props);
  }
});

test('kernel-irqchip: short forms warn as QEMU does; -machine sets it as a global under -accel', () => {
  // qemu-system-x86_64 -accel kvm,nokernel-irqchip: warning: short-form boolean option
  // 'nokernel-irqchip' deprecated / Please use kernel-irqchip=off instead
  const r = run(['-accel', 'kvm,nokernel-irqchip']);
  assert.equal(r.config.accel?.kernelIrqchip, 'off');
  assert.deepEqual(r.options.warnings, [
    "nodevisor: -accel kvm,nokernel-irqchip: warning: short-form boolean option 'nokernel-irqchip' deprecated\nPlease use kernel-irqchip=off instead",
  ]);
  assert.equal(accel(['-M', 'kernel-irqchip=off']).kernelIrqchip, 'off');
  assert.equal(accel(['-M', 'accel=kvm,kernel-irqchip=split']).kernelIrqchip, 'split');
  assert.equal(accel(['-M', 'kernel-irqchip=foo,kernel-irqchip=off', '-accel', 'kvm']).kernelIrqchip, 'off');
  // The -accel property is set after the global: it wins, whatever the order on the line.
  assert.equal(accel(['-accel', 'kvm,kernel-irqchip=off', '-M', 'kernel-irqchip=split']).kernelIrqchip, 'off');
  // -machine kernel-irqchip is the accelerator's, not one of the machine's own properties.
  assert.deepEqual(run(['-M', 'pc,kernel-irqchip=off,hpet=off']).options.machine, { type: 'pc', props: { hpet: 'off' } });
});

test('-accel kvm,help lists the properties, QEMU\'s object-help layout', () => {
  assert.deepEqual(parseArgs(['-accel', 'kvm,help']), { kind: 'accel-props-help', text: kvmAccelHelpText() });
  assert.deepEqual(parseArgs(['-accel', 'kvm,notify-window=1,?', '-M', 'foo']), { kind: 'accel-props-help', text: kvmAccelHelpText() });
  const lines = kvmAccelHelpText().split('\n');
  assert.equal(lines[0], 'kvm-accel options:');
  assert.deepEqual(
    lines.slice(1, -1).map((l) => /^ {2}([a-z-]+)=<[^>]+>( +- .*)?$/.exec(l)?.[1]),
    ['dirty-ring-size', 'introspection', 'kernel-irqchip', 'notify-vmexit', 'notify-window'],
  );
  // Names and types padded to 24 columns, as QEMU pads them.
  assert.ok(lines.includes('  introspection=<string> - id of the -object introspection that inspects the guest'));
  assert.equal(parseArgs(['-accel', 'help']).kind, 'accel-help');
});

const ERRORS: Array<[string[], string]> = [
  // qemu-system-x86_64: -accel kvm,notify-window=-1: Parameter 'notify-window' expects uint32_t
  [['-accel', 'kvm,notify-window=-1'], "nodevisor: -accel kvm,notify-window=-1: Parameter 'notify-window' expects uint32_t"],
  [['-accel', 'kvm,notify-window=4294967296'], "nodevisor: -accel kvm,notify-window=4294967296: Parameter 'notify-window' expects uint32_t"],
  // qemu-system-x86_64: -accel kvm,notify-window=abc: Parameter 'notify-window' expects uint64
  [['-accel', 'kvm,notify-window=abc'], "nodevisor: -accel kvm,notify-window=abc: Parameter 'notify-window' expects uint64"],
  [['-accel', 'kvm,notify-window='], "nodevisor: -accel kvm,notify-window=: Parameter 'notify-window' expects uint64"],
  [['-accel', 'kvm,notify-window=1k'], "nodevisor: -accel kvm,notify-window=1k: Parameter 'notify-window' expects uint64"],
  // qemu-system-x86_64: -accel kvm,notify-vmexit=foo: Parameter 'notify-vmexit' does not accept value 'foo'
  [['-accel', 'kvm,notify-vmexit=foo'], "nodevisor: -accel kvm,notify-vmexit=foo: Parameter 'notify-vmexit' does not accept value 'foo'"],
  // QEMU takes no bool spelling for kernel-irqchip: only on, off and split.
  [['-accel', 'kvm,kernel-irqchip=true'], "nodevisor: -accel kvm,kernel-irqchip=true: Parameter 'kernel-irqchip' does not accept value 'true'"],
  [['-accel', 'kvm,kernel-irqchip=yes'], "nodevisor: -accel kvm,kernel-irqchip=yes: Parameter 'kernel-irqchip' does not accept value 'yes'"],
  // qemu-system-x86_64: -accel kvm,dirty-ring-size=3: dirty-ring-size must be a power of two.
  [['-accel', 'kvm,dirty-ring-size=3'], 'nodevisor: -accel kvm,dirty-ring-size=3: dirty-ring-size must be a power of two.'],
  [['-accel', 'kvm,dirty-ring-size=-1'], "nodevisor: -accel kvm,dirty-ring-size=-1: Parameter 'dirty-ring-size' expects uint32_t"],
  // qemu-system-x86_64: -accel kvm,bogus=1: Property 'kvm-accel.bogus' not found
  [['-accel', 'kvm,bogus=1'], "nodevisor: -accel kvm,bogus=1: Property 'kvm-accel.bogus' not found"],
  // Properties are set in order, the first bad one reported.
  [['-accel', 'kvm,bogus=1,dirty-ring-size=3'], "nodevisor: -accel kvm,bogus=1,dirty-ring-size=3: Property 'kvm-accel.bogus' not found"],
  [['-accel', 'kvm,dirty-ring-size=3,bogus=1'], 'nodevisor: -accel kvm,dirty-ring-size=3,bogus=1: dirty-ring-size must be a power of two.'],
  // qemu-system-x86_64: -accel kvm,notify-window: warning: short-form boolean option 'notify-window' deprecated
  // Please use tify-window=off instead
  // qemu-system-x86_64: -accel kvm,notify-window: Property 'kvm-accel.tify-window' not found
  [['-accel', 'kvm,notify-window'], "nodevisor: -accel kvm,notify-window: warning: short-form boolean option 'notify-window' deprecated\nPlease use tify-window=off instead\nnodevisor: -accel kvm,notify-window: Property 'kvm-accel.tify-window' not found"],
  // A bad property ends the run: QEMU does not try the next accelerator.
  [['-accel', 'kvm,bogus=1', '-accel', 'kvm'], "nodevisor: -accel kvm,bogus=1: Property 'kvm-accel.bogus' not found"],
  [['-accel', 'foo', '-accel', 'kvm,bogus=1'], "nodevisor: -accel foo: invalid accelerator foo\nnodevisor: -accel kvm,bogus=1: Property 'kvm-accel.bogus' not found"],
  // Checked with the accelerator: after -smp and -m, before -cpu.
  [['-smp', '999', '-accel', 'kvm,bogus=1'], "nodevisor: Invalid SMP CPUs 999. The max CPUs supported by machine 'pc' is 255"],
  [['-accel', 'kvm,bogus=1', '-cpu', 'foo'], "nodevisor: -accel kvm,bogus=1: Property 'kvm-accel.bogus' not found"],
  // qemu-system-x86_64 -enable-kvm -M kernel-irqchip=foo:
  // can't apply global kvm-accel.kernel-irqchip=foo: Parameter 'kernel-irqchip' does not accept value 'foo'
  [['-enable-kvm', '-M', 'kernel-irqchip=foo'], "nodevisor: can't apply global kvm-accel.kernel-irqchip=foo: Parameter 'kernel-irqchip' does not accept value 'foo'"],
  [['-M', 'kernel-irqchip=foo'], "nodevisor: can't apply global kvm-accel.kernel-irqchip=foo: Parameter 'kernel-irqchip' does not accept value 'foo'"],
  // The global is applied when the -accel kvm object is made, so at its location, first.
  [['-M', 'kernel-irqchip=foo', '-accel', 'kvm,bogus=1'], "nodevisor: -accel kvm,bogus=1: can't apply global kvm-accel.kernel-irqchip=foo: Parameter 'kernel-irqchip' does not accept value 'foo'"],
  // nodevisor's own: a property QEMU has and nodevisor lacks; the introspection link.
  [['-accel', 'kvm,kvm-shadow-mem=1'], "nodevisor: -accel kvm,kvm-shadow-mem=1: property 'kvm-shadow-mem' is not supported by nodevisor"],
  [['-accel', 'kvm,introspection=i'], "nodevisor: -accel kvm,introspection=i: Property 'kvm-accel.introspection' can't find value 'i'"],
  [['-object', 'secret,id=s,data=x', '-accel', 'kvm,introspection=s'], "nodevisor: -accel kvm,introspection=s: Invalid parameter type for 'introspection', expected: introspection"],
];

test('-accel errors carry QEMU\'s message', () => {
  for (const [argv, message] of ERRORS) {
    assert.throws(() => parseArgs([...argv, ...K]), (e: unknown) => {
      assert.ok(e instanceof OptionError, `${argv.join(' ')}: ${String(e)}`);
      assert.equal(e.message, message, argv.join(' '));
      return true;
    });
  }
});
