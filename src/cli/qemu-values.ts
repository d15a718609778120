/**
 * Property values as QEMU 7.2's visitors read them. Enums: exactly one of the names, case
 * and all. Unsigned numbers: C's strtoull with base 0 (`0x` hex, a leading `0` octal), leading
 * blanks and a sign allowed, nothing after the digits; a minus sign wraps modulo 2^64 (so `-1`
 * is too big for any uint32 property, not a syntax error). What QEMU says about a number that
 * is not one depends on the path the value took, hence `via`.
 */
import { OptsSyntaxError } from './opts-error.js';

const U64_LIMIT = 1n << 64n;

/** One of `allowed`, or QEMU's error for a value an enum does not have. */
export function parseEnumProperty<T extends string>(name: string, value: string, allowed: readonly T[]): T {
  const found = allowed.find((a) => a === value);
  if (found === undefined) throw new OptsSyntaxError(`Parameter '${name}' does not accept value '${value}'`);
  return found;
}

/**
 * strtoull(text, &end, 0) over the whole text: the value, or undefined when the text is not
 * a number or overflows 64 bits. `minus: false` refuses a minus sign, as QEMU's parse_uint.
 */
export function parseUnsigned(text: string, minus = true): bigint | undefined {
  const m = /^[ \t\n\v\f\r]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(text);
  if (m === null) return undefined;
  const sign = m[1] ?? '';
  const digits = m[2] ?? '';
  if (sign === '-' && !minus) return undefined;
  const octal = digits.length > 1 && digits[0] === '0' && !/^0[xX]/.test(digits);
  const value = BigInt(octal ? `0o${digits.slice(1)}` : digits);
  if (value >= U64_LIMIT) return undefined;
  return sign === '-' ? (U64_LIMIT - value) % U64_LIMIT : value;
}

/**
 * Where a value came from, which decides QEMU's wording when it is not a number:
 * `accel` (an -accel property), `device` (a -device property), `object` (an -object member).
 */
export type NumberPath = 'accel' | 'device' | 'object';

const NOT_A_NUMBER: Readonly<Record<NumberPath, string>> = {
  accel: 'uint64',
  device: 'integer',
  object: 'a uint64 value',
};

/** An unsigned property of `bits` bits, with QEMU's message for each way it can be wrong. */
export function parseUintProperty(name: string, text: string, bits: 16 | 32, via: NumberPath): number {
  const value = parseUnsigned(text, via !== 'object');
  if (value === undefined) throw new OptsSyntaxError(`Parameter '${name}' expects ${NOT_A_NUMBER[via]}`);
  if (value >= 1n << BigInt(bits)) throw new OptsSyntaxError(`Parameter '${name}' expects uint${bits}_t`);
  return Number(value);
}
