/**
 * A small ACPI Machine Language encoder: just the objects a static DSDT needs (ACPI 6.x,
 * section 20 "ACPI Machine Language Specification", and 6.4 "Resource Data Types").
 * Every builder returns the finished bytes of one AML object; bodies are passed as lists
 * of such objects, so a tree of calls reads like the ASL it stands for.
 */

/** Encoded AML: the bytes of one or more complete objects. */
export type Aml = Uint8Array;

// Opcodes (ACPI 6.x, 20.3 "AML Byte Stream Byte Values").
export const ZeroOp = 0x00;
export const OneOp = 0x01;
export const NameOp = 0x08;
export const BytePrefix = 0x0a;
export const WordPrefix = 0x0b;
export const DWordPrefix = 0x0c;
export const StringPrefix = 0x0d;
export const QWordPrefix = 0x0e;
export const ScopeOp = 0x10;
export const BufferOp = 0x11;
export const PackageOp = 0x12;
export const DualNamePrefix = 0x2e;
export const MultiNamePrefix = 0x2f;
export const ExtOpPrefix = 0x5b;
export const DeviceOp = 0x82; // after ExtOpPrefix
export const RootChar = 0x5c;
export const ParentPrefixChar = 0x5e;
export const NullName = 0x00;
export const OnesOp = 0xff;

// Small resource descriptor tags (ACPI 6.x, 6.4.2): type 0, name in bits 6:3, length in 2:0.
export const IRQ_NO_FLAGS_TAG = 0x22; //  IRQ descriptor, length 2 (no information byte)
export const IO_PORT_TAG = 0x47; //       I/O port descriptor, length 7
export const END_TAG = 0x79; //           end tag, length 1
const IO_DECODE_16 = 0x01; //             the device decodes all 16 address lines

export function concat(parts: readonly Aml[]): Aml {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * PkgLength for a body of `bodyLength` bytes: the encoded value counts its own bytes too.
 * One byte holds 6 bits; with 1-3 extra bytes the lead byte gives only its low nibble.
 */
export function pkgLength(bodyLength: number): Aml {
  if (!Number.isInteger(bodyLength) || bodyLength < 0) throw new RangeError(`AML: bad package length ${bodyLength}`);
  if (bodyLength + 1 <= 0x3f) return Uint8Array.of(bodyLength + 1);
  for (let extra = 1; extra <= 3; extra++) {
    const total = bodyLength + 1 + extra;
    if (total < 2 ** (4 + 8 * extra)) {
      const out = new Uint8Array(1 + extra);
      out[0] = (extra << 6) | (total & 0x0f);
      for (let i = 1; i <= extra; i++) out[i] = Math.floor(total / 2 ** (4 + 8 * (i - 1))) & 0xff;
      return out;
    }
  }
  throw new RangeError(`AML: package of ${bodyLength} bytes is too long`);
}

/** An opcode (one or two bytes), its PkgLength, then the rest. */
function withPkgLength(op: readonly number[], rest: readonly Aml[]): Aml {
  const body = concat(rest);
  return concat([Uint8Array.from(op), pkgLength(body.length), body]);
}

const LEAD_CHAR = /^[A-Z_]$/;
const NAME_CHAR = /^[A-Z0-9_]$/;

/** A 4-character NameSeg; shorter names are padded with '_' as ASL does. */
export function nameSeg(seg: string): Aml {
  if (seg.length < 1 || seg.length > 4) throw new RangeError(`AML: bad name segment "${seg}"`);
  const padded = seg.padEnd(4, '_');
  for (let i = 0; i < 4; i++) {
    const c = padded[i]!;
    if (!(i === 0 ? LEAD_CHAR : NAME_CHAR).test(c)) throw new RangeError(`AML: bad name segment "${seg}"`);
  }
  return Uint8Array.from(padded, (c) => c.charCodeAt(0));
}

/** A NameString from ASL-style path text: "\\_SB", "^FOO", "_SB.COM1", "_S5_". */
export function nameString(path: string): Aml {
  let rest = path;
  const prefix: number[] = [];
  if (rest.startsWith('\\')) {
    prefix.push(RootChar);
    rest = rest.slice(1);
  } else {
    while (rest.startsWith('^')) {
      prefix.push(ParentPrefixChar);
      rest = rest.slice(1);
    }
  }
  const segs = rest === '' ? [] : rest.split('.').map(nameSeg);
  let head: number[];
  if (segs.length === 0) head = [NullName];
  else if (segs.length === 1) head = [];
  else if (segs.length === 2) head = [DualNamePrefix];
  else if (segs.length <= 255) head = [MultiNamePrefix, segs.length];
  else throw new RangeError(`AML: name path "${path}" is too long`);
  return concat([Uint8Array.from([...prefix, ...head]), ...segs]);
}

/** An Integer in the shortest form (ZeroOp, OneOp, OnesOp or a prefixed constant). */
export function integer(value: number | bigint): Aml {
  const v = BigInt(value);
  if (v < 0n || v > 0xffff_ffff_ffff_ffffn) throw new RangeError(`AML: integer ${value} does not fit 64 bits`);
  if (v === 0n) return Uint8Array.of(ZeroOp);
  if (v === 1n) return Uint8Array.of(OneOp);
  if (v === 0xffff_ffff_ffff_ffffn) return Uint8Array.of(OnesOp);
  const [prefix, bytes] =
    v <= 0xffn ? [BytePrefix, 1] : v <= 0xffffn ? [WordPrefix, 2] : v <= 0xffff_ffffn ? [DWordPrefix, 4] : [QWordPrefix, 8];
  const out = new Uint8Array(1 + bytes);
  out[0] = prefix;
  for (let i = 0; i < bytes; i++) out[1 + i] = Number((v >> BigInt(8 * i)) & 0xffn);
  return out;
}

/** A String: ASCII, NUL-terminated. */
export function string(text: string): Aml {
  const out = new Uint8Array(text.length + 2);
  out[0] = StringPrefix;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x01 || c > 0x7f) throw new RangeError(`AML: string "${text}" is not ASCII`);
    out[1 + i] = c;
  }
  return out;
}

/**
 * EISAID("PNP0501"): three letters of 5 bits each and four hex digits, stored as a DWord
 * whose bytes read vendor-letters-first in memory.
 */
export function eisaId(id: string): Aml {
  if (!/^[A-Z]{3}[0-9A-F]{4}$/.test(id)) throw new RangeError(`AML: bad EISA id "${id}"`);
  const l = (i: number): number => id.charCodeAt(i) & 0x1f;
  const hex = (i: number): number => parseInt(id.slice(i, i + 2), 16);
  const b0 = (l(0) << 2) | (l(1) >> 3);
  const b1 = ((l(1) & 7) << 5) | l(2);
  const value = (b0 | (b1 << 8) | (hex(3) << 16) | (hex(5) << 24)) >>> 0;
  const out = new Uint8Array(5);
  out[0] = DWordPrefix;
  new DataView(out.buffer).setUint32(1, value, true);
  return out;
}

/** Name (path, value). */
export function name(path: string, value: Aml): Aml {
  return concat([Uint8Array.of(NameOp), nameString(path), value]);
}

/** Package () { ... } of up to 255 elements. */
export function pkg(elements: readonly Aml[]): Aml {
  if (elements.length > 255) throw new RangeError('AML: a Package holds at most 255 elements');
  return withPkgLength([PackageOp], [Uint8Array.of(elements.length), ...elements]);
}

/** Scope (path) { ... } */
export function scope(path: string, body: readonly Aml[]): Aml {
  return withPkgLength([ScopeOp], [nameString(path), ...body]);
}

/** Device (path) { ... } */
export function device(path: string, body: readonly Aml[]): Aml {
  return withPkgLength([ExtOpPrefix, DeviceOp], [nameString(path), ...body]);
}

/** Buffer () { bytes } */
export function buffer(bytes: Uint8Array): Aml {
  return withPkgLength([BufferOp], [integer(bytes.length), bytes]);
}

/** IO (Decode16, min, max, alignment, length): a 16-bit I/O range descriptor. */
export function ioPort(min: number, max: number, alignment: number, length: number): Aml {
  const fits = (x: number, bits: number): boolean => Number.isInteger(x) && x >= 0 && x < 2 ** bits;
  if (!fits(min, 16) || !fits(max, 16) || max < min || !fits(alignment, 8) || !fits(length, 8)) {
    throw new RangeError(`AML: bad I/O range 0x${min.toString(16)}-0x${max.toString(16)}, length ${length}`);
  }
  const out = new Uint8Array(8);
  const v = new DataView(out.buffer);
  v.setUint8(0, IO_PORT_TAG);
  v.setUint8(1, IO_DECODE_16);
  v.setUint16(2, min, true);
  v.setUint16(4, max, true);
  v.setUint8(6, alignment);
  v.setUint8(7, length);
  return out;
}

/** IO at one fixed place: minimum = maximum = `base`. */
export function ioFixed(base: number, length: number): Aml {
  return ioPort(base, base, 1, length);
}

/** IRQNoFlags () { irqs }: ISA IRQs, edge-triggered and active high. */
export function irqNoFlags(irqs: readonly number[]): Aml {
  let mask = 0;
  for (const irq of irqs) {
    if (!Number.isInteger(irq) || irq < 0 || irq > 15) throw new RangeError(`AML: bad ISA IRQ ${irq}`);
    mask |= 1 << irq;
  }
  return Uint8Array.of(IRQ_NO_FLAGS_TAG, mask & 0xff, mask >> 8);
}

/** ResourceTemplate () { descriptors }: a Buffer closed by an end tag (checksum 0: not checked). */
export function resourceTemplate(descriptors: readonly Aml[]): Aml {
  return buffer(concat([...descriptors, Uint8Array.of(END_TAG, 0)]));
}
