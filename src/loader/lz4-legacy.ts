import { NodevisorError } from '../errors.js';

/**
 * LZ4 "legacy" frames (lz4 -l), the format of Linux's CONFIG_KERNEL_LZ4 payloads: a magic,
 * then independent blocks, each a u32 compressed size and an LZ4 block of at most 8 MiB output.
 */
export const LZ4_LEGACY_MAGIC = 0x184c2102;
export const LZ4_LEGACY_BLOCK_MAX = 8 << 20;

export class Lz4FormatError extends NodevisorError {
  constructor(message: string) {
    super('ERR_BAD_KERNEL', message);
    this.name = 'Lz4FormatError';
  }
}

export function isLz4Legacy(data: Uint8Array): boolean {
  return data.length >= 4 && (data[0]! | (data[1]! << 8) | (data[2]! << 16) | (data[3]! << 24)) >>> 0 === LZ4_LEGACY_MAGIC;
}

/** Matches shorter than this are copied byte by byte: cheaper than copyWithin's call. */
const SHORT_COPY = 32;

/**
 * Decodes one LZ4 block into dst at dstPos; returns the bytes written. Matches may reach back
 * into earlier output in dst, never before index 0.
 */
export function decodeLz4Block(src: Uint8Array, dst: Uint8Array, dstPos: number): number {
  const sEnd = src.length;
  const dEnd = dst.length;
  let s = 0;
  let d = dstPos;
  for (;;) {
    if (s >= sEnd) throw new Lz4FormatError('LZ4 block ends before its last literals');
    const token = src[s++]!;
    let lit = token >>> 4;
    if (lit === 15) {
      let b: number;
      do {
        if (s >= sEnd) throw new Lz4FormatError('LZ4 block ends inside a literal length');
        b = src[s++]!;
        lit += b;
      } while (b === 255);
    }
    if (s + lit > sEnd) throw new Lz4FormatError('LZ4 literals run past the end of the block');
    if (d + lit > dEnd) throw new Lz4FormatError('LZ4 output exceeds its expected size');
    if (lit < SHORT_COPY) for (let i = 0; i < lit; i++) dst[d + i] = src[s + i]!;
    else dst.set(src.subarray(s, s + lit), d);
    s += lit;
    d += lit;
    if (s === sEnd) return d - dstPos; // the last sequence has literals only

    if (s + 2 > sEnd) throw new Lz4FormatError('LZ4 block ends inside a match offset');
    const offset = src[s]! | (src[s + 1]! << 8);
    s += 2;
    if (offset === 0 || offset > d) throw new Lz4FormatError(`LZ4 match offset ${offset} is out of range`);
    let len = token & 15;
    if (len === 15) {
      let b: number;
      do {
        if (s >= sEnd) throw new Lz4FormatError('LZ4 block ends inside a match length');
        b = src[s++]!;
        len += b;
      } while (b === 255);
    }
    len += 4;
    if (d + len > dEnd) throw new Lz4FormatError('LZ4 output exceeds its expected size');
    const m = d - offset;
    if (offset >= len && len >= SHORT_COPY) dst.copyWithin(d, m, m + len);
    else for (let i = 0; i < len; i++) dst[d + i] = dst[m + i]!; // overlapping copies repeat a pattern
    d += len;
  }
}

/**
 * Decodes a legacy frame (several concatenated frames too). With `outputSize` (Linux appends
 * it as a u32 after the frame) the output buffer is allocated once; otherwise it grows.
 */
export function decompressLz4Legacy(frame: Uint8Array, outputSize?: number): Uint8Array {
  if (!isLz4Legacy(frame)) throw new Lz4FormatError('not an LZ4 legacy frame');
  const v = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  let out = new Uint8Array(outputSize ?? LZ4_LEGACY_BLOCK_MAX);
  let d = 0;
  let s = 4;
  while (s + 4 <= frame.length) {
    const size = v.getUint32(s, true);
    s += 4;
    if (size === LZ4_LEGACY_MAGIC) continue;
    if (s + size > frame.length) throw new Lz4FormatError(`LZ4 block of ${size} bytes runs past the end of the frame`);
    if (outputSize === undefined && out.length - d < LZ4_LEGACY_BLOCK_MAX) {
      const grown = new Uint8Array(out.length * 2);
      grown.set(out.subarray(0, d));
      out = grown;
    }
    const room = Math.min(out.length, d + LZ4_LEGACY_BLOCK_MAX);
    d += decodeLz4Block(frame.subarray(s, s + size), out.subarray(0, room), d);
    s += size;
  }
  if (s !== frame.length) throw new Lz4FormatError('LZ4 frame ends inside a block size');
  if (outputSize !== undefined && d !== outputSize) {
    throw new Lz4FormatError(`LZ4 frame decodes to ${d} bytes, expected ${outputSize}`);
  }
  return out.subarray(0, d);
}
