/**
 * `npm run bench`: nodevisor measured against references run by this same script, as ratios.
 * Nothing here passes or fails; it prints tables (and changes no file in the repository:
 * builds go to a temporary directory that is removed at the end).
 *
 *   1. Port-I/O exit round trip: nodevisor (library, in-process) vs a C KVM_RUN loop.
 *   2. Start-up: process start to the hello guest's first serial byte, and to exit, vs QEMU.
 *   3. Memory: RSS beyond guest RAM vs QEMU and bare Node; the cost of each extra machine.
 *   4. QMP: query-status round trips per second, stop and guest-reset event latency vs QEMU.
 *
 * See docs/performance.md for what the numbers mean.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildGuests, guestPath } from '../src/testing/guests.js';
import { CLI_PATH, QEMU } from '../src/testing/run-cli.js';
import type { IoloopRun } from './ioloop-child.js';
import { resetLatency, roundTrips, stopLatency, type ResetLatency, type RoundTrips, type Vmm } from './qmp.js';
import { introspection } from './introspection.js';
import {
  fmt, log, table,
  BENCH_DIST, beyondGuestKiB, buildCReference, buildIoloop, lastJsonLine, median, parseResultLine, percentile, runTool,
  timedRun, type ProcMemory,
} from './lib.js';

const IO_SMALL = 100_000;
const IO_LARGE = 400_000;
const IO_REPS = 3;
const STARTUP_REPS = 5;

const node = process.execPath;
const mib = (kib: number): string => fmt(kib / 1024);



// ---------------------------------------------------------------- 1. port-I/O round trip

async function cReference(prog: string, elf: string): Promise<Record<string, number>> {
  const r = await timedRun(prog, [elf, '64'], { marker: 'RESULT', timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`kvm-ioloop failed (${r.code}): ${r.stderr}`);
  return parseResultLine(r.stdout);
}

async function nodevisorIoloop(small: string, large: string): Promise<IoloopRun[]> {
  const r = await timedRun(node, [join(BENCH_DIST, 'ioloop-child.js'), '1', small, large], { marker: '[', timeoutMs: 180_000 });
  if (r.code !== 0) throw new Error(`ioloop-child failed (${r.code}): ${r.stderr}`);
  return lastJsonLine<IoloopRun[]>(r.stdout);
}

async function portIo(tmp: string): Promise<void> {
  log('port-I/O: building ioloop variants and the C reference');
  const small = buildIoloop(tmp, IO_SMALL);
  const large = buildIoloop(tmp, IO_LARGE);
  const prog = buildCReference(tmp);
  const span = IO_LARGE - IO_SMALL;
  const cDiff: number[] = [];
  const nvDiff: number[] = [];
  const cLoop: number[] = [];
  const nvSerialLoop: number[] = [];
  const nvCreate: number[] = [];
  const cSetup: number[] = [];
  for (let rep = 0; rep < IO_REPS; rep++) {
    log(`port-I/O: run ${rep + 1}/${IO_REPS}`);
    // Interleaved, so that load from elsewhere on the host hits both sides alike.
    const c1 = await cReference(prog, small);
    const c4 = await cReference(prog, large);
    const [n1, n4] = await nodevisorIoloop(small, large);
    if (n1 === undefined || n4 === undefined) throw new Error('ioloop-child gave no runs');
    cDiff.push(((c4.run_ns! - c1.run_ns!) / 1e3) / span);
    nvDiff.push(((n4.runMs - n1.runMs) * 1e3) / span);
    cLoop.push(c4.loop_ns! / 1e3 / c4.scratch_exits!);
    nvSerialLoop.push((n4.serialLoopMs * 1e3) / IO_LARGE);
    nvCreate.push(n1.createMs, n4.createMs);
    cSetup.push(c1.setup_ns! / 1e6, c4.setup_ns! / 1e6);
  }
  const c = median(cDiff);
  const nv = median(nvDiff);
  table(
    `1. Port-I/O exit round trip (out to 0x3ff; (t(${IO_LARGE / 1000}k) - t(${IO_SMALL / 1000}k)) / ${span / 1000}k exits; median of ${IO_REPS}) [target ratio <= 1.2]`,
    ['', 'C KVM_RUN loop', 'nodevisor', 'ratio'],
    [
      ['us/exit (whole-run difference)', fmt(c, 2), fmt(nv, 2), fmt(nv / c, 2)],
      ['us/exit (in-run interval, 400k)', fmt(median(cLoop), 2), fmt(median(nvSerialLoop), 2), fmt(median(nvSerialLoop) / median(cLoop), 2)],
      ['  each run (difference)', cDiff.map((x) => fmt(x, 2)).join(' '), nvDiff.map((x) => fmt(x, 2)).join(' '), ''],
      ['VM setup before first KVM_RUN, ms', fmt(median(cSetup)), fmt(median(nvCreate)), fmt(median(nvCreate) / median(cSetup), 0)],
    ],
  );
  console.log('   in-run interval: C times first exit after "ioloop: start" to first byte of "ioloop: done";');
  console.log('   nodevisor times the serial events carrying those lines (drained asynchronously by the main thread).');
}

// ---------------------------------------------------------------- 2. start-up

interface StartupMarks {
  marks: Record<string, number>;
  bareWorkerMs: number;
  createMs: number;
}

async function startup(): Promise<void> {
  const hello = guestPath('hello');
  const nvFirst: number[] = [];
  const nvExit: number[] = [];
  const qFirst: number[] = [];
  const qExit: number[] = [];
  const bareFirst: number[] = [];
  const bareExit: number[] = [];
  for (let rep = 0; rep < STARTUP_REPS; rep++) {
    log(`start-up: run ${rep + 1}/${STARTUP_REPS}`);
    const nv = await timedRun(node, [CLI_PATH, '-kernel', hello, '-m', '64', '-nographic', '-no-reboot'], { marker: 'Hello from' });
    if (nv.markerMs < 0) throw new Error(`nodevisor did not print the hello line: ${nv.stderr}`);
    nvFirst.push(nv.markerMs);
    nvExit.push(nv.exitMs);
    const q = await timedRun(QEMU, ['-M', 'pc', '-accel', 'kvm', '-nographic', '-no-reboot', '-m', '64', '-kernel', hello], { marker: 'Hello from' });
    qFirst.push(q.markerMs);
    qExit.push(q.exitMs);
    const b = await timedRun(node, ['-e', "process.stdout.write('Hello from node\\n')"], { marker: 'Hello from' });
    bareFirst.push(b.markerMs);
    bareExit.push(b.exitMs);
  }
  table(
    `2. Start-up, hello guest, -m 64 (ms from spawn; median of ${STARTUP_REPS}) [target: nodevisor first byte < 150 ms]`,
    ['', 'first byte of "Hello from"', 'process exit'],
    [
      ['nodevisor CLI', fmt(median(nvFirst)), fmt(median(nvExit))],
      ['QEMU 7.2 -M pc (SeaBIOS)', fmt(median(qFirst)), fmt(median(qExit))],
      ['bare node printing a line', fmt(median(bareFirst)), fmt(median(bareExit))],
      ['ratio nodevisor / QEMU', fmt(median(nvFirst) / median(qFirst), 2), fmt(median(nvExit) / median(qExit), 2)],
    ],
  );

  log('start-up: phase timestamps (3 runs)');
  const profiles: StartupMarks[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await timedRun(node, [join(BENCH_DIST, 'startup-child.js'), hello], { marker: '{' });
    if (r.code !== 0) throw new Error(`startup-child failed: ${r.stderr}`);
    profiles.push(lastJsonLine<StartupMarks>(r.stdout));
  }
  const m = (k: string): number => median(profiles.map((p) => p.marks[k] ?? Number.NaN));
  const rows: Array<[string, number, number]> = [
    ['node boots, runs the first line of a script', 0, m('nodeReady')],
    ["import('koffi')", m('nodeReady'), m('koffiImported')],
    ["koffi.load('libc.so.6')", m('koffiImported'), m('libcLoaded')],
    ['import nodevisor library (all modules)', m('libcLoaded'), m('libraryImported')],
    ['createMachine (KVM setup, vCPU worker spawn + setup)', 0, median(profiles.map((p) => p.createMs))],
    ['  of which: a bare worker that loads koffi + libc', 0, median(profiles.map((p) => p.bareWorkerMs))],
    ['start() to first serial event', m('started'), m('firstSerial')],
    ['first serial event to machine end', m('firstSerial'), m('ended')],
  ];
  table(
    '   where nodevisor start-up goes (in-process library run, ms; median of 3; a bare worker is timed separately before createMachine)',
    ['phase', 'ms'],
    rows.map(([name, from, to]) => [name, fmt(to - from)]),
  );
}

// ---------------------------------------------------------------- 3. memory

async function sampleRss(cmd: string, args: string[], marker: string): Promise<ProcMemory> {
  const r = await timedRun(cmd, args, { marker, sampleMemoryAfterMs: 500, timeoutMs: 90_000 });
  if (r.memory === null) throw new Error(`${cmd}: no memory sample (marker ${JSON.stringify(marker)} seen: ${r.markerMs >= 0}): ${r.stderr}`);
  return r.memory;
}

async function memory(): Promise<void> {
  const hlt = guestPath('hlt');
  log('memory: nodevisor, QEMU and bare node');
  const nv = await sampleRss(node, [CLI_PATH, '-kernel', hlt, '-m', '256', '-nographic', '-no-reboot'], 'hlt: halting');
  const q = await sampleRss(QEMU, ['-M', 'pc', '-accel', 'kvm', '-nographic', '-no-reboot', '-m', '256', '-kernel', hlt], 'hlt: halting');
  const bare = await sampleRss(node, ['-e', "setTimeout(() => {}, 1e6); process.stdout.write('ready\\n')"], 'ready');
  const row = (name: string, p: ProcMemory): string[] => [
    name, mib(p.vmRss), mib(p.rssAnon), mib(p.rssFile), mib(p.rssShmem), mib(beyondGuestKiB(p)),
  ];
  table(
    '3. Memory, hlt guest with -m 256, 500 ms after it printed (MiB) [target: nodevisor within 10 MiB of bare Node]',
    ['', 'VmRSS', 'RssAnon', 'RssFile', 'RssShmem', 'RSS - Shmem (VMM beyond guest RAM)'],
    [row('nodevisor CLI', nv), row('QEMU 7.2 -M pc', q), row('bare node (idle timer)', bare)],
  );
  console.log(`   nodevisor beyond guest RAM - bare node: ${mib(beyondGuestKiB(nv) - beyondGuestKiB(bare))} MiB;`
    + ' (the hlt guest touches well under 1 MiB of its RAM, so guest RAM adds almost nothing to either VMM).');

  log('memory: machines in one process');
  const r = await timedRun(node, ['--expose-gc', join(BENCH_DIST, 'machines-child.js'), hlt], { marker: '[', timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`machines-child failed: ${r.stderr}`);
  const steps = lastJsonLine<Array<{ machines: number; mem: ProcMemory }>>(r.stdout);
  const at = (n: number): ProcMemory => {
    const s = steps.find((x) => x.machines === n);
    if (!s) throw new Error(`no step with ${n} machines`);
    return s.mem;
  };
  const m0 = at(0);
  const m1 = at(1);
  const m4 = at(4);
  table(
    '   machines in one process (library; hlt guest, 32 MiB each; RSS - Shmem, MiB) [target: each extra machine <= 3 MiB]',
    ['', 'RSS - Shmem', 'RssAnon', 'growth per machine'],
    [
      ['library loaded, no machine', mib(beyondGuestKiB(m0)), mib(m0.rssAnon), ''],
      ['1 machine running', mib(beyondGuestKiB(m1)), mib(m1.rssAnon), mib(beyondGuestKiB(m1) - beyondGuestKiB(m0))],
      ['4 machines running', mib(beyondGuestKiB(m4)), mib(m4.rssAnon), mib((beyondGuestKiB(m4) - beyondGuestKiB(m1)) / 3)],
    ],
  );
}

// ---------------------------------------------------------------- QMP

const QMP_REPS = 3;
const QMP_ROUND_TRIPS = 5000;
const QMP_STOPS = 20;
/** Guest resets per VMM, in two runs each. */
const QMP_RESETS = 200;

async function qmp(tmp: string): Promise<void> {
  const vmms: Vmm[] = ['nodevisor', 'qemu'];
  const trips: Record<Vmm, RoundTrips[]> = { nodevisor: [], qemu: [] };
  for (let rep = 0; rep < QMP_REPS; rep++) {
    log(`QMP: query-status round trips, run ${rep + 1}/${QMP_REPS}`);
    // Alternated, and each goes first in turn, so that load from elsewhere hits both alike.
    for (const vmm of rep % 2 === 0 ? vmms : [...vmms].reverse()) trips[vmm].push(await roundTrips(vmm, tmp, QMP_ROUND_TRIPS));
  }
  log('QMP: stop -> STOP');
  const stops: Record<Vmm, number[]> = { nodevisor: await stopLatency('nodevisor', tmp, QMP_STOPS), qemu: [] };
  stops.qemu = await stopLatency('qemu', tmp, QMP_STOPS);
  const resets: Record<Vmm, ResetLatency[]> = { nodevisor: [], qemu: [] };
  for (let rep = 0; rep < 2; rep++) {
    log(`QMP: guest reset -> RESET event, run ${rep + 1}/2`);
    for (const vmm of rep % 2 === 0 ? vmms : [...vmms].reverse()) resets[vmm].push(await resetLatency(vmm, tmp, QMP_RESETS / 2));
  }
  const rate = (vmm: Vmm): number => median(trips[vmm].map((t) => t.perSecond));
  const cpu = (vmm: Vmm): number => median(trips[vmm].map((t) => t.cpuUs));
  const intervals = (vmm: Vmm): number[] => resets[vmm].flatMap((r) => r.intervalsMs);
  // Kernel-traced times only where every run of that VMM could be traced and paired.
  const traced = (vmm: Vmm, key: 'actionMs' | 'serialMs'): number[] =>
    resets[vmm].every((r) => !('unavailable' in r.traced))
      ? resets[vmm].flatMap((r) => ('unavailable' in r.traced ? [] : r.traced[key]))
      : [];
  const counts = (vmm: Vmm): string =>
    resets[vmm].map((r) => `${r.bytes}/${r.events}/${'unavailable' in r.traced ? '-' : r.traced.actionMs.length}`).join(' ');
  const row = (name: string, f: (vmm: Vmm) => number, digits: number, lowerIsBetter: boolean): string[] => [
    name, fmt(f('nodevisor'), digits), fmt(f('qemu'), digits),
    fmt(lowerIsBetter ? f('qemu') / f('nodevisor') : f('nodevisor') / f('qemu'), 2),
  ];
  table(
    'QMP, one connection, the same raw-socket client for both; QEMU -M pc -bios qboot.rom (medians unless noted;'
      + ' speed-up = times nodevisor is ahead) [target: ahead of QEMU]',
    ['', 'nodevisor', 'QEMU 7.2', 'speed-up'],
    [
      row(`query-status round trips/s (${QMP_ROUND_TRIPS} sequential; median of ${QMP_REPS} runs)`, rate, 0, false),
      ['  each run', trips.nodevisor.map((t) => fmt(t.perSecond, 0)).join(' '), trips.qemu.map((t) => fmt(t.perSecond, 0)).join(' '), ''],
      row('VMM CPU time per round trip, us (all threads)', cpu, 1, true),
      row(`stop sent -> STOP event read, ms (${QMP_STOPS} times)`, (vmm) => median(stops[vmm]), 2, true),
      row(`guest OUT 0x64 (reset, kernel trace) -> RESET event read, ms (${QMP_RESETS} resets)`,
        (vmm) => median(traced(vmm, 'actionMs')), 2, true),
      row('  p90', (vmm) => percentile(traced(vmm, 'actionMs'), 0.9), 2, true),
      row('serial byte read -> RESET event read, ms', (vmm) => median(intervals(vmm)), 2, true),
      row('  p90', (vmm) => percentile(intervals(vmm), 0.9), 2, true),
      ['guest OUT 0x3f8 (kernel trace) -> serial byte read, ms', fmt(median(traced('nodevisor', 'serialMs')), 2),
        fmt(median(traced('qemu', 'serialMs')), 2), ''],
      ['  bytes / RESET events / traced resets, per run', counts('nodevisor'), counts('qemu'), ''],
    ],
  );
  console.log('   guest reset: the bench-event guest prints 0x1e and resets through the i8042 on every boot; the k-th byte on');
  console.log("   the VMM's stdout, the k-th RESET on its QMP socket and (perf, kvm:kvm_pio) the k-th OUT 0x3f8 / OUT 0x64 pair up.");
  for (const vmm of vmms) {
    for (const r of resets[vmm]) if ('unavailable' in r.traced) console.log(`   ${vmm}: no kernel trace: ${r.traced.unavailable}`);
  }
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const built = buildGuests();
  if (!built.ok) throw new Error(`cannot build the test guests: ${built.reason}`);
  const tmp = mkdtempSync(join(tmpdir(), 'nodevisor-bench-'));
  try {
    const cpu = cpus()[0]?.model ?? 'unknown CPU';
    const kernel = runTool('uname', ['-r']).trim();
    console.log(`nodevisor bench: ${new Date().toISOString()}, ${cpu} x${cpus().length}, Linux ${kernel}, Node ${process.version}`);
    console.log('(ratios against references run now on this host; no pass/fail; host load makes absolute numbers drift)');
    await portIo(tmp);
    await startup();
    await memory();
    await qmp(tmp);
    await introspection(tmp);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
