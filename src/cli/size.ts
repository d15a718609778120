/**
 * Sizes as QEMU 7.2 reads them (qemu_strtosz in util/cutils.c) and `-m` on top of that.
 *
 * A size is a decimal integer, optionally with a fraction, or a hex integer; then an optional
 * suffix B, K, M, G, T, P or E (either case, powers of 1024). A fraction needs a suffix other
 * than B. `-m` then treats a size whose last character is a digit as MiB, takes 0 as "the
 * default", and rounds up to 8 KiB.
 */
import { OptsSyntaxError } from './opts-error.js';

const U64_LIMIT = 1n << 64n;

export const SIZE_HINT =
  'Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\n' +
  'and exabytes, respectively.';

export type StrtoszResult =
  | { ok: true; bytes: bigint; hexWithSuffix: boolean }
  | { ok: false; reason: 'invalid' | 'range' };

const SUFFIX_SHIFT: Readonly<Record<string, bigint>> = {
  B: 0n, K: 10n, M: 20n, G: 30n, T: 40n, P: 50n, E: 60n,
};

function suffixMultiplier(c: string | undefined): bigint | undefined {
  if (c === undefined) return undefined;
  const shift = SUFFIX_SHIFT[c.toUpperCase()];
  return shift === undefined ? undefined : 1n << shift;
}

/** strtoull's prefix: whitespace, a sign, digits of `base`. Returns the digits' value and end. */
function strtou64(text: string, base: 10 | 16): { value: bigint; end: number; overflow: boolean } | undefined {
  const re = base === 10 ? /^[ \t\n\v\f\r]*([+-]?)([0-9]+)/ : /^[ \t\n\v\f\r]*([+-]?)(?:0[xX])?([0-9a-fA-F]+)/;
  const m = re.exec(text);
  if (m === null) return undefined;
  let value = BigInt((base === 16 ? '0x' : '') + (m[2] ?? '0'));
  const overflow = value >= U64_LIMIT;
  if (overflow) value = U64_LIMIT - 1n;
  if (m[1] === '-') value = (U64_LIMIT - value) % U64_LIMIT;
  return { value, end: m[0].length, overflow };
}

/** qemu_strtosz with default suffix B: the whole string must be a size. */
export function qemuStrtosz(text: string): StrtoszResult {
  const invalid: StrtoszResult = { ok: false, reason: 'invalid' };
  const dec = strtou64(text, 10);
  if (dec === undefined) return invalid;
  // Negative sizes are refused even though strtoull would wrap them.
  if (text.slice(0, dec.end).includes('-')) return invalid;
  // QEMU stops at an overflowing integer: out of range if nothing follows, else invalid.
  if (dec.overflow) return dec.end === text.length ? { ok: false, reason: 'range' } : invalid;
  let { value, end } = dec;
  let overflow = false;
  let hex = false;
  let fraction = 0n; // 64-bit fixed point
  if (value === 0n && (text[end] === 'x' || text[end] === 'X')) {
    const h = strtou64(text, 16);
    if (h === undefined) return invalid;
    if (h.overflow) return h.end === text.length ? { ok: false, reason: 'range' } : invalid;
    ({ value, end } = h);
    if (text[end] === '.') return invalid;
    hex = true;
  } else if (text[end] === '.') {
    const f = /^\.[0-9]+/.exec(text.slice(end));
    if (f === null) {
      end += 1; // "1.k": a lone dot is skipped, as QEMU does
    } else {
      // strtod would take an exponent too; QEMU then rejects the whole input.
      if (/^[eE][+-]?[0-9]/.test(text.slice(end + f[0].length))) return invalid;
      const scaled = Math.min(Number(`0${f[0]}`) * 2 ** 64, 2 ** 64 - 2 ** 11);
      fraction = BigInt(Math.trunc(scaled));
      end += f[0].length;
    }
  }
  let mul = suffixMultiplier(text[end]);
  const suffixed = mul !== undefined;
  if (suffixed) end += 1;
  else mul = 1n;
  let bytes = value;
  if (mul === 1n) {
    if (fraction !== 0n) return invalid;
  } else {
    const part = fraction * (mul ?? 1n);
    // Round half up, as QEMU does on the fixed-point product.
    bytes = value * (mul ?? 1n) + (part >> 64n) + ((part >> 63n) & 1n);
    if (bytes >= U64_LIMIT) overflow = true;
  }
  if (end !== text.length) return invalid;
  if (overflow) return { ok: false, reason: 'range' };
  return { ok: true, bytes, hexWithSuffix: hex && suffixed };
}

/** Validates a QemuOpts size property, with QEMU's messages. */
export function parseSizeValue(name: string, text: string, warnings: string[] = []): bigint {
  const r = qemuStrtosz(text);
  if (r.ok) {
    if (r.hexWithSuffix) warnings.push(hexSuffixWarning(text));
    return r.bytes;
  }
  if (r.reason === 'range') {
    throw new OptsSyntaxError(`Value '${text}' is out of range for parameter '${name}'`);
  }
  throw new OptsSyntaxError(
    `Parameter '${name}' expects a non-negative number below 2^64\n${SIZE_HINT}`,
  );
}

function hexSuffixWarning(text: string): string {
  return `warning: Using a multiplier suffix on hex numbers is deprecated: ${text}`;
}

/** Granularity QEMU rounds guest RAM up to. */
export const RAM_ALIGN = 8192n;

/**
 * `-m`'s size value (already validated as a size) → bytes, or undefined for "use the default"
 * (QEMU reads an absent or zero size so). A value ending in a digit is MiB; it is re-read with an
 * `M` appended, which is where QEMU reports overflow as "Parameter 'memory.size' expects size".
 */
export function memorySizeFromOption(text: string): { bytes: bigint | undefined; warning?: string } {
  const first = qemuStrtosz(text);
  if (!first.ok) throw new OptsSyntaxError(`Parameter 'size' expects a non-negative number below 2^64\n${SIZE_HINT}`);
  if (first.bytes === 0n) return { bytes: undefined };
  const legacyMiB = /[0-9]$/.test(text);
  const full = legacyMiB ? `${text}M` : text;
  const r = qemuStrtosz(full);
  if (!r.ok) throw new OptsSyntaxError("Parameter 'memory.size' expects size");
  const aligned = ((r.bytes + RAM_ALIGN - 1n) / RAM_ALIGN) * RAM_ALIGN;
  const warning = r.hexWithSuffix ? hexSuffixWarning(full) : undefined;
  return warning === undefined ? { bytes: aligned } : { bytes: aligned, warning };
}
