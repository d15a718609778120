/**
 * Declared argument schemas for QMP commands, checked in one place with the wording of QEMU's
 * QObject input visitor:
 *   "Parameter 'x' is missing"                 a mandatory member is absent
 *   "Parameter 'x' is unexpected"              a member the command does not declare
 *   "Invalid parameter type for 'x', expected: integer"
 *   "Parameter 'x' does not accept value 'v'"  an enum value outside the set
 * Members are checked in declaration order, then unexpected ones, as QEMU does. Nested names
 * are written `a.b` and `a[0]`; an enum inside a list reports the name 'null', a QEMU quirk.
 */
import { QmpError } from './errors.js';
import { isJsonObject, jsonObject, type JsonObject, type JsonValue } from './json-value.js';

export type ArgType =
  | { readonly type: 'str' }
  | { readonly type: 'int' }
  | { readonly type: 'bool' }
  | { readonly type: 'number' }
  | { readonly type: 'any' }
  | { readonly type: 'enum'; readonly values: readonly string[] }
  | { readonly type: 'object'; readonly fields: Schema }
  | { readonly type: 'array'; readonly items: ArgType };

export type ArgSpec = ArgType & { readonly optional?: boolean };

export type Schema = { readonly [name: string]: ArgSpec };

/** The TypeScript type a validated argument has. An `int` beyond ±2^53 stays a bigint. */
export type ValueOf<T> = T extends { type: 'str' }
  ? string
  : T extends { type: 'int' } | { type: 'number' }
    ? number | bigint
    : T extends { type: 'bool' }
      ? boolean
      : T extends { type: 'any' }
        ? JsonValue
        : T extends { type: 'enum'; values: readonly (infer V)[] }
          ? V
          : T extends { type: 'object'; fields: infer F extends Schema }
            ? ArgsOf<F>
            : T extends { type: 'array'; items: infer I }
              ? ValueOf<I>[]
              : never;

type OptionalKeys<S extends Schema> = { [K in keyof S]: S[K] extends { optional: true } ? K : never }[keyof S];

export type ArgsOf<S extends Schema> = { -readonly [K in Exclude<keyof S, OptionalKeys<S>>]: ValueOf<S[K]> } & {
  -readonly [K in OptionalKeys<S>]?: ValueOf<S[K]>;
};

const TYPE_NAMES: Readonly<Record<ArgType['type'], string>> = {
  str: 'string',
  int: 'integer',
  bool: 'boolean',
  number: 'number',
  any: 'any',
  enum: 'string',
  object: 'object',
  array: 'array',
};

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

function fail(desc: string): never {
  throw new QmpError('GenericError', desc);
}

function checkValue(spec: ArgType, value: JsonValue, fullName: string, name: string | null): JsonValue {
  const typeError = (): never => fail(`Invalid parameter type for '${fullName}', expected: ${TYPE_NAMES[spec.type]}`);
  switch (spec.type) {
    case 'any':
      return value;
    case 'str':
      return typeof value === 'string' ? value : typeError();
    case 'bool':
      return typeof value === 'boolean' ? value : typeError();
    case 'number':
      return typeof value === 'number' || typeof value === 'bigint' ? value : typeError();
    case 'int':
      // Integers beyond 2^53 arrive as bigints, so a larger plain number was a double.
      if (typeof value === 'number' && Number.isSafeInteger(value)) return value;
      if (typeof value === 'bigint' && value >= INT64_MIN && value <= INT64_MAX) return value;
      return typeError();
    case 'enum':
      if (typeof value !== 'string') return typeError();
      if (!spec.values.includes(value)) fail(`Parameter '${name ?? 'null'}' does not accept value '${value}'`);
      return value;
    case 'object':
      if (!isJsonObject(value)) return typeError();
      return checkObject(spec.fields, value, `${fullName}.`);
    case 'array':
      if (!Array.isArray(value)) return typeError();
      return value.map((item, i) => checkValue(spec.items, item, `${fullName}[${i}]`, null));
  }
}

function checkObject(schema: Schema, args: JsonObject, prefix: string): JsonObject {
  const out = jsonObject();
  for (const [name, spec] of Object.entries(schema)) {
    if (!(name in args)) {
      if (spec.optional !== true) fail(`Parameter '${prefix}${name}' is missing`);
      continue;
    }
    out[name] = checkValue(spec, args[name] ?? null, `${prefix}${name}`, name);
  }
  for (const name of Object.keys(args)) {
    if (!Object.hasOwn(schema, name)) fail(`Parameter '${prefix}${name}' is unexpected`);
  }
  return out;
}

/** Checks a command's `arguments` against its schema; throws a GenericError QmpError. */
export function validateArgs<S extends Schema>(schema: S, args: JsonObject): ArgsOf<S> {
  return checkObject(schema, args, '') as ArgsOf<S>;
}
