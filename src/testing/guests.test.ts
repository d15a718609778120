import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { test } from 'node:test';
import { GUEST_NAMES, GUESTS, buildGuests, guestPath } from './guests.js';

const PT_LOAD = 1;
const PT_NOTE = 4;
const XEN_ELFNOTE_PHYS32_ENTRY = 18;
const LOAD_ADDRESS = 0x100000;

interface ProgramHeader { type: number; offset: number; paddr: number; filesz: number; memsz: number }
interface ElfImage { elfClass: 32 | 64; entry: number; phdrs: ProgramHeader[] }

// Just enough of an ELF reader to check what a loader relies on.
function readElf(image: Buffer): ElfImage {
  assert.deepEqual([...image.subarray(0, 4)], [0x7f, 0x45, 0x4c, 0x46], 'ELF magic');
  const view = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const is64 = image[4] === 2;
  const entry = Number(is64 ? view.getBigUint64(24, true) : view.getUint32(24, true));
  const phoff = Number(is64 ? view.getBigUint64(32, true) : view.getUint32(28, true));
  const phentsize = view.getUint16(is64 ? 54 : 42, true);
  const phnum = view.getUint16(is64 ? 56 : 44, true);
  const phdrs: ProgramHeader[] = [];
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    phdrs.push(is64
      ? {
        type: view.getUint32(at, true),
        offset: Number(view.getBigUint64(at + 8, true)),
        paddr: Number(view.getBigUint64(at + 24, true)),
        filesz: Number(view.getBigUint64(at + 32, true)),
        memsz: Number(view.getBigUint64(at + 40, true)),
      }
      : {
        type: view.getUint32(at, true),
        offset: view.getUint32(at + 4, true),
        paddr: view.getUint32(at + 12, true),
        filesz: view.getUint32(at + 16, true),
        memsz: view.getUint32(at + 20, true),
      });
  }
  return { elfClass: is64 ? 64 : 32, entry, phdrs };
}

function xenPhys32Entry(image: Buffer, elf: ElfImage): number | undefined {
  const view = new DataView(image.buffer, image.byteOffset, image.byteLength);
  for (const note of elf.phdrs.filter((p) => p.type === PT_NOTE)) {
    let at = note.offset;
    while (at + 12 <= note.offset + note.filesz) {
      const namesz = view.getUint32(at, true);
      const descsz = view.getUint32(at + 4, true);
      const type = view.getUint32(at + 8, true);
      const name = image.toString('latin1', at + 12, at + 12 + namesz).replace(/\0+$/, '');
      const desc = at + 12 + ((namesz + 3) & ~3);
      if (name === 'Xen' && type === XEN_ELFNOTE_PHYS32_ENTRY) {
        return descsz === 8 ? Number(view.getBigUint64(desc, true)) : view.getUint32(desc, true);
      }
      at = desc + ((descsz + 3) & ~3);
    }
  }
  return undefined;
}

function isLoaded(elf: ElfImage, address: number): boolean {
  return elf.phdrs.some((p) => p.type === PT_LOAD && address >= p.paddr && address < p.paddr + p.memsz);
}

// A machine without nasm/ld fails here, saying what to install: never a silent skip.
void test('every guest builds', () => {
  assert.deepEqual(buildGuests(), { ok: true });
});

void test('a second build reuses the outputs', () => {
  assert.deepEqual(buildGuests(), { ok: true });
  const before = GUEST_NAMES.map((name) => statSync(guestPath(name)).mtimeMs);
  assert.deepEqual(buildGuests(), { ok: true });
  assert.deepEqual(GUEST_NAMES.map((name) => statSync(guestPath(name)).mtimeMs), before);
});

void test('PVH guests are ELF32 with a Xen PHYS32_ENTRY note at the entry point', () => {
  assert.deepEqual(buildGuests(), { ok: true });
  for (const name of GUEST_NAMES.filter((n) => GUESTS[n] === 'pvh-elf')) {
    const image = readFileSync(guestPath(name));
    const elf = readElf(image);
    assert.equal(elf.elfClass, 32, name);
    const entry = xenPhys32Entry(image, elf);
    assert.equal(entry, LOAD_ADDRESS, `${name}: PVH entry`);
    assert.equal(elf.entry, entry, `${name}: e_entry`);
    assert.ok(isLoaded(elf, entry), `${name}: entry inside a PT_LOAD`);
  }
});

void test('elf64 is an ELF64 without a PVH note, entered at its load address', () => {
  assert.deepEqual(buildGuests(), { ok: true });
  const image = readFileSync(guestPath('elf64'));
  const elf = readElf(image);
  assert.equal(elf.elfClass, 64);
  assert.equal(xenPhys32Entry(image, elf), undefined);
  assert.equal(elf.entry, LOAD_ADDRESS);
  assert.ok(isLoaded(elf, elf.entry));
});

void test('linux64 is a bzImage: setup header 2.15, 64-bit entry at load address + 0x200', () => {
  assert.deepEqual(buildGuests(), { ok: true });
  const image = readFileSync(guestPath('linux64'));
  const view = new DataView(image.buffer, image.byteOffset, image.byteLength);
  assert.equal(image.toString('latin1', 0x202, 0x206), 'HdrS');
  assert.equal(view.getUint16(0x1fe, true), 0xaa55, 'boot_flag');
  assert.equal(view.getUint16(0x206, true), 0x020f, 'version');
  assert.equal(image[0x211]! & 0x01, 0x01, 'loadflags LOADED_HIGH');
  assert.equal(view.getUint16(0x236, true) & 0x01, 0x01, 'xloadflags XLF_KERNEL_64');
  assert.equal(view.getUint32(0x214, true), LOAD_ADDRESS, 'code32_start');
  assert.equal(Number(view.getBigUint64(0x258, true)), LOAD_ADDRESS, 'pref_address');
  assert.equal(image[0x234], 0, 'relocatable_kernel');
  const setupSize = (image[0x1f1]! + 1) * 512;
  const kernelSize = image.length - setupSize;
  assert.equal(view.getUint32(0x1f4, true) * 16, kernelSize, 'syssize covers the protected-mode part');
  assert.ok(view.getUint32(0x260, true) >= kernelSize, 'init_size');
  assert.equal(image[setupSize + 0x200], 0xfa, 'startup_64 begins with cli');
});
