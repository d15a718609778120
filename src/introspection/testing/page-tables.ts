/**
 * Builds x86 page tables in a plain byte array, for tests of the guest page-table walk: each
 * `map` call creates the missing tables on the way down and writes one leaf entry.
 */
const PRESENT_WRITABLE = 0x3n;
const PS = 0x80n;

export type Paging = '32-bit' | 'pae' | '4-level' | '5-level';

export class PageTableBuilder {
  readonly ram: Uint8Array;
  readonly #view: DataView;
  readonly paging: Paging;
  /** The root table: what CR3 must hold (for PAE, the 32-byte PDPT). */
  readonly root: bigint;
  #next: bigint;

  /** Tables are allocated from `firstFree` upwards, one 4 KiB page each. */
  constructor(ram: Uint8Array, paging: Paging, firstFree: bigint) {
    this.ram = ram;
    this.#view = new DataView(ram.buffer, ram.byteOffset, ram.byteLength);
    this.paging = paging;
    this.#next = firstFree;
    this.root = this.#alloc();
  }

  #alloc(): bigint {
    const page = this.#next;
    this.#next += 0x1000n;
    this.ram.fill(0, Number(page), Number(page) + 0x1000);
    return page;
  }

  #read(gpa: bigint): bigint {
    return this.paging === '32-bit' ? BigInt(this.#view.getUint32(Number(gpa), true)) : this.#view.getBigUint64(Number(gpa), true);
  }

  #write(gpa: bigint, v: bigint): void {
    if (this.paging === '32-bit') this.#view.setUint32(Number(gpa), Number(v & 0xffff_ffffn), true);
    else this.#view.setBigUint64(Number(gpa), v, true);
  }

  /** Index shifts from the top level down to 4 KiB pages. */
  #shifts(): bigint[] {
    switch (this.paging) {
      case '32-bit': return [22n, 12n];
      case 'pae': return [30n, 21n, 12n];
      case '4-level': return [39n, 30n, 21n, 12n];
      case '5-level': return [48n, 39n, 30n, 21n, 12n];
    }
  }

  /**
   * Maps the page of `gva` to `gpa`. `pageShift` chooses the page size: 12 (4 KiB), 21 (2 MiB),
   * 22 (4 MiB, 32-bit paging with PSE) or 30 (1 GiB).
   */
  map(gva: bigint, gpa: bigint, pageShift = 12n, extraLeafBits = 0n): void {
    const entrySize = this.paging === '32-bit' ? 4n : 8n;
    const indexBits = this.paging === '32-bit' ? 10n : 9n;
    let table = this.root;
    for (const shift of this.#shifts()) {
      const bits = this.paging === 'pae' && shift === 30n ? 2n : indexBits;
      const at = table + ((gva >> shift) & ((1n << bits) - 1n)) * entrySize;
      if (shift === pageShift) {
        let leaf = gpa | PRESENT_WRITABLE | extraLeafBits;
        if (shift !== 12n) {
          leaf |= PS;
          if (this.paging === '32-bit') {
            // PSE-36: physical bits 39:32 go to PDE bits 20:13.
            leaf = (gpa & 0xffc0_0000n) | (((gpa >> 32n) & 0xffn) << 13n) | PRESENT_WRITABLE | PS | extraLeafBits;
          }
        }
        this.#write(at, leaf);
        return;
      }
      let e = this.#read(at);
      if ((e & 1n) === 0n) {
        // PAE's PDPTEs take no R/W bit.
        e = this.#alloc() | (this.paging === 'pae' && shift === 30n ? 1n : PRESENT_WRITABLE);
        this.#write(at, e);
      }
      table = e & 0x000f_ffff_ffff_f000n;
    }
    throw new Error(`no level maps pages of shift ${pageShift}`);
  }

  /** Clears the present bit of the entry that maps `gva` at `shift`. */
  unmapAt(gva: bigint, shift: bigint): void {
    const entrySize = this.paging === '32-bit' ? 4n : 8n;
    const indexBits = this.paging === '32-bit' ? 10n : 9n;
    let table = this.root;
    for (const s of this.#shifts()) {
      const bits = this.paging === 'pae' && s === 30n ? 2n : indexBits;
      const at = table + ((gva >> s) & ((1n << bits) - 1n)) * entrySize;
      const e = this.#read(at);
      if (s === shift) {
        this.#write(at, e & ~1n);
        return;
      }
      table = e & 0x000f_ffff_ffff_f000n;
    }
  }
}
