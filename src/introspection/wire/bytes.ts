/**
 * Field-by-field access to KVMI payloads, little endian (the protocol uses the host's order,
 * and nodevisor only runs on x86-64). The reader enforces the two rules every layout shares:
 * a payload must hold its fields, and padding must be zero.
 */
import { invalid } from './errors.js';

export function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

export class PayloadReader {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  #offset = 0;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#view = view(bytes);
  }

  get offset(): number {
    return this.#offset;
  }

  get remaining(): number {
    return this.#bytes.length - this.#offset;
  }

  #take(n: number): number {
    if (this.remaining < n) throw invalid(`payload too short: need ${n} more bytes at ${this.#offset}`);
    const at = this.#offset;
    this.#offset += n;
    return at;
  }

  u8(): number {
    return this.#view.getUint8(this.#take(1));
  }

  u16(): number {
    return this.#view.getUint16(this.#take(2), true);
  }

  u32(): number {
    return this.#view.getUint32(this.#take(4), true);
  }

  s32(): number {
    return this.#view.getInt32(this.#take(4), true);
  }

  u64(): bigint {
    return this.#view.getBigUint64(this.#take(8), true);
  }

  s64(): bigint {
    return this.#view.getBigInt64(this.#take(8), true);
  }

  /** A 0/1 byte: anything else is invalid. */
  flag(what: string): boolean {
    const v = this.u8();
    if (v > 1) throw invalid(`${what} must be 0 or 1, not ${v}`);
    return v === 1;
  }

  bytes(n: number): Uint8Array {
    const at = this.#take(n);
    return this.#bytes.subarray(at, at + n);
  }

  /** n bytes that must all be zero. */
  padding(n: number): void {
    const at = this.#take(n);
    for (let i = at; i < at + n; i++) {
      if (this.#bytes[i] !== 0) throw invalid(`non-zero padding at offset ${i}`);
    }
  }

  /** The payload must end here. */
  end(): void {
    if (this.remaining !== 0) throw invalid(`${this.remaining} unexpected bytes after offset ${this.#offset}`);
  }
}

export class PayloadWriter {
  readonly bytes: Uint8Array;
  readonly #view: DataView;
  #offset = 0;

  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    this.#view = view(this.bytes);
  }

  get offset(): number {
    return this.#offset;
  }

  u8(x: number): this {
    this.#view.setUint8(this.#offset, x);
    this.#offset += 1;
    return this;
  }

  u16(x: number): this {
    this.#view.setUint16(this.#offset, x, true);
    this.#offset += 2;
    return this;
  }

  u32(x: number): this {
    this.#view.setUint32(this.#offset, x >>> 0, true);
    this.#offset += 4;
    return this;
  }

  s32(x: number): this {
    this.#view.setInt32(this.#offset, x, true);
    this.#offset += 4;
    return this;
  }

  u64(x: bigint): this {
    this.#view.setBigUint64(this.#offset, BigInt.asUintN(64, x), true);
    this.#offset += 8;
    return this;
  }

  s64(x: bigint): this {
    this.#view.setBigInt64(this.#offset, BigInt.asIntN(64, x), true);
    this.#offset += 8;
    return this;
  }

  raw(b: Uint8Array): this {
    this.bytes.set(b, this.#offset);
    this.#offset += b.length;
    return this;
  }

  /** Zero bytes (the buffer starts zeroed). */
  pad(n: number): this {
    this.#offset += n;
    return this;
  }

  /** The encoded bytes; the layout must have filled the buffer exactly. */
  done(): Uint8Array {
    if (this.#offset !== this.bytes.length) {
      throw new Error(`layout wrote ${this.#offset} of ${this.bytes.length} bytes`);
    }
    return this.bytes;
  }
}
