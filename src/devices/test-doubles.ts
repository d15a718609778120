/** Stand-ins for a device's outward callbacks, for device tests that play the guest driver. */
import type { IrqLine, MachineRequests } from './device.js';

/** Records every level an interrupt line is set to. */
export class RecordingIrq implements IrqLine {
  levels: boolean[] = [];
  get level(): boolean {
    return this.levels.at(-1) ?? false;
  }
  set(level: boolean): void {
    this.levels.push(level);
  }
}

/** Counts the machine requests a device makes. */
export class RecordingRequests implements MachineRequests {
  resets = 0;
  shutdowns = 0;
  reset(): void {
    this.resets++;
  }
  shutdown(): void {
    this.shutdowns++;
  }
}
