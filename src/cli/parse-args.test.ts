import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OptionError } from '../errors.js';
import { DEFAULT_ACCEL, DEFAULT_MEMORY_SIZE } from '../machine/config.js';
import { parseArgs, type ParsedCommand, type RunOptions } from './parse-args.js';

const MiB = 1024 * 1024;
const K = ['-kernel', 'vmlinux'];

function run(argv: string[]): Extract<ParsedCommand, { kind: 'run' }> {
  const r = parseArgs(argv);
  assert.equal(r.kind, 'run');
  return r as Extract<ParsedCommand, { kind: 'run' }>;
}

test('the demo command line', () => {
  const { config, options } = run(['-kernel', 'hello.elf', '-m', '256', '-smp', '2', '-nographic']);
  assert.deepEqual(config, {
    memorySize: 256 * MiB,
    cpus: 2,
    cpu: { model: 'host', features: [] },
    kernel: 'hello.elf',
    append: '',
    serial: { kind: 'stdio' },
    noReboot: false,
    accel: DEFAULT_ACCEL,
    devices: [],
  });
  const expected: RunOptions = {
    nographic: true,
    display: 'none',
    machine: { type: 'pc', props: {} },
    topology: { cpus: 2, maxCpus: 2, sockets: 1, dies: 1, cores: 2, threads: 1 },
    serialMux: true,
    name: {},
    warnings: [],
    startPaused: false,
    noShutdown: false,
    actions: { reboot: 'reset', shutdown: 'poweroff', panic: 'shutdown', watchdog: 'reset' },
    qmp: [],
    chardevs: [],
    secretFiles: [],
  };
  assert.deepEqual(options, expected);
});

test('defaults: 128 MiB, 1 CPU, serial on stdio without the mux', () => {
  const { config, options } = run(K);
  assert.equal(config.memorySize, DEFAULT_MEMORY_SIZE);
  assert.equal(config.cpus, 1);
  assert.deepEqual(config.serial, { kind: 'stdio' });
  assert.equal(options.serialMux, false);
  assert.equal(options.serialArg, undefined);
});

test('memory forms', () => {
  const cases: Array<[string[], number]> = [
    [['-m', '512M'], 512 * MiB],
    [['-m', '2G'], 2048 * MiB],
    [['-m', 'size=2G'], 2048 * MiB],
    [['-m', '1048576K'], 1024 * MiB],
    [['-m', '0'], DEFAULT_MEMORY_SIZE],
    [['-m', ''], DEFAULT_MEMORY_SIZE],
    [['-m', '64', '-m', '128'], 128 * MiB],
    [['-m', '1G,size=2G'], 2048 * MiB],
    [['-m', '1G,maxmem=2G,slots=2'], 1024 * MiB],
    [['--m', '64'], 64 * MiB],
  ];
  for (const [argv, bytes] of cases) assert.equal(run([...argv, ...K]).config.memorySize, bytes, argv.join(' '));
});

test('smp topology as QEMU resolves it', () => {
  const cases: Array<[string, number, number]> = [
    // [-smp, cpus, cores] — QEMU 7.2 prefers cores; checked with query-cpus-fast.
    ['4', 4, 4],
    ['2,cpus=3', 3, 3],
    ['0x10', 16, 16],
    ['010,sockets=8', 8, 1],
    ['sockets=2,cores=3', 6, 3],
    ['', 1, 1],
  ];
  for (const [smp, cpus, cores] of cases) {
    const { config, options } = run(['-smp', smp, ...K]);
    assert.equal(config.cpus, cpus, smp);
    assert.equal(options.topology.cores, cores, smp);
  }
  assert.equal(run(['-smp', '2', '-smp', '3', ...K]).config.cpus, 3);
  assert.equal(run(['-smp', '2,maxcpus=4', ...K]).options.topology.maxCpus, 4);
  assert.equal(run(['-smp', '255', ...K]).config.cpus, 255);
  // qemu-system-x86_64 -smp 0: "warning: Deprecated CPU topology (considered invalid): CPU
  // topology parameters must be greater than zero", then runs with one CPU.
  const zero = run(['-smp', '0', ...K]);
  assert.equal(zero.config.cpus, 1);
  assert.deepEqual(zero.options.warnings, [
    'nodevisor: warning: Deprecated CPU topology (considered invalid): CPU topology parameters must be greater than zero',
  ]);
});

test('cpu, accel, machine, serial, name, and the rest', () => {
  const r = run([
    ...K,
    '-cpu', 'host,-x2apic,+avx,pdpe1gb=off,kvm_pv_eoi',
    '-accel', 'kvm,notify-vmexit=run,notify-window=0',
    '-M', 'pc,hpet=off',
    '-serial', 'unix:/tmp/x.sock,server,nowait',
    '-name', 'guest=vm1,process=p',
    '-append', 'console=ttyS0',
    '-initrd', 'rd.img',
    '-display', 'none',
    '-no-reboot',
  ]);
  assert.deepEqual(r.config.cpu.features, [
    { name: 'pdpe1gb', enabled: false },
    { name: 'kvm-pv-eoi', enabled: true },
    { name: 'avx', enabled: true },
    { name: 'x2apic', enabled: false },
  ]);
  assert.deepEqual(r.config.accel, { ...DEFAULT_ACCEL, notifyVmexitRequested: true });
  assert.equal(r.options.accelLoc, '-accel kvm,notify-vmexit=run,notify-window=0');
  assert.deepEqual(r.options.machine, { type: 'pc', props: { hpet: 'off' } });
  assert.deepEqual(r.config.serial, { kind: 'unix', path: '/tmp/x.sock', server: true, wait: false });
  assert.equal(r.options.serialArg, 'unix:/tmp/x.sock,server,nowait');
  assert.equal(r.config.name, 'vm1');
  assert.deepEqual(r.options.name, { process: 'p' });
  assert.equal(r.config.append, 'console=ttyS0');
  assert.equal(r.config.initrd, 'rd.img');
  assert.equal(r.config.noReboot, true);

  assert.deepEqual(run([...K, '-serial', 'file:/tmp/a,b']).config.serial, { kind: 'file', path: '/tmp/a,b' });
  assert.deepEqual(run([...K, '-serial', 'null']).config.serial, { kind: 'null' });
  assert.deepEqual(run([...K, '-serial', 'none']).config.serial, { kind: 'none' });
  assert.equal(run([...K, '-serial', 'mon:stdio']).options.serialMux, true);
  assert.deepEqual(run([...K, '-serial', 'unix:/s']).config.serial, { kind: 'unix', path: '/s', server: false, wait: true });
  assert.equal(run([...K, '-enable-kvm']).kind, 'run');
  assert.equal(run([...K, '-M', 'accel=kvm:tcg']).kind, 'run');
  assert.equal(run([...K, '-cpu', 'max']).config.cpu.model, 'host');
  // -accel foo -accel kvm: QEMU reports foo, then "falling back to KVM", and runs.
  assert.deepEqual(run(['-accel', 'foo', '-accel', 'kvm', ...K]).options.warnings, [
    'nodevisor: -accel foo: invalid accelerator foo',
    'nodevisor: falling back to KVM',
  ]);
  // -cpu host,+x2apic,x2apic=on
  assert.deepEqual(run([...K, '-cpu', 'host,+x2apic,x2apic=on']).options.warnings, [
    'nodevisor: warning: Ambiguous CPU model string. Don\'t mix both "+x2apic" and "x2apic=on"',
    "nodevisor: warning: Compatibility of ambiguous CPU model strings won't be kept on future QEMU versions",
  ]);
});

test('-cpu hv-crash is the CPU property, not a CPUID feature; -uuid goes to config.uuid', () => {
  const cases: Array<[string, boolean | undefined, string[]]> = [
    ['host', undefined, []],
    ['host,hv-crash', true, []],
    ['host,hv-crash=on', true, []],
    ['host,hv_crash=yes', true, []],
    ['host,hv-crash=off', false, []],
    ['max,hv-crash,x2apic=off', true, ['x2apic']],
    // +/- win over feat=, and - over + (qemu-system-x86_64 runs all of these).
    ['host,+hv-crash,hv-crash=off', true, []],
    ['host,-hv-crash,+hv-crash', false, []],
    // QEMU knows no hv_crash after +: the machine reports it as an unknown feature.
    ['host,+hv_crash', undefined, ['hv_crash']],
  ];
  for (const [cpu, hvCrash, features] of cases) {
    const c = run(['-cpu', cpu, ...K]).config.cpu;
    assert.equal(c.hvCrash, hvCrash, cpu);
    assert.deepEqual(c.features.map((f) => f.name), features, cpu);
  }
  // qemu-system-x86_64 -accel kvm -cpu host,hv-crash=foo,hv-crash=on: every value is checked.
  assert.throws(() => parseArgs(['-cpu', 'host,hv-crash=foo,hv-crash=on', ...K]), new OptionError(
    "nodevisor: can't apply global host-x86_64-cpu.hv-crash=foo: Parameter 'hv-crash' expects 'on' or 'off'",
  ));
  const r = run(['-uuid', '12345678-1234-1234-1234-1234567890AB', ...K]);
  assert.equal(r.config.uuid, '12345678-1234-1234-1234-1234567890ab');
  assert.equal(r.options.uuid, r.config.uuid);
});

test('help, version and the informational forms', () => {
  const help = parseArgs(['-h']);
  assert.equal(help.kind, 'help');
  assert.match(help.kind === 'help' ? help.text : '', /^nodevisor version .*\nusage: nodevisor \[options\]/);
  for (const opt of ['-kernel', '-append', '-initrd', '-serial', '-nographic', '-smp', '-m', '-cpu', '-accel', '-no-reboot', '-device', '-object']) {
    assert.ok(help.kind === 'help' && help.text.includes(`\n${opt} `), opt);
  }
  assert.deepEqual(parseArgs(['--help']).kind, 'help');
  const version = parseArgs(['-version', '-m', 'foo']); // -version acts before -m is read
  assert.equal(version.kind, 'version');
  assert.match(version.kind === 'version' ? version.text : '', /^nodevisor version \d+\.\d+\.\d+\S* \(QEMU-compatible command line, 7\.2\)\n$/);
  assert.equal(parseArgs(['-accel', 'help']).kind, 'accel-help');
  assert.equal(parseArgs(['-accel', '']).kind, 'accel-help');
  assert.deepEqual(parseArgs(['-M', 'help']), {
    kind: 'help',
    text: 'Supported machines are:\npc                   x86 PC with legacy devices, direct kernel boot (default)\n',
    exitStatus: 0,
  });
  assert.equal(parseArgs(['-cpu', 'help']).kind, 'help');
  // qemu-system-x86_64 -m 1G,help prints "memory options:" and its keys, and exits 1.
  assert.deepEqual(parseArgs(['-m', '1G,help']), {
    kind: 'help',
    text: 'memory options:\n  maxmem=<size>\n  size=<size>\n  slots=<num>\n',
    exitStatus: 1,
  });
});

// Each row: argv, and the message QEMU 7.2 printed for it (with our program name). The QEMU
// output is quoted in the comments; qemu-conformance.test.ts re-checks a few against QEMU itself.
const ERRORS: Array<[string[], string]> = [
  // qemu-system-x86_64: -m foo: Parameter 'size' expects a non-negative number below 2^64
  // Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-
  // and exabytes, respectively.
  [['-m', 'foo'], "nodevisor: -m foo: Parameter 'size' expects a non-negative number below 2^64\nOptional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively."],
  [['-m', '-1'], "nodevisor: -m -1: Parameter 'size' expects a non-negative number below 2^64\nOptional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively."],
  [['-m', '0.5'], "nodevisor: -m 0.5: Parameter 'size' expects a non-negative number below 2^64\nOptional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively."],
  // qemu-system-x86_64: -m 16E: Value '16E' is out of range for parameter 'size'
  [['-m', '16E'], "nodevisor: -m 16E: Value '16E' is out of range for parameter 'size'"],
  // qemu-system-x86_64: -m bogus=1: Invalid parameter 'bogus'
  [['-m', 'bogus=1'], "nodevisor: -m bogus=1: Invalid parameter 'bogus'"],
  // qemu-system-x86_64: -m 256,256: warning: short-form boolean option '256' deprecated
  // Please use 256=on instead
  // qemu-system-x86_64: -m 256,256: Invalid parameter '256'
  [['-m', '256,256'], "nodevisor: -m 256,256: warning: short-form boolean option '256' deprecated\nPlease use 256=on instead\nnodevisor: -m 256,256: Invalid parameter '256'"],
  // qemu-system-x86_64: invalid value of maxmem: maximum memory size (0x40000000) must be at least the initial memory size (0x80000000)
  [['-m', '2G,maxmem=1G'], 'nodevisor: invalid value of maxmem: maximum memory size (0x40000000) must be at least the initial memory size (0x80000000)'],
  // qemu-system-x86_64: slots specified but no max-size
  [['-m', '1G,slots=2'], 'nodevisor: slots specified but no max-size'],
  // qemu-system-x86_64: Parameter 'memory.size' expects size
  [['-m', '17592186044416'], "nodevisor: Parameter 'memory.size' expects size"],
  // qemu-system-x86_64: -m: requires an argument
  [['-m'], 'nodevisor: -m: requires an argument'],
  [['-kernel'], 'nodevisor: -kernel: requires an argument'],
  // qemu-system-x86_64: -bogus: invalid option   (also --bogus, -m=64, -?)
  [['-bogus'], 'nodevisor: -bogus: invalid option'],
  [['--bogus'], 'nodevisor: --bogus: invalid option'],
  [['-m=64'], 'nodevisor: -m=64: invalid option'],
  [['-?'], 'nodevisor: -?: invalid option'],
  // qemu-system-x86_64: -version -bogus → -bogus: invalid option (checked before -version acts)
  [['-version', '-bogus'], 'nodevisor: -bogus: invalid option'],
  // qemu-system-x86_64: Invalid SMP CPUs 256. The max CPUs supported by machine 'pc-i440fx-7.2' is 255
  [['-smp', '256'], "nodevisor: Invalid SMP CPUs 256. The max CPUs supported by machine 'pc' is 255"],
  [['-smp', '-1'], "nodevisor: Invalid SMP CPUs -1. The max CPUs supported by machine 'pc' is 255"],
  [['-smp', '1,maxcpus=300'], "nodevisor: Invalid SMP CPUs 300. The max CPUs supported by machine 'pc' is 255"],
  // qemu-system-x86_64: Parameter 'smp.cpus' expects integer
  [['-smp', 'foo'], "nodevisor: Parameter 'smp.cpus' expects integer"],
  [['-smp', '1.5'], "nodevisor: Parameter 'smp.cpus' expects integer"],
  // qemu-system-x86_64: Parameter 'smp.bogus' is unexpected
  [['-smp', '1,bogus=2'], "nodevisor: Parameter 'smp.bogus' is unexpected"],
  // qemu-system-x86_64: -smp 2,sockets: Expected '=' after parameter 'sockets'
  [['-smp', '2,sockets'], "nodevisor: -smp 2,sockets: Expected '=' after parameter 'sockets'"],
  // qemu-system-x86_64: Invalid CPU topology: product of the hierarchy must match maxcpus: sockets (3) * dies (1) * cores (1) * threads (1) != maxcpus (4)
  [['-smp', '4,sockets=3'], 'nodevisor: Invalid CPU topology: product of the hierarchy must match maxcpus: sockets (3) * dies (1) * cores (1) * threads (1) != maxcpus (4)'],
  // qemu-system-x86_64: Invalid CPU topology: maxcpus must be equal to or greater than smp: sockets (1) * dies (1) * cores (2) * threads (1) == maxcpus (2) < smp_cpus (4)
  [['-smp', 'cpus=4,maxcpus=2'], 'nodevisor: Invalid CPU topology: maxcpus must be equal to or greater than smp: sockets (1) * dies (1) * cores (2) * threads (1) == maxcpus (2) < smp_cpus (4)'],
  // qemu-system-x86_64: clusters not supported by this machine's CPU topology
  [['-smp', '1,clusters=2'], "nodevisor: clusters not supported by this machine's CPU topology"],
  // qemu-system-x86_64: -accel foo: invalid accelerator foo
  [['-accel', 'foo'], 'nodevisor: -accel foo: invalid accelerator foo'],
  // nodevisor has only KVM, as a QEMU built without TCG.
  [['-accel', 'tcg'], 'nodevisor: -accel tcg: invalid accelerator tcg'],
  [['-accel', 'foo', '-accel', 'bar'], 'nodevisor: -accel foo: invalid accelerator foo\nnodevisor: -accel bar: invalid accelerator bar'],
  // qemu-system-x86_64: invalid accelerator foo
  [['-M', 'accel=foo'], 'nodevisor: invalid accelerator foo'],
  // qemu-system-x86_64: The -accel and "-machine accel=" options are incompatible
  [['-enable-kvm', '-accel', 'kvm'], 'nodevisor: The -accel and "-machine accel=" options are incompatible'],
  // qemu-system-x86_64: unsupported machine type
  // Use -machine help to list supported machines
  [['-M', 'foo'], 'nodevisor: unsupported machine type\nUse -machine help to list supported machines'],
  [['-M', 'q35'], 'nodevisor: unsupported machine type\nUse -machine help to list supported machines'],
  // qemu-system-x86_64: unable to find CPU model 'foo'
  [['-cpu', 'foo'], "nodevisor: unable to find CPU model 'foo'"],
  [['-cpu', 'Host'], "nodevisor: unable to find CPU model 'Host'"],
  // qemu-system-x86_64: -cpu option cannot be empty
  [['-cpu', ''], 'nodevisor: -cpu option cannot be empty'],
  // qemu-system-x86_64: can't apply global host-x86_64-cpu.x2apic=maybe: Parameter 'x2apic' expects 'on' or 'off'
  [['-cpu', 'host,x2apic=maybe'], "nodevisor: can't apply global host-x86_64-cpu.x2apic=maybe: Parameter 'x2apic' expects 'on' or 'off'"],
  // qemu-system-x86_64: -serial bogus: 'bogus' is not a valid char driver
  // qemu-system-x86_64: -serial bogus: could not connect serial device to character backend 'bogus'
  [['-serial', 'bogus'], "nodevisor: -serial bogus: 'bogus' is not a valid char driver\nnodevisor: -serial bogus: could not connect serial device to character backend 'bogus'"],
  [['-serial', 'unix:/s,server=maybe'], "nodevisor: -serial unix:/s,server=maybe: Parameter 'server' expects 'on' or 'off'\nnodevisor: -serial unix:/s,server=maybe: could not connect serial device to character backend 'unix:/s,server=maybe'"],
  [['-serial', 'unix:/s,bogus=1'], "nodevisor: -serial unix:/s,bogus=1: Invalid parameter 'bogus'\nnodevisor: -serial unix:/s,bogus=1: could not connect serial device to character backend 'unix:/s,bogus=1'"],
  // qemu-system-x86_64: -name foo,bogus=1: Invalid parameter 'bogus'
  [['-name', 'foo,bogus=1'], "nodevisor: -name foo,bogus=1: Invalid parameter 'bogus'"],
  // qemu-system-x86_64: -display foo: Parameter 'type' does not accept value 'foo'
  [['-display', 'foo'], "nodevisor: -display foo: Parameter 'type' does not accept value 'foo'"],
  [['-display', 'gtk'], "nodevisor: -display gtk: Parameter 'type' does not accept value 'gtk'"],
  // qemu-system-x86_64: -display none,bogus=1: Parameter 'bogus' is unexpected
  [['-display', 'none,bogus=1'], "nodevisor: -display none,bogus=1: Parameter 'bogus' is unexpected"],
  // qemu-system-x86_64: OpenGL is not supported by the display
  [['-display', 'none,gl=on'], 'nodevisor: OpenGL is not supported by the display'],
  // qemu-system-x86_64: -append only allowed with -kernel option (checked before -initrd's)
  [['-initrd', 'a', '-append', 'b'], 'nodevisor: -append only allowed with -kernel option'],
  [['-initrd', 'a'], 'nodevisor: -initrd only allowed with -kernel option'],
  // Checks come in QEMU's order: -append, machine, smp, memory, accel, serial, cpu.
  [['-M', 'foo', '-smp', '999', '-accel', 'bar', '-cpu', 'baz', '-serial', 'bogus'], 'nodevisor: unsupported machine type\nUse -machine help to list supported machines'],
  [['-cpu', 'baz', '-serial', 'bogus'], "nodevisor: -serial bogus: 'bogus' is not a valid char driver\nnodevisor: -serial bogus: could not connect serial device to character backend 'bogus'"],
  // Not QEMU's: what nodevisor cannot do.
  [[], 'nodevisor: no kernel given: -kernel IMAGE is required (nodevisor has no firmware to boot a disk)'],
  [['-daemonize', ...K], 'nodevisor: -daemonize: option not supported by nodevisor'],
  [['-drive', 'file=x', ...K], 'nodevisor: -drive: option not supported by nodevisor'],
  [['disk.img', ...K], 'nodevisor: disk.img: disk images are not supported (nodevisor boots -kernel directly)'],
  [['-serial', 'null', '-serial', 'stdio', ...K], 'nodevisor: -serial stdio: only one serial port (COM1) is supported'],
];

test('errors carry QEMU\'s message with our program name', () => {
  for (const [argv, message] of ERRORS) {
    assert.throws(() => parseArgs(argv), (e: unknown) => {
      assert.ok(e instanceof OptionError, `${argv.join(' ')}: not an OptionError: ${String(e)}`);
      assert.equal(e.message, message, argv.join(' '));
      assert.equal(e.code, 'ERR_BAD_OPTION');
      return true;
    });
  }
});
