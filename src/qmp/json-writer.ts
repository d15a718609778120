/**
 * Serialises replies and events byte-for-byte as QEMU 7.2 does (qobject/qjson.c), so that
 * transcripts compare equal:
 * - separators ", " and ": ", no newline inside a message;
 * - object members in QEMU's QDict iteration order: by hash bucket, and within a bucket the
 *   member added last first (a hash table, not insertion order; `{"return", "id"}` but
 *   `{"id", "error"}`);
 * - strings escape `"`, `\`, \b \f \n \r \t, and write every other character below U+0020 or
 *   from U+007F on as \uXXXX (upper-case hex; surrogate pairs beyond the BMP); what QEMU would
 *   not accept as a character (lone surrogates, noncharacters) becomes \uFFFD;
 * - doubles as C's "%.17g", integers (and bigints) in decimal.
 * Non-finite doubles, which QEMU prints as the invalid `inf`/`nan`, are written as null.
 */
import { isValidCodepoint } from './mod-utf8.js';

const QDICT_BUCKETS = 512;
const utf8 = new TextEncoder();

/** QDict's hash (the tdb hash) of a key's UTF-8 bytes. */
function qdictHash(key: string): number {
  const bytes = utf8.encode(key);
  let value = Math.imul(0x238f13af, bytes.length) >>> 0;
  for (let i = 0; i < bytes.length; i++) {
    value = (value + (((bytes[i] ?? 0) << ((i * 5) % 24)) >>> 0)) >>> 0;
  }
  return (Math.imul(1103515243, value) + 12345) >>> 0;
}

const bucketCache = new Map<string, number>();

function qdictBucket(key: string): number {
  let b = bucketCache.get(key);
  if (b === undefined) {
    b = qdictHash(key) % QDICT_BUCKETS;
    if (bucketCache.size < 4096) bucketCache.set(key, b);
  }
  return b;
}

/** The order QEMU would print these keys in, given their insertion order. */
export function qdictOrder(keys: readonly string[]): string[] {
  return keys
    .map((key, index) => ({ key, index, bucket: qdictBucket(key) }))
    .sort((a, b) => a.bucket - b.bucket || b.index - a.index)
    .map((e) => e.key);
}

/** C's printf("%.17g", x) for a finite double. */
export function formatDouble(x: number): string {
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  const [mantissa = '', expText = '0'] = x.toExponential(16).split('e');
  const exp = Number(expText);
  const negative = mantissa.startsWith('-');
  const digits = mantissa.replace('-', '').replace('.', '');
  const sign = negative ? '-' : '';
  if (exp < -4 || exp >= 17) {
    const frac = digits.slice(1).replace(/0+$/, '');
    const e = Math.abs(exp).toString().padStart(2, '0');
    return `${sign}${digits[0] ?? ''}${frac ? `.${frac}` : ''}e${exp < 0 ? '-' : '+'}${e}`;
  }
  let intPart: string;
  let fracPart: string;
  if (exp >= 0) {
    intPart = digits.slice(0, exp + 1);
    fracPart = digits.slice(exp + 1);
  } else {
    intPart = '0';
    fracPart = '0'.repeat(-exp - 1) + digits;
  }
  fracPart = fracPart.replace(/0+$/, '');
  return `${sign}${intPart}${fracPart ? `.${fracPart}` : ''}`;
}

function hex4(n: number): string {
  return n.toString(16).toUpperCase().padStart(4, '0');
}

/** Printable ASCII without '"' or '\\': written as is (nearly every key and value in QMP). */
const PLAIN_ASCII = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

export function formatString(s: string): string {
  if (PLAIN_ASCII.test(s)) return `"${s}"`;
  let out = '"';
  for (const ch of s) {
    let cp = ch.codePointAt(0) ?? 0xfffd;
    switch (ch) {
      case '"':
        out += '\\"';
        continue;
      case '\\':
        out += '\\\\';
        continue;
      case '\b':
        out += '\\b';
        continue;
      case '\f':
        out += '\\f';
        continue;
      case '\n':
        out += '\\n';
        continue;
      case '\r':
        out += '\\r';
        continue;
      case '\t':
        out += '\\t';
        continue;
    }
    if (cp !== 0 && !isValidCodepoint(cp)) cp = 0xfffd;
    if (cp > 0xffff) {
      out += `\\u${hex4(0xd800 + ((cp - 0x10000) >> 10))}\\u${hex4(0xdc00 + ((cp - 0x10000) & 0x3ff))}`;
    } else if (cp < 0x20 || cp >= 0x7f) {
      out += `\\u${hex4(cp)}`;
    } else {
      out += ch;
    }
  }
  return out + '"';
}

/**
 * One QMP message as QEMU would print it (without the trailing newline). Accepts JSON values
 * and plain objects with `undefined` members (omitted). Throws TypeError for anything that
 * has no JSON form (functions, symbols, class instances other than arrays).
 */
export function formatQmpJson(value: unknown): string {
  return write(value, 0);
}

const MAX_WRITE_DEPTH = 2048;

function write(value: unknown, depth: number): string {
  if (depth > MAX_WRITE_DEPTH) throw new TypeError('value nested too deeply for JSON');
  switch (typeof value) {
    case 'string':
      return formatString(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'bigint':
      return value.toString();
    case 'number':
      if (!Number.isFinite(value)) return 'null';
      return Number.isSafeInteger(value) ? (Object.is(value, -0) ? '-0' : value.toString()) : formatDouble(value);
    case 'object': {
      if (value === null) return 'null';
      if (Array.isArray(value)) {
        return `[${value.map((v: unknown) => (v === undefined ? 'null' : write(v, depth + 1))).join(', ')}]`;
      }
      const proto: unknown = Object.getPrototypeOf(value);
      if (proto !== null && proto !== Object.prototype) throw new TypeError('not a plain object');
      const record = value as Record<string, unknown>;
      const keys = Object.keys(record).filter((k) => record[k] !== undefined);
      return `{${qdictOrder(keys)
        .map((k) => `${formatString(k)}: ${write(record[k], depth + 1)}`)
        .join(', ')}}`;
    }
    default:
      throw new TypeError(`${typeof value} has no JSON form`);
  }
}
