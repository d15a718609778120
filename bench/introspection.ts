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
 *     (bench/c/kvm-singlestep.c): KVM_EXIT_DEBUG per single step, and the INT3 stop per run;
 *   - and the floors under both for any tool in another process, also in C and in the same run:
 *     a socket round trip between two processes (bench/c/socket-pingpong.c: 16-byte request,
 *     4096 / 8176-byte reply), and the bare KVM_RUN loop sending each exit to a tool process
 *     and waiting for its reply (bench/c/kvm-event-ipc.c), each with the two processes free to
 *     use any CPU and pinned to one (a wake-up across CPUs costs tens of us on a PVM host).
 *
 * nodevisor runs in a fresh child process per run (this file with `--child`): the machine
 * (spin guest, 256 MiB, one vCPU) and the tool (`nodevisor/introspection`'s client) talk over
 * a unix socket, first in that one process (as in test/introspection.test.ts), then with the
 * tool in a process of its own (`--tool PATH`) on a new machine. "VMM only" repeats the events
 * with MachineTarget's own sink answering them, and a bare Node socket echo gives the reads'
 * floor in one process. Then the tool-in-its-own-process case once more in a fresh child
 * (`--remote`) started under `taskset -c 0`: the VMM and the tool it spawns share one CPU.
 * Last, the VMM measured from a tool that costs next to nothing, as a libkvmi tool in C would
 * be (bench/c/kvmi-tool.c, the same reads and events; `--ctool BINARY any|same`), on any CPU
 * and pinned: what nodevisor itself adds over the C floors.
 * bench/run.ts calls `introspection(tmp)`; see docs/performance.md, "Introspection".
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createMachine, type Machine } from '../src/index.js';
import { listen, type KvmiEvent, type KvmiVm } from '../src/introspection/client.js';
import { connectIntrospection } from '../src/introspection/connect.js';
import { MachineTarget } from '../src/introspection/machine-target.js';
import type { BreakpointEvent, SingleStepEvent } from '../src/introspection/target.js';
import { EVENT_REPLY_COMMON_SIZE, eventDataSize } from '../src/introspection/wire/events.js';
import { KVMI_HEADER_SIZE, KVMI_MAX_REPLY_DATA } from '../src/introspection/wire/header.js';
import { KVMI_EVENT_COMMON_SIZE } from '../src/introspection/wire/vcpu-state.js';
import { buildGuests, guestPath } from '../src/testing/guests.js';
import { waitForSerial } from '../src/testing/wait-serial.js';
import { buildCProgram, fmt, lastJsonLine, log, median, parseResultLine, runCProgram, table, timedRun } from './lib.js';

const REPS = 3;
/** Reads per (size, mode) and events per kind, in each nodevisor run. */
const READS = 20_000;
const STEPS = 20_000;
const BREAKS = 20_000;
const WARMUP = 500;
const PIPELINE = 16;
/** READ_PHYSICAL's largest reply (8176): 8184-byte payload limit minus the 8-byte error header. */
const MAX_READ = KVMI_MAX_REPLY_DATA;
/** Exits timed by the C reference per run. */
const C_EXITS = 100_000;
/** Round trips per C socket floor, and exits per C event floor (each with a round trip), per run. */
const C_ROUND_TRIPS = 20_000;
/** Bytes of a KVMI event message (header, common part with the vCPU state, event data) and of its reply. */
const eventBytes = (event: 'SINGLESTEP' | 'BREAKPOINT'): number => KVMI_HEADER_SIZE + KVMI_EVENT_COMMON_SIZE + eventDataSize(event);
const EVENT_REPLY_BYTES = KVMI_HEADER_SIZE + EVENT_REPLY_COMMON_SIZE;
/** The CPU the pinned configuration runs on (`taskset -c`). The C floors pin to the first allowed CPU, 0 here too. */
const PINNED_CPU = 0;
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
  remote: RemoteNumbers;
}

/** The tool's numbers with the machine in one process and the tool in another, and where they ran. */
export interface RemoteNumbers extends ToolNumbers {
  /** The CPUs each process may run on (Cpus_allowed_list), as "VMM 0-1, tool 0-1". */
  cpus: string;
}

/** A two-process figure measured twice: the processes free to use any CPU, and both pinned to one. */
export interface ByPlacement {
  any: number;
  oneCpu: number;
}

/** The C floors of one run: what two processes on this host cost at least, whatever the VMM. */
export interface FloorRun {
  /** us per socket round trip (bench/c/socket-pingpong.c): 16-byte request, 4096 / MAX_READ-byte reply, one in flight. */
  socket4kUs: ByPlacement;
  socketMaxUs: ByPlacement;
  /** The same with PIPELINE requests in flight (kvmi-tool.c READ_DEPTH): us per request. */
  socket4kPipeUs: ByPlacement;
  socketMaxPipeUs: ByPlacement;
  /** us per exit of the bare KVM_RUN loop sending each exit to a tool process, waiting for its reply (bench/c/kvm-event-ipc.c). */
  stepIpcUs: ByPlacement;
  int3IpcUs: ByPlacement;
}

export interface IntrospectionResults {
  runs: IntrospectionRun[];
  /** The tool in its own process, VMM and tool pinned to one CPU, per run. */
  pinned: RemoteNumbers[];
  floors: FloorRun[];
  /** us per exit, C KVM_RUN loop, per run. */
  bareStepUs: number[];
  bareInt3Us: number[];
  /** How KVM reported the C loop's INT3 stop on this host. */
  int3Exit: string;
  load: string;
  /** The C tool (bench/c/kvmi-tool.c) against nodevisor, any CPU and pinned to one. */
  cTool: CToolRun[];
  cToolPinned: CToolRun[];
}

/** What the C tool measured: us per READ_PHYSICAL (one in flight, and 16 in flight) and per event. */
export interface CToolRun {
  read4kUs: number;
  readMaxUs: number;
  read4kPipeUs: number;
  readMaxPipeUs: number;
  stepUs: number;
  int3Us: number;
  cpus: string;
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

/** The CPUs a process may run on, from /proc/PID/status (as taskset -c writes them: "0", "0-1"). */
function allowedCpus(pid: number | 'self'): string {
  const m = /^Cpus_allowed_list:\s*(\S+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m?.[1] ?? '?';
}

/**
 * The spin machine in this process, inspected by a tool in a process of its own (which inherits
 * this one's CPU affinity): `cmd` with `args(path)` listens on the unix socket `path` and prints
 * `listening` when ready; `result` reads its stdout once it has exited cleanly.
 */
async function withToolProcess<T>(what: string, cmd: string, args: (path: string) => string[], result: (out: string, cpus: string) => T): Promise<T> {
  const m = await spinMachine();
  const dir = mkdtempSync(join(tmpdir(), 'nodevisor-bench-kvmi-'));
  const path = join(dir, 'kvmi.sock');
  const tool = spawn(cmd, args(path), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  tool.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
  tool.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
  const exited = new Promise<number | null>((resolve) => tool.on('close', resolve));
  let link: ReturnType<typeof connectIntrospection> | undefined;
  try {
    const deadline = Date.now() + 20_000;
    while (!out.includes('listening\n')) {
      if (Date.now() > deadline || tool.exitCode !== null) throw new Error(`${what} did not listen: ${err}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    const cpus = `VMM ${allowedCpus('self')}, tool ${tool.pid === undefined ? '?' : allowedCpus(tool.pid)}`;
    link = connectIntrospection({ ...LINK, path }, new MachineTarget(m), { startTime: Date.now() });
    const code = await exited;
    if (code !== 0) throw new Error(`${what} failed (${code}): ${err}`);
    if (m.status !== 'running') throw new Error(`machine ${m.status} after ${what} left`);
    return result(out, cpus);
  } finally {
    if (tool.exitCode === null) tool.kill('SIGKILL');
    await link?.close();
    await m.quit();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The TypeScript tool in a child process. */
function measureRemote(): Promise<RemoteNumbers> {
  return withToolProcess('the tool process', process.execPath, (path) => [SELF, '--tool', path],
    (out, cpus) => ({ ...lastJsonLine<ToolNumbers>(out), cpus }));
}

/** bench/c/kvmi-tool.c in its own process (`--ctool BINARY any|same`). */
function measureCTool(binary: string, cpus: 'any' | 'same'): Promise<CToolRun> {
  return withToolProcess('the C tool', binary, (path) => [path, String(READS), String(STEPS), cpus], (out, where) => {
    const r = parseResultLine(out);
    const us = (ns: string, n: string): number => r[ns]! / 1e3 / r[n]!;
    return {
      read4kUs: us('read4k_ns', 'read4k_count'), readMaxUs: us('readmax_ns', 'readmax_count'),
      read4kPipeUs: us('read4k_pipe_ns', 'read4k_count'), readMaxPipeUs: us('readmax_pipe_ns', 'readmax_count'),
      stepUs: us('step_ns', 'step_count'), int3Us: us('int3_ns', 'int3_count'), cpus: where,
    };
  });
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

/** The C programs of bench/c this bench runs, built into the temporary directory. */
interface CPrograms {
  singleStep: string;
  pingPong: string;
  eventIpc: string;
  kvmiTool: string;
}

function buildCPrograms(dir: string): CPrograms {
  return {
    singleStep: buildCProgram(dir, 'kvm-singlestep'),
    pingPong: buildCProgram(dir, 'socket-pingpong'),
    eventIpc: buildCProgram(dir, 'kvm-event-ipc'),
    kvmiTool: buildCProgram(dir, 'kvmi-tool'),
  };
}

/** us per exit of the bare C KVM_RUN loop. */
async function bareUs(c: CPrograms, mode: 'singlestep' | 'int3'): Promise<{ us: number; internalErrors: number }> {
  const r = await runCProgram(c.singleStep, [mode, String(C_EXITS)]);
  return { us: r.run_ns! / 1e3 / r.exits!, internalErrors: r.internal_errors! };
}

/** us per C socket round trip between two processes, 16-byte request and `size`-byte reply, one in flight. */
async function socketRoundTripUs(c: CPrograms, size: number, cpus: 'any' | 'same', depth = 1): Promise<number> {
  const r = await runCProgram(c.pingPong, [String(size), String(C_ROUND_TRIPS), String(depth), cpus]);
  return r.run_ns! / 1e3 / r.round_trips!;
}

/** us per exit of the C KVM_RUN loop that sends each exit, at KVMI's message sizes, to a tool process and awaits its reply. */
async function eventIpcUs(c: CPrograms, mode: 'singlestep' | 'int3', cpus: 'any' | 'same'): Promise<number> {
  const event = eventBytes(mode === 'singlestep' ? 'SINGLESTEP' : 'BREAKPOINT');
  const r = await runCProgram(c.eventIpc, [mode, String(C_ROUND_TRIPS), String(event), String(EVENT_REPLY_BYTES), cpus]);
  return r.run_ns! / 1e3 / r.exits!;
}

async function measureFloors(c: CPrograms): Promise<FloorRun> {
  const both = async (f: (cpus: 'any' | 'same') => Promise<number>): Promise<ByPlacement> => ({ any: await f('any'), oneCpu: await f('same') });
  return {
    socket4kUs: await both((cpus) => socketRoundTripUs(c, 4096, cpus)),
    socketMaxUs: await both((cpus) => socketRoundTripUs(c, MAX_READ, cpus)),
    socket4kPipeUs: await both((cpus) => socketRoundTripUs(c, 4096, cpus, PIPELINE)),
    socketMaxPipeUs: await both((cpus) => socketRoundTripUs(c, MAX_READ, cpus, PIPELINE)),
    stepIpcUs: await both((cpus) => eventIpcUs(c, 'singlestep', cpus)),
    int3IpcUs: await both((cpus) => eventIpcUs(c, 'int3', cpus)),
  };
}

/** A fresh Node process running this file with `args`, optionally under `taskset`; its last stdout line as JSON. */
async function nodeChild<T>(args: string[], pinned: boolean): Promise<T> {
  const node = [process.execPath, SELF, ...args];
  const [cmd, ...rest] = pinned ? ['taskset', '-c', String(PINNED_CPU), ...node] : node;
  const r = await timedRun(cmd!, rest, { marker: '{', timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`introspection child ${rest.join(' ')} failed (${r.code}): ${r.stderr}`);
  return lastJsonLine<T>(r.stdout);
}

const nodevisorRun = (): Promise<IntrospectionRun> => nodeChild<IntrospectionRun>(['--child'], false);

/** The tool in its own process again, the VMM started under taskset and the tool inheriting its one CPU. */
async function pinnedRun(): Promise<RemoteNumbers> {
  const r = await nodeChild<RemoteNumbers>(['--remote'], true);
  const expected = `VMM ${PINNED_CPU}, tool ${PINNED_CPU}`;
  if (r.cpus !== expected) throw new Error(`the pinned run was not pinned: ${r.cpus}, expected ${expected}`);
  return r;
}

/** Runs the references, the floors and nodevisor REPS times, interleaved; returns every number. */
export async function measureIntrospection(tmp: string): Promise<IntrospectionResults> {
  const built = buildGuests();
  if (!built.ok) throw new Error(`cannot build the test guests: ${built.reason}`);
  const c = buildCPrograms(tmp);
  const r: IntrospectionResults = {
    runs: [], pinned: [], floors: [], bareStepUs: [], bareInt3Us: [], int3Exit: '', cTool: [], cToolPinned: [],
    load: loadavg().map((x) => x.toFixed(2)).join(' '),
  };
  for (let rep = 0; rep < REPS; rep++) {
    log(`introspection: run ${rep + 1}/${REPS}`);
    r.bareStepUs.push((await bareUs(c, 'singlestep')).us);
    const int3 = await bareUs(c, 'int3');
    r.bareInt3Us.push(int3.us);
    r.int3Exit = int3.internalErrors > 0 ? 'KVM_EXIT_INTERNAL_ERROR (emulation failure)' : 'KVM_EXIT_DEBUG';
    r.floors.push(await measureFloors(c));
    r.runs.push(await nodevisorRun());
    r.pinned.push(await pinnedRun());
    r.cTool.push(await nodeChild<CToolRun>(['--ctool', c.kvmiTool, 'any'], false));
    const pinned = await nodeChild<CToolRun>(['--ctool', c.kvmiTool, 'same'], true);
    if (pinned.cpus !== `VMM ${PINNED_CPU}, tool ${PINNED_CPU}`) throw new Error(`the pinned C tool run was not pinned: ${pinned.cpus}`);
    r.cToolPinned.push(pinned);
  }
  return r;
}

const each = (xs: number[], digits: number): string => xs.map((x) => fmt(x, digits)).join(' ');

/** READ_PHYSICAL throughput in the three placements, with the floors in the columns they bound. */
function printReads(r: IntrospectionResults): void {
  const med = (f: (x: IntrospectionRun) => number): number => median(r.runs.map(f));
  const row = (name: string, k: keyof ToolNumbers): string[] => [
    name, fmt(med((x) => x[k]), 0), fmt(med((x) => x.remote[k]), 0), fmt(median(r.pinned.map((x) => x[k])), 0),
    `${each(r.runs.map((x) => x[k]), 0)} / ${each(r.runs.map((x) => x.remote[k]), 0)} / ${each(r.pinned.map((x) => x[k]), 0)}`,
  ];
  const echo = (name: string, f: (x: IntrospectionRun) => number): string[] => [name, fmt(med(f), 0), '', '', each(r.runs.map(f), 0)];
  // MB/s = bytes per us.
  const cSocket = (size: number, f: (x: FloorRun) => ByPlacement): string[] => {
    const any = r.floors.map((x) => size / f(x).any);
    const one = r.floors.map((x) => size / f(x).oneCpu);
    return [`  floor: C socket round trip, two processes (any CPU / one CPU), ${size} B`, '', fmt(median(any), 0), fmt(median(one), 0),
      `${each(any, 0)} / ${each(one, 0)}`];
  };
  table(
    `Introspection: READ_PHYSICAL through the KVMI client, MB/s (10^6 B/s; ${READS} reads each; median of ${REPS} runs) [target >= 500]`,
    ['', 'tool in the VMM process', 'tool in its own process', 'own process, pinned to one CPU', 'each run (same / own / pinned)'],
    [
      row('4096 B, one in flight', 'read4kSeq'),
      row(`4096 B, ${PIPELINE} in flight`, 'read4kPipe'),
      row(`${MAX_READ} B (largest reply), one in flight`, 'readMaxSeq'),
      row(`${MAX_READ} B, ${PIPELINE} in flight`, 'readMaxPipe'),
      row('4096 B, one in flight, vCPU spinning meanwhile', 'read4kRunning'),
      echo('  floor: bare Node unix-socket echo, 4096 B, one in flight', (x) => x.echo4k),
      echo(`  floor: bare Node unix-socket echo, ${MAX_READ} B, one in flight`, (x) => x.echoMax),
      cSocket(4096, (x) => x.socket4kUs),
      cSocket(MAX_READ, (x) => x.socketMaxUs),
    ],
  );
  console.log('   vCPU 0 held by a PAUSE_VCPU event unless noted; the echo is a Node server and client in one process,');
  console.log('   16-byte request, 16 + N byte reply: the round trip every READ_PHYSICAL makes, with nothing else. The C socket');
  console.log('   round trip (socket-pingpong.c) is the same exchange between two processes, 16-byte request, N-byte reply: the');
  console.log(`   floor of the column it stands in. Pinned: VMM and tool under taskset -c ${PINNED_CPU} (${r.pinned[0]?.cpus ?? 'n/a'}).`);
}

/** The same reads as us per round trip, next to the C socket round trip that bounds them. */
function printReadRoundTrips(r: IntrospectionResults): void {
  const row = (size: number, k: keyof ToolNumbers, f: (x: FloorRun) => ByPlacement): string[] => {
    const any = r.floors.map((x) => f(x).any);
    const one = r.floors.map((x) => f(x).oneCpu);
    const usOf = (xs: ToolNumbers[]): string => fmt(median(xs.map((x) => size / x[k])), 1);
    return [`${size} B, one in flight`, fmt(median(any), 1), fmt(median(one), 1),
      usOf(r.runs), usOf(r.runs.map((x) => x.remote)), usOf(r.pinned), `${each(any, 1)} / ${each(one, 1)}`];
  };
  table(
    `   floor: C socket round trip, two processes (any CPU / one CPU), us per round trip, next to READ_PHYSICAL's (median of ${REPS})`,
    ['', 'C, any CPU', 'C, one CPU', 'READ_PHYSICAL, VMM process', 'own process', 'own, pinned', 'each run: C any / C one'],
    [row(4096, 'read4kSeq', (x) => x.socket4kUs), row(MAX_READ, 'readMaxSeq', (x) => x.socketMaxUs)],
  );
  console.log(`   ${C_ROUND_TRIPS} round trips per run after 1000 warm-up; READ_PHYSICAL us = size / MB/s of the table above.`);
}

/** Event round trips, one row per configuration: from the bare exit through the C floors to the tool. */
function printEvents(r: IntrospectionResults): void {
  const bareStep = median(r.bareStepUs);
  const bareInt3 = median(r.bareInt3Us);
  const plus = (x: number): string => `+${fmt(x, 1)}`;
  const row = (name: string, step: number[], int3: number[], digits = 0): string[] => [
    name, fmt(median(step), 1), fmt(median(int3), 1), plus(median(step) - bareStep), plus(median(int3) - bareInt3),
    `${each(step, digits)} / ${each(int3, digits)}`,
  ];
  const floor = (placement: keyof ByPlacement): [number[], number[]] =>
    [r.floors.map((x) => x.stepIpcUs[placement]), r.floors.map((x) => x.int3IpcUs[placement])];
  table(
    `   event round trip: guest exit -> event at the tool -> reply -> guest runs, us (median of ${REPS}) [target: tool <= bare + 30 us]`,
    ['', 'single step (KVM_EXIT_DEBUG), CONTINUE', 'INT3 breakpoint, RETRY', 'step - bare', 'INT3 - bare', 'each run: step / INT3'],
    [
      row('bare C KVM_RUN', r.bareStepUs, r.bareInt3Us, 1),
      row('  floor: C KVM_RUN + tool process, any CPU', ...floor('any'), 1),
      row('  floor: C KVM_RUN + tool process, one CPU', ...floor('oneCpu'), 1),
      row('VMM only', r.runs.map((x) => x.vmmSingleStepUs), r.runs.map((x) => x.vmmBreakpointUs)),
      row('tool, same process', r.runs.map((x) => x.singleStepUs), r.runs.map((x) => x.breakpointUs)),
      row('tool, own process', r.runs.map((x) => x.remote.singleStepUs), r.runs.map((x) => x.remote.breakpointUs)),
      row('tool, own process, pinned to one CPU', r.pinned.map((x) => x.singleStepUs), r.pinned.map((x) => x.breakpointUs)),
    ],
  );
  console.log(`   guest \`jmp $\` (spin, 256 MiB, 1 vCPU); ${STEPS} events per run after ${WARMUP} warm-up. VMM only: MachineTarget's`);
  console.log('   event sink answers at once on the main thread (no session, no socket). tool: nodevisor/introspection over a unix');
  console.log(`   socket, in the VMM's process, in a child process of its own, or that pinned with the VMM to CPU ${PINNED_CPU}. floor:`);
  console.log(`   kvm-event-ipc.c, the bare loop writing each exit to a forked tool process (${eventBytes('SINGLESTEP')} / ${eventBytes('BREAKPOINT')}-byte event,`);
  console.log(`   ${EVENT_REPLY_BYTES}-byte reply: KVMI's sizes; no vCPU state read) and waiting for its reply: what any VMM with the tool in`);
  console.log(`   another process pays at least here. INT3 at CPL0 reaches the VMM here as ${r.int3Exit}. Load average at start: ${r.load}.`);
}

/** nodevisor as a C tool (libkvmi's kind) sees it, next to the C floors of the same run. */
function printCTool(r: IntrospectionResults): void {
  const bareStep = median(r.bareStepUs);
  const bareInt3 = median(r.bareInt3Us);
  const any = (f: (x: CToolRun) => number): number => median(r.cTool.map(f));
  const one = (f: (x: CToolRun) => number): number => median(r.cToolPinned.map(f));
  const floorAny = (f: (x: FloorRun) => ByPlacement): number => median(r.floors.map((x) => f(x).any));
  const floorOne = (f: (x: FloorRun) => ByPlacement): number => median(r.floors.map((x) => f(x).oneCpu));
  const mbs = (size: number, us: number): string => fmt(size / us, 0);
  const verdict = (ok: boolean): string => (ok ? 'met' : '**missed**');
  table(
    `   nodevisor measured by a C tool (bench/c/kvmi-tool.c), median of ${REPS}; C floors of the same run`,
    ['', 'any CPU', 'floor, any CPU', 'one CPU', 'floor, one CPU', 'target', 'one CPU vs target'],
    [
      ['READ_PHYSICAL 4096 B, us (MB/s)', `${fmt(any((x) => x.read4kUs), 1)} (${mbs(4096, any((x) => x.read4kUs))})`,
        `${fmt(floorAny((x) => x.socket4kUs), 1)} (${mbs(4096, floorAny((x) => x.socket4kUs))})`,
        `${fmt(one((x) => x.read4kUs), 1)} (${mbs(4096, one((x) => x.read4kUs))})`,
        `${fmt(floorOne((x) => x.socket4kUs), 1)} (${mbs(4096, floorOne((x) => x.socket4kUs))})`, '>= 500 MB/s',
        verdict(4096 / one((x) => x.read4kUs) >= 500)],
      [`READ_PHYSICAL ${MAX_READ} B, us (MB/s)`, `${fmt(any((x) => x.readMaxUs), 1)} (${mbs(MAX_READ, any((x) => x.readMaxUs))})`,
        `${fmt(floorAny((x) => x.socketMaxUs), 1)} (${mbs(MAX_READ, floorAny((x) => x.socketMaxUs))})`,
        `${fmt(one((x) => x.readMaxUs), 1)} (${mbs(MAX_READ, one((x) => x.readMaxUs))})`,
        `${fmt(floorOne((x) => x.socketMaxUs), 1)} (${mbs(MAX_READ, floorOne((x) => x.socketMaxUs))})`, '>= 500 MB/s',
        verdict(MAX_READ / one((x) => x.readMaxUs) >= 500)],
      ...([['4096 B', 4096, (x: CToolRun) => x.read4kPipeUs, (x: FloorRun) => x.socket4kPipeUs],
        [`${MAX_READ} B`, MAX_READ, (x: CToolRun) => x.readMaxPipeUs, (x: FloorRun) => x.socketMaxPipeUs]] as const).map(([name, size, t, f]) => [
        `READ_PHYSICAL ${name}, ${PIPELINE} in flight, us (MB/s)`, `${fmt(any(t), 1)} (${mbs(size, any(t))})`,
        `${fmt(floorAny(f), 1)} (${mbs(size, floorAny(f))})`, `${fmt(one(t), 1)} (${mbs(size, one(t))})`,
        `${fmt(floorOne(f), 1)} (${mbs(size, floorOne(f))})`, '>= 500 MB/s', verdict(size / one(t) >= 500)]),
      ['single step, CONTINUE, us', fmt(any((x) => x.stepUs), 1), fmt(floorAny((x) => x.stepIpcUs), 1), fmt(one((x) => x.stepUs), 1),
        fmt(floorOne((x) => x.stepIpcUs), 1), `<= ${fmt(bareStep + 30, 1)} (bare ${fmt(bareStep, 1)} + 30)`,
        verdict(one((x) => x.stepUs) <= bareStep + 30)],
      ['INT3 breakpoint, RETRY, us', fmt(any((x) => x.int3Us), 1), fmt(floorAny((x) => x.int3IpcUs), 1), fmt(one((x) => x.int3Us), 1),
        fmt(floorOne((x) => x.int3IpcUs), 1), `<= ${fmt(bareInt3 + 30, 1)} (bare ${fmt(bareInt3, 1)} + 30)`,
        verdict(one((x) => x.int3Us) <= bareInt3 + 30)],
    ],
  );
  console.log(`   each run: reads 4 KiB ${each(r.cTool.map((x) => x.read4kUs), 1)} / ${each(r.cToolPinned.map((x) => x.read4kUs), 1)} us,`
    + ` steps ${each(r.cTool.map((x) => x.stepUs), 0)} / ${each(r.cToolPinned.map((x) => x.stepUs), 0)} us (any / one CPU).`);
  console.log(`   ${READS} reads per size, one in flight and ${PIPELINE} in flight (a request per reply), vCPU held; ${STEPS} events per kind`);
  console.log(`   after ${WARMUP} warm-up. The tool and the VMM in separate processes, free or both pinned to CPU ${PINNED_CPU}. The verdict is`);
  console.log('   taken on one CPU, where the C floors themselves leave room for the targets (on any CPU a wake-up across CPUs');
  console.log('   alone costs tens of us on this PVM host).');
}

export function printIntrospection(r: IntrospectionResults): void {
  printReads(r);
  printReadRoundTrips(r);
  printEvents(r);
  printCTool(r);
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
  } else if (process.argv[2] === '--remote') {
    // The tool in a process of its own only: the pinned configuration, started under taskset.
    console.log(JSON.stringify(await measureRemote() satisfies RemoteNumbers));
    process.exit(0);
  } else if (process.argv[2] === '--ctool' && process.argv[3] !== undefined && (process.argv[4] === 'any' || process.argv[4] === 'same')) {
    console.log(JSON.stringify(await measureCTool(process.argv[3], process.argv[4]) satisfies CToolRun));
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
