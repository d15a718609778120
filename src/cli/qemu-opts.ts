/**
 * QEMU's two option-string syntaxes, `key=value,key2=value2` with an implied first key.
 *
 * - QemuOpts (util/qemu-option.c): `-m`, `-accel`, `-name`, the options of `-serial unix:`.
 *   `,,` is a literal comma in values; a bare `flag` means `flag=on` and `noflag` means
 *   `flag=off` (deprecated: QEMU warns); keys are validated in order against a description.
 * - keyval (util/keyval.c): `-smp`, `-machine`, `-display`. Stricter: a bare word other than the
 *   first is an error, and the implied first value cannot contain `,,`.
 *
 * Both: a repeated key keeps the last value. Errors are thrown as OptsSyntaxError holding the
 * bare message; the caller adds the `nodevisor: -opt arg:` location.
 */
import { OptsSyntaxError } from './opts-error.js';
import { parseSizeValue } from './size.js';

export type OptType = 'string' | 'bool' | 'size' | 'number';

/** What a QemuOpts list accepts; `undefined` accepts any key, unvalidated (as `-accel`). */
export type OptsDesc = Readonly<Record<string, OptType>>;

export interface ParsedOpts {
  /** Key → last value given, in first-seen order. */
  values: Map<string, string>;
  /** `help` or `?` was given as a bare flag. */
  help: boolean;
  /** QEMU's deprecation warnings, each without location. */
  warnings: string[];
}

/** `help` and `?` ask for help wherever QEMU checks is_help_option(). */
export function isHelpOption(text: string): boolean {
  return text === 'help' || text === '?';
}

/** QEMU's qapi_bool_parse: exactly these spellings, case-sensitive. */
export function parseBool(name: string, value: string): boolean {
  if (value === 'on' || value === 'yes' || value === 'true' || value === 'y') return true;
  if (value === 'off' || value === 'no' || value === 'false' || value === 'n') return false;
  throw new OptsSyntaxError(`Parameter '${name}' expects 'on' or 'off'`);
}

/** Reads a value up to a single comma; `,,` stands for one comma. Returns [value, rest]. */
export function readValue(text: string, from: number): [string, number] {
  let value = '';
  let i = from;
  while (i < text.length) {
    if (text[i] === ',') {
      if (text[i + 1] !== ',') break;
      i++;
    }
    value += text[i];
    i++;
  }
  return [value, i];
}

function validate(name: string, value: string, desc: OptsDesc | undefined, warnings: string[]): void {
  if (desc === undefined) return;
  const type = Object.hasOwn(desc, name) ? desc[name] : undefined;
  switch (type) {
    case undefined:
      throw new OptsSyntaxError(`Invalid parameter '${name}'`);
    case 'bool':
      parseBool(name, value);
      return;
    case 'size':
      parseSizeValue(name, value, warnings);
      return;
    case 'number':
      // parse_option_number: qemu_strtou64 with base 0, the whole string.
      if (!/^\s*[+-]?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.test(value)) {
        throw new OptsSyntaxError(`Parameter '${name}' expects a number`);
      }
      return;
    case 'string':
      return;
  }
}

/**
 * Parses a QemuOpts string. `implied` names the key of a first item given without `=`.
 * `id` is dropped when `desc` is undefined (QEMU takes it as the option group's id).
 * Warnings go to `warnings` as they arise, so that they survive a later error.
 */
export function parseQemuOpts(text: string, implied?: string, desc?: OptsDesc, warnings: string[] = []): ParsedOpts {
  const out: ParsedOpts = { values: new Map(), help: false, warnings };
  let firstName = implied;
  let i = 0;
  while (i < text.length) {
    const rest = text.slice(i);
    const len = rest.search(/[=,]/) === -1 ? rest.length : rest.search(/[=,]/);
    let name: string;
    let value: string;
    if (rest[len] !== '=') {
      if (firstName !== undefined) {
        name = firstName;
        [value, i] = readValue(text, i);
      } else {
        // A bare flag: `flag` is flag=on, `noflag` is flag=off.
        const flag = rest.slice(0, len);
        i += len;
        if (flag.startsWith('no')) {
          name = flag.slice(2);
          value = 'off';
        } else {
          name = flag;
          value = 'on';
        }
        if (flag === name && isHelpOption(name)) {
          if (desc !== undefined) {
            out.help = true;
            return out;
          }
        } else {
          out.warnings.push(
            `short-form boolean option '${flag}' deprecated\nPlease use ${name}=${value} instead`,
          );
        }
      }
    } else {
      name = rest.slice(0, len);
      [value, i] = readValue(text, i + len + 1);
    }
    if (text[i] === ',') i++;
    firstName = undefined;
    if (name === 'id' && desc === undefined) continue;
    validate(name, value, desc, out.warnings);
    // Delete first so that the key moves to where its last value was given.
    out.values.delete(name);
    out.values.set(name, value);
  }
  return out;
}

/** A QAPI name as keyval accepts for a key fragment: a letter, then letters, digits, '-', '_'. */
const KEY_FRAGMENT = /^[A-Za-z][A-Za-z0-9_-]*$/;

/**
 * Parses a keyval string into `into` (a later option of the same group merges into the
 * earlier, as `-smp 2 -smp cores=2` does). Dotted keys are kept flat, as `a.b`.
 */
export function parseKeyval(
  text: string,
  implied?: string,
  into: Map<string, string> = new Map(),
): { values: Map<string, string>; help: boolean } {
  let impliedKey = implied;
  let help = false;
  let i = 0;
  while (i < text.length) {
    const rest = text.slice(i);
    const stop = rest.search(/[=,]/);
    const len = stop === -1 ? rest.length : stop;
    let key: string;
    let value: string;
    if (len > 0 && rest[len] !== '=' && isHelpOption(rest.slice(0, len))) {
      help = true;
      i += len;
      if (text[i] === ',') i++;
      impliedKey = undefined;
      continue;
    }
    if (len > 0 && rest[len] !== '=' && impliedKey !== undefined) {
      // The implied value ends at the first comma: no `,,` escape here.
      key = impliedKey;
      value = rest.slice(0, len);
      i += len;
    } else {
      key = rest.slice(0, len);
      if (key.length === 0 || !key.split('.').every((f) => KEY_FRAGMENT.test(f))) {
        throw new OptsSyntaxError(`Invalid parameter '${key}'`);
      }
      if (rest[len] !== '=') {
        throw new OptsSyntaxError(`Expected '=' after parameter '${key}'`);
      }
      [value, i] = readValue(text, i + len + 1);
    }
    if (text[i] === ',') i++;
    impliedKey = undefined;
    into.delete(key);
    into.set(key, value);
  }
  return { values: into, help };
}
