/**
 * Child of bench/run.ts: the memory one more machine costs inside one process. Creates and
 * starts 1, then 4 machines (hlt guest, 32 MiB each), and prints one JSON line with the
 * process's /proc/self/status readings (KiB) at each step. Run with --expose-gc.
 * Usage: node --expose-gc dist/bench/machines-child.js HLT.elf
 */
import { createMachine, type Machine } from '../src/index.js';
import { procMemory, sleep, type ProcMemory } from './lib.js';

const guest = process.argv[2];
if (guest === undefined) throw new Error('usage: machines-child HLT.elf');
const gc = (globalThis as { gc?: () => void }).gc;

async function settle(): Promise<ProcMemory> {
  await sleep(300);
  gc?.();
  await sleep(200);
  return procMemory();
}

async function startOne(): Promise<Machine> {
  const m = await createMachine({ kernel: guest!, memorySize: 32 << 20, noReboot: true, serial: { kind: 'null' } });
  let text = '';
  const printed = new Promise<void>((resolve) => {
    m.events.on('serial', (b) => {
      text += Buffer.from(b).toString('latin1');
      if (text.includes('hlt: halting\n')) resolve();
    });
  });
  await m.start();
  await printed;
  return m;
}

const steps: Array<{ machines: number; mem: ProcMemory }> = [{ machines: 0, mem: await settle() }];
const machines: Machine[] = [];
for (const target of [1, 4]) {
  while (machines.length < target) machines.push(await startOne());
  steps.push({ machines: machines.length, mem: await settle() });
}
await Promise.all(machines.map((m) => m.quit()));
process.stdout.write(`${JSON.stringify(steps)}\n`);
