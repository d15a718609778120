/**
 * QEMU's reading of UTF-8 (util/unicode.c), which decides which strings a QMP client may send
 * and how bytes that are not UTF-8 appear in error messages. It differs from WHATWG decoding:
 * `C0 80` is accepted as U+0000 ("modified UTF-8"), noncharacters (U+FDD0..U+FDEF, U+xFFFE,
 * U+xFFFF) are invalid, and each invalid sequence becomes one replacement character.
 */

/** Noncharacters and surrogates are not valid code points for QEMU; neither is beyond U+10FFFF. */
export function isValidCodepoint(cp: number): boolean {
  if (cp < 0 || cp > 0x10ffff) return false;
  if ((cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) === 0xfffe) return false;
  return !(cp >= 0xd800 && cp <= 0xdfff);
}

const MIN_CODEPOINT = [0x80, 0x800, 0x10000, 0x200000, 0x4000000];

/**
 * Decodes one code point at bytes[at] (bytes past `end` read as NUL, as C's terminator does).
 * Returns the code point, or -1 for an invalid sequence, and the index after what was consumed:
 * a missing continuation byte is not consumed.
 */
export function decodeCodepoint(bytes: Uint8Array, at: number, end: number = bytes.length): [number, number] {
  const byteAt = (i: number): number => (i < end ? (bytes[i] ?? 0) : 0);
  let p = at;
  const lead = byteAt(p++);
  if (lead < 0x80) return [lead, p];
  if (lead >= 0xfe || (lead & 0x40) === 0) return [-1, p]; // impossible byte / stray continuation
  let len = 0;
  let mask = 0x80;
  for (; lead & mask; mask >>= 1) len++;
  let cp = lead & (mask - 1);
  for (let i = 1; i < len; i++) {
    const byte = byteAt(p);
    if ((byte & 0xc0) !== 0x80) return [-1, p];
    p++;
    cp = cp * 64 + (byte & 0x3f);
  }
  if (cp > 0x10ffff || !isValidCodepoint(cp)) {
    // Out of range, a noncharacter or a surrogate.
    return [-1, p];
  }
  if (cp < (MIN_CODEPOINT[len - 2] ?? 0) && !(cp === 0 && len === 2)) return [-1, p]; // overlong, except C0 80
  return [cp, p];
}

/**
 * Bytes as QEMU would print them inside a JSON reply: stops at the first NUL byte (C string),
 * each invalid sequence becomes U+FFFD.
 */
export function decodeLossy(bytes: Uint8Array): string {
  let end = bytes.indexOf(0);
  if (end === -1) end = bytes.length;
  let out = '';
  for (let i = 0; i < end; ) {
    const [cp, next] = decodeCodepoint(bytes, i, end);
    out += String.fromCodePoint(cp < 0 ? 0xfffd : cp);
    i = next;
  }
  return out;
}
