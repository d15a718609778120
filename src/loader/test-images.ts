/**
 * Synthetic kernel images and boot inputs for the loaders' unit tests: just enough of a
 * bzImage or ELF file for a loader to accept it, with every field a test may want to vary.
 */
import { e820Map, ramLayout } from '../arch/x86/e820.js';
import { testMemory } from '../memory/guest-memory.js';
import type { BootInput } from './boot.js';

export const MIB = 0x100000;

export interface FakeBzImage {
  setupSects?: number;
  version?: number;
  xloadflags?: number;
  initSize?: number;
  cmdlineSize?: number;
  initrdAddrMax?: number;
  relocatable?: boolean;
  kernelAlignment?: number;
  prefAddress?: number;
  /** The protected-mode code; syssize is set from its length. */
  pm?: Uint8Array;
  payloadOffset?: number;
  payloadLength?: number;
  /** Bytes cut from the end of the file. */
  truncate?: number;
}

export function fakeBzImage(o: FakeBzImage = {}): Uint8Array {
  const setupSects = o.setupSects ?? 4;
  const setupSize = ((setupSects || 4) + 1) * 512;
  const pm = o.pm ?? Uint8Array.from({ length: 0x1000 }, (_, i) => (i * 7 + 1) & 0xff);
  const file = new Uint8Array(setupSize + Math.ceil(pm.length / 16) * 16);
  const v = new DataView(file.buffer);
  file[0x1f1] = setupSects;
  v.setUint32(0x1f4, Math.ceil(pm.length / 16), true);
  v.setUint16(0x1fa, 0xffff, true);
  v.setUint16(0x1fe, 0xaa55, true);
  v.setUint16(0x200, 0x6aeb, true);
  v.setUint32(0x202, 0x53726448, true);
  v.setUint16(0x206, o.version ?? 0x020f, true);
  v.setUint8(0x211, 0x01);
  v.setUint32(0x214, 0x100000, true);
  v.setUint32(0x22c, o.initrdAddrMax ?? 0x7fffffff, true);
  v.setUint32(0x230, o.kernelAlignment ?? 0x200000, true);
  v.setUint8(0x234, o.relocatable === false ? 0 : 1);
  v.setUint16(0x236, o.xloadflags ?? 0x1, true);
  v.setUint32(0x238, o.cmdlineSize ?? 2047, true);
  v.setUint32(0x248, o.payloadOffset ?? 0, true);
  v.setUint32(0x24c, o.payloadLength ?? 0, true);
  v.setBigUint64(0x258, BigInt(o.prefAddress ?? 0x1000000), true);
  v.setUint32(0x260, o.initSize ?? 4 * MIB, true);
  file.set(pm, setupSize);
  return file.subarray(0, file.length - (o.truncate ?? 0));
}

export interface FakeSegment {
  paddr: number;
  vaddr?: bigint;
  data: Uint8Array;
  memsz?: number;
}

export interface FakeNote {
  name: string;
  type: number;
  desc: Uint8Array;
}

export interface FakeElf {
  elfClass: 32 | 64;
  machine?: number;
  entry: bigint;
  segments: FakeSegment[];
  notes?: FakeNote[];
}

const pad4 = (n: number): number => Math.ceil(n / 4) * 4;

function noteBytes(notes: readonly FakeNote[]): Uint8Array {
  const parts = notes.map((n) => {
    const name = new TextEncoder().encode(`${n.name}\0`);
    const b = new Uint8Array(12 + pad4(name.length) + pad4(n.desc.length));
    const v = new DataView(b.buffer);
    v.setUint32(0, name.length, true);
    v.setUint32(4, n.desc.length, true);
    v.setUint32(8, n.type, true);
    b.set(name, 12);
    b.set(n.desc, 12 + pad4(name.length));
    return b;
  });
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

/** An ELF32/ELF64 executable: header, program headers (PT_NOTE first if any), then the data. */
export function fakeElf(o: FakeElf): Uint8Array {
  const is64 = o.elfClass === 64;
  const ehsize = is64 ? 64 : 52;
  const phentsize = is64 ? 56 : 32;
  const notes = o.notes?.length ? noteBytes(o.notes) : undefined;
  const phnum = o.segments.length + (notes ? 1 : 0);
  let dataAt = ehsize + phnum * phentsize;
  const blobs: Array<{ type: number; offset: number; data: Uint8Array; paddr: number; vaddr: bigint; memsz: number }> = [];
  if (notes) {
    blobs.push({ type: 4, offset: dataAt, data: notes, paddr: 0, vaddr: 0n, memsz: notes.length });
    dataAt += pad4(notes.length);
  }
  for (const s of o.segments) {
    blobs.push({ type: 1, offset: dataAt, data: s.data, paddr: s.paddr, vaddr: s.vaddr ?? BigInt(s.paddr), memsz: s.memsz ?? s.data.length });
    dataAt += pad4(s.data.length);
  }
  const file = new Uint8Array(dataAt);
  const v = new DataView(file.buffer);
  v.setUint32(0, 0x464c457f, true);
  file[4] = is64 ? 2 : 1;
  file[5] = 1;
  file[6] = 1;
  v.setUint16(16, 2, true); // ET_EXEC
  v.setUint16(18, o.machine ?? (is64 ? 62 : 3), true);
  v.setUint32(20, 1, true);
  if (is64) {
    v.setBigUint64(24, o.entry, true);
    v.setBigUint64(32, 64n, true);
    v.setUint16(52, ehsize, true);
    v.setUint16(54, phentsize, true);
    v.setUint16(56, phnum, true);
  } else {
    v.setUint32(24, Number(o.entry), true);
    v.setUint32(28, 52, true);
    v.setUint16(40, ehsize, true);
    v.setUint16(42, phentsize, true);
    v.setUint16(44, phnum, true);
  }
  blobs.forEach((b, i) => {
    const p = ehsize + i * phentsize;
    v.setUint32(p, b.type, true);
    if (is64) {
      v.setUint32(p + 4, 7, true);
      v.setBigUint64(p + 8, BigInt(b.offset), true);
      v.setBigUint64(p + 16, b.vaddr, true);
      v.setBigUint64(p + 24, BigInt(b.paddr), true);
      v.setBigUint64(p + 32, BigInt(b.data.length), true);
      v.setBigUint64(p + 40, BigInt(b.memsz), true);
      v.setBigUint64(p + 48, 4n, true);
    } else {
      v.setUint32(p + 4, b.offset, true);
      v.setUint32(p + 8, Number(b.vaddr), true);
      v.setUint32(p + 12, b.paddr, true);
      v.setUint32(p + 16, b.data.length, true);
      v.setUint32(p + 20, b.memsz, true);
      v.setUint32(p + 24, 7, true);
      v.setUint32(p + 28, 4, true);
    }
    file.set(b.data, b.offset);
  });
  return file;
}

/** The PVH entry note: "Xen", XEN_ELFNOTE_PHYS32_ENTRY, a 4- or 8-byte address. */
export function pvhNote(entry: number, descSize: 4 | 8 = 4): FakeNote {
  const desc = new Uint8Array(descSize);
  const v = new DataView(desc.buffer);
  if (descSize === 4) v.setUint32(0, entry, true); else v.setBigUint64(0, BigInt(entry), true);
  return { name: 'Xen', type: 18, desc };
}

export function bootInput(o: {
  kernel: Uint8Array; ramSize?: number; initrd?: Uint8Array; cmdline?: string; rsdpAddr?: number;
}): BootInput {
  const ramSize = o.ramSize ?? 64 * MIB;
  const layout = ramLayout(ramSize);
  return {
    kernelPath: 'vmlinuz',
    kernel: o.kernel,
    ...(o.initrd ? { initrd: o.initrd, initrdPath: 'initrd.img' } : {}),
    cmdline: o.cmdline ?? 'console=ttyS0',
    memory: testMemory([{ gpa: 0, size: layout.lowSize }]),
    layout,
    e820: e820Map(layout),
    rsdpAddr: o.rsdpAddr ?? 0,
  };
}

/**
 * An LZ4 legacy frame whose blocks hold literals only (valid LZ4, no compression), followed by
 * the u32 uncompressed size as Linux appends it to a payload.
 */
export function lz4LegacyLiterals(data: Uint8Array, blockSize = 8 * MIB): Uint8Array {
  const parts: number[] = [0x02, 0x21, 0x4c, 0x18];
  const u32 = (n: number): void => { parts.push(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24); };
  for (let at = 0; at < data.length; at += blockSize) {
    const chunk = data.subarray(at, at + blockSize);
    const len: number[] = [];
    let rest = chunk.length - 15;
    if (rest >= 0) { for (; rest >= 255; rest -= 255) len.push(255); len.push(rest); }
    const block = [chunk.length >= 15 ? 0xf0 : chunk.length << 4, ...len];
    u32(block.length + chunk.length);
    parts.push(...block);
    for (const b of chunk) parts.push(b);
  }
  u32(data.length);
  return Uint8Array.from(parts);
}
