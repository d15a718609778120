/**
 * Splits a QMP input byte stream into messages, as QEMU 7.2's JSON lexer and streamer do
 * (qobject/json-lexer.c, json-streamer.c): bytes may arrive split anywhere, even inside a
 * UTF-8 sequence, or several messages glued together with or without whitespace between.
 *
 * A message ends when a token leaves the brace/bracket depth at zero (or below), so a bare
 * scalar like `1` is a message too. A lexical error is reported at once ("JSON parse error,
 * stray '…'"); the lexer then skips input up to a resynchronisation point — a structural
 * character `[ ] { } : ,`, an ASCII control other than tab (a newline, say), or the bytes
 * 0xFE/0xFF that a client may send deliberately to reset the parser.
 *
 * Memory is bounded by `maxMessageBytes` (the bytes of the tokens of one message, whitespace
 * excluded, including a token still being read) plus a few bytes per token: nodevisor's default
 * is 1 MiB, not QEMU's 64 MiB, since no command it implements takes large arguments. Going
 * over it reports "JSON token size limit exceeded" and skips to the next resynchronisation
 * point. The nesting limit (1024) and token-count limit (2 Mi) are QEMU's.
 */
import { decodeLossy } from './mod-utf8.js';
import { DirectParser, JsonParseError, parseTokens, TokenType, type TokenList } from './json-parser.js';
import type { JsonValue } from './json-value.js';

export type JsonStreamItem = { kind: 'value'; value: JsonValue } | { kind: 'error'; message: string };

export interface JsonStreamLimits {
  /** Bytes of one message's tokens. Default 1 MiB. */
  maxMessageBytes?: number;
  /** Nesting depth of braces and brackets together. Default 1024 (QEMU's). */
  maxDepth?: number;
  /** Tokens in one message. Default 2 Mi (QEMU's). */
  maxTokens?: number;
}

export const DEFAULT_MAX_MESSAGE_BYTES = 1 << 20;
export const DEFAULT_MAX_DEPTH = 1024;
export const DEFAULT_MAX_TOKENS = 2 << 20;

const LexStates = {
  Start: 0,
  Keyword: 1,
  DqString: 2,
  DqEscape: 3,
  SqString: 4,
  SqEscape: 5,
  Negative: 6,
  Zero: 7,
  NonZero: 8,
  Mantissa: 9,
  MantissaDigits: 10,
  ExpE: 11,
  ExpSign: 12,
  ExpDigits: 13,
  Recovery: 14,
} as const;
const S = LexStates;
type LexState = (typeof S)[keyof typeof S];

const utf8 = new TextEncoder();

const isDigit = (b: number): boolean => b >= 0x30 && b <= 0x39;
const isStructural = (b: number): boolean =>
  b === 0x5b || b === 0x5d || b === 0x7b || b === 0x7d || b === 0x3a || b === 0x2c;

/** Where the lexer, after an error, starts reading tokens again. */
const isResync = (b: number): boolean => (b < 0x20 && b !== 0x09) || b >= 0xfe || isStructural(b);

/** A byte buffer that doubles as needed. */
class Bytes {
  buf = new Uint8Array(256);
  length = 0;
  push(b: number): void {
    if (this.length === this.buf.length) this.#grow(this.length + 1);
    this.buf[this.length++] = b;
  }
  append(src: Uint8Array): void {
    if (this.length + src.length > this.buf.length) this.#grow(this.length + src.length);
    this.buf.set(src, this.length);
    this.length += src.length;
  }
  view(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
  /** Empties it, and gives back memory a large message took. */
  clear(): void {
    this.length = 0;
    if (this.buf.length > 64 * 1024) this.buf = new Uint8Array(256);
  }
  #grow(min: number): void {
    let size = this.buf.length * 2;
    while (size < min) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }
}

export class JsonStream {
  readonly #maxBytes: number;
  readonly #maxDepth: number;
  readonly #maxTokens: number;

  // Lexer: the token being read.
  #state: LexState = S.Start;
  readonly #token = new Bytes();

  // Streamer: the tokens of the message being assembled.
  readonly #msg = new Bytes();
  #types = new Uint8Array(64);
  #ends = new Uint32Array(64);
  #count = 0;
  #braces = 0;
  #brackets = 0;

  #out: JsonStreamItem[] = [];
  readonly #direct: DirectParser;

  constructor(limits: JsonStreamLimits = {}) {
    this.#maxBytes = limits.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.#maxDepth = limits.maxDepth ?? DEFAULT_MAX_DEPTH;
    this.#maxTokens = limits.maxTokens ?? DEFAULT_MAX_TOKENS;
    this.#direct = new DirectParser({ maxBytes: this.#maxBytes, maxDepth: this.#maxDepth, maxTokens: this.#maxTokens });
  }

  /**
   * Feeds bytes; returns the messages and errors they completed, in order.
   *
   * Between messages, a message that starts with '{' or '[' is first tried on the direct path
   * (DirectParser), which takes a whole common message in one pass over the chunk. What it
   * gives up on — a message split across chunks, errors, escapes, floats — goes through the
   * lexer below, byte by byte, as does everything up to the end of that message.
   */
  feed(chunk: Uint8Array | string): JsonStreamItem[] {
    const bytes = typeof chunk === 'string' ? utf8.encode(chunk) : chunk;
    const end = bytes.length;
    let i = 0;
    while (i < end) {
      if (this.#isIdle()) {
        let b = bytes[i] ?? 0;
        while (b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09) {
          if (++i === end) return this.#take();
          b = bytes[i] ?? 0;
        }
        if (b === 0x7b || b === 0x5b) {
          const next = this.#direct.parse(bytes, i, end);
          if (next > 0) {
            this.#out.push({ kind: 'value', value: this.#direct.value });
            i = next;
            continue;
          }
        }
      }
      i = this.#lexUntilIdle(bytes, i, end);
    }
    return this.#take();
  }

  #take(): JsonStreamItem[] {
    const out = this.#out;
    this.#out = [];
    return out;
  }

  /** Between messages: no token, no partial message, no error being skipped. */
  #isIdle(): boolean {
    return this.#state === S.Start && this.#count === 0 && this.#token.length === 0;
  }

  /** Lexes from bytes[i] until the stream is idle again or the input ends; returns where it stopped. */
  #lexUntilIdle(bytes: Uint8Array, i: number, end: number): number {
    while (i < end) {
      if (this.#state === S.Recovery) {
        // Skipped bytes cost nothing else, so skip them in one loop.
        for (let b = bytes[i] ?? 0; i < end && !isResync(b); b = bytes[++i] ?? 0);
        if (i === end) break;
      } else if (this.#state === S.DqString || this.#state === S.SqString) {
        const run = this.#stringRun(bytes, i, end);
        if (run > i) {
          this.#token.append(bytes.subarray(i, run));
          i = run;
          continue;
        }
      }
      this.#lex(bytes[i] ?? 0);
      i++;
      if (this.#isIdle()) return i;
    }
    return end;
  }

  /**
   * The end of the plain bytes of a string from bytes[i]: those the lexer would only append to
   * the token, one by one. Stops short where the per-byte size check would fire, so that the
   * check still sees the byte it would have seen.
   */
  #stringRun(bytes: Uint8Array, i: number, end: number): number {
    const quote = this.#state === S.DqString ? 0x22 : 0x27;
    const room = this.#maxBytes + 1 - (this.#msg.length + this.#token.length);
    const stop = Math.min(end, i + Math.max(room, 0));
    let p = i;
    for (let b = bytes[p] ?? 0; p < stop && b !== quote && b !== 0x5c && b >= 0x20 && b <= 0xfd; b = bytes[++p] ?? 0);
    return p;
  }

  /** Bytes held for an unfinished message (for tests of the memory bound). */
  get bufferedBytes(): number {
    return this.#msg.length + this.#token.length;
  }

  /** Forgets any partial message, as after a disconnect. */
  reset(): void {
    this.#state = S.Start;
    this.#token.clear();
    this.#resetMessage();
  }

  #lex(b: number): void {
    // A token that alone outgrows the limit is cut off here, so an endless string costs no more.
    if (this.#token.length > 0 && this.#msg.length + this.#token.length > this.#maxBytes) {
      this.#emitError('JSON token size limit exceeded');
      this.#token.clear();
      this.#state = S.Recovery;
    }
    for (;;) {
      switch (this.#state) {
        case S.Recovery:
          if (isResync(b)) {
            this.#state = S.Start;
            continue;
          }
          return;
        case S.Start:
          this.#start(b);
          return;
        case S.Keyword:
          if (b >= 0x61 && b <= 0x7a) return this.#token.push(b);
          this.#finish(TokenType.Keyword);
          continue;
        case S.DqString:
        case S.SqString: {
          const quote = this.#state === S.DqString ? 0x22 : 0x27;
          this.#token.push(b);
          if (b === quote) this.#finish(TokenType.String);
          else if (b === 0x5c) this.#state = this.#state === S.DqString ? S.DqEscape : S.SqEscape;
          else if (b < 0x20 || b > 0xfd) this.#lexError();
          return;
        }
        case S.DqEscape:
        case S.SqEscape:
          this.#token.push(b);
          if (b < 0x20 || b > 0xfd) this.#lexError();
          else this.#state = this.#state === S.DqEscape ? S.DqString : S.SqString;
          return;
        case S.Negative:
          this.#token.push(b);
          if (b === 0x30) this.#state = S.Zero;
          else if (isDigit(b)) this.#state = S.NonZero;
          else this.#lexError();
          return;
        case S.Zero:
          if (isDigit(b)) return this.#pushError(b);
          if (b === 0x2e) return this.#pushState(b, S.Mantissa);
          this.#finish(TokenType.Integer);
          continue;
        case S.NonZero:
          if (isDigit(b)) return this.#token.push(b);
          if (b === 0x2e) return this.#pushState(b, S.Mantissa);
          if (b === 0x65 || b === 0x45) return this.#pushState(b, S.ExpE);
          this.#finish(TokenType.Integer);
          continue;
        case S.Mantissa:
          if (isDigit(b)) return this.#pushState(b, S.MantissaDigits);
          return this.#pushError(b);
        case S.MantissaDigits:
          if (isDigit(b)) return this.#token.push(b);
          if (b === 0x65 || b === 0x45) return this.#pushState(b, S.ExpE);
          this.#finish(TokenType.Float);
          continue;
        case S.ExpE:
          if (b === 0x2b || b === 0x2d) return this.#pushState(b, S.ExpSign);
          if (isDigit(b)) return this.#pushState(b, S.ExpDigits);
          return this.#pushError(b);
        case S.ExpSign:
          if (isDigit(b)) return this.#pushState(b, S.ExpDigits);
          return this.#pushError(b);
        case S.ExpDigits:
          if (isDigit(b)) return this.#token.push(b);
          this.#finish(TokenType.Float);
          continue;
      }
    }
  }

  #start(b: number): void {
    if (b === 0x20 || b === 0x09 || b === 0x0d || b === 0x0a) return;
    this.#token.push(b);
    switch (b) {
      case 0x22:
        this.#state = S.DqString;
        return;
      case 0x27:
        this.#state = S.SqString;
        return;
      case 0x2d:
        this.#state = S.Negative;
        return;
      case 0x30:
        this.#state = S.Zero;
        return;
      case 0x7b:
        return this.#finish(TokenType.LCurly);
      case 0x7d:
        return this.#finish(TokenType.RCurly);
      case 0x5b:
        return this.#finish(TokenType.LSquare);
      case 0x5d:
        return this.#finish(TokenType.RSquare);
      case 0x3a:
        return this.#finish(TokenType.Colon);
      case 0x2c:
        return this.#finish(TokenType.Comma);
    }
    if (isDigit(b)) this.#state = S.NonZero;
    else if (b >= 0x61 && b <= 0x7a) this.#state = S.Keyword;
    else this.#lexError();
  }

  #pushState(b: number, state: LexState): void {
    this.#token.push(b);
    this.#state = state;
  }

  #pushError(b: number): void {
    this.#token.push(b);
    this.#lexError();
  }

  /** The offending byte is part of the token QEMU quotes back. */
  #lexError(): void {
    this.#emitError(`JSON parse error, stray '${decodeLossy(this.#token.view())}'`);
    this.#token.clear();
    this.#state = S.Recovery;
  }

  /** A complete token: hand it to the streamer, lexer back to the start state. */
  #finish(type: TokenType): void {
    this.#state = S.Start;
    const token = this.#token.view();
    switch (type) {
      case TokenType.LCurly:
        this.#braces++;
        break;
      case TokenType.RCurly:
        this.#braces--;
        break;
      case TokenType.LSquare:
        this.#brackets++;
        break;
      case TokenType.RSquare:
        this.#brackets--;
        break;
    }
    let limit: string | undefined;
    if (this.#msg.length + token.length > this.#maxBytes) limit = 'JSON token size limit exceeded';
    else if (this.#count + 1 > this.#maxTokens) limit = 'JSON token count limit exceeded';
    else if (this.#braces + this.#brackets > this.#maxDepth) limit = 'JSON nesting depth limit exceeded';
    if (limit !== undefined) {
      this.#token.clear();
      this.#emitError(limit);
      return;
    }
    this.#pushToken(type, token);
    this.#token.clear();
    if ((this.#braces > 0 || this.#brackets > 0) && this.#braces >= 0 && this.#brackets >= 0) return;
    const tokens: TokenList = { bytes: this.#msg.view(), types: this.#types, ends: this.#ends, count: this.#count };
    let item: JsonStreamItem;
    try {
      item = { kind: 'value', value: parseTokens(tokens) };
    } catch (e) {
      if (!(e instanceof JsonParseError)) throw e;
      item = { kind: 'error', message: e.message };
    }
    this.#resetMessage();
    this.#out.push(item);
  }

  #pushToken(type: TokenType, token: Uint8Array): void {
    if (this.#count === this.#types.length) {
      const types = new Uint8Array(this.#count * 2);
      types.set(this.#types);
      this.#types = types;
      const ends = new Uint32Array(this.#count * 2);
      ends.set(this.#ends);
      this.#ends = ends;
    }
    this.#msg.append(token);
    this.#types[this.#count] = type;
    this.#ends[this.#count] = this.#msg.length;
    this.#count++;
  }

  /** An error ends the message being assembled, whatever its depth. */
  #emitError(message: string): void {
    this.#resetMessage();
    this.#out.push({ kind: 'error', message });
  }

  #resetMessage(): void {
    this.#msg.clear();
    this.#count = 0;
    this.#braces = 0;
    this.#brackets = 0;
    if (this.#types.length > 4096) {
      this.#types = new Uint8Array(64);
      this.#ends = new Uint32Array(64);
    }
  }
}
