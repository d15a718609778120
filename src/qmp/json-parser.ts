/**
 * Turns the tokens of one complete QMP message into a value, with QEMU 7.2's error messages
 * (qobject/json-parser.c): "JSON parse error, expecting value", "… expected separator in dict",
 * "… duplicate key", "… invalid keyword 'x'", "… invalid UTF-8 sequence in string", etc.
 * QEMU's extensions are kept: 'single-quoted' strings, \' escapes, and integers as int64,
 * else uint64, else double.
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
const ascii = new TextDecoder('latin1');

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

  #bytes(i: number): Uint8Array {
    return this.t.bytes.subarray(this.#start(i), this.t.ends[i]);
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
      case TokenType.String:
        return this.#string(this.#bytes(this.#pop()));
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
    const word = ascii.decode(this.#bytes(i));
    if (word === 'true') return true;
    if (word === 'false') return false;
    if (word === 'null') return null;
    throw new JsonParseError(`invalid keyword '${word}'`);
  }

  #number(i: number, integer: boolean): JsonValue {
    const text = ascii.decode(this.#bytes(i));
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

  #string(b: Uint8Array): string {
    const quote = b[0];
    const end = b.length;
    const byteAt = (k: number): number => (k < end ? (b[k] ?? 0) : 0);
    let out = '';
    let p = 1;
    while (p < end && b[p] !== quote) {
      if (b[p] !== 0x5c) {
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
