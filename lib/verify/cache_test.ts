// Tests for the LRU with expiry and the lookup cache: TTL per outcome, bounds, coalescing.

import assert from "node:assert/strict";
import { type LookupAnswer, LookupCache, LruMap } from "./cache.ts";

Deno.test("LruMap forgets the least recently used entry and expired ones", () => {
  let now = 0;
  const map = new LruMap<string, number>({ maxEntries: 2, now: () => now });
  map.set("a", 1, 100);
  map.set("b", 2, 100);
  assert.equal(map.get("a"), 1);
  map.set("c", 3, 100);
  assert.equal(map.get("b"), undefined, "b was least recently used");
  assert.equal(map.get("a"), 1);
  assert.equal(map.get("c"), 3);
  now = 100;
  assert.equal(map.get("a"), undefined, "expired");
  map.set("d", 4, 0);
  assert.equal(map.get("d"), undefined, "a zero TTL stores nothing");
  assert.throws(() => new LruMap({ maxEntries: 0 }), RangeError);
});

function deferred(): { promise: Promise<LookupAnswer>; resolve: (answer: LookupAnswer) => void } {
  let resolve: (answer: LookupAnswer) => void = () => {};
  const promise = new Promise<LookupAnswer>((settle) => resolve = settle);
  return { promise, resolve };
}

Deno.test("LookupCache keeps each outcome for its own TTL", async (t) => {
  let now = 0;
  const cache = new LookupCache({ now: () => now, ttls: { presentMs: 300, missingMs: 200, errorMs: 100 } });
  let loads = 0;
  const load = (status: LookupAnswer["status"]) => () => {
    loads++;
    return Promise.resolve({ status });
  };
  for (const status of ["present", "missing", "error"] as const) await cache.lookup(status, load(status)).answer;
  assert.equal(loads, 3);
  const rows: [number, string[]][] = [[99, ["present", "missing", "error"]], [100, ["present", "missing"]], [
    200,
    ["present"],
  ], [300, []]];
  for (const [at, fresh] of rows) {
    await t.step(`at ${at} ms`, () => {
      now = at;
      assert.deepEqual(["present", "missing", "error"].filter((key) => cache.peek(key) !== undefined), fresh);
    });
  }
});

Deno.test("LookupCache coalesces concurrent lookups of one key", async () => {
  const cache = new LookupCache();
  const pending = deferred();
  let loads = 0;
  const load = () => {
    loads++;
    return pending.promise;
  };
  const first = cache.lookup("k", load);
  const second = cache.lookup("k", load);
  assert.deepEqual([first.source, second.source], ["miss", "coalesced"]);
  assert.equal(cache.isInFlight("k"), true);
  assert.equal(cache.inFlight, 1);
  pending.resolve({ status: "present" });
  assert.deepEqual(await Promise.all([first.answer, second.answer]), [{ status: "present" }, { status: "present" }]);
  assert.equal(loads, 1);
  assert.equal(cache.inFlight, 0);
  assert.equal(cache.lookup("k", load).source, "hit");
  assert.equal(cache.size, 1);
});

Deno.test("LookupCache caches a failed load as an error and stays bounded", async () => {
  const cache = new LookupCache({ maxEntries: 3 });
  const answer = await cache.lookup("k", () => Promise.reject(new Error("boom"))).answer;
  assert.deepEqual(answer, { status: "error", detail: "boom" });
  assert.deepEqual(cache.peek("k"), answer);
  for (let i = 0; i < 10; i++) await cache.lookup(`k${i}`, () => Promise.resolve({ status: "missing" })).answer;
  assert.equal(cache.size, 3);
  cache.clear();
  assert.equal(cache.size, 0);
});
