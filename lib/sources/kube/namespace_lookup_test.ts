import assert from "node:assert/strict";
import { isNamespaceName, NotFoundMemory, TokenBucket } from "./namespace_lookup.ts";

Deno.test("only a DNS-1123 label of at most 63 characters is a namespace name", () => {
  for (const name of ["a", "shop", "team-1", "0", "a".repeat(63)]) assert.ok(isNamespaceName(name), name);
  for (const name of ["", "..", ".", "a.b", "a/b", "Shop", "-a", "a-", "a_b", "a".repeat(64), "sh\u00f6p", "a\n"]) {
    assert.ok(!isNamespaceName(name), JSON.stringify(name));
  }
});

Deno.test("a 404 is remembered for its time to live, at most capacity names with the oldest out, until dropped", () => {
  let now = 0;
  const memory = new NotFoundMemory({ ttlMs: 10_000, capacity: 3, clock: () => now });
  memory.add("a");
  now = 9_999;
  assert.ok(memory.has("a"));
  now = 10_000;
  assert.ok(!memory.has("a"));
  assert.equal(memory.size, 0);

  for (const name of ["a", "b", "c", "d"]) memory.add(name);
  assert.equal(memory.size, 3);
  assert.deepEqual(["a", "b", "c", "d"].map((name) => memory.has(name)), [false, true, true, true]);
  memory.delete("c");
  assert.ok(!memory.has("c"));
  assert.ok(memory.has("b"));
});

Deno.test("the token bucket gives its burst at once, then its rate", () => {
  let now = 1_000;
  const bucket = new TokenBucket({ perSecond: 20, burst: 32, clock: () => now });
  let taken = 0;
  for (let i = 0; i < 100; i++) if (bucket.take()) taken++;
  assert.equal(taken, 32);
  now += 1_000;
  taken = 0;
  for (let i = 0; i < 100; i++) if (bucket.take()) taken++;
  assert.equal(taken, 20);
  // Never more than the burst, however long it was idle; a clock going back gives nothing.
  now += 3_600_000;
  taken = 0;
  for (let i = 0; i < 100; i++) if (bucket.take()) taken++;
  assert.equal(taken, 32);
  now -= 5_000;
  assert.ok(!bucket.take());
});
