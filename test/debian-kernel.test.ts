// Debian's own cloud kernel (linux-image-6.1.0-NN-cloud-amd64, an LZ4 bzImage) booted by the
// nodevisor program. The kernel's early log is the witness: it prints the command line and the
// e820 map it received before anything else can go wrong.
//
// On a PVM host (/dev/kvm without vmx/svm; see docs/testing.md) guest kernel mode is emulated:
// the kernel gets through its early log in tens of seconds, then stops on an instruction PVM
// cannot emulate (lock cmpxchg16b, or xrstor with -cpu host,-cx16). There only the early log
// is checked. With hardware virtualization the kernel must also reach /init in a busybox
// initramfs, print a marker and reboot (-no-reboot: nodevisor exits 0).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { buildAcpiTables } from '../src/arch/x86/acpi/tables.js';
import { e820Map, ramLayout } from '../src/arch/x86/e820.js';
import {
  busyboxInitramfs, cpioNewc, debianKernel, hasHardwareVirtualization, kernelE820Lines, kernelLogLines,
} from '../src/testing/debian-kernel.js';
import { requireKvmGuests } from '../src/testing/kvm-guests.js';
import { runNodevisor } from '../src/testing/run-cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'nodevisor-debian-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const MIB = 256;
const APPEND = 'console=ttyS0 earlyprintk=serial,ttyS0 nokaslr';
const MARKER = 'nodevisor-initramfs: init ran';
const PAGE = 4096;
/** The e820 table, then the line after it (so the table is complete). */
const AFTER_E820 = /BIOS-provided physical RAM map:\r?\n(?:[^\n]*BIOS-e820: [^\n]*\n)+[^\n]*\n/;
/** Printed by reserve_initrd(), after the e820 map and before ACPI: where the kernel found the initrd. */
const RAMDISK = /RAMDISK: \[mem (0x[0-9a-f]+)-(0x[0-9a-f]+)\]\r?\n/;
/** The last line of the kernel's ACPI table listing (acpi_table_init), after RAMDISK. */
const ACPI_LISTED = /ACPI: Reserving APIC table memory[^\n]*\n/;

test('cpioNewc writes what the kernel unpacks: newc headers, 4-byte alignment, trailer, 512-byte blocks', () => {
  const a = cpioNewc([{ name: 'init', mode: 0o100755, data: Buffer.from('#!/bin/sh\n') }]);
  assert.equal(a.length % 512, 0);
  const text = a.toString('latin1');
  assert.equal(text.slice(0, 6), '070701');
  // Header fields: ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check.
  assert.equal(text.slice(14, 22), (0o100755).toString(16).padStart(8, '0'));
  assert.equal(text.slice(54, 62), '0000000a');
  assert.equal(text.slice(94, 102), '00000005');
  assert.equal(text.slice(110, 115), 'init\0');
  assert.equal(text.slice(116, 126), '#!/bin/sh\n'); // 110 + 5 = 115, padded to 116
  const trailer = text.indexOf('TRAILER!!!\0');
  assert.equal(trailer, 128 + 110); // data 10 bytes padded to 12: next header at 128
});

test('Debian\'s cloud kernel: its early log shows our command line and exactly our e820 map', async (t) => {
  requireKvmGuests();
  const kernel = debianKernel();
  const hw = hasHardwareVirtualization();
  t.diagnostic(hw
    ? 'vmx/svm present: hardware virtualization, the kernel must reach /init'
    : 'no vmx/svm in /proc/cpuinfo: /dev/kvm is PVM (guest CPL0 emulated), checking the early log only');
  // With hardware virtualization the initramfs runs busybox; on PVM the kernel never unpacks
  // it, so a minimal one (no busybox needed) is enough to see where the kernel found it.
  const initrd = hw
    ? busyboxInitramfs(MARKER)
    : cpioNewc([{ name: 'init', mode: 0o100755, data: Buffer.from(`#!/bin/sh\necho ${MARKER}\n`) }]);
  const initrdPath = join(tmp, 'initramfs.cpio');
  writeFileSync(initrdPath, initrd);

  const marks: Record<string, number> = {};
  const t0 = performance.now();
  const r = await runNodevisor(
    ['-kernel', kernel, '-initrd', initrdPath, '-m', String(MIB), '-append', APPEND, '-nographic', '-no-reboot'],
    {
      timeoutMs: 240_000,
      // On PVM stop once the early log is past the e820 map and the initrd; with hardware
      // virtualization run to the guest's reboot.
      ...(hw ? {} : { until: ACPI_LISTED }),
      // A PVM emulation failure before that point: nodevisor stops the VM and stays, as QEMU.
      untilStderr: /\nCode=[^\n]*\n/,
      onStdout: (out) => {
        for (const [k, re] of [['Linux version', /Linux version/], ['e820 map', AFTER_E820], ['RAMDISK', RAMDISK], ['ACPI', ACPI_LISTED]] as const) {
          if (marks[k] === undefined && re.test(out)) marks[k] = Math.round(performance.now() - t0);
        }
      },
    },
  );
  t.diagnostic(`${kernel}: ${JSON.stringify(marks)} ms after start (first byte ${Math.round(r.firstOutputMs)} ms, end ${Math.round(r.elapsedMs)} ms)`);
  const why = `\n--- stdout (tail)\n${r.stdout.slice(-3000)}\n--- stderr\n${r.stderr.slice(0, 3000)}`;
  assert.equal(r.timedOut, false, `no e820 map within 240 s${why}`);

  const log = kernelLogLines(r.stdout);
  assert.ok(log.some((l) => l.startsWith('Linux version 6.')), `no "Linux version" line${why}`);
  assert.deepEqual(log.filter((l) => l.startsWith('Command line: ')), [`Command line: ${APPEND}`], why);

  const expected = kernelE820Lines(e820Map(ramLayout(MIB * 1024 * 1024)));
  const start = log.indexOf('BIOS-provided physical RAM map:');
  assert.ok(start >= 0, `no "BIOS-provided physical RAM map:"${why}`);
  let end = start + 1;
  while (log[end]?.startsWith('BIOS-e820: ')) end++;
  assert.deepEqual(log.slice(start + 1, end), expected, why);

  // The initrd: whole (its size rounded up to a page), at the top of low RAM, as nodevisor places it.
  const m = RAMDISK.exec(r.stdout);
  assert.ok(m?.[1] && m[2], `no "RAMDISK:" line: the kernel did not see the initrd${why}`);
  const [lo, hi] = [Number.parseInt(m[1], 16), Number.parseInt(m[2], 16)];
  assert.equal(lo % PAGE, 0, m[0]);
  assert.equal(hi + 1 - lo, Math.ceil(initrd.length / PAGE) * PAGE, m[0]);
  assert.equal(hi + 1, ramLayout(MIB * 1024 * 1024).lowSize, m[0]);

  // nodevisor's ACPI tables, found through the RSDP the boot protocol handed over, without a warning.
  const acpi = log.filter((l) => /^ACPI: [A-Z]{4} 0x/.test(l)).map((l) => l.split(' ').slice(0, 3).join(' '));
  const at = buildAcpiTables({ cpus: 1 }).layout;
  const addr = (n: number): string => `0x${n.toString(16).toUpperCase().padStart(16, '0')}`;
  assert.deepEqual([...new Set(acpi)], [
    `ACPI: RSDP ${addr(at.rsdpAddr)}`, `ACPI: XSDT ${addr(at.xsdtAddr)}`, `ACPI: FACP ${addr(at.fadtAddr)}`,
    `ACPI: DSDT ${addr(at.dsdtAddr)}`, `ACPI: FACS ${addr(at.facsAddr)}`, `ACPI: APIC ${addr(at.madtAddr)}`,
  ], why);
  const complaints = log.filter((l) => /^ACPI/.test(l) && /warning|error|invalid|incorrect|bad/i.test(l));
  assert.deepEqual(complaints, [], why);

  if (hw) {
    assert.match(r.stdout, new RegExp(`\\n${MARKER}\\r?\\n`), `init did not print its marker${why}`);
    assert.equal(r.code, 0, `the guest's reboot with -no-reboot should end nodevisor with 0${why}`);
  } else {
    assert.doesNotMatch(r.stderr, /KVM internal error|^nodevisor: (?!terminating on signal 15$)/m, `nodevisor or the kernel failed before the initrd line${why}`);
  }
});
