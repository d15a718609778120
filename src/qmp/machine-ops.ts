/**
 * Machine operations behind QEMU's preconditions, shared by the QMP commands and their HMP
 * spellings so both refuse with the same words.
 */
import { stateNeedsReset } from '../runstate/run-state.js';
import { genericError } from './errors.js';
import type { QmpMachine } from './qmp-machine.js';

/** QEMU's qmp_cont(). */
export async function contChecked(machine: QmpMachine): Promise<void> {
  const { status } = machine.status();
  if (stateNeedsReset(status)) throw genericError('Resetting the Virtual Machine is required');
  if (status === 'suspended') return; // QEMU: nothing to do, and no error
  if (status === 'finish-migrate') throw genericError('Migration is not finalized yet');
  await machine.cont();
}

/** QEMU's qmp_system_wakeup(). */
export async function wakeupChecked(machine: QmpMachine): Promise<void> {
  if (!machine.wakeupSupported) throw genericError('wake-up from suspend is not supported by this guest');
  if (machine.status().status !== 'suspended') {
    throw genericError('Unable to wake up: guest is not in suspended state');
  }
  await machine.systemWakeup();
}
