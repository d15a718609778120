/**
 * Introspection (KVMI) performance, for `npm run bench`; also runnable on its own:
 *   node dist/bench/introspection.js
 *
 *   - READ_PHYSICAL throughput, MB/s (10^6 bytes/s): 4096-byte reads and the largest single
 *     reply (8176 bytes), one request in flight (as libkvmi) and pipelined (16 in flight);
 *   - event round trips, us: single-step events (guest `jmp $`, each step an event, replied
 *     CONTINUE at once) and breakpoint events (an INT3 on the same `jmp $`, replied RETRY, so the
 *     INT3 runs again and is the next event: no guest work between events);
 *   - next to them, run now on this host, the bare cost of the same exits in a C KVM_RUN loop
 *     (bench/c/kvm-singlestep.c): KVM_EXIT_DEBUG per single step, and the INT3 stop per run.
 *
 * nodevisor runs in a fresh child process per run (this file with `--child`): the machine
 * (spin guest, 256 MiB, one vCPU) and the tool (`nodevisor/introspection`'s client) talk over
 * a unix socket, first in that one process (as in test/introspection.test.ts), then with the
 * tool in a process of its own (`--tool PATH`) on a new machine. "VMM only" repeats the events
 * with MachineTarget's own sink answering them, and a bare Node socket echo gives the reads'
 * floor. bench/run.ts calls `introspection(tmp)`; see docs/performance.md, "Introspection".
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createMachine, type Machine } from '../src/index.js';
import { listen, type KvmiEvent, type KvmiVm } from '../src/introspection/client.js';
import { connectIntrospection } from '../src/introspection/connect.js';
import { MachineTarget } from '../src/introspection/machine-target.js';
import type { BreakpointEvent, SingleStepEvent } from '../src/introspection/target.js';
import { buildGuests, guestPath } from '../src/testing/guests.js';
import { BENCH_SRC, median, parseResultLine, runTool, timedRun } from './lib.js';
import { waitForSerial } from '../src/testing/wait-serial.js';
import { fmt, log, table } from './lib.js';

const REPS = 3;
/** Reads per (size, mode) and events per kind, in each nodevisor run. */
const READS = 20_000;
const STEPS = 20_000;
const BREAKS = 20_000;
const WARMUP = 500;
const PIPELINE = 16;
/** READ_PHYSICAL's largest reply: 8184-byte payload limit minus the 8-byte error header. */
const MAX_READ = 8176;
/** Exits timed by the C reference per run. */
const C_EXITS = 100_000;
/** Guest RAM filled by the host before reading, so reads touch real pages. */
const READ_WINDOW = 16 << 20;

const SELF = fileURLToPath(import.meta.url);

export interface IntrospectionRun {
  /** MB/s (10^6 bytes per second), vCPU 0 held by a PAUSE_VCPU event. */
  read4kSeq: number;
  read4kPipe: number;
  readMaxSeq: number;
  readMaxPipe: number;
  /** MB/s, 4096 bytes, one in flight, while vCPU 0 spins in the guest. */
  read4kRunning: number;
  /** MB/s of a bare Node unix-socket echo (16-byte request, 16 + size reply) in the same process. */
  echo4k: number;
  echoMax: number;
  /** us per event round trip through the tool. */
  singleStepUs: number;
  breakpointUs: number;
  /** us per event answered inside the VMM (MachineTarget's event sink, no session or tool). */
  vmmSingleStepUs: number;
  vmmBreakpointUs: number;
  /** The tool's numbers again with the tool in a process of its own (the machine in a fresh one). */
  remote: ToolNumbers;
}

export interface IntrospectionResults {
  runs: IntrospectionRun[];
  /** us per exit, C KVM_RUN loop, per run. */
  bareStepUs: number[];
  bareInt3Us: number[];
  /** How KVM reported the C loop's INT3 stop on this host. */
  int3Exit: string;
  load: string;
}




// ---------------------------------------------------------------- the nodevisor side (child)


/** MB/s of `count` READ_PHYSICALs of `size` bytes, `depth` in flight at a time. */
async function readRate(vm: KvmiVm, size: number, count: number, depth: number): Promise<number> {
  const slots = Math.floor((READ_WINDOW - size) / 4096);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      const data = await vm.readPhysical(((i * 7) % slots) * 4096, size);
      if (data.length !== size) throw new Error(`READ_PHYSICAL gave ${data.length} bytes, not ${size}`);
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: depth }, worker));
  const s = (performance.now() - t0) / 1e3;
  return (size * count) / s / 1e6;
}

type Events = AsyncGenerator<KvmiEvent, void, undefined>;

async function nextEvent(events: Events, name: KvmiEvent['event']): Promise<KvmiEvent> {
  const { value } = await events.next();
  if (value === undefined) throw new Error(`the connection ended while waiting for a ${name} event`);
  if (value.event !== name) throw new Error(`expected a ${name} event, got ${value.event}`);
  return value;
}

/**
 * Answers `warmup + count` events of one kind with `action` as soon as each arrives; us per
 * event over the last `count`. Returns the last event, still unanswered.
 */
async function roundTrips(events: Events, name: KvmiEvent['event'], action: 'continue' | 'retry', count: number): Promise<{ us: number; last: KvmiEvent }> {
  let ev = await nextEvent(events, name);
  let t0 = 0;
  for (let i = 0; i < WARMUP + count; i++) {
    if (i === WARMUP) t0 = performance.now();
    await ev.reply(action);
    ev = await nextEvent(events, name);
  }
  return { us: ((performance.now() - t0) * 1e3) / count, last: ev };
}

/**
 * The floor under a READ_PHYSICAL: a bare Node unix-socket round trip in one process, server
 * answering each 16-byte request with 16 + size bytes, one in flight. MB/s of the payload.
 */
async function echoRate(path: string, size: number, count: number): Promise<number> {
  const reply = Buffer.alloc(16 + size);
  const server = net.createServer((s) => {
    let got = 0;
    s.on('data', (d: Buffer) => {
      got += d.length;
      for (; got >= 16; got -= 16) s.write(reply);
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const c = net.connect(path);
  await new Promise<void>((resolve) => c.on('connect', resolve));
  let have = 0;
  let done: () => void = () => {};
  c.on('data', (d: Buffer) => {
    have += d.length;
    if (have >= reply.length) {
      have -= reply.length;
      done();
    }
  });
  const request = Buffer.alloc(16);
  const once = (): Promise<void> => new Promise<void>((resolve) => {
    done = resolve;
    c.write(request);
  });
  for (let i = 0; i < WARMUP * 4; i++) await once();
  const t0 = performance.now();
  for (let i = 0; i < count; i++) await once();
  const s = (performance.now() - t0) / 1e3;
  c.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return (size * count) / s / 1e6;
}

/** us per event with the VMM's own sink answering each at once: the vCPU thread <-> main thread part. */
function vmmRoundTrips(
  target: MachineTarget, kind: 'singlestep' | 'breakpoint', action: 'continue' | 'retry', count: number,
): Promise<{ us: number; last: BreakpointEvent | SingleStepEvent }> {
  return new Promise((resolve, reject) => {
    let n = 0;
    let t0 = 0;
    target.setEventSink((ev) => {
      if (ev.kind !== kind || (ev.kind !== 'singlestep' && ev.kind !== 'breakpoint')) {
        target.setEventSink(null);
        reject(new Error(`expected a ${kind} event, got ${ev.kind}`));
        return;
      }
      n++;
      if (n === WARMUP) t0 = performance.now();
      if (n === WARMUP + count) {
        target.setEventSink(null);
        // The last one is left unanswered: the caller switches the hook off, then answers.
        resolve({ us: ((performance.now() - t0) * 1e3) / count, last: ev });
        return;
      }
      ev.reply(action);
    });
  });
}

type ToolNumbers = Pick<IntrospectionRun, 'read4kSeq' | 'read4kPipe' | 'readMaxSeq' | 'readMaxPipe' | 'read4kRunning' | 'singleStepUs' | 'breakpointUs'>;

/** Everything the tool measures, on a connected VM running the spin guest; also where its `jmp $` is. */
async function toolSide(vm: KvmiVm): Promise<ToolNumbers & { rip: bigint }> {
  const events = vm.events();
  // READ_PHYSICAL, first while the vCPU spins, then with it held by a PAUSE_VCPU event.
  await readRate(vm, 4096, WARMUP * 4, 1);
  const read4kRunning = await readRate(vm, 4096, READS, 1);
  await vm.pauseVcpu(0);
  const pause = await nextEvent(events, 'PAUSE_VCPU');
  const read4kSeq = await readRate(vm, 4096, READS, 1);
  const read4kPipe = await readRate(vm, 4096, READS, PIPELINE);
  const readMaxSeq = await readRate(vm, MAX_READ, READS, 1);
  const readMaxPipe = await readRate(vm, MAX_READ, READS, PIPELINE);
  await pause.reply('continue');

  // Single-step events on the guest's `jmp $`.
  await vm.controlEvents(0, 'SINGLESTEP', true);
  await vm.controlSingleStep(0, true);
  const step = await roundTrips(events, 'SINGLESTEP', 'continue', STEPS);
  await vm.controlSingleStep(0, false);
  await step.last.reply('continue');
  await vm.controlEvents(0, 'SINGLESTEP', false);

  // Breakpoint events: an INT3 over the `jmp $`, each event replied RETRY.
  await vm.pauseVcpu(0);
  const held = await nextEvent(events, 'PAUSE_VCPU');
  const rip = held.regs.rip;
  const code = await vm.readPhysical(rip, 2);
  if (code[0] !== 0xeb || code[1] !== 0xfe) throw new Error(`spin: expected jmp $ at 0x${rip.toString(16)}, found ${Buffer.from(code).toString('hex')}`);
  await vm.controlEvents(0, 'BREAKPOINT', true);
  await vm.writePhysical(rip, Uint8Array.of(0xcc));
  await held.reply('continue');
  const brk = await roundTrips(events, 'BREAKPOINT', 'retry', BREAKS);
  if (brk.last.regs.rip !== rip) throw new Error(`breakpoint at 0x${brk.last.regs.rip.toString(16)}, not on the INT3`);
  await vm.writePhysical(rip, Uint8Array.of(0xeb));
  await brk.last.reply('retry');
  await vm.controlEvents(0, 'BREAKPOINT', false);
  return { read4kSeq, read4kPipe, readMaxSeq, readMaxPipe, read4kRunning, singleStepUs: step.us, breakpointUs: brk.us, rip };
}

/** The spin guest running in 256 MiB, one vCPU, with the read window filled. */
async function spinMachine(): Promise<Machine> {
  const m = await createMachine({ kernel: guestPath('spin'), memorySize: 256 << 20, cpus: 1 });
  const spinning = waitForSerial(m, 'spin: spinning\n');
  await m.start();
  await spinning;
  const fill = new Uint8Array(1 << 20);
  for (let i = 0; i < fill.length; i++) fill[i] = (i * 31 + 7) & 0xff;
  for (let gpa = 4 << 20; gpa < READ_WINDOW; gpa += fill.length) m.memory.write(gpa, fill);
  return m;
}

const LINK = { id: 'bench', handshakeTimeoutMs: 5000, unhookTimeoutMs: 5000, dialect: 'v7' } as const;

/** The tool in a process of its own (`--tool PATH`): listens, measures, prints its numbers. */
async function toolProcess(path: string): Promise<void> {
  const listener = await listen(path);
  console.log('listening');
  const vm = await listener.accept();
  const { rip: _rip, ...numbers } = await toolSide(vm);
  await vm.close();
  await listener.close();
  console.log(JSON.stringify(numbers));
}

/** The machine in this process, the tool in a child process. */
async function measureRemote(): Promise<ToolNumbers> {
  const m = await spinMachine();
  const dir = mkdtempSync(join(tmpdir(), 'nodevisor-bench-kvmi-'));
  const path = join(dir, 'kvmi.sock');
  const tool = spawn(process.execPath, [SELF, '--tool', path], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  tool.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
  tool.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
  const exited = new Promise<number | null>((resolve) => tool.on('close', resolve));
  let link: ReturnType<typeof connectIntrospection> | undefined;
  try {
    const deadline = Date.now() + 20_000;
    while (!out.includes('listening\n')) {
      if (Date.now() > deadline || tool.exitCode !== null) throw new Error(`the tool process did not listen: ${err}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    link = connectIntrospection({ ...LINK, path }, new MachineTarget(m), { startTime: Date.now() });
    const code = await exited;
    if (code !== 0) throw new Error(`the tool process failed (${code}): ${err}`);
    if (m.status !== 'running') throw new Error(`machine ${m.status} after the tool left`);
    const lines = out.trim().split('\n');
    return JSON.parse(lines[lines.length - 1] ?? 'null') as ToolNumbers;
  } finally {
    if (tool.exitCode === null) tool.kill('SIGKILL');
    await link?.close();
    await m.quit();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function measure(): Promise<Omit<IntrospectionRun, 'remote'>> {
  const m = await spinMachine();
  const dir = mkdtempSync(join(tmpdir(), 'nodevisor-bench-kvmi-'));
  const path = join(dir, 'kvmi.sock');
  const listener = await listen(path);
  let link: ReturnType<typeof connectIntrospection> | undefined;
  try {
    const target = new MachineTarget(m);
    link = connectIntrospection({ ...LINK, path }, target, { startTime: Date.now() });
    const vm = await listener.accept();
    const tool = await toolSide(vm);
    const rip = tool.rip;
    if (m.status !== 'running') throw new Error(`machine ${m.status} after the breakpoints`);

    await vm.close();
    await link.close();
    link = undefined;

    // The same events answered inside the VMM: MachineTarget's sink, no session, no socket.
    await target.setSingleStep(0, true);
    const vmmStep = await vmmRoundTrips(target, 'singlestep', 'continue', STEPS);
    await target.setSingleStep(0, false);
    vmmStep.last.reply('continue');
    m.memory.write(Number(rip), Uint8Array.of(0xcc));
    await target.setBreakpointIntercept(0, true);
    const vmmBrk = await vmmRoundTrips(target, 'breakpoint', 'retry', BREAKS);
    m.memory.write(Number(rip), Uint8Array.of(0xeb));
    vmmBrk.last.reply('retry');
    await target.setBreakpointIntercept(0, false);
    if (m.status !== 'running') throw new Error(`machine ${m.status} after the VMM-level breakpoints`);

    const echo4k = await echoRate(join(dir, 'echo.sock'), 4096, READS);
    const echoMax = await echoRate(join(dir, 'echo2.sock'), MAX_READ, READS);
    const { rip: _rip, ...measured } = tool;
    return { ...measured, echo4k, echoMax, vmmSingleStepUs: vmmStep.us, vmmBreakpointUs: vmmBrk.us };
  } finally {
    await link?.close();
    await listener.close();
    await m.quit();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- the references and the table

function buildSingleStep(dir: string): string {
  const out = join(dir, 'kvm-singlestep');
  runTool('gcc', ['-O2', '-Wall', '-o', out, join(BENCH_SRC, 'c', 'kvm-singlestep.c')]);
  return out;
}

async function bare(prog: string, mode: 'singlestep' | 'int3'): Promise<Record<string, number>> {
  const r = await timedRun(prog, [mode, String(C_EXITS)], { marker: 'RESULT', timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`kvm-singlestep ${mode} failed (${r.code}): ${r.stderr}`);
  return parseResultLine(r.stdout);
}

async function nodevisorRun(): Promise<IntrospectionRun> {
  const r = await timedRun(process.execPath, [SELF, '--child'], { marker: '{', timeoutMs: 180_000 });
  if (r.code !== 0) throw new Error(`introspection child failed (${r.code}): ${r.stderr}`);
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1] ?? 'null') as IntrospectionRun;
}

/** Runs the references and nodevisor REPS times, interleaved; returns every number. */
export async function measureIntrospection(tmp: string): Promise<IntrospectionResults> {
  const built = buildGuests();
  if (!built.ok) throw new Error(`cannot build the test guests: ${built.reason}`);
  const prog = buildSingleStep(tmp);
  const runs: IntrospectionRun[] = [];
  const bareStepUs: number[] = [];
  const bareInt3Us: number[] = [];
  let int3Exit = '';
  const load = loadavg().map((x) => x.toFixed(2)).join(' ');
  for (let rep = 0; rep < REPS; rep++) {
    log(`introspection: run ${rep + 1}/${REPS}`);
    const s = await bare(prog, 'singlestep');
    bareStepUs.push(s.run_ns! / 1e3 / s.exits!);
    const b = await bare(prog, 'int3');
    bareInt3Us.push(b.run_ns! / 1e3 / b.exits!);
    int3Exit = b.internal_errors! > 0 ? 'KVM_EXIT_INTERNAL_ERROR (emulation failure)' : 'KVM_EXIT_DEBUG';
    runs.push(await nodevisorRun());
  }
  return { runs, bareStepUs, bareInt3Us, int3Exit, load };
}

export function printIntrospection(r: IntrospectionResults): void {
  const med = (f: (x: IntrospectionRun) => number): number => median(r.runs.map(f));
  const each = (xs: number[], digits: number): string => xs.map((x) => fmt(x, digits)).join(' ');
  const row = (name: string, k: keyof ToolNumbers): string[] => [
    name, fmt(med((x) => x[k]), 0), fmt(med((x) => x.remote[k]), 0),
    `${each(r.runs.map((x) => x[k]), 0)} / ${each(r.runs.map((x) => x.remote[k]), 0)}`,
  ];
  const floor = (name: string, f: (x: IntrospectionRun) => number): string[] => [name, fmt(med(f), 0), '', each(r.runs.map(f), 0)];
  table(
    `Introspection: READ_PHYSICAL through the KVMI client, MB/s (10^6 B/s; ${READS} reads each; median of ${REPS} runs) [target >= 500]`,
    ['', 'tool in the VMM process', 'tool in its own process', 'each run (same / own)'],
    [
      row('4096 B, one in flight', 'read4kSeq'),
      row(`4096 B, ${PIPELINE} in flight`, 'read4kPipe'),
      row(`${MAX_READ} B (largest reply), one in flight`, 'readMaxSeq'),
      row(`${MAX_READ} B, ${PIPELINE} in flight`, 'readMaxPipe'),
      row('4096 B, one in flight, vCPU spinning meanwhile', 'read4kRunning'),
      floor('  floor: bare Node unix-socket echo, 4096 B, one in flight', (x) => x.echo4k),
      floor(`  floor: bare Node unix-socket echo, ${MAX_READ} B, one in flight`, (x) => x.echoMax),
    ],
  );
  console.log('   vCPU 0 held by a PAUSE_VCPU event unless noted; the echo is a Node server and client in one process,');
  console.log('   16-byte request, 16 + N byte reply: the round trip every READ_PHYSICAL makes, with nothing else.');
  const bareStep = median(r.bareStepUs);
  const bareInt3 = median(r.bareInt3Us);
  const step = med((x) => x.singleStepUs);
  const brk = med((x) => x.breakpointUs);
  const rStep = med((x) => x.remote.singleStepUs);
  const rBrk = med((x) => x.remote.breakpointUs);
  const vStep = med((x) => x.vmmSingleStepUs);
  const vBrk = med((x) => x.vmmBreakpointUs);
  const plus = (x: number): string => `+${fmt(x, 1)}`;
  table(
    `   event round trip: guest exit -> event at the tool -> reply -> guest runs, us (median of ${REPS}) [target: tool <= bare + 30 us]`,
    ['', 'bare C KVM_RUN', 'VMM only', 'tool, same process', 'tool, own process', 'tool - bare', 'each run: bare / VMM / same / own'],
    [
      ['single step (KVM_EXIT_DEBUG), CONTINUE', fmt(bareStep, 1), fmt(vStep, 1), fmt(step, 1), fmt(rStep, 1),
        `${plus(step - bareStep)} / ${plus(rStep - bareStep)}`,
        `${each(r.bareStepUs, 1)} / ${each(r.runs.map((x) => x.vmmSingleStepUs), 0)} / ${each(r.runs.map((x) => x.singleStepUs), 0)}`
          + ` / ${each(r.runs.map((x) => x.remote.singleStepUs), 0)}`],
      ['INT3 breakpoint, RETRY', fmt(bareInt3, 1), fmt(vBrk, 1), fmt(brk, 1), fmt(rBrk, 1),
        `${plus(brk - bareInt3)} / ${plus(rBrk - bareInt3)}`,
        `${each(r.bareInt3Us, 1)} / ${each(r.runs.map((x) => x.vmmBreakpointUs), 0)} / ${each(r.runs.map((x) => x.breakpointUs), 0)}`
          + ` / ${each(r.runs.map((x) => x.remote.breakpointUs), 0)}`],
    ],
  );
  console.log(`   guest \`jmp $\` (spin, 256 MiB, 1 vCPU); ${STEPS} events per run after ${WARMUP} warm-up. VMM only: MachineTarget's`);
  console.log('   event sink answers at once on the main thread (no session, no socket). tool: nodevisor/introspection over a unix');
  console.log(`   socket, in the VMM's process or in a child process of its own. INT3 at CPL0 reaches the VMM here as ${r.int3Exit}. Load average at start: ${r.load}.`);
}

/** The bench section: measures and prints. What bench/run.ts calls, with its temporary directory. */
export async function introspection(tmp: string): Promise<void> {
  printIntrospection(await measureIntrospection(tmp));
}

if (process.argv[1] === SELF) {
  if (process.argv[2] === '--child') {
    // One machine at a time: the tool in this process, then in a process of its own.
    const local = await measure();
    console.log(JSON.stringify({ ...local, remote: await measureRemote() } satisfies IntrospectionRun));
    process.exit(0);
  } else if (process.argv[2] === '--tool' && process.argv[3] !== undefined) {
    await toolProcess(process.argv[3]);
    process.exit(0);
  } else {
    const tmp = mkdtempSync(join(tmpdir(), 'nodevisor-bench-'));
    try {
      const cpu = cpus()[0]?.model ?? 'unknown CPU';
      console.log(`nodevisor introspection bench: ${new Date().toISOString()}, ${cpu} x${cpus().length}, Node ${process.version}`);
      await introspection(tmp);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
}
