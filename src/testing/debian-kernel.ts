/**
 * Debian's cloud kernel as a test guest: fetched once by scripts/fetch-debian-kernel.sh
 * (apt-get download + dpkg -x into ~/.cache/nodevisor/debian-kernel/, outside the repo), plus
 * what a test needs around it: the kernel's early-log e820 format, a check for hardware
 * virtualization, and a busybox initramfs written here as a cpio "newc" archive.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { E820Entry } from '../arch/x86/e820.js';

/** The script, found from dist/src/testing/ or src/testing/ alike (both are 2-3 levels down). */
export const FETCH_SCRIPT = [
  fileURLToPath(new URL('../../../scripts/fetch-debian-kernel.sh', import.meta.url)),
  fileURLToPath(new URL('../../scripts/fetch-debian-kernel.sh', import.meta.url)),
].find((p) => existsSync(p)) ?? 'scripts/fetch-debian-kernel.sh';

export type Fetched = { ok: true; path: string } | { ok: false; reason: string };

let cached: Fetched | undefined;

/**
 * Runs the fetch script (quick when the kernel is cached; downloads ~27 MB the first time)
 * and returns the bzImage's path, or why there is none.
 */
export function fetchDebianKernel(): Fetched {
  if (cached) return cached;
  try {
    const out = execFileSync('sh', [FETCH_SCRIPT], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 600_000 });
    const path = out.trim().split('\n').at(-1) ?? '';
    cached = path !== '' && existsSync(path)
      ? { ok: true, path }
      : { ok: false, reason: `${FETCH_SCRIPT} printed no existing file (${JSON.stringify(out.trim())})` };
  } catch (e) {
    const err = e as { stderr?: string | Buffer; message?: string };
    const stderr = String(err.stderr ?? '').trim();
    cached = { ok: false, reason: `${FETCH_SCRIPT} failed: ${stderr || err.message || String(e)}` };
  }
  return cached;
}

/** The path, or an Error that says what is missing (needs apt-get, dpkg and network once). */
export function debianKernel(): string {
  const r = fetchDebianKernel();
  if (!r.ok) throw new Error(`cannot get Debian's cloud kernel: ${r.reason}`);
  return r.path;
}

/** Whether the CPU offers VT-x or AMD-V (so /dev/kvm is not PVM's CPL0 emulator). */
export function hasHardwareVirtualization(cpuinfo = readFileSync('/proc/cpuinfo', 'utf8')): boolean {
  return /^flags\s*:.*\b(?:vmx|svm)\b/m.test(cpuinfo);
}

/**
 * The lines Linux prints for an e820 map early in setup_arch (e820__print_table):
 * `BIOS-e820: [mem 0x%016llx-0x%016llx] <type>`, the end inclusive.
 */
export function kernelE820Lines(map: readonly E820Entry[]): string[] {
  const name = (t: number): string => ({ 1: 'usable', 2: 'reserved', 3: 'ACPI data', 4: 'ACPI NVS', 5: 'unusable' })[t] ?? `type ${t}`;
  const h = (n: number): string => `0x${n.toString(16).padStart(16, '0')}`;
  return map.map((e) => `BIOS-e820: [mem ${h(e.addr)}-${h(e.addr + e.size - 1)}] ${name(e.type)}`);
}

/** A kernel log's lines without the `[    0.000000] ` timestamps and carriage returns. */
export function kernelLogLines(serial: string): string[] {
  return serial.split('\n').map((l) => l.replace(/\r$/, '').replace(/^\[\s*\d+\.\d+\] /, ''));
}

export interface CpioEntry {
  /** Path inside the archive, without a leading slash. */
  name: string;
  /** Full st_mode: file type bits and permissions (e.g. 0o100755, 0o40755, 0o20600). */
  mode: number;
  data?: Uint8Array;
  /** For character and block devices. */
  rdev?: { major: number; minor: number };
}

/**
 * A cpio archive in the "newc" format (magic 070701), what the kernel unpacks as an
 * initramfs: 110-byte ASCII-hex header, name with its NUL, padded to 4 bytes, data padded to 4,
 * ended by TRAILER!!!.
 */
export function cpioNewc(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  const pad4 = (n: number): Buffer => Buffer.alloc((4 - (n % 4)) % 4);
  const x8 = (n: number): string => (n >>> 0).toString(16).padStart(8, '0');
  const all: CpioEntry[] = [...entries, { name: 'TRAILER!!!', mode: 0 }];
  all.forEach((e, i) => {
    const data = e.data ?? new Uint8Array(0);
    const name = Buffer.from(`${e.name}\0`, 'latin1');
    const isDir = (e.mode & 0o170000) === 0o040000;
    const fields = [
      i + 1, // ino
      e.mode,
      0, 0, // uid, gid
      isDir ? 2 : 1, // nlink
      0, // mtime
      data.length,
      0, 0, // devmajor, devminor (of the file system)
      e.rdev?.major ?? 0, e.rdev?.minor ?? 0,
      name.length,
      0, // check
    ];
    const header = Buffer.from(`070701${fields.map(x8).join('')}`, 'latin1');
    parts.push(header, name, pad4(header.length + name.length), Buffer.from(data), pad4(data.length));
  });
  const out = Buffer.concat(parts);
  // The kernel reads archives in 512-byte blocks padded with zeros, as cpio writes them.
  return Buffer.concat([out, Buffer.alloc((512 - (out.length % 512)) % 512)]);
}

export const BUSYBOX = '/bin/busybox';

/**
 * An initramfs whose /init (a busybox shell script) prints `marker` on the console and ends
 * the machine: `reboot -f` resets through the keyboard controller, which with -no-reboot ends
 * nodevisor and QEMU with status 0 (a power-off would need ACPI, which the VM lacks).
 * Needs a static busybox (Debian: `apt-get install busybox-static`).
 */
export function busyboxInitramfs(marker: string, busybox = BUSYBOX): Buffer {
  if (!existsSync(busybox)) {
    throw new Error(`${busybox} is missing: the initramfs needs a static busybox (apt-get install busybox-static)`);
  }
  const init = [
    '#!/bin/busybox sh',
    '/bin/busybox mount -t proc proc /proc',
    `/bin/busybox echo "${marker}"`,
    '/bin/busybox reboot -f',
    '/bin/busybox sleep 1000',
  ].join('\n') + '\n';
  return cpioNewc([
    { name: 'bin', mode: 0o40755 },
    { name: 'bin/busybox', mode: 0o100755, data: readFileSync(busybox) },
    { name: 'dev', mode: 0o40755 },
    { name: 'dev/console', mode: 0o20600, rdev: { major: 5, minor: 1 } },
    { name: 'proc', mode: 0o40755 },
    { name: 'init', mode: 0o100755, data: Buffer.from(init, 'latin1') },
  ]);
}
