/**
 * Child of bench/run.ts: where nodevisor's start-up time goes, by timestamps in one fresh
 * process (performance.now() counts from the process's time origin, i.e. its start).
 * Usage: node dist/bench/startup-child.js GUEST.elf  → one JSON line of phase end times (ms).
 */
import { Worker } from 'node:worker_threads';

const guest = process.argv[2];
if (guest === undefined) throw new Error('usage: startup-child GUEST.elf');

const marks: Record<string, number> = { nodeReady: performance.now() };
const koffi = (await import('koffi')).default;
marks.koffiImported = performance.now();
koffi.load('libc.so.6');
marks.libcLoaded = performance.now();
const { createMachine } = await import('../src/index.js');
marks.libraryImported = performance.now();

// A bare worker that loads koffi and libc, as each vCPU worker does, timed on its own.
const w0 = performance.now();
await new Promise<void>((resolve, reject) => {
  const w = new Worker(
    "import('koffi').then((k) => { k.default.load('libc.so.6'); require('node:worker_threads').parentPort.postMessage(1); });",
    { eval: true },
  );
  w.once('message', () => void w.terminate().then(() => resolve()));
  w.once('error', reject);
});
const bareWorkerMs = performance.now() - w0;

const c0 = performance.now();
const machine = await createMachine({ kernel: guest, memorySize: 64 << 20, noReboot: true, serial: { kind: 'null' } });
marks.machineCreated = performance.now();
let firstSerial = -1;
machine.events.on('serial', () => { if (firstSerial < 0) firstSerial = performance.now(); });
await machine.start();
marks.started = performance.now();
const end = await machine.waitForEnd();
marks.ended = performance.now();
marks.firstSerial = firstSerial;
process.stdout.write(`${JSON.stringify({ marks, bareWorkerMs, createMs: marks.machineCreated - c0, end: end.reason })}\n`);
