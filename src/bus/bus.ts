/**
 * A port-I/O or MMIO bus: non-overlapping ranges, each owned by one device. The bus turns an
 * address into (device, offset); a device never learns its base. An access nobody claims is
 * counted, reads as all ones (as an open bus on real hardware and in QEMU), and is never fatal.
 */
import { NodevisorError } from '../errors.js';
import type { BusDevice } from '../devices/device.js';

export class BusOverlapError extends NodevisorError {
  constructor(message: string) {
    super('ERR_BUS_OVERLAP', message);
    this.name = 'BusOverlapError';
  }
}

interface Range {
  readonly base: number;
  readonly end: number; // exclusive
  readonly device: BusDevice;
  readonly name: string;
}

export class Bus {
  private ranges: Range[] = [];
  /** Accesses no device claimed. */
  unclaimedReads = 0;
  unclaimedWrites = 0;
  /** The address of the most recent unclaimed access, for diagnostics. */
  lastUnclaimed = -1;
  /** A direct-mapped cache of the last hit, for the hot path (a guest hammers one port). */
  private last: Range | undefined;

  constructor(readonly name: string) {}

  insert(device: BusDevice, base: number, length: number, name = 'device'): void {
    if (length <= 0) throw new BusOverlapError(`${this.name}: ${name}: empty range at 0x${base.toString(16)}`);
    const end = base + length;
    for (const r of this.ranges) {
      if (base < r.end && r.base < end) {
        throw new BusOverlapError(`${this.name}: ${name} [0x${base.toString(16)}, 0x${end.toString(16)}) overlaps ${r.name} [0x${r.base.toString(16)}, 0x${r.end.toString(16)})`);
      }
    }
    this.ranges.push({ base, end, device, name });
    this.ranges.sort((a, b) => a.base - b.base);
  }

  /** The devices on the bus with their ranges, in address order. */
  entries(): ReadonlyArray<{ base: number; length: number; name: string; device: BusDevice }> {
    return this.ranges.map((r) => ({ base: r.base, length: r.end - r.base, name: r.name, device: r.device }));
  }

  private find(addr: number, len: number): Range | undefined {
    const l = this.last;
    if (l !== undefined && addr >= l.base && addr + len <= l.end) return l;
    let lo = 0;
    let hi = this.ranges.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = this.ranges[mid]!;
      if (addr < r.base) hi = mid - 1;
      else if (addr >= r.end) lo = mid + 1;
      else {
        if (addr + len > r.end) return undefined; // straddles the end: nobody claims it
        this.last = r;
        return r;
      }
    }
    return undefined;
  }

  /** Dispatches a read; returns false (and fills all ones) when no device claims it. */
  read(addr: number, data: Uint8Array): boolean {
    const r = this.find(addr, data.length);
    if (r === undefined) {
      data.fill(0xff);
      this.unclaimedReads++;
      this.lastUnclaimed = addr;
      return false;
    }
    r.device.read(addr - r.base, data);
    return true;
  }

  /** Dispatches a write; returns false (and drops it) when no device claims it. */
  write(addr: number, data: Uint8Array): boolean {
    const r = this.find(addr, data.length);
    if (r === undefined) {
      this.unclaimedWrites++;
      this.lastUnclaimed = addr;
      return false;
    }
    r.device.write(addr - r.base, data);
    return true;
  }
}
