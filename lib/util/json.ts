// Plain JSON values: the object test, key-order-free equality and a canonical text, shared by every folder.

/** A JSON object. */
export type Json = Record<string, unknown>;

/** True for a JSON object (not null, not an array). */
export function isRecord(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** JSON with object keys sorted and undefined members left out: equal values give equal texts. */
export function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (isRecord(value)) {
    return `{${
      Object.keys(value).filter((key) => value[key] !== undefined).sort().map((key) =>
        `${JSON.stringify(key)}:${canonical(value[key])}`
      ).join(",")
    }}`;
  }
  return JSON.stringify(value) ?? "null";
}

/** Structural equality of JSON values, whatever the order of keys (the API server re-orders them). */
export function sameJson(a: unknown, b: unknown): boolean {
  return a === b || canonical(a ?? null) === canonical(b ?? null);
}

/**
 * Sets `key` on a plain object as Object.fromEntries would (an own data property, `__proto__` included), so a record
 * can be built by assignment, which V8 serializes faster than one built from entries.
 */
export function setEntry(record: Record<string, string>, key: string, value: string): void {
  if (key === "__proto__") {
    Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true });
  } else record[key] = value;
}
