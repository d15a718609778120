/**
 * `-object secret`'s bytes from its text, as QEMU 7.2 decodes them. `data=` is decoded while
 * the command line is checked; `file=` is read by main.ts (secret-file.ts), as parse-args
 * reads no files.
 */
import { OptsSyntaxError } from './opts-error.js';

export type SecretFormat = 'raw' | 'base64';

/** A `-object secret,file=` to read before the machine starts. */
export interface SecretFile {
  id: string;
  path: string;
  format: SecretFormat;
}

const BASE64_CHARS = /^[A-Za-z0-9+/=\n]*$/;
const BASE64_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/**
 * Base64 as QEMU decodes a secret: only the alphabet, `=` and newlines are allowed, then glib's
 * lenient decoding, which ignores newlines, turns groups of four into bytes (fewer after `=`)
 * and drops an unfinished last group.
 */
export function decodeBase64Secret(text: string): Uint8Array {
  if (!BASE64_CHARS.test(text)) throw new OptsSyntaxError('Base64 data contains invalid characters');
  const out: number[] = [];
  let bits = 0;
  let count = 0;
  let last = '';
  for (const ch of text) {
    if (ch === '\n') continue;
    const beforeLast = last;
    last = ch;
    bits = ((bits << 6) | Math.max(BASE64_ALPHABET.indexOf(ch), 0)) & 0xffffff;
    if (++count < 4) continue;
    out.push(bits >> 16);
    if (beforeLast !== '=') out.push((bits >> 8) & 0xff);
    if (last !== '=') out.push(bits & 0xff);
    count = 0;
  }
  return Uint8Array.from(out);
}

/** A secret's bytes from its text in `format`. */
export function secretBytes(text: string | Uint8Array, format: SecretFormat): Uint8Array {
  if (format === 'base64') return decodeBase64Secret(typeof text === 'string' ? text : Buffer.from(text).toString('latin1'));
  return typeof text === 'string' ? new TextEncoder().encode(text) : text;
}
