/**
 * Conformance harness for the QMP socket: boots nodevisor or QEMU 7.2 on a test guest with a
 * QMP unix socket, plays a script on it and records everything the socket sent, line by line,
 * together with how the process ended and the stderr lines that matter. Two transcripts of the
 * same scenario (one per program) must be equal.
 *
 * The lines are kept as text (not re-serialised), so key order, spacing and line endings are
 * compared too. Only differences that exist on purpose are normalised (see `normaliseLine`).
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { QEMU, runNodevisor, runProgram, type RunResult } from './run-cli.js';

export type Target = 'nodevisor' | 'qemu';

export interface QmpRequest {
  execute: unknown;
  arguments?: Record<string, unknown>;
  id?: unknown;
}

export type Step =
  /** Sends a request (as one JSON line) and waits for its reply. */
  | { send: QmpRequest }
  /** Sends text as is (a newline is added) and waits for `replies` replies (default 1). */
  | { raw: string; replies?: number }
  /** Waits for the next event with this name (not yet matched by an earlier waitEvent). */
  | { waitEvent: string; timeoutMs?: number }
  | { sleepMs: number }
  | { signal: NodeJS.Signals }
  /** Waits for the process to exit and the socket to close. */
  | { expectExit: true; timeoutMs?: number }
  /**
   * From here on, leaves events with this name out of the transcript. Only for events whose
   * number depends on speed, not on behaviour (a guest that resets in a loop resets every few
   * milliseconds under nodevisor, every few seconds under QEMU's firmware).
   */
  | { dropEvents: string };

export interface Scenario {
  /** Command-line arguments after the common ones (`-m 64`, display, serial, QMP socket). */
  args: string[];
  steps: Step[];
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Transcript {
  /** Every line the QMP socket sent, normalised, in order (plus `<timeout: …>` markers). */
  qmp: string[];
  /**
   * The line endings seen on the socket (`\r\n` or `\n`), kept apart from `qmp` so that a
   * difference in them shows once rather than on every line.
   */
  lineEndings: string[];
  /** null when the process was still running after the script (it is then killed). */
  exit: ExitStatus | null;
  /** The stderr lines that matter, normalised, sorted, without duplicates. */
  stderr: string[];
}

const STEP_TIMEOUT_MS = 20_000;
/** A program-name prefix on stderr: it differs on purpose. */
const PROGRAM_PREFIX = /^(?:qemu-system-x86_64|nodevisor): /;

/**
 * Normalises one line of QMP output; each rule is a difference that exists on purpose.
 */
export function normaliseLine(line: string): string {
  return (
    line
      // Events carry the wall-clock time of the run.
      .replace(/^\{"timestamp": \{"seconds": \d+, "microseconds": \d+\}, /, '{')
      // The greeting names the build (Debian's package string vs "nodevisor 0.1.0") and QEMU's
      // stable release (7.2.22 here); nodevisor claims 7.2.0. Major and minor are compared.
      .replace(/("qemu": \{"micro": )\d+/, '$1"<micro>"')
      .replace(/("package": )"(?:[^"\\]|\\.)*"/, '$1"<package>"')
      // Thread ids are host thread numbers.
      .replace(/("thread-id": )\d+/g, '$1"<tid>"')
  );
}

/**
 * The stderr lines that matter: KVM's internal-error report headline and every message the
 * program prints in its own name except warnings (QEMU warns about CPUID bits this host's KVM
 * lacks). Register dumps and SeaBIOS output are left out.
 */
export function stderrThatMatters(stderr: string): string[] {
  const out = new Set<string>();
  for (const raw of stderr.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (/^KVM internal error/.test(line) || line === 'emulation failure') {
      out.add(line);
    } else if (PROGRAM_PREFIX.test(line) && !/^[^:]+: warning: /.test(line)) {
      // The program's name differs on purpose. QEMU also names the signal's sender
      // ("from pid N (name)"); Node does not tell a signal handler who sent the signal, so
      // nodevisor's line stops at the signal number: a known, documented difference.
      out.add(line.replace(PROGRAM_PREFIX, '<program>: ').replace(/ from pid \d+ \(.*\)$/, ''));
    }
  }
  return [...out].sort();
}

interface Received {
  /** The line as sent, without its "\n". */
  text: string;
  kind: 'greeting' | 'reply' | 'event' | 'other';
  event?: string;
}

function classify(text: string): Received {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { text, kind: 'other' };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { text, kind: 'other' };
  const o = v as Record<string, unknown>;
  if ('QMP' in o) return { text, kind: 'greeting' };
  if (typeof o.event === 'string') return { text, kind: 'event', event: o.event };
  if ('return' in o || 'error' in o) return { text, kind: 'reply' };
  return { text, kind: 'other' };
}

/** The socket side: collects lines and lets the script wait for them. */
class Recorder {
  readonly received: Received[] = [];
  readonly lineEndings = new Set<string>();
  closed = false;
  #buffer = '';
  #wake: (() => void) | undefined;

  constructor(readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      this.#buffer += d;
      for (let i = this.#buffer.indexOf('\n'); i >= 0; i = this.#buffer.indexOf('\n')) {
        const line = this.#buffer.slice(0, i);
        this.lineEndings.add(line.endsWith('\r') ? '\r\n' : '\n');
        this.received.push(classify(line.replace(/\r$/, '')));
        this.#buffer = this.#buffer.slice(i + 1);
      }
      this.#notify();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (this.#buffer !== '') {
        this.lineEndings.add('(none)');
        this.received.push(classify(this.#buffer));
      }
      this.#buffer = '';
      this.closed = true;
      this.#notify();
    });
  }

  #notify(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  /** Waits until `pred` holds (checked on every change); false on timeout. */
  async until(pred: () => boolean, timeoutMs: number): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    while (!pred()) {
      const left = end - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 250));
        this.#wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    return true;
  }

  count(kind: Received['kind']): number {
    return this.received.filter((r) => r.kind === kind).length;
  }
}

async function connect(path: string, timeoutMs: number): Promise<net.Socket> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (existsSync(path)) {
      try {
        return await new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect(path);
          s.once('connect', () => {
            s.off('error', reject);
            resolve(s);
          });
          s.once('error', reject);
        });
      } catch (e) {
        if (Date.now() > end) throw e;
      }
    } else if (Date.now() > end) {
      throw new Error(`the QMP socket ${path} did not appear`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

function spawnTarget(target: Target, args: string[], onSpawn: (c: ChildProcess) => void): Promise<RunResult> {
  const opts = { timeoutMs: 120_000, onSpawn };
  if (target === 'qemu') {
    return runProgram(QEMU, ['-M', 'pc', '-accel', 'kvm', ...args], opts);
  }
  return runNodevisor(args, opts);
}

export async function runScenario(target: Target, scenario: Scenario): Promise<Transcript> {
  const dir = mkdtempSync(join(tmpdir(), `qmp-${target}-`));
  const sock = join(dir, 'qmp.sock');
  let child: ChildProcess | undefined;
  let exited: RunResult | undefined;
  const done = spawnTarget(
    target,
    ['-m', '64', '-display', 'none', '-serial', 'null', ...scenario.args, '-qmp', `unix:${sock},server=on,wait=off`],
    (c) => (child = c),
  ).then((r) => (exited = r));
  const qmp: string[] = [];
  let recorder: Recorder | undefined;
  try {
    recorder = new Recorder(await connect(sock, 20_000));
    const rec = recorder;
    const dropped = new Set<string>();
    let eventCursor = 0; // received[] index after the last event a waitEvent matched
    let emitted = 0; // received[] entries already moved into qmp
    // Up to `end` only: what arrived after a waited-for event (often in the same read) is
    // left for the next step, so that a dropEvents step after the wait can still drop it.
    const flush = (end = rec.received.length): void => {
      for (; emitted < end; emitted++) {
        const r = rec.received[emitted]!;
        if (r.kind === 'event' && r.event !== undefined && dropped.has(r.event)) continue;
        qmp.push(normaliseLine(r.text));
      }
    };
    const write = (text: string): void => {
      rec.socket.write(`${text}\n`);
    };
    const awaitReplies = async (n: number, what: string): Promise<boolean> => {
      const want = rec.count('reply') + n;
      const ok = await rec.until(() => rec.count('reply') >= want || rec.closed, STEP_TIMEOUT_MS);
      flush();
      if (!ok) qmp.push(`<timeout: reply to ${what}>`);
      return ok;
    };
    if (!(await rec.until(() => rec.count('greeting') > 0 || rec.closed, STEP_TIMEOUT_MS))) qmp.push('<timeout: greeting>');
    flush();
    script: for (const step of scenario.steps) {
      if ('send' in step) {
        write(JSON.stringify(step.send));
        if (!(await awaitReplies(1, JSON.stringify(step.send)))) break script;
      } else if ('raw' in step) {
        write(step.raw);
        if (!(await awaitReplies(step.replies ?? 1, step.raw))) break script;
      } else if ('waitEvent' in step) {
        const name = step.waitEvent;
        let at = -1;
        const ok = await rec.until(() => {
          for (let i = eventCursor; i < rec.received.length; i++) {
            const r = rec.received[i]!;
            if (r.kind === 'event' && r.event === name) {
              at = i;
              return true;
            }
          }
          return rec.closed;
        }, step.timeoutMs ?? STEP_TIMEOUT_MS);
        if (!ok || at < 0) {
          flush();
          qmp.push(`<timeout: event ${name}>`);
          break script;
        }
        flush(at + 1);
        eventCursor = at + 1;
      } else if ('sleepMs' in step) {
        await new Promise((r) => setTimeout(r, step.sleepMs));
        flush();
      } else if ('signal' in step) {
        child?.kill(step.signal);
      } else if ('expectExit' in step) {
        const ok = await rec.until(() => exited !== undefined && rec.closed, step.timeoutMs ?? STEP_TIMEOUT_MS);
        if (!ok) {
          flush();
          qmp.push('<timeout: exit>');
          break script;
        }
      } else {
        dropped.add(step.dropEvents);
      }
    }
    flush();
  } catch (e) {
    // Recorded, not thrown: the comparison then shows where this run went wrong.
    qmp.push(`<error: ${e instanceof Error ? e.message : String(e)}>`);
  }
  const running = exited === undefined;
  if (running) child?.kill('SIGKILL');
  const r = await done;
  recorder?.socket.destroy();
  rmSync(dir, { recursive: true, force: true });
  return {
    qmp,
    lineEndings: [...(recorder?.lineEndings ?? [])].sort(),
    exit: running ? null : { code: r.code, signal: r.signal },
    stderr: stderrThatMatters(r.stderr),
  };
}
