// Test guests booted on real KVM through the nodevisor program, as a user runs it.
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { e820Map, ramLayout } from '../src/arch/x86/e820.js';
import { guest } from '../src/testing/kvm-guests.js';
import { runNodevisor } from '../src/testing/run-cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'nodevisor-boot-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const hex16 = (n: number): string => n.toString(16).padStart(16, '0');

test('hello: prints its line and a guest reset with -no-reboot exits 0', async () => {
  const r = await runNodevisor(['-kernel', guest('hello'), '-m', '64', '-nographic', '-no-reboot']);
  assert.equal(r.stderr, '');
  assert.equal(r.stdout, 'Hello from a nodevisor test guest\n');
  assert.equal(r.code, 0);
});

test('smp: every CPU is in the MP table, starts through INIT/SIPI and reports its APIC ID', async () => {
  for (const n of [2, 4]) {
    const r = await runNodevisor(['-kernel', guest('smp'), '-smp', String(n), '-m', '64', '-nographic', '-no-reboot']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines[0], `smp: ${n} cpus in MP table`);
    const ids = lines.filter((l) => l.startsWith('cpu: apic id ')).map((l) => Number(l.slice(13))).sort();
    assert.deepEqual(ids, Array.from({ length: n }, (_, i) => i));
    assert.equal(lines.at(-1), `smp: all ${n} cpus up`);
  }
});

test('memsize: the PVH memory map is exactly nodevisor\'s e820 map, with and without the 4G hole', async () => {
  for (const mib of [64, 4096]) {
    const r = await runNodevisor(['-kernel', guest('memsize'), '-m', `${mib}M`, '-append', 'console=ttyS0 x=1', '-nographic', '-no-reboot']);
    assert.equal(r.code, 0, r.stderr);
    const expected = e820Map(ramLayout(mib * 1024 * 1024)).map((e) => `memmap: ${hex16(e.addr)} ${hex16(e.size)} ${e.type}`);
    const got = r.stdout.split('\n').filter((l) => l.startsWith('memmap: '));
    assert.deepEqual(got, expected);
    assert.match(r.stdout, /cmdline: console=ttyS0 x=1\n/);
    assert.match(r.stdout, /memsize: top of ram ok\n/);
  }
});

test('timer: the in-kernel PIT and PIC deliver interrupts', async () => {
  const r = await runNodevisor(['-kernel', guest('timer'), '-m', '64', '-nographic', '-no-reboot']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'timer: 10 ticks\n');
});

test('serial-irq: THRE and receive interrupts, input from stdin echoed', async () => {
  let sent = false;
  const r = await runNodevisor(['-kernel', guest('serial-irq'), '-m', '64', '-nographic', '-no-reboot'], {
    onStdout: (out, write) => {
      if (!sent && out.includes('serial-irq: ready\n')) {
        sent = true;
        write('hello, guest\nq');
      }
    },
  });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'serial-irq: thre ok\nserial-irq: ready\nhello, guest\nserial-irq: bye\n');
});

test('reset: a guest reset reboots the kernel, CMOS survives; -no-reboot ends at the first', async () => {
  const r = await runNodevisor(['-kernel', guest('reset'), '-m', '64', '-nographic'], { until: 'reset: boot 3\n' });
  assert.match(r.stdout, /^reset: boot 1\nreset: boot 2\nreset: boot 3\n/);
  const once = await runNodevisor(['-kernel', guest('reset'), '-m', '64', '-nographic', '-no-reboot']);
  assert.equal(once.stdout, 'reset: boot 1\n');
  assert.equal(once.code, 0);
});

test('triplefault: a KVM internal error prints QEMU\'s report and stops the VM (the process stays, as QEMU\'s)', async () => {
  const r = await runNodevisor(['-kernel', guest('triplefault'), '-m', '64', '-nographic', '-no-reboot'], { untilStderr: /\nCode=.*\n/ });
  assert.equal(r.stdout, 'triplefault: now\n');
  assert.equal(r.timedOut, false);
  assert.equal(r.code, 0, 'SIGTERM after the report: a clean exit');
  assert.match(r.stderr, /\nnodevisor: terminating on signal 15\n$/);
  assert.match(r.stderr, /^KVM internal error\. Suberror: 1\n/);
  assert.match(r.stderr, /\nEIP=[0-9a-f]{8} EFL=/);
  assert.match(r.stderr, /\nCode=(?:[0-9a-f?]{2} )+<cc>/);
});

test('linux64: a bzImage through the 64-bit boot protocol gets the command line and e820', async () => {
  const r = await runNodevisor(['-kernel', guest('linux64'), '-m', '128', '-append', 'root=/dev/vda quiet', '-nographic', '-no-reboot']);
  assert.equal(r.code, 0, r.stderr);
  const map = e820Map(ramLayout(128 << 20));
  const expected = [
    'linux64: cmdline=root=/dev/vda quiet', `e820: ${map.length} entries`,
    ...map.map((e) => `e820: ${hex16(e.addr)} ${hex16(e.size)} ${e.type}`),
  ];
  assert.deepEqual(r.stdout.trim().split('\n'), expected);
});

test('elf64: a 64-bit ELF vmlinux is entered in long mode with boot_params', async () => {
  const r = await runNodevisor(['-kernel', guest('elf64'), '-m', '64', '-append', 'a b c', '-nographic', '-no-reboot']);
  assert.equal(r.code, 0, r.stderr);
  const map = e820Map(ramLayout(64 << 20));
  assert.deepEqual(r.stdout.trim().split('\n'), [
    'elf64: cmdline=a b c', `e820: ${map.length} entries`, ...map.map((e) => `e820: ${hex16(e.addr)} ${hex16(e.size)} ${e.type}`),
  ]);
});

test('bad images: one line naming the file and the reason, exit 1, nothing left running', async () => {
  const notKernel = join(tmp, 'notes.txt');
  writeFileSync(notKernel, 'just some text, not a kernel at all\n'.repeat(40));
  const truncated = join(tmp, 'truncated.bzimage');
  writeFileSync(truncated, readFileSync(guest('linux64')).subarray(0, 1100));
  const cases: Array<[string[], RegExp]> = [
    [['-kernel', notKernel], /^nodevisor: .*notes\.txt: not a Linux bzImage or ELF kernel\n$/],
    [['-kernel', join(tmp, 'missing')], /^nodevisor: .*missing: could not read: No such file or directory\n$/],
    [['-kernel', truncated], /^nodevisor: .*truncated\.bzimage: .*truncated.*\n$/],
    [['-kernel', guest('hello'), '-initrd', join(tmp, 'missing-initrd')], /^nodevisor: .*missing-initrd: could not read/],
  ];
  for (const [args, re] of cases) {
    const r = await runNodevisor([...args, '-m', '64', '-nographic']);
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
  const big = join(tmp, 'big-initrd');
  writeFileSync(big, new Uint8Array(40 << 20));
  const r = await runNodevisor(['-kernel', guest('hello'), '-initrd', big, '-m', '32', '-nographic']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /big-initrd: .*(does not fit|too large)/);
});

test('-nographic: Ctrl-A x ends nodevisor cleanly, Ctrl-A h lists the escapes', async () => {
  let sent = false;
  const r = await runNodevisor(['-kernel', guest('hlt'), '-m', '64', '-nographic'], {
    timeoutMs: 15_000,
    onStdout: (out, write) => {
      if (!sent && out.includes('hlt: halting\n')) {
        sent = true;
        write('\x01h');
        setTimeout(() => write('\x01x'), 100);
      }
    },
  });
  assert.equal(r.timedOut, false);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /C-a x/);
  assert.match(r.stdout + r.stderr, /Terminated/);
});
