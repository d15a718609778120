/**
 * A JSON value as QMP carries it. Integers that do not fit a double exactly but fit QEMU's
 * int64 or uint64 are bigints, so an `id` such as 18446744073709551615 is echoed unchanged;
 * every other number is a double. Objects have no prototype, so a key like `__proto__` is data.
 */
export type JsonValue = null | boolean | number | bigint | string | JsonValue[] | JsonObject;

export interface JsonObject {
  [key: string]: JsonValue;
}

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A fresh object without a prototype, safe for any key. */
export function jsonObject(): JsonObject {
  return Object.create(null) as JsonObject;
}
