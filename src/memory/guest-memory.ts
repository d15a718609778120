import { NodevisorError } from '../errors.js';

/** One contiguous piece of guest-physical RAM and the host bytes behind it. */
export interface RamRegion {
  /** Guest-physical start address. */
  readonly gpa: number;
  readonly size: number;
  /** Host virtual address of the mapping (passed to workers and to KVM). */
  readonly hostAddress: bigint;
  /** The mapping seen from this thread. */
  readonly bytes: Uint8Array;
}

/**
 * Guest-physical memory as seen by the VMM: little-endian accessors over the RAM regions.
 * An access that is not entirely inside one region throws ERR_GUEST_MEMORY: callers that
 * take addresses from the guest check with `contains` first.
 */
export class GuestMemory {
  readonly regions: readonly RamRegion[];
  private readonly views: DataView[];

  constructor(regions: readonly RamRegion[]) {
    this.regions = [...regions].sort((a, b) => a.gpa - b.gpa);
    this.views = this.regions.map((r) => new DataView(r.bytes.buffer, r.bytes.byteOffset, r.bytes.byteLength));
  }

  /** Total bytes of RAM. */
  get size(): number {
    return this.regions.reduce((n, r) => n + r.size, 0);
  }

  contains(gpa: number, length: number): boolean {
    return this.find(gpa, length) >= 0;
  }

  /** A view of guest bytes [gpa, gpa+length): writes through it reach the guest. */
  slice(gpa: number, length: number): Uint8Array {
    const i = this.locate(gpa, length);
    const r = this.regions[i]!;
    const off = gpa - r.gpa;
    return r.bytes.subarray(off, off + length);
  }

  read(gpa: number, length: number): Uint8Array {
    return new Uint8Array(this.slice(gpa, length)); // a copy in one memcpy (Uint8Array.from iterates)
  }

  write(gpa: number, data: Uint8Array): void {
    this.slice(gpa, data.length).set(data);
  }

  fill(gpa: number, length: number, value = 0): void {
    this.slice(gpa, length).fill(value);
  }

  readU8(gpa: number): number { const [v, o] = this.at(gpa, 1); return v.getUint8(o); }
  readU16(gpa: number): number { const [v, o] = this.at(gpa, 2); return v.getUint16(o, true); }
  readU32(gpa: number): number { const [v, o] = this.at(gpa, 4); return v.getUint32(o, true); }
  readU64(gpa: number): bigint { const [v, o] = this.at(gpa, 8); return v.getBigUint64(o, true); }
  writeU8(gpa: number, x: number): void { const [v, o] = this.at(gpa, 1); v.setUint8(o, x); }
  writeU16(gpa: number, x: number): void { const [v, o] = this.at(gpa, 2); v.setUint16(o, x, true); }
  writeU32(gpa: number, x: number): void { const [v, o] = this.at(gpa, 4); v.setUint32(o, x, true); }
  writeU64(gpa: number, x: bigint): void { const [v, o] = this.at(gpa, 8); v.setBigUint64(o, x, true); }

  private at(gpa: number, length: number): [DataView, number] {
    const i = this.locate(gpa, length);
    return [this.views[i]!, gpa - this.regions[i]!.gpa];
  }

  private find(gpa: number, length: number): number {
    for (let i = 0; i < this.regions.length; i++) {
      const r = this.regions[i]!;
      if (gpa >= r.gpa && gpa + length <= r.gpa + r.size) return i;
    }
    return -1;
  }

  private locate(gpa: number, length: number): number {
    const i = this.find(gpa, length);
    if (i < 0) {
      throw new NodevisorError('ERR_GUEST_MEMORY',
        `guest access 0x${gpa.toString(16)}+${length} is outside guest RAM`);
    }
    return i;
  }
}

/** Guest memory backed by plain ArrayBuffers, for loaders' and devices' unit tests. */
export function testMemory(layout: ReadonlyArray<{ gpa: number; size: number }>): GuestMemory {
  return new GuestMemory(layout.map((l) => ({
    gpa: l.gpa, size: l.size, hostAddress: 0n, bytes: new Uint8Array(l.size),
  })));
}
