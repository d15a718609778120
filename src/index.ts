/**
 * nodevisor as a library: build a machine from a config, start it, watch its events.
 *
 *   import { createMachine } from 'nodevisor';
 *   const m = await createMachine({ kernel: 'guest.elf', memorySize: 64 << 20, noReboot: true });
 *   m.events.on('serial', (b) => process.stdout.write(b));
 *   await m.start();
 *   console.log(await m.waitForEnd());
 */
import { DEFAULT_MEMORY_SIZE, type MachineConfig } from './machine/config.js';
import { Machine, type MachineOptions } from './machine/machine.js';

export type { MachineConfig, SerialBackend, CpuConfig } from './machine/config.js';
export type { MachineEnd, MachineEvents, MachineOptions, MachineStatus } from './machine/machine.js';
export { Machine } from './machine/machine.js';
export { NodevisorError, OptionError, ImageError } from './errors.js';
export type { ErrorCode } from './errors.js';
export type { Regs, Sregs, Segment } from './hypervisor/x86-state.js';
export type { GuestMemory } from './memory/guest-memory.js';

/** A config with QEMU's defaults for everything but the kernel. */
export function machineConfig(c: Partial<MachineConfig> & { kernel: string }): MachineConfig {
  return {
    memorySize: DEFAULT_MEMORY_SIZE,
    cpus: 1,
    cpu: { model: 'host', features: [] },
    append: '',
    serial: { kind: 'null' },
    noReboot: false,
    ...c,
  };
}

/** Builds a machine (nothing runs until `start()`). Several can live in one process. */
export function createMachine(config: Partial<MachineConfig> & { kernel: string }, options?: MachineOptions): Promise<Machine> {
  return Machine.create(machineConfig(config), options);
}
