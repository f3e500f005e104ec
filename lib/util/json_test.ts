// Tests of setEntry: a record built by assignment serializes as the one Object.fromEntries builds.

import assert from "node:assert/strict";
import fc from "fast-check";
import { setEntry } from "./json.ts";

function built(pairs: readonly (readonly [string, string])[]): string {
  const record: Record<string, string> = {};
  for (const [key, value] of pairs) setEntry(record, key, value);
  return JSON.stringify(record);
}

Deno.test("setEntry builds what Object.fromEntries builds", async (t) => {
  await t.step("__proto__, constructor, index keys and repeats", () => {
    const pairs = [["b", "1"], ["__proto__", "2"], ["10", "3"], ["2", "4"], ["constructor", "5"], ["b", "6"]] as const;
    assert.equal(built(pairs), JSON.stringify(Object.fromEntries(pairs)));
    assert.equal(built(pairs), '{"2":"4","10":"3","b":"6","__proto__":"2","constructor":"5"}');
  });
  await t.step("any keys and values", () => {
    const key = fc.oneof(fc.string(), fc.nat().map(String), fc.constantFrom("__proto__", "toString", "4294967295"));
    fc.assert(
      fc.property(fc.array(fc.tuple(key, fc.string())), (pairs) => {
        assert.equal(built(pairs), JSON.stringify(Object.fromEntries(pairs)));
      }),
    );
  });
});
