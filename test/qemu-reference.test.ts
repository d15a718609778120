// The test guests are a reference for behaviour: each runs under QEMU 7.2
// (`-M pc -accel kvm`, SeaBIOS) and under nodevisor, and what the guest printed and how the
// process ended must be the same. QEMU's stdout starts with SeaBIOS's and iPXE's text, which
// is cut off before the guest's first line.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { before, test } from 'node:test';
import { guest } from '../src/testing/kvm-guests.js';
import { QEMU, runNodevisor, runQemu, type RunOptions, type RunResult } from '../src/testing/run-cli.js';

before(() => {
  const q = spawnSync(QEMU, ['-version'], { encoding: 'utf8' });
  if (q.error !== undefined) {
    const missing = (q.error as NodeJS.ErrnoException).code === 'ENOENT';
    assert.fail(missing ? `${QEMU} is not installed (apt-get install qemu-system-x86)` : String(q.error));
  }
  assert.match(q.stdout, /QEMU emulator version 7\.2\./, `the reference is QEMU 7.2, found: ${q.stdout.split('\n')[0] ?? ''}`);
});

/** QEMU's output from the guest's first line on (SeaBIOS and iPXE print before it). */
function fromGuest(stdout: string, firstLine: string): string {
  const i = stdout.indexOf(firstLine);
  return i < 0 ? `(guest line ${JSON.stringify(firstLine)} not found in) ${stdout}` : stdout.slice(i);
}

/** stderr without QEMU's CPUID warnings ("host doesn't support requested feature", PVM lacks pni). */
function errorLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l !== '' && !/^qemu-system-x86_64: warning: /.test(l));
}

interface Pair { qemu: RunResult; ours: RunResult }

/** Both runs of one guest, at the same time (QEMU's firmware takes seconds, nodevisor under one). */
async function both(name: string, extra: { qemu?: string[]; ours?: string[]; common?: string[] }, opts: RunOptions = {}): Promise<Pair> {
  const common = ['-kernel', guest(name), '-m', '64', '-no-reboot', ...(extra.common ?? [])];
  const [qemu, ours] = await Promise.all([
    runQemu([...common, ...(extra.qemu ?? [])], { timeoutMs: 90_000, ...opts }),
    runNodevisor([...common, '-nographic', ...(extra.ours ?? [])], { timeoutMs: 30_000, ...opts }),
  ]);
  assert.equal(qemu.timedOut, false, `QEMU timed out on ${name}: ${qemu.stdout.slice(-500)}\n${qemu.stderr}`);
  assert.equal(ours.timedOut, false, `nodevisor timed out on ${name}: ${ours.stdout}\n${ours.stderr}`);
  return { qemu, ours };
}

/** Same guest output (after the firmware), same exit status, no errors from either. */
function assertSame({ qemu, ours }: Pair, firstLine: string): void {
  assert.equal(ours.stdout, fromGuest(qemu.stdout, firstLine));
  assert.deepEqual(errorLines(ours.stderr), errorLines(qemu.stderr));
  assert.equal(ours.code, qemu.code);
  assert.equal(ours.code, 0);
}

// One guest at a time: two QEMUs at once on this 2-core PVM host took 101 s instead of 110 s.
for (const [name, first] of [['hello', 'Hello from'], ['timer', 'timer: '], ['reset', 'reset: ']] as const) {
  test(`${name}: same output and exit status as QEMU (a guest reset with -no-reboot exits 0)`, async () => {
    assertSame(await both(name, {}), first);
  });
}

test('smp: two CPUs, the same MP table and start-up as QEMU\'s -smp 2,sockets=2', async () => {
  // With plain -smp 2 QEMU makes one socket of two cores and SeaBIOS lists one CPU per package.
  const p = await both('smp', { qemu: ['-smp', '2,sockets=2'], ours: ['-smp', '2'] });
  assertSame(p, 'smp: ');
  assert.match(p.ours.stdout, /smp: all 2 cpus up\n$/);
});

test('serial-irq: THRE and receive interrupts echo the same input the same way', async () => {
  // Each run sends its input once the guest says it is ready (earlier bytes are drained).
  const input = (): RunOptions['onStdout'] => {
    let sent = false;
    return (out, write) => {
      if (!sent && out.includes('serial-irq: ready\n')) {
        sent = true;
        write('abc, 123\nq');
      }
    };
  };
  const common = ['-kernel', guest('serial-irq'), '-m', '64', '-no-reboot'];
  const [qemu, ours] = await Promise.all([
    runQemu(common, { timeoutMs: 90_000, onStdout: input() }),
    runNodevisor([...common, '-nographic'], { timeoutMs: 30_000, onStdout: input() }),
  ]);
  assertSame({ qemu, ours }, 'serial-irq: ');
  assert.match(ours.stdout, /abc, 123\nserial-irq: bye\n$/);
});

test('memsize: the same command line and top-of-RAM check as QEMU', async () => {
  // Only the cmdline and "top of ram ok" lines are compared: the memmap lines differ by design,
  // QEMU's come from SeaBIOS's e820 table (which reserves its own areas at the top of RAM and
  // near 4G), ours are exactly nodevisor's e820 map (test/boot.test.ts checks those).
  const p = await both('memsize', { common: ['-append', 'a=1 b console=ttyS0'] });
  const pick = (s: string): string[] => s.split('\n').filter((l) => l.startsWith('cmdline: ') || l.startsWith('memsize: top of ram'));
  assert.deepEqual(pick(p.ours.stdout), pick(fromGuest(p.qemu.stdout, 'memmap: ')));
  assert.deepEqual(pick(p.ours.stdout), ['cmdline: a=1 b console=ttyS0', 'memsize: top of ram ok']);
  assert.equal(p.ours.code, p.qemu.code);
  assert.equal(p.ours.code, 0);
});

test('linux64: a bzImage gets the same command line as under QEMU', async () => {
  // QEMU enters it in real mode through its own stub and SeaBIOS's e820; nodevisor through the
  // 64-bit boot protocol with its own map: only the command line is compared.
  const p = await both('linux64', { common: ['-append', 'console=ttyS0 root=/dev/vda quiet'] });
  const cmdline = (s: string): string[] => s.split('\n').filter((l) => l.startsWith('linux64: cmdline='));
  assert.deepEqual(cmdline(p.ours.stdout), cmdline(fromGuest(p.qemu.stdout, 'linux64: ')));
  assert.deepEqual(cmdline(p.ours.stdout), ['linux64: cmdline=console=ttyS0 root=/dev/vda quiet']);
  assert.equal(p.ours.code, p.qemu.code);
  assert.equal(p.ours.code, 0);
});

test('triplefault: the same KVM internal error report as QEMU, and both stop and stay', async () => {
  // Neither process exits on an internal error (the VM stops in internal-error): both are ended
  // with SIGTERM once the report's last line (Code=) is out, and must not need the timeout.
  const p = await both('triplefault', {}, { untilStderr: /\nCode=[^\n]*\n/ });
  assert.equal(p.ours.stdout, fromGuest(p.qemu.stdout, 'triplefault: '));
  const ours = errorLines(p.ours.stderr);
  const qemu = errorLines(p.qemu.stderr);
  assert.equal(ours[0], 'KVM internal error. Suberror: 1');
  assert.equal(ours[0], qemu[0]);
  // The register dump has the same lines in the same order: compare what precedes each '='
  // (EAX=, ESI=, EIP=, ES =, CS =, ..., EFER=, Code=) and the lines without one.
  const shape = (lines: string[]): string[] => lines
    .filter((l) => !/terminating on signal/.test(l))
    .map((l) => (l.includes('=') ? `${l.slice(0, l.indexOf('='))}=` : l.replace(/0x[0-9a-f]+/g, '0x…')));
  assert.deepEqual(shape(ours), shape(qemu));
  // The faulting instruction is the same: the bytes around <cc> in Code=.
  const code = (lines: string[]): string | undefined => lines.find((l) => l.startsWith('Code='));
  assert.equal(code(ours), code(qemu));
  const eip = (lines: string[]): string | undefined => lines.find((l) => l.startsWith('EIP='))?.split(' ')[0];
  assert.equal(eip(ours), eip(qemu));
  // Both end cleanly on SIGTERM, QEMU saying "terminating on signal 15 from pid N".
  assert.equal(p.ours.code, p.qemu.code);
  assert.match(ours.at(-1) ?? '', /^nodevisor: terminating on signal 15$/);
  assert.match(qemu.at(-1) ?? '', /^qemu-system-x86_64: terminating on signal 15/);
});
