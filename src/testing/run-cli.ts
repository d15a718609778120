/**
 * Runs the nodevisor CLI (the built one, as a user would) or QEMU on a guest and collects
 * what it printed. Used by the integration and conformance tests and by the benchmarks.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const CLI_PATH = fileURLToPath(new URL('../cli/main.js', import.meta.url));

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Milliseconds from spawn to the first stdout byte (or -1). */
  firstOutputMs: number;
  elapsedMs: number;
  timedOut: boolean;
}

export interface RunOptions {
  timeoutMs?: number;
  /** Bytes to write to stdin (then stdin is closed unless keepStdinOpen). */
  input?: string;
  keepStdinOpen?: boolean;
  /** Resolve early (killing the process with SIGTERM) once stdout contains this. */
  until?: string | RegExp;
  /** The same, on stderr. */
  untilStderr?: string | RegExp;
  /** Called with each stdout chunk (e.g. to send input once a prompt appears). */
  onStdout?: (text: string, write: (s: string) => void) => void;
  /** Called once the process exists (to signal it, or to learn its pid). */
  onSpawn?: (child: ChildProcess) => void;
}

function matches(text: string, u: string | RegExp | undefined): boolean {
  return u !== undefined && (typeof u === 'string' ? text.includes(u) : u.test(text));
}

export function runProgram(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    opts.onSpawn?.(child);
    let stdout = '';
    let stderr = '';
    let firstOutputMs = -1;
    let timedOut = false;
    const write = (s: string): void => { child.stdin.write(s); };
    child.stdout.setEncoding('latin1');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      if (firstOutputMs < 0) firstOutputMs = performance.now() - t0;
      stdout += d;
      opts.onStdout?.(stdout, write);
      if (matches(stdout, opts.until)) child.kill('SIGTERM');
    });
    child.stderr.on('data', (d: string) => {
      stderr += d;
      if (matches(stderr, opts.untilStderr)) child.kill('SIGTERM');
    });
    child.stdin.on('error', () => undefined);
    if (opts.input !== undefined) child.stdin.write(opts.input);
    if (!opts.keepStdinOpen && opts.onStdout === undefined) child.stdin.end();
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 30_000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, firstOutputMs, elapsedMs: performance.now() - t0, timedOut });
    });
  });
}

export function runNodevisor(args: readonly string[], opts?: RunOptions): Promise<RunResult> {
  return runProgram(process.execPath, [CLI_PATH, ...args], opts);
}

export const QEMU = 'qemu-system-x86_64';

/** QEMU 7.2 on the same guest, the way the issues define the reference run. */
export function runQemu(args: readonly string[], opts?: RunOptions): Promise<RunResult> {
  return runProgram(QEMU, ['-M', 'pc', '-accel', 'kvm', '-nographic', ...args], opts);
}
