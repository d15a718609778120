/**
 * QMP: query-status round trips on one connection, and event latency, nodevisor next to
 * QEMU 7.2 on the same host in the same run (bench/run.ts alternates the two).
 *
 * Both VMMs get the same client, RawQmp below: a bare unix socket, requests written as
 * constant strings, replies counted by their line ends while timing and parsed (JSON.parse)
 * only otherwise, so that the client costs little and the same for both.
 *
 * QEMU runs `-M pc` with `-bios qboot.rom`, QEMU's own minimal firmware, instead of SeaBIOS:
 * the guest-reset loop goes through the firmware on every boot, which takes SeaBIOS 8-12 s
 * here and qboot about 65 ms. Nothing timed runs firmware code.
 *
 * - roundTrips: `-S` (no vCPU runs), 500 query-status to warm up, then `count` more, each
 *   written once the previous reply has arrived. Also the VMM's CPU time per round trip, all
 *   threads (/proc/PID/task/TID/schedstat), which host load disturbs less than the rate.
 * - stopLatency: the `spin` guest running; `stop` written → STOP event read, then `cont`.
 * - resetLatency: the `bench-event` guest prints one byte (0x1e) and resets through the
 *   i8042 on every boot. This process reads the VMM's stdout and the QMP socket and times the
 *   k-th byte against the k-th RESET event. It refuses to report unless every RESET is a guest
 *   reset, bytes and events pair up one to one, and each boot's byte comes after the previous
 *   boot's RESET (a byte cannot exist before the reset that started its boot).
 *   Where `perf` can trace kvm:kvm_pio, the guest's own port writes are timed as well, by the
 *   kernel as KVM sees them: OUT 0x64 (the reset itself) → RESET event read is the guest-action
 *   latency with no proxy, and OUT 0x3f8 → byte read is what the serial path adds. All
 *   timestamps are CLOCK_MONOTONIC (perf -k, process.hrtime), so they compare directly.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { guestPath } from '../src/testing/guests.js';
import { CLI_PATH, QEMU } from '../src/testing/run-cli.js';
import { cpuTimeNs, sleep } from './lib.js';

export type Vmm = 'nodevisor' | 'qemu';

export interface RoundTrips {
  perSecond: number;
  /** CPU time the VMM process used per round trip, all threads, µs. */
  cpuUs: number;
}

export interface ResetLatency {
  /** Per reset: RESET event read − serial byte read, ms. */
  intervalsMs: number[];
  /** Serial bytes and RESET events read in all, when the guest was stopped. */
  bytes: number;
  events: number;
  /** From the kernel's trace of the guest's port writes, when perf could take it. */
  traced: PioTimes | { unavailable: string };
}

export interface PioTimes {
  /** Per reset: RESET event read − the guest's OUT 0x64 as KVM saw it, ms. */
  actionMs: number[];
  /** Per reset: serial byte read − the guest's OUT 0x3f8, ms. */
  serialMs: number[];
}

const WARM_UP = 500;
const MARKER = 0x1e;
/** How far a boot's byte may be read before the previous RESET: both can be read in one loop turn. */
const ORDER_SLACK_MS = 1;
const RUN_TIMEOUT_MS = 180_000;

/** CLOCK_MONOTONIC in ms, the clock perf -k CLOCK_MONOTONIC stamps its samples with. */
const monotonicMs = (): number => Number(process.hrtime.bigint()) / 1e6;

interface Message {
  /** monotonicMs() when its line was read. */
  at: number;
  value: Record<string, unknown>;
}

/** A QMP client on a bare socket: lines are counted, and parsed unless `counting`. */
class RawQmp {
  readonly messages: Message[] = [];
  /** While set, lines are only counted (and error replies noted), not parsed. */
  counting = false;
  lines = 0;
  errorReplies = 0;
  #text = '';
  #want = 0;
  #wake: (() => void) | undefined;
  #closed = false;

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => this.#receive(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.#closed = true;
      this.#wake?.();
    });
  }

  static async connect(path: string): Promise<RawQmp> {
    const socket = net.connect(path);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const qmp = new RawQmp(socket);
    await qmp.untilLines(1); // the greeting
    return qmp;
  }

  write(text: string): void {
    this.socket.write(text);
  }

  /** Resolves once `n` lines in all have been read. */
  untilLines(n: number): Promise<void> {
    if (this.lines >= n) return Promise.resolve();
    if (this.#closed) return Promise.reject(new Error('QMP connection closed'));
    this.#want = n;
    return new Promise((resolve, reject) => {
      this.#wake = () => {
        if (this.lines >= this.#want) resolve();
        else if (this.#closed) reject(new Error('QMP connection closed'));
        else return;
        this.#wake = undefined;
      };
    });
  }

  /** Writes a command and waits for its reply (the next line that is not an event). */
  async command(text: string): Promise<Record<string, unknown>> {
    const from = this.messages.length;
    this.write(`${text}\n`);
    return (await this.next(from, (m) => !('event' in m.value))).value;
  }

  /** The first message from index `from` on that `match` accepts, waiting for it if need be. */
  async next(from: number, match: (m: Message) => boolean): Promise<Message> {
    for (let i = from; ; i++) {
      while (i >= this.messages.length) await this.untilLines(this.lines + 1);
      const m = this.messages[i]!;
      if (match(m)) return m;
    }
  }

  close(): void {
    this.socket.destroy();
  }

  #receive(chunk: Buffer): void {
    const at = monotonicMs();
    if (this.counting) {
      for (let i = chunk.indexOf(0x0a); i !== -1; i = chunk.indexOf(0x0a, i + 1)) this.lines++;
      if (chunk.includes('"error"')) this.errorReplies++;
    } else {
      this.#text += chunk.toString('latin1');
      for (let end = this.#text.indexOf('\n'); end !== -1; end = this.#text.indexOf('\n')) {
        const line = this.#text.slice(0, end).trim();
        this.#text = this.#text.slice(end + 1);
        this.lines++;
        if (line !== '') this.messages.push({ at, value: JSON.parse(line) as Record<string, unknown> });
      }
    }
    this.#wake?.();
  }
}

interface Running {
  child: ChildProcess;
  qmp: RawQmp;
  stderr(): string;
}

let sequence = 0;

/** Starts a VMM paused (-S) on a guest with a QMP socket, runs `body`, then ends the VMM. */
async function withVmm<T>(
  vmm: Vmm,
  guest: string,
  dir: string,
  body: (run: Running) => Promise<T>,
  onStdout?: (chunk: Buffer, at: number) => void,
): Promise<T> {
  const sock = join(dir, `${vmm}-${++sequence}.qmp`);
  const qmpArg = `unix:${sock},server=on,wait=off`;
  const common = ['-display', 'none', '-serial', 'stdio', '-m', '64', '-kernel', guest, '-S', '-qmp', qmpArg];
  const child = vmm === 'nodevisor'
    ? spawn(process.execPath, [CLI_PATH, ...common], { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(QEMU, ['-M', 'pc', '-accel', 'kvm', '-bios', 'qboot.rom', ...common], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (d: string) => (stderr = (stderr + d).slice(-2000)));
  child.stdout?.on('data', (chunk: Buffer) => onStdout?.(chunk, monotonicMs()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${vmm}: QMP bench timed out; stderr: ${stderr}`)), RUN_TIMEOUT_MS);
  });
  let qmp: RawQmp | undefined;
  try {
    for (let i = 0; i < 1200 && !existsSync(sock); i++) {
      if (child.exitCode !== null) break;
      await sleep(25);
    }
    if (!existsSync(sock)) throw new Error(`${vmm} made no QMP socket; stderr: ${stderr}`);
    const connected = await RawQmp.connect(sock);
    qmp = connected;
    const greeting = connected.messages[0]?.value;
    if (greeting === undefined || !('QMP' in greeting)) throw new Error(`${vmm}: no QMP greeting`);
    const negotiated = await connected.command('{"execute":"qmp_capabilities"}');
    if (!('return' in negotiated)) throw new Error(`${vmm}: qmp_capabilities failed`);
    return await Promise.race([body({ child, qmp: connected, stderr: () => stderr }), timeout]);
  } finally {
    clearTimeout(timer);
    qmp?.write('{"execute":"quit"}\n');
    await Promise.race([exited, sleep(2000)]);
    qmp?.close();
    child.kill('SIGKILL');
    await exited;
  }
}

/** `count` sequential query-status round trips on a paused VMM. */
export function roundTrips(vmm: Vmm, dir: string, count: number): Promise<RoundTrips> {
  return withVmm(vmm, guestPath('spin'), dir, async ({ child, qmp }) => {
    const request = '{"execute":"query-status"}\n';
    qmp.counting = true;
    let lines = qmp.lines;
    for (let i = 0; i < WARM_UP; i++) {
      qmp.write(request);
      await qmp.untilLines(++lines);
    }
    const pid = child.pid ?? 0;
    const cpu0 = cpuTimeNs(pid);
    const t0 = performance.now();
    for (let i = 0; i < count; i++) {
      qmp.write(request);
      await qmp.untilLines(++lines);
    }
    const seconds = (performance.now() - t0) / 1000;
    const cpuNs = cpuTimeNs(pid) - cpu0;
    qmp.counting = false;
    // One line per reply, no error among them, and the last one answers what was asked.
    const check = await qmp.command('{"execute":"query-status"}');
    const status = (check.return as { status?: unknown } | undefined)?.status;
    if (qmp.errorReplies > 0 || qmp.lines !== lines + 1 || status !== 'prelaunch') {
      throw new Error(`${vmm}: bad query-status replies (${qmp.errorReplies} errors, status ${String(status)})`);
    }
    return { perSecond: count / seconds, cpuUs: cpuNs / 1000 / count };
  });
}

/** `stop` written → STOP read, `rounds` times, on the running spin guest; ms each. */
export function stopLatency(vmm: Vmm, dir: string, rounds: number): Promise<number[]> {
  return withVmm(vmm, guestPath('spin'), dir, async ({ qmp }) => {
    const isEvent = (name: string) => (m: Message): boolean => m.value.event === name;
    await qmp.command('{"execute":"cont"}');
    await sleep(200);
    const latencies: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const from = qmp.messages.length;
      const t = monotonicMs();
      qmp.write('{"execute":"stop"}\n');
      const stop = await qmp.next(from, isEvent('STOP'));
      latencies.push(stop.at - t);
      await qmp.next(from, (m) => 'return' in m.value);
      const resumed = qmp.messages.length;
      qmp.write('{"execute":"cont"}\n');
      await qmp.next(resumed, isEvent('RESUME'));
      await sleep(20);
    }
    return latencies;
  });
}

/** Serial byte → RESET event (and, traced, guest OUT → RESET) for `count` resets of bench-event. */
export function resetLatency(vmm: Vmm, dir: string, count: number): Promise<ResetLatency> {
  const byteTimes: number[] = [];
  const onStdout = (chunk: Buffer, at: number): void => {
    for (let i = chunk.indexOf(MARKER); i !== -1; i = chunk.indexOf(MARKER, i + 1)) byteTimes.push(at);
  };
  const body = async ({ child, qmp }: Running): Promise<ResetLatency> => {
    const trace = await PioTrace.start(child.pid ?? 0, join(dir, `${vmm}-${sequence}.perf`));
    const from = qmp.messages.length;
    qmp.write('{"execute":"cont"}\n');
    let seen = from;
    for (let n = 0; n < count; n++) {
      const m = await qmp.next(seen, (x) => x.value.event === 'RESET');
      seen = qmp.messages.indexOf(m) + 1;
    }
    await qmp.command('{"execute":"stop"}');
    await sleep(100); // whatever was under way has reached us
    const pio = trace instanceof PioTrace ? await trace.stop() : trace;
    const events = qmp.messages.filter((m) => m.value.event === 'RESET');
    const bytes = byteTimes.length;
    // After the stop, the boot after the last RESET may have printed its byte already.
    if (bytes !== events.length && bytes !== events.length + 1) {
      throw new Error(`${vmm}: ${bytes} serial bytes for ${events.length} RESET events`);
    }
    const intervalsMs: number[] = [];
    for (let k = 0; k < count; k++) {
      const event = events[k]!;
      const data = event.value.data as { guest?: unknown; reason?: unknown } | undefined;
      if (data?.guest !== true || data.reason !== 'guest-reset') {
        throw new Error(`${vmm}: RESET ${k} is not a guest reset: ${JSON.stringify(event.value)}`);
      }
      const next = byteTimes[k + 1];
      if (next !== undefined && next < event.at - ORDER_SLACK_MS) {
        throw new Error(`${vmm}: boot ${k + 1}'s byte was read before RESET ${k}: bytes and events do not pair up`);
      }
      intervalsMs.push(event.at - byteTimes[k]!);
    }
    const traced = 'unavailable' in pio ? pio : pairTrace(pio, events.map((e) => e.at), byteTimes, count);
    return { intervalsMs, bytes, events: events.length, traced };
  };
  return withVmm(vmm, guestPath('bench-event'), dir, body, onStdout);
}

/**
 * The k-th traced OUT 0x64 and OUT 0x3f8 against the k-th RESET read and byte read. Not
 * reported (unavailable) unless the counts match as for the bytes and every effect comes
 * after its cause: a wrong pairing or clock would break that.
 */
function pairTrace(pio: PioWrites, eventAt: number[], byteAt: number[], count: number): PioTimes | { unavailable: string } {
  const { resets, serial } = pio;
  const fits = (n: number): boolean => n === eventAt.length || n === eventAt.length + 1;
  if (!fits(resets.length) || !fits(serial.length)) {
    return { unavailable: `traced ${resets.length} resets, ${serial.length} serial writes for ${eventAt.length} RESET events` };
  }
  const actionMs: number[] = [];
  const serialMs: number[] = [];
  for (let k = 0; k < count; k++) {
    const action = eventAt[k]! - resets[k]!;
    const wrote = byteAt[k]! - serial[k]!;
    if (action <= 0 || wrote <= 0 || resets[k]! < serial[k]!) {
      return { unavailable: `reset ${k}: the traced port writes and what was read do not pair up` };
    }
    actionMs.push(action);
    serialMs.push(wrote);
  }
  return { actionMs, serialMs };
}

interface PioWrites {
  /** CLOCK_MONOTONIC ms of each OUT 0x64 with 0xfe (the i8042 reset) and each OUT 0x3f8 of the marker. */
  resets: number[];
  serial: number[];
}

/** `perf record` of the guest's writes to ports 0x64 and 0x3f8, as KVM's kvm_pio tracepoint sees them. */
class PioTrace {
  private constructor(
    private readonly perf: ChildProcess,
    private readonly file: string,
  ) {}

  /** Starts tracing a VMM's threads; says why not where perf is missing or not allowed. */
  static async start(pid: number, file: string): Promise<PioTrace | { unavailable: string }> {
    const args = ['record', '-q', '-e', 'kvm:kvm_pio', '--filter', 'rw == 1 && (port == 0x64 || port == 0x3f8)',
      '-k', 'CLOCK_MONOTONIC', '-p', String(pid), '-o', file];
    const perf = spawn('perf', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    perf.stderr?.setEncoding('utf8');
    perf.stderr?.on('data', (d: string) => (stderr += d));
    const failed = new Promise<string>((resolve) => {
      perf.once('error', (e) => resolve(e.message));
      perf.once('exit', (code) => resolve(`perf record exited (${code}): ${stderr.trim().split('\n')[0] ?? ''}`));
    });
    // The VM is paused (-S) until `cont`: perf only has to be attached by then.
    const why = await Promise.race([failed, sleep(1500).then(() => undefined)]);
    return why === undefined ? new PioTrace(perf, file) : { unavailable: why };
  }

  async stop(): Promise<PioWrites | { unavailable: string }> {
    const exited = new Promise<void>((resolve) => this.perf.once('exit', () => resolve()));
    this.perf.kill('SIGINT');
    await exited;
    let text: string;
    try {
      text = execFileSync('perf', ['script', '--ns', '-F', 'time,trace', '-i', this.file], {
        encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 64 << 20,
      });
    } catch (e) {
      return { unavailable: `perf script failed: ${(e as Error).message.split('\n')[0] ?? ''}` };
    }
    const resets: number[] = [];
    const serial: number[] = [];
    for (const line of text.split('\n')) {
      const m = /^\s*(\d+\.\d+):\s+pio_write at 0x([0-9a-f]+) size \d+ count \d+ val 0x([0-9a-f]+)/.exec(line);
      if (m === null) continue;
      const at = Number(m[1]) * 1000;
      if (m[2] === '64' && m[3] === 'fe') resets.push(at);
      else if (m[2] === '3f8' && Number.parseInt(m[3] ?? '', 16) === MARKER) serial.push(at);
    }
    return { resets, serial };
  }
}
