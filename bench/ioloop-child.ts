/**
 * Child of bench/run.ts: runs the ioloop guest in-process through the library API and prints
 * one JSON line of timings. Usage: node dist/bench/ioloop-child.js REPS GUEST.elf...
 * Runs are interleaved (rep 1 of every guest, then rep 2, ...) so drift hits all guests alike.
 */
import { createMachine } from '../src/index.js';

export interface IoloopRun {
  guest: string;
  /** createMachine(): KVM setup, worker spawn, image load. */
  createMs: number;
  /** start() to waitForEnd() resolving (the guest resets; -no-reboot ends the machine). */
  runMs: number;
  /** Between the serial events that carry "ioloop: start\n" and "ioloop: done" (drained asynchronously). */
  serialLoopMs: number;
  exits: number;
  endReason: string;
}

async function once(guest: string): Promise<IoloopRun> {
  const t0 = performance.now();
  const machine = await createMachine({ kernel: guest, memorySize: 64 << 20, noReboot: true, serial: { kind: 'null' } });
  const t1 = performance.now();
  let text = '';
  let startAt = -1;
  let doneAt = -1;
  machine.events.on('serial', (bytes) => {
    const at = performance.now();
    text += Buffer.from(bytes).toString('latin1');
    if (startAt < 0 && text.includes('ioloop: start\n')) startAt = at;
    if (doneAt < 0 && text.includes('ioloop: d')) doneAt = at;
  });
  await machine.start();
  const end = await machine.waitForEnd();
  const t2 = performance.now();
  if (!text.includes('ioloop: done')) throw new Error(`ioloop did not finish (${end.reason}): ${JSON.stringify(text)}`);
  return {
    guest, createMs: t1 - t0, runMs: t2 - t1, serialLoopMs: doneAt - startAt,
    exits: machine.exitCounts().reduce((a, b) => a + b, 0), endReason: end.reason,
  };
}

const [repsArg, ...guests] = process.argv.slice(2);
const reps = Number(repsArg ?? '3');
const runs: IoloopRun[] = [];
for (let r = 0; r < reps; r++) {
  for (const g of guests) runs.push(await once(g));
}
process.stdout.write(`${JSON.stringify(runs)}\n`);
