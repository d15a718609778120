import type { RamLayout } from '../arch/x86/e820.js';
import { CMDLINE_MAX, CMDLINE_START, EBDA_START, HIMEM_START } from '../arch/x86/layout.js';
import { ImageError } from '../errors.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { checkKernelFits, hex } from './fit.js';
import type { LoadedRange } from './initrd.js';

export const ELF_MAGIC = 0x464c457f; // "\x7fELF" read little endian
const ELFCLASS32 = 1;
const ELFCLASS64 = 2;
const ELFDATA2LSB = 1;
const EM_386 = 3;
const EM_X86_64 = 62;
const PT_LOAD = 1;
const PT_NOTE = 4;
/** Xen's PVH entry note: name "Xen", desc = 32-bit physical entry point. */
export const XEN_ELFNOTE_PHYS32_ENTRY = 18;

export interface ElfSegment {
  readonly index: number;
  readonly offset: number;
  readonly vaddr: bigint;
  readonly paddr: number;
  readonly filesz: number;
  readonly memsz: number;
}

export interface ElfNote {
  readonly name: string;
  readonly type: number;
  readonly desc: Uint8Array;
}

export interface ElfImage {
  readonly elfClass: 32 | 64;
  readonly entry: bigint;
  readonly loads: readonly ElfSegment[];
  readonly notes: readonly ElfNote[];
}

export function isElf(image: Uint8Array): boolean {
  return image.length >= 4
    && new DataView(image.buffer, image.byteOffset, image.byteLength).getUint32(0, true) === ELF_MAGIC;
}

function safe(file: string, what: string, v: bigint): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ImageError(file, `${what} ${hex(Number(v))} is out of range`);
  return Number(v);
}

/** Parses the ELF header, program headers and PT_NOTE notes of a little-endian x86 ELF. */
export function parseElf(file: string, image: Uint8Array): ElfImage {
  const v = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const elfClass = image[4];
  if (image.length < 52 || (elfClass !== ELFCLASS32 && elfClass !== ELFCLASS64) || image[5] !== ELFDATA2LSB) {
    throw new ImageError(file, 'unsupported ELF file: not a little-endian ELF32 or ELF64');
  }
  const is64 = elfClass === ELFCLASS64;
  if (is64 && image.length < 64) throw new ImageError(file, `truncated: ELF header needs 64 bytes, file has ${image.length}`);
  const machine = v.getUint16(18, true);
  if (machine !== (is64 ? EM_X86_64 : EM_386)) {
    throw new ImageError(file, `ELF machine ${machine} is not ${is64 ? 'x86-64 (62)' : 'i386 (3)'}`);
  }
  const entry = is64 ? v.getBigUint64(24, true) : BigInt(v.getUint32(24, true));
  const phoff = is64 ? safe(file, 'e_phoff', v.getBigUint64(32, true)) : v.getUint32(28, true);
  const phentsize = v.getUint16(is64 ? 54 : 42, true);
  const phnum = v.getUint16(is64 ? 56 : 44, true);
  const minEnt = is64 ? 56 : 32;
  if (phnum > 0 && phentsize < minEnt) throw new ImageError(file, `ELF e_phentsize ${phentsize} is below ${minEnt}`);
  if (phoff + phnum * phentsize > image.length) {
    throw new ImageError(file, `truncated: program headers end at ${phoff + phnum * phentsize} bytes, file has ${image.length}`);
  }

  const loads: ElfSegment[] = [];
  const notes: ElfNote[] = [];
  for (let i = 0; i < phnum; i++) {
    const p = phoff + i * phentsize;
    const type = v.getUint32(p, true);
    const seg = is64
      ? {
        index: i,
        offset: safe(file, 'p_offset', v.getBigUint64(p + 8, true)),
        vaddr: v.getBigUint64(p + 16, true),
        paddr: safe(file, 'p_paddr', v.getBigUint64(p + 24, true)),
        filesz: safe(file, 'p_filesz', v.getBigUint64(p + 32, true)),
        memsz: safe(file, 'p_memsz', v.getBigUint64(p + 40, true)),
        align: safe(file, 'p_align', v.getBigUint64(p + 48, true)),
      }
      : {
        index: i,
        offset: v.getUint32(p + 4, true),
        vaddr: BigInt(v.getUint32(p + 8, true)),
        paddr: v.getUint32(p + 12, true),
        filesz: v.getUint32(p + 16, true),
        memsz: v.getUint32(p + 20, true),
        align: v.getUint32(p + 28, true),
      };
    if (type !== PT_LOAD && type !== PT_NOTE) continue;
    if (seg.offset + seg.filesz > image.length) {
      throw new ImageError(file,
        `truncated: program header ${i} needs ${seg.offset + seg.filesz} bytes, file has ${image.length}`);
    }
    if (type === PT_NOTE) notes.push(...parseNotes(image.subarray(seg.offset, seg.offset + seg.filesz), seg.align === 8 ? 8 : 4));
    else if (seg.memsz > 0) {
      if (seg.filesz > seg.memsz) throw new ImageError(file, `ELF program header ${i} has p_filesz > p_memsz`);
      const { align: _align, ...load } = seg;
      loads.push(load);
    }
  }
  if (loads.length === 0) throw new ImageError(file, 'ELF file has no PT_LOAD segment');
  return { elfClass: is64 ? 64 : 32, entry, loads, notes };
}

/** Elf{32,64}_Nhdr records: namesz, descsz, type, then name and desc, each padded to `align`. */
function parseNotes(data: Uint8Array, align: number): ElfNote[] {
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const pad = (n: number): number => Math.ceil(n / align) * align;
  const notes: ElfNote[] = [];
  let o = 0;
  while (o + 12 <= data.length) {
    const namesz = v.getUint32(o, true);
    const descsz = v.getUint32(o + 4, true);
    const type = v.getUint32(o + 8, true);
    const nameAt = o + 12;
    const descAt = nameAt + pad(namesz);
    if (descAt + descsz > data.length) break; // a malformed tail: ignore it, as readelf warns and stops
    const name = new TextDecoder().decode(data.subarray(nameAt, nameAt + namesz)).replace(/\0+$/, '');
    notes.push({ name, type, desc: data.subarray(descAt, descAt + descsz) });
    o = descAt + pad(descsz);
  }
  return notes;
}

/** The PVH entry point from the "Xen" XEN_ELFNOTE_PHYS32_ENTRY note (4- or 8-byte desc), if any. */
export function pvhEntry(file: string, elf: ElfImage): number | undefined {
  const note = elf.notes.find((n) => n.name === 'Xen' && n.type === XEN_ELFNOTE_PHYS32_ENTRY);
  if (!note) return undefined;
  const v = new DataView(note.desc.buffer, note.desc.byteOffset, note.desc.byteLength);
  if (note.desc.length === 4) return v.getUint32(0, true);
  if (note.desc.length === 8) {
    const e = v.getBigUint64(0, true);
    if (e < 0x100000000n) return Number(e);
  }
  throw new ImageError(file, 'PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY) is not a 32-bit address');
}

/** The boot area below 1 MiB that the VMM writes (GDT … command line) or reserves (EBDA, BIOS). */
const BOOT_AREAS: ReadonlyArray<readonly [number, number]> = [
  [0, CMDLINE_START + CMDLINE_MAX],
  [EBDA_START, HIMEM_START],
];

/** Copies every PT_LOAD to its p_paddr and zeroes its bss; returns the range they span. */
export function loadSegments(mem: GuestMemory, file: string, layout: RamLayout, image: Uint8Array, elf: ElfImage): LoadedRange {
  let lo = Infinity;
  let hi = 0;
  for (const s of elf.loads) {
    const end = s.paddr + s.memsz;
    for (const [a, b] of BOOT_AREAS) {
      if (s.paddr < b && end > a) {
        throw new ImageError(file,
          `ELF program header ${s.index} (${hex(s.paddr)}-${hex(end)}) overlaps the boot area ${hex(a)}-${hex(b)}`);
      }
    }
    checkKernelFits(file, layout, s.paddr, s.memsz);
    lo = Math.min(lo, s.paddr);
    hi = Math.max(hi, end);
  }
  for (const s of elf.loads) {
    mem.write(s.paddr, image.subarray(s.offset, s.offset + s.filesz));
    mem.fill(s.paddr + s.filesz, s.memsz - s.filesz);
  }
  return { addr: lo, size: hi - lo };
}
