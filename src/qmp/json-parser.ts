/**
 * Turns the tokens of one complete QMP message into a value, with QEMU 7.2's error messages
 * (qobject/json-parser.c): "JSON parse error, expecting value", "… expected separator in dict",
 * "… duplicate key", "… invalid keyword 'x'", "… invalid UTF-8 sequence in string", etc.
 * QEMU's extensions are kept: 'single-quoted' strings, \' escapes, and integers as int64,
 * else uint64, else double.
 *
 * DirectParser, at the end, is the fast path in front of the lexer and this parser: it takes
 * a well-formed common message straight from the bytes and leaves everything else to them.
 */
import { decodeCodepoint, decodeLossy, isValidCodepoint } from './mod-utf8.js';
import { jsonObject, type JsonValue } from './json-value.js';

export const TokenType = {
  LCurly: 0,
  RCurly: 1,
  LSquare: 2,
  RSquare: 3,
  Colon: 4,
  Comma: 5,
  Integer: 6,
  Float: 7,
  Keyword: 8,
  String: 9,
} as const;
export type TokenType = (typeof TokenType)[keyof typeof TokenType];

/** The tokens of one message: their bytes concatenated, each token's type and end offset. */
export interface TokenList {
  bytes: Uint8Array;
  types: Uint8Array;
  ends: Uint32Array;
  count: number;
}

export class JsonParseError extends Error {
  constructor(message: string) {
    super(`JSON parse error, ${message}`);
    this.name = 'JsonParseError';
  }
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;
// Only ever given ASCII, where latin1 and windows-1252 agree.
const latin1 = new TextDecoder('latin1');

/** \" \' \\ \/ \b \f \n \r \t; \u is handled apart. */
const SIMPLE_ESCAPES = new Map<number, string>([
  [0x22, '"'],
  [0x27, "'"],
  [0x5c, '\\'],
  [0x2f, '/'],
  [0x62, '\b'],
  [0x66, '\f'],
  [0x6e, '\n'],
  [0x72, '\r'],
  [0x74, '\t'],
]);

class Parser {
  #pos = 0;
  constructor(private readonly t: TokenList) {}

  parse(): JsonValue {
    return this.value();
  }

  #start(i: number): number {
    return i === 0 ? 0 : (this.t.ends[i - 1] ?? 0);
  }

  #peek(): number | undefined {
    return this.#pos < this.t.count ? this.t.types[this.#pos] : undefined;
  }

  /** Index of the next token, consumed; throws "premature EOI" past the end. */
  #pop(): number {
    if (this.#pos >= this.t.count) throw new JsonParseError('premature EOI');
    return this.#pos++;
  }

  value(): JsonValue {
    const type = this.#peek();
    switch (type) {
      case undefined:
        throw new JsonParseError('premature EOI');
      case TokenType.LCurly:
        return this.#object();
      case TokenType.LSquare:
        return this.#array();
      case TokenType.Integer:
      case TokenType.Float:
        return this.#number(this.#pop(), type === TokenType.Integer);
      case TokenType.String: {
        const i = this.#pop();
        return decodeString(this.t.bytes, this.#start(i), this.t.ends[i] ?? 0);
      }
      case TokenType.Keyword:
        return this.#keyword(this.#pop());
      default:
        throw new JsonParseError('expecting value');
    }
  }

  #object(): JsonValue {
    this.#pop();
    const dict = jsonObject();
    if (this.#peek() === undefined) throw new JsonParseError('premature EOI');
    if (this.#peek() === TokenType.RCurly) {
      this.#pop();
      return dict;
    }
    this.#pair(dict);
    for (let tok = this.#pop(); this.t.types[tok] !== TokenType.RCurly; tok = this.#pop()) {
      if (this.t.types[tok] !== TokenType.Comma) throw new JsonParseError('expected separator in dict');
      this.#pair(dict);
    }
    return dict;
  }

  #pair(dict: Record<string, JsonValue>): void {
    const key = this.value();
    if (typeof key !== 'string') throw new JsonParseError('key is not a string in object');
    if (this.t.types[this.#pop()] !== TokenType.Colon) throw new JsonParseError('missing : in object pair');
    const value = this.value();
    if (key in dict) throw new JsonParseError('duplicate key');
    dict[key] = value;
  }

  #array(): JsonValue {
    this.#pop();
    const list: JsonValue[] = [];
    if (this.#peek() === undefined) throw new JsonParseError('premature EOI');
    if (this.#peek() === TokenType.RSquare) {
      this.#pop();
      return list;
    }
    list.push(this.value());
    for (let tok = this.#pop(); this.t.types[tok] !== TokenType.RSquare; tok = this.#pop()) {
      if (this.t.types[tok] !== TokenType.Comma) throw new JsonParseError('expected separator in list');
      list.push(this.value());
    }
    return list;
  }

  #keyword(i: number): JsonValue {
    const word = asciiText(this.t.bytes, this.#start(i), this.t.ends[i] ?? 0);
    if (word === 'true') return true;
    if (word === 'false') return false;
    if (word === 'null') return null;
    throw new JsonParseError(`invalid keyword '${word}'`);
  }

  #number(i: number, integer: boolean): JsonValue {
    const start = this.#start(i);
    const end = this.t.ends[i] ?? 0;
    if (integer) {
      const small = smallInteger(this.t.bytes, start, end);
      if (small !== undefined) return small;
    }
    const text = asciiText(this.t.bytes, start, end);
    if (integer) {
      const n = BigInt(text);
      if (n >= INT64_MIN && n <= INT64_MAX) {
        return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
      }
      if (n > 0n && n <= UINT64_MAX) return n;
    }
    const x = Number(text);
    // QEMU would carry inf and then print it as the invalid JSON `inf`; refuse it instead.
    if (!Number.isFinite(x)) throw new JsonParseError(`number '${text}' is out of range`);
    return x;
  }
}

/** The bytes [start, end) of an ASCII token (keyword or number) as text. */
function asciiText(b: Uint8Array, start: number, end: number): string {
  let out = '';
  for (let k = start; k < end; k++) out += String.fromCharCode(b[k] ?? 0);
  return out;
}

/**
 * An integer token [start, end) of at most 15 digits (with an optional '-'), which a double
 * holds exactly; undefined for longer ones, which go through BigInt. `-0` is 0, as BigInt
 * makes it.
 */
function smallInteger(b: Uint8Array, start: number, end: number): number | undefined {
  const negative = b[start] === 0x2d;
  const first = negative ? start + 1 : start;
  if (end - first > 15) return undefined;
  let n = 0;
  for (let k = first; k < end; k++) n = n * 10 + ((b[k] ?? 0x30) - 0x30);
  return negative && n !== 0 ? -n : n;
}

/**
 * A string token [start, end) (quotes included) as QEMU's parser reads it. Runs of printable
 * ASCII are copied as they are; only escapes and UTF-8 sequences are decoded one by one.
 */
function decodeString(b: Uint8Array, start: number, end: number): string {
  const quote = b[start];
  // C's NUL terminator past the end: a token cut short reads as zeros.
  const byteAt = (k: number): number => (k < end ? (b[k] ?? 0) : 0);
  let out = '';
  let p = start + 1;
  while (p < end && b[p] !== quote) {
    const c = b[p] ?? 0;
    if (c < 0x80 && c !== 0x5c) {
      let q = p + 1;
      for (let d = b[q] ?? 0; q < end && d < 0x80 && d !== 0x5c && d !== quote; d = b[++q] ?? 0);
      out += q - p > 32 ? latin1.decode(b.subarray(p, q)) : asciiText(b, p, q);
      p = q;
      continue;
    }
    if (c !== 0x5c) {
      const [cp, next] = decodeCodepoint(b, p, end);
      if (cp < 0) throw new JsonParseError('invalid UTF-8 sequence in string');
      out += String.fromCodePoint(cp);
      p = next;
      continue;
    }
    const beg = p;
    p++;
    const esc = byteAt(p++);
    const simple = SIMPLE_ESCAPES.get(esc);
    if (simple !== undefined) {
      out += simple;
      continue;
    }
    switch (esc) {
      case 0x75: {
        let cp = hex4(byteAt, p);
        p += 4;
        if (cp >= 0xd800 && cp <= 0xdbff && byteAt(p) === 0x5c && byteAt(p + 1) === 0x75) {
          const trailing = hex4(byteAt, p + 2);
          if (trailing >= 0xdc00 && trailing <= 0xdfff) {
            cp = 0x10000 + ((cp & 0x3ff) << 10) + (trailing & 0x3ff);
            p += 6;
          } else {
            cp = -1;
          }
        }
        if (!isValidCodepoint(cp)) {
          const shown = decodeLossy(b.subarray(beg, Math.min(p, end)));
          throw new JsonParseError(`${shown} is not a valid Unicode character`);
        }
        out += String.fromCodePoint(cp);
        break;
      }
      default:
        throw new JsonParseError('invalid escape sequence in string');
    }
  }
  return out;
}

/** Four hex digits at k, or -1 if any is not a hex digit (C's NUL past the end counts). */
function hex4(byteAt: (k: number) => number, k: number): number {
  let cp = 0;
  for (let i = 0; i < 4; i++) {
    const c = byteAt(k + i);
    let d: number;
    if (c >= 0x30 && c <= 0x39) d = c - 0x30;
    else if (c >= 0x41 && c <= 0x46) d = c - 0x37;
    else if (c >= 0x61 && c <= 0x66) d = c - 0x57;
    else return -1;
    cp = cp * 16 + d;
  }
  return cp;
}

/** Parses one complete message; throws JsonParseError with QEMU's wording. */
export function parseTokens(tokens: TokenList): JsonValue {
  return new Parser(tokens).parse();
}

/** DirectParser's answer for a message it leaves to the lexer and parseTokens(). */
const GIVE_UP: unique symbol = Symbol('give up');
type Direct = JsonValue | typeof GIVE_UP;

/** Strings up to this long are looked up in a small cache: keys and command names repeat. */
const INTERN_MAX = 32;
const INTERN_SLOTS = 256;
// Beyond the limits, and deeper than this, the direct path gives up: it recurses per level.
const DIRECT_MAX_DEPTH = 256;
const EMPTY = new Uint8Array(0);

export interface DirectLimits {
  maxBytes: number;
  maxDepth: number;
  maxTokens: number;
}

const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;

/**
 * The fast path for a whole message in one chunk: parses it straight from the bytes, with no
 * token list, when it is in the subset nearly every QMP message is in — an object or array
 * of objects, arrays, strings of ASCII characters without escapes, integers of up to 15
 * digits, true, false and null, with spaces, tabs, CRs or LFs between tokens, within the
 * stream's limits. On anything else (an escape, UTF-8, a float, any lexical or syntax error,
 * a duplicate key, a limit, the end of the input) it gives up and leaves the same bytes to the
 * lexer and parseTokens(), which then decide with QEMU's exact errors. So it never decides
 * differently from them; it only decides sooner.
 */
export class DirectParser {
  /** The value of the message parse() last accepted. */
  value: JsonValue = null;
  #b: Uint8Array = EMPTY;
  #p = 0;
  #end = 0;
  #tokens = 0;
  #depth = 0;
  readonly #interned: string[] = new Array<string>(INTERN_SLOTS).fill('');
  readonly #maxDepth: number;

  constructor(private readonly limits: DirectLimits) {
    this.#maxDepth = Math.min(limits.maxDepth, DIRECT_MAX_DEPTH);
  }

  /**
   * Parses the message that starts at bytes[start] (a '{' or '['). Returns the index after its
   * last token, with the value in `value`, or -1 when it gives up.
   */
  parse(bytes: Uint8Array, start: number, end: number): number {
    this.#b = bytes;
    this.#p = start;
    this.#end = end;
    this.#tokens = 0;
    this.#depth = 0;
    const value = this.#value();
    this.#b = EMPTY; // keeps no chunk alive
    // The span holds the message's tokens and the whitespace between them: within the byte limit.
    if (value === GIVE_UP || this.#p - start > this.limits.maxBytes || this.#tokens > this.limits.maxTokens) return -1;
    this.value = value;
    return this.#p;
  }

  /** Skips the whitespace the lexer skips; the byte after it, or -1 at the end of the input. */
  #skip(): number {
    const b = this.#b;
    let p = this.#p;
    for (; p < this.#end; p++) {
      const c = b[p] ?? 0;
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) {
        this.#p = p;
        return c;
      }
    }
    this.#p = p;
    return -1;
  }

  /** Consumes a one-byte token. */
  #punct(): void {
    this.#p++;
    this.#tokens++;
  }

  #value(): Direct {
    const c = this.#skip();
    if (c === 0x7b) return this.#object();
    if (c === 0x5b) return this.#array();
    if (c === 0x22 || c === 0x27) return this.#string();
    if (c === 0x2d || isDigit(c)) return this.#integer();
    if (c >= 0x61 && c <= 0x7a) return this.#keyword();
    return GIVE_UP;
  }

  #object(): Direct {
    if (++this.#depth > this.#maxDepth) return GIVE_UP;
    this.#punct();
    const dict = jsonObject();
    let c = this.#skip();
    if (c !== 0x7d) {
      for (;;) {
        if (c !== 0x22 && c !== 0x27) return GIVE_UP;
        const key = this.#string();
        if (key === GIVE_UP || this.#skip() !== 0x3a) return GIVE_UP;
        this.#punct();
        const value = this.#value();
        if (value === GIVE_UP || key in dict) return GIVE_UP;
        dict[key] = value;
        c = this.#skip();
        if (c === 0x7d) break;
        if (c !== 0x2c) return GIVE_UP;
        this.#punct();
        c = this.#skip();
      }
    }
    this.#punct();
    this.#depth--;
    return dict;
  }

  #array(): Direct {
    if (++this.#depth > this.#maxDepth) return GIVE_UP;
    this.#punct();
    const list: JsonValue[] = [];
    if (this.#skip() !== 0x5d) {
      for (;;) {
        const value = this.#value();
        if (value === GIVE_UP) return GIVE_UP;
        list.push(value);
        const c = this.#skip();
        if (c === 0x5d) break;
        if (c !== 0x2c) return GIVE_UP;
        this.#punct();
      }
    }
    this.#punct();
    this.#depth--;
    return list;
  }

  /** A string of ASCII characters without escapes or control characters. */
  #string(): string | typeof GIVE_UP {
    const b = this.#b;
    const quote = b[this.#p];
    const start = this.#p + 1;
    let hash = 0;
    let p = start;
    for (; p < this.#end; p++) {
      const c = b[p] ?? 0;
      if (c === quote) break;
      if (c < 0x20 || c >= 0x80 || c === 0x5c) return GIVE_UP;
      hash = (Math.imul(hash, 31) + c) | 0;
    }
    if (p >= this.#end) return GIVE_UP;
    this.#p = p + 1;
    this.#tokens++;
    return this.#text(start, p, hash);
  }

  /** The ASCII bytes [start, end) as a string, from the cache when it holds them. */
  #text(start: number, end: number, hash: number): string {
    const b = this.#b;
    const length = end - start;
    if (length > INTERN_MAX) return latin1.decode(b.subarray(start, end));
    const slot = hash & (INTERN_SLOTS - 1);
    const cached = this.#interned[slot] ?? '';
    if (cached.length === length) {
      let k = 0;
      while (k < length && cached.charCodeAt(k) === b[start + k]) k++;
      if (k === length) return cached;
    }
    const text = asciiText(b, start, end);
    this.#interned[slot] = text;
    return text;
  }

  /** -?(0|[1-9][0-9]*) of at most 15 digits, ended by a byte that cannot continue a number. */
  #integer(): Direct {
    const b = this.#b;
    const start = this.#p;
    const negative = b[start] === 0x2d;
    const first = negative ? start + 1 : start;
    let p = first;
    while (p < this.#end && isDigit(b[p] ?? 0)) p++;
    const digits = p - first;
    // "01" is a lexical error; '.', 'e' or 'E' would make a float; at the end, more may follow.
    if (digits === 0 || digits > 15 || p >= this.#end || (digits > 1 && b[first] === 0x30)) return GIVE_UP;
    const next = b[p];
    if (next === 0x2e || next === 0x65 || next === 0x45) return GIVE_UP;
    this.#p = p;
    this.#tokens++;
    return smallInteger(b, start, p) ?? GIVE_UP;
  }

  /** true, false or null, ended by a byte that cannot continue a keyword. */
  #keyword(): Direct {
    const b = this.#b;
    const start = this.#p;
    let p = start;
    for (let c = b[p] ?? 0; p < this.#end && c >= 0x61 && c <= 0x7a; c = b[++p] ?? 0);
    if (p >= this.#end) return GIVE_UP;
    let value: Direct = GIVE_UP;
    if (isWord(b, start, p, 'true')) value = true;
    else if (isWord(b, start, p, 'false')) value = false;
    else if (isWord(b, start, p, 'null')) value = null;
    if (value !== GIVE_UP) {
      this.#p = p;
      this.#tokens++;
    }
    return value;
  }
}

function isWord(b: Uint8Array, start: number, end: number, word: string): boolean {
  if (end - start !== word.length) return false;
  for (let k = 0; k < word.length; k++) if (b[start + k] !== word.charCodeAt(k)) return false;
  return true;
}
