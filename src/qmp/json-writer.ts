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

/** A key, its QDict bucket and its text as a member name (`"key": `), computed once per key. */
interface KeyInfo {
  key: string;
  bucket: number;
  text: string;
}

const keyCache = new Map<string, KeyInfo>();

function keyInfo(key: string): KeyInfo {
  let info = keyCache.get(key);
  if (info === undefined) {
    info = { key, bucket: qdictHash(key) % QDICT_BUCKETS, text: `${formatString(key)}: ` };
    // Keys come from replies, events and request ids: few, except from a client making them up.
    if (keyCache.size < 4096) keyCache.set(key, info);
  }
  return info;
}

/**
 * Keys given in insertion order, in QEMU's printing order: by bucket, and within a bucket the
 * key inserted last first (so: reversed, then a stable sort by bucket).
 */
function qdictSorted(keys: readonly string[]): KeyInfo[] {
  const infos: KeyInfo[] = [];
  for (let i = keys.length - 1; i >= 0; i--) infos.push(keyInfo(keys[i] ?? ''));
  if (infos.length > 16) return infos.sort((a, b) => a.bucket - b.bucket);
  // Insertion sort: members are few, and it calls no comparator.
  for (let i = 1; i < infos.length; i++) {
    const info = infos[i] as KeyInfo;
    let j = i - 1;
    for (; j >= 0 && (infos[j] as KeyInfo).bucket > info.bucket; j--) infos[j + 1] = infos[j] as KeyInfo;
    infos[j + 1] = info;
  }
  return infos;
}

/** The order QEMU would print these keys in, given their insertion order. */
export function qdictOrder(keys: readonly string[]): string[] {
  return qdictSorted(keys).map((info) => info.key);
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
function isPlain(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return false;
  }
  return true;
}

export function formatString(s: string): string {
  if (isPlain(s)) return `"${s}"`;
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

// One string grown by appending: V8 keeps it as a rope and flattens it once, when written out.
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
        const list = value as unknown[];
        let out = '[';
        for (let i = 0; i < list.length; i++) {
          if (i > 0) out += ', ';
          const item = list[i];
          out += item === undefined ? 'null' : write(item, depth + 1);
        }
        return out + ']';
      }
      const proto: unknown = Object.getPrototypeOf(value);
      if (proto !== null && proto !== Object.prototype) throw new TypeError('not a plain object');
      const record = value as Record<string, unknown>;
      let out = '{';
      let first = true;
      // Members that are undefined are skipped after sorting: the others keep their order.
      for (const info of qdictSorted(Object.keys(record))) {
        const member = record[info.key];
        if (member === undefined) continue;
        if (!first) out += ', ';
        first = false;
        out += info.text;
        out += write(member, depth + 1);
      }
      return out + '}';
    }
    default:
      throw new TypeError(`${typeof value} has no JSON form`);
  }
}
