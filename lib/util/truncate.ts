// Bounding echoed values: any text copied from a request into a log line or an answer is cut to a fixed size.

/** Longest value (in UTF-8 bytes) echoed from a request into logs, warnings or audit annotations. */
const MAX_ECHO_BYTES = 256;

const encoder = new TextEncoder();
const NON_ASCII = /[\u0080-\uffff]/;

/**
 * `value` unchanged when it fits in `maxBytes` UTF-8 bytes; otherwise its longest prefix that fits with the
 * marker `...(N bytes)` naming the full size, cut on a code point boundary.
 */
export function truncate(value: string, maxBytes: number = MAX_ECHO_BYTES): string {
  // Fast paths: at most 3 bytes per UTF-16 unit; one byte per unit for ASCII (image references, names).
  if (value.length * 3 <= maxBytes) return value;
  if (value.length <= maxBytes && !NON_ASCII.test(value)) return value;
  const size = encoder.encode(value).byteLength;
  if (size <= maxBytes) return value;
  const marker = `\u2026(${size} bytes)`;
  const room = Math.max(0, maxBytes - encoder.encode(marker).byteLength);
  let used = 0;
  let end = 0;
  for (const char of value) {
    const bytes = encoder.encode(char).byteLength;
    if (used + bytes > room) break;
    used += bytes;
    end += char.length;
  }
  return value.slice(0, end) + marker;
}
