/**
 * Helpers shared by the benchmark entry (bench/run.ts) and its child scripts: statistics,
 * /proc readings, timed child processes, and building the references in a temporary dir.
 * Nothing here writes into the repository.
 */
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GUESTS_DIR } from '../src/testing/guests.js';

// This module compiles to dist/bench/lib.js: two levels up is the package root.
export const ROOT: string = fileURLToPath(new URL('../..', import.meta.url));
export const BENCH_SRC: string = join(ROOT, 'bench');
export const BENCH_DIST: string = fileURLToPath(new URL('.', import.meta.url));

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The value below which a fraction p of xs lies (nearest rank; p = 0.5 is not the median's average). */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!;
}

/**
 * CPU time a process has used so far, all its threads, in ns: the sum of the first field of
 * /proc/PID/task/TID/schedstat (nanoseconds, unlike /proc/PID/stat's 10 ms ticks). Threads
 * that have exited are not counted, so take both readings while the same threads live.
 */
export function cpuTimeNs(pid: number): number {
  let total = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      total += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return total;
}

/** Memory figures of a process from /proc/PID/status, in KiB. */
export interface ProcMemory {
  vmRss: number;
  rssAnon: number;
  rssFile: number;
  rssShmem: number;
}

export function procMemory(pid: number | 'self' = 'self'): ProcMemory {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text);
    if (!m) throw new Error(`no ${name} in /proc/${pid}/status`);
    return Number(m[1]);
  };
  return { vmRss: field('VmRSS'), rssAnon: field('RssAnon'), rssFile: field('RssFile'), rssShmem: field('RssShmem') };
}

/** RSS that is not guest RAM: guest RAM is a shared anonymous mapping and shows as RssShmem. */
export function beyondGuestKiB(m: ProcMemory): number {
  return m.vmRss - m.rssShmem;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface TimedRun {
  /** ms from spawn to the chunk holding the first byte of `marker` (-1 if never seen). */
  markerMs: number;
  /** ms from spawn to the first stdout byte. */
  firstByteMs: number;
  /** ms from spawn to process exit. */
  exitMs: number;
  code: number | null;
  stdout: string;
  stderr: string;
  memory: ProcMemory | null;
}

export interface TimedRunOptions {
  /** Text whose first byte is timed. */
  marker: string;
  /** When set: once the marker is seen, wait this long, read /proc/PID/status, then SIGTERM. */
  sampleMemoryAfterMs?: number;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

/** Spawns a program, timing its output and (optionally) sampling its memory once it printed. */
export function timedRun(cmd: string, args: readonly string[], opts: TimedRunOptions): Promise<TimedRun> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: ROOT, env: opts.env ?? process.env });
    let stdout = '';
    let stderr = '';
    let firstByteMs = -1;
    let markerMs = -1;
    let memory: ProcMemory | null = null;
    const chunkEnds: Array<{ end: number; at: number }> = [];
    child.stdout.setEncoding('latin1');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      const at = performance.now() - t0;
      if (firstByteMs < 0) firstByteMs = at;
      stdout += d;
      chunkEnds.push({ end: stdout.length, at });
      if (markerMs >= 0) return;
      const i = stdout.indexOf(opts.marker);
      if (i < 0) return;
      markerMs = chunkEnds.find((c) => c.end > i)?.at ?? at;
      if (opts.sampleMemoryAfterMs !== undefined) {
        setTimeout(() => {
          try {
            if (child.pid !== undefined) memory = procMemory(child.pid);
          } catch {
            memory = null;
          }
          child.kill('SIGTERM');
        }, opts.sampleMemoryAfterMs);
      }
    });
    child.stderr.on('data', (d: string) => { stderr += d; });
    child.on('error', reject);
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ markerMs, firstByteMs, exitMs: performance.now() - t0, code, stdout, stderr, memory });
    });
  });
}

/** Runs a command and returns its stdout; throws with its stderr on failure. */
export function runTool(cmd: string, args: readonly string[], cwd = ROOT): string {
  try {
    return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
  } catch (e) {
    const stderr = (e as { stderr?: string }).stderr ?? '';
    throw new Error(`${cmd} ${args.join(' ')} failed: ${stderr.trim()}`, { cause: e });
  }
}

/** Assembles guests/ioloop.S with IOLOOP_COUNT = count into dir; returns the ELF's path. */
export function buildIoloop(dir: string, count: number): string {
  const object = join(dir, `ioloop-${count}.o`);
  const elf = join(dir, `ioloop-${count}.elf`);
  runTool('nasm', ['-f', 'elf32', `-I${GUESTS_DIR}/`, `-DIOLOOP_COUNT=${count}`, '-o', object, join(GUESTS_DIR, 'ioloop.S')]);
  runTool('ld', ['-m', 'elf_i386', '-T', join(GUESTS_DIR, 'pvh.ld'), '-o', elf, object]);
  return elf;
}

/** Compiles bench/c/NAME.c (which may include bench/c/*.h) into dir; returns the program's path. */
export function buildCProgram(dir: string, name: string): string {
  const out = join(dir, name);
  runTool('gcc', ['-O2', '-Wall', '-o', out, join(BENCH_SRC, 'c', `${name}.c`)]);
  return out;
}

/** Compiles bench/c/kvm-ioloop.c into dir; returns the program's path. */
export function buildCReference(dir: string): string {
  return buildCProgram(dir, 'kvm-ioloop');
}

/** Runs a program built by buildCProgram to its end; the numbers of its RESULT line. */
export async function runCProgram(prog: string, args: readonly string[], timeoutMs = 120_000): Promise<Record<string, number>> {
  const r = await timedRun(prog, args, { marker: 'RESULT', timeoutMs });
  if (r.code !== 0) throw new Error(`${basename(prog)} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  return parseResultLine(r.stdout);
}

/** The numbers of the C reference's `RESULT k=v ...` line. */
export function parseResultLine(stdout: string): Record<string, number> {
  const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (line === undefined) throw new Error(`no RESULT line in: ${stdout.slice(-200)}`);
  const out: Record<string, number> = {};
  for (const kv of line.slice(7).trim().split(/\s+/)) {
    const [k, v] = kv.split('=');
    if (k !== undefined && v !== undefined) out[k] = Number(v);
  }
  return out;
}

/** A child script's answer: the last stdout line, as JSON. */
export function lastJsonLine<T>(stdout: string): T {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1] ?? 'null') as T;
}

/** A number for a table cell: fixed digits, `n/a` when not measured. */
export const fmt = (x: number, digits = 1): string => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');

/** Prints a titled table: first column left-aligned, the others right-aligned. */
export function table(title: string, head: string[], rows: string[][]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(`\n${title}`);
  console.log(line(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
}

/** Progress on stderr, so that stdout holds only the results. */
export function log(msg: string): void {
  process.stderr.write(`bench: ${msg}\n`);
}
