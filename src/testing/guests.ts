// Builds the nasm test guests in guests/ on demand, for tests that boot them.
// Outputs go to guests/build/; a guest is rebuilt only when a source is newer than it.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** How a guest is packaged, which decides how a loader must enter it. */
export type GuestFormat = 'pvh-elf' | 'bzimage' | 'elf64';

/** Every guest, by the name of its source file guests/<name>.S. */
export const GUESTS: Readonly<Record<string, GuestFormat>> = {
  hello: 'pvh-elf',
  smp: 'pvh-elf',
  memsize: 'pvh-elf',
  timer: 'pvh-elf',
  'serial-irq': 'pvh-elf',
  reset: 'pvh-elf',
  triplefault: 'pvh-elf',
  ioloop: 'pvh-elf',
  hlt: 'pvh-elf',
  spin: 'pvh-elf',
  acpi: 'pvh-elf',
  'acpi-sleep': 'pvh-elf',
  'bench-event': 'pvh-elf',
  pvpanic: 'pvh-elf',
  watchdog: 'pvh-elf',
  hvcrash: 'pvh-elf',
  breakpoint: 'pvh-elf',
  'msr-write': 'pvh-elf',
  linux64: 'bzimage',
  elf64: 'elf64',
};

export const GUEST_NAMES: readonly string[] = Object.keys(GUESTS);

// This module compiles to dist/src/testing/guests.js: three levels up is the package root.
export const GUESTS_DIR: string = fileURLToPath(new URL('../../../guests', import.meta.url));

const BUILD_DIR = join(GUESTS_DIR, 'build');
const LIB_DIR = join(GUESTS_DIR, 'lib');

function formatOf(name: string): GuestFormat {
  const format = GUESTS[name];
  if (format === undefined) throw new Error(`unknown test guest: ${name}`);
  return format;
}

/** The built file of a guest, e.g. guests/build/hello.elf or guests/build/linux64.bzimage. */
export function guestPath(name: string): string {
  const suffix = formatOf(name) === 'bzimage' ? 'bzimage' : 'elf';
  return join(BUILD_DIR, `${name}.${suffix}`);
}

function linkerScript(format: GuestFormat): string | undefined {
  if (format === 'pvh-elf') return join(GUESTS_DIR, 'pvh.ld');
  if (format === 'elf64') return join(GUESTS_DIR, 'elf64.ld');
  return undefined;
}

function sourcesOf(name: string): string[] {
  const libs = readdirSync(LIB_DIR)
    .filter((file) => file.endsWith('.inc'))
    .map((file) => join(LIB_DIR, file));
  const script = linkerScript(formatOf(name));
  return [join(GUESTS_DIR, `${name}.S`), ...libs, ...(script === undefined ? [] : [script])];
}

function isUpToDate(name: string): boolean {
  const output = guestPath(name);
  if (!existsSync(output)) return false;
  const builtAt = statSync(output).mtimeMs;
  return sourcesOf(name).every((source) => statSync(source).mtimeMs <= builtAt);
}

class ToolMissing extends Error {}

function run(tool: string, args: string[]): void {
  try {
    execFileSync(tool, args, { cwd: GUESTS_DIR, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new ToolMissing(tool);
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim() ?? '';
    throw new Error(`${tool} ${args.join(' ')} failed${stderr === '' ? '' : `: ${stderr}`}`, { cause: error });
  }
}

// Writes to a private temporary name and renames, so concurrent builds never see half a file.
function build(name: string): void {
  const format = formatOf(name);
  const source = join(GUESTS_DIR, `${name}.S`);
  const output = guestPath(name);
  const temporary = `${output}.${process.pid}.tmp`;
  const object = join(BUILD_DIR, `${name}.${process.pid}.o`);
  // nasm wants the include directory with its trailing slash.
  const include = `-I${GUESTS_DIR}/`;
  try {
    if (format === 'bzimage') {
      run('nasm', ['-f', 'bin', include, '-o', temporary, source]);
    } else {
      const elf32 = format === 'pvh-elf';
      run('nasm', ['-f', elf32 ? 'elf32' : 'elf64', include, '-o', object, source]);
      const script = linkerScript(format) ?? '';
      run('ld', ['-m', elf32 ? 'elf_i386' : 'elf_x86_64', '-T', script, '-o', temporary, object]);
    }
    renameSync(temporary, output);
  } finally {
    rmSync(object, { force: true });
    rmSync(temporary, { force: true });
  }
}

const INSTALL_HINT: Readonly<Record<string, string>> = {
  nasm: 'nasm is not installed: apt-get install nasm',
  ld: 'ld is not installed: apt-get install binutils',
};

/** Builds every guest whose output is missing or older than its sources. */
export function buildGuests(): { ok: true } | { ok: false; reason: string } {
  try {
    mkdirSync(BUILD_DIR, { recursive: true });
    for (const name of GUEST_NAMES) {
      if (!isUpToDate(name)) build(name);
    }
    return { ok: true };
  } catch (error) {
    if (error instanceof ToolMissing) {
      return { ok: false, reason: INSTALL_HINT[error.message] ?? `${error.message} is not installed` };
    }
    return { ok: false, reason: error instanceof Error ? error.message : String(error) };
  }
}
