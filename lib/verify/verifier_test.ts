// Tests for the verifier with an injected registry client: deadline, coalescing, bounds, metrics.

import assert from "node:assert/strict";
import { Registry } from "prom-client";
import type { ImageReference } from "../image/reference.ts";
import type { LookupAnswer } from "./cache.ts";
import { createVerifyMetrics } from "./metrics.ts";
import { VerifyPolicy } from "./policy.ts";
import { lookupKey, type ManifestChecker, Verifier } from "./verifier.ts";

/** A checker whose answers the test releases by hand. */
function manualChecker(): ManifestChecker & {
  calls: string[];
  release: (key: string, answer: LookupAnswer) => void;
  signals: AbortSignal[];
} {
  const waiting = new Map<string, (answer: LookupAnswer) => void>();
  const calls: string[] = [];
  const signals: AbortSignal[] = [];
  return {
    calls,
    signals,
    check(reference: ImageReference, options: { signal?: AbortSignal }) {
      const key = lookupKey(reference);
      calls.push(key);
      if (options.signal !== undefined) signals.push(options.signal);
      return new Promise((resolve) => {
        waiting.set(key, resolve);
        options.signal?.addEventListener("abort", () => resolve({ status: "error", detail: "aborted" }));
      });
    },
    release(key, answer) {
      waiting.get(key)?.(answer);
    },
  };
}

Deno.test("lookupKey() checks by digest when there is one", async (t) => {
  const digest = `sha256:${"c".repeat(64)}`;
  const rows: [ImageReference, string][] = [
    [{ registry: "r.io", path: "a/b", tag: "v1" }, "r.io/a/b:v1"],
    [{ registry: "r.io", path: "a/b", digest }, `r.io/a/b@${digest}`],
    [{ registry: "r.io", path: "a/b", tag: "v1", digest }, `r.io/a/b@${digest}`],
  ];
  for (const [reference, key] of rows) await t.step(key, () => assert.equal(lookupKey(reference), key));
});

Deno.test("Verifier.checkAll() answers by the deadline and keeps the input order", async () => {
  const checker = manualChecker();
  const verifier = new Verifier({ checker });
  try {
    const pending = verifier.checkAll(["r.io/slow:1", "r.io/fast:1", "r.io/fast:1", "r.io/Upper:1"], 50);
    checker.release("r.io/fast:1", { status: "present" });
    const results = await pending;
    assert.deepEqual([...results.entries()].map(([key, value]) => [key, value.status, value.source]), [
      ["r.io/slow:1", "timeout", "miss"],
      ["r.io/fast:1", "present", "miss"],
      ["r.io/Upper:1", "error", "invalid"],
    ]);
    assert.deepEqual(checker.calls, ["r.io/slow:1", "r.io/fast:1"]);
    // The late answer still fills the cache.
    checker.release("r.io/slow:1", { status: "missing" });
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert.deepEqual(await verifier.check("r.io/slow:1", 0), {
      status: "missing",
      cached: true,
      source: "hit",
    });
  } finally {
    await verifier.close();
  }
});

Deno.test("Verifier.checkAll() resolves at once from the cache, without timers", async () => {
  const checker = manualChecker();
  const verifier = new Verifier({ checker });
  try {
    const first = verifier.checkAll(["r.io/a:1", "r.io/b:1"]);
    checker.release("r.io/a:1", { status: "present" });
    checker.release("r.io/b:1", { status: "missing" });
    await first;
    // A deadline of 0 would turn anything not cached into a timeout.
    const again = await verifier.checkAll(["r.io/a:1", "r.io/b:1"], 0);
    assert.deepEqual([...again.values()].map((r) => [r.status, r.cached]), [["present", true], ["missing", true]]);
    assert.equal(checker.calls.length, 2);
    assert.equal(verifier.cacheSize, 2);
  } finally {
    await verifier.close();
  }
});

Deno.test("Verifier bounds lookups: a lookup timeout, a cap on concurrent lookups, close()", async (t) => {
  await t.step("a lookup that outlives its deadline is aborted after lookupTimeoutMs", async () => {
    const checker = manualChecker();
    const verifier = new Verifier({ checker, lookupTimeoutMs: 40 });
    try {
      assert.equal((await verifier.check("r.io/a:1", 10)).status, "timeout");
      assert.equal(verifier.inFlight, 1);
      await new Promise((resolve) => setTimeout(resolve, 60));
      assert.equal(verifier.inFlight, 0);
      assert.equal(checker.signals[0]?.aborted, true);
    } finally {
      await verifier.close();
    }
  });
  await t.step("beyond maxConcurrentLookups, new references are errors at once", async () => {
    const checker = manualChecker();
    const verifier = new Verifier({ checker, maxConcurrentLookups: 2 });
    try {
      const results = await verifier.checkAll(["r.io/a:1", "r.io/b:1", "r.io/c:1"], 10);
      assert.deepEqual([...results.values()].map((r) => r.status), ["timeout", "timeout", "error"]);
      assert.deepEqual(checker.calls, ["r.io/a:1", "r.io/b:1"]);
      // A reference whose lookup is under way is not refused by the cap; past its deadline it is answered at once.
      assert.equal((await verifier.check("r.io/a:1", 10)).source, "overdue");
    } finally {
      await verifier.close();
    }
  });
  await t.step("close() aborts what is under way and refuses new lookups", async () => {
    const checker = manualChecker();
    const verifier = new Verifier({ checker });
    await verifier.checkAll(["r.io/a:1"], 5);
    await verifier.close();
    assert.equal(verifier.inFlight, 0);
    const after = await verifier.check("r.io/b:1", 50);
    assert.deepEqual([after.status, after.detail], ["error", "verifier closed"]);
  });
});

Deno.test("Verifier counts checks by result and cache use", async () => {
  const registry = new Registry();
  const metrics = createVerifyMetrics(registry);
  const checker = manualChecker();
  const verifier = new Verifier({ checker, metrics });
  try {
    const first = verifier.checkAll(["r.io/a:1", "r.io/b:1"], 1_000);
    const joined = verifier.checkAll(["r.io/a:1"], 1_000);
    checker.release("r.io/a:1", { status: "present" });
    checker.release("r.io/b:1", { status: "missing" });
    await Promise.all([first, joined]);
    await verifier.checkAll(["r.io/a:1", "r.io/b:1", "r.io/c:1", "Bad Ref"], 10);
    const values = (await metrics.checks.get()).values.map((v) => `${v.labels.result}/${v.labels.cache}=${v.value}`);
    assert.deepEqual(values.sort(), [
      "error/miss=1",
      "missing/hit=1",
      "missing/miss=1",
      "present/coalesced=1",
      "present/hit=1",
      "present/miss=1",
      "timeout/miss=1",
    ]);
    assert.equal((await metrics.cacheEntries.get()).values[0]?.value, 2);
    assert.equal((await metrics.lookupsInFlight.get()).values[0]?.value, 1);
    const text = await registry.metrics();
    for (
      const name of [
        "mirrorhook_verify_checks_total",
        "mirrorhook_verify_registry_requests_total",
        "mirrorhook_verify_registry_request_duration_seconds",
        "mirrorhook_verify_lookups_in_flight",
        "mirrorhook_verify_cache_entries",
        "mirrorhook_verify_decisions_total",
      ]
    ) assert.match(text, new RegExp(`# TYPE ${name} `));
  } finally {
    await verifier.close();
  }
});

Deno.test("Verifier with a policy: refused registries are never asked, answers carry no network detail", async (t) => {
  const policy = VerifyPolicy.create({ registries: ["harbor.example.com"], clusterRules: "listed" });
  await t.step("a namespaced rule's unlisted target: refused without a lookup", async () => {
    const checker = manualChecker();
    const verifier = new Verifier({ checker, policy });
    try {
      const refused = verifier.refusal("evil.example.com:22/x:1", "namespaced");
      assert.deepEqual([refused?.status, refused?.source, refused?.detail], [
        "error",
        "refused",
        "registry not allowed",
      ]);
      assert.equal(verifier.refusal("harbor.example.com/x:1", "namespaced"), undefined);
      assert.equal(verifier.peek("evil.example.com:22/x:1", "cluster")?.source, "refused");
      const results = await verifier.checkAll(["evil.example.com:22/x:1"], 50);
      assert.equal(results.get("evil.example.com:22/x:1")?.detail, "registry not allowed");
      assert.deepEqual(checker.calls, []);
    } finally {
      await verifier.close();
    }
  });
  await t.step("under any, a cluster-wide rule's target is asked; a namespaced one's is not", async () => {
    const checker = manualChecker();
    const any = VerifyPolicy.create({ registries: ["harbor.example.com"], clusterRules: "any" });
    const verifier = new Verifier({ checker, policy: any });
    try {
      assert.equal(verifier.refusal("quay.io/x:1", "cluster"), undefined);
      assert.equal(verifier.refusal("quay.io/x:1", "namespaced")?.source, "refused");
    } finally {
      await verifier.close();
    }
  });
  await t.step("a network error is 'could not be checked' with no detail; the cause stays for logs", async () => {
    const checker: ManifestChecker = {
      check: () => Promise.resolve({ status: "error", detail: "cannot reach harbor.example.com: Connection refused" }),
    };
    const withPolicy = new Verifier({ checker, policy });
    const without = new Verifier({ checker });
    try {
      const hidden = await withPolicy.check("harbor.example.com/x:1", 500);
      assert.deepEqual([hidden.status, hidden.detail], ["error", undefined]);
      assert.match(hidden.cause ?? "", /Connection refused/);
      // The command line (no policy) shows everything to the person running it.
      assert.match((await without.check("harbor.example.com/x:1", 500)).detail ?? "", /Connection refused/);
    } finally {
      await withPolicy.close();
      await without.close();
    }
  });
});

Deno.test("Verifier: a lookup past the deadline makes later admissions fall back at once", async (t) => {
  await t.step("the first waits the deadline; 20 concurrent ones then answer overdue without joining it", async () => {
    const checker = manualChecker();
    const registry = new Registry();
    const metrics = createVerifyMetrics(registry);
    const verifier = new Verifier({ checker, metrics });
    try {
      const first = await verifier.check("r.io/hang:1", 40);
      assert.deepEqual([first.status, first.source], ["timeout", "miss"]);
      const later = await Promise.all(Array.from({ length: 20 }, () => verifier.check("r.io/hang:1", 60_000)));
      assert.deepEqual(
        new Set(later.map((result) => `${result.status}/${result.source}`)),
        new Set(["timeout/overdue"]),
      );
      assert.match(later[0]?.detail ?? "", /still unanswered past the deadline/);
      assert.deepEqual(checker.calls, ["r.io/hang:1"]);
      const counted = (await metrics.checks.get()).values.find((value) => value.labels.cache === "overdue");
      assert.equal(counted?.value, 20);
      // Once the registry answers, the answer is used as usual.
      checker.release("r.io/hang:1", { status: "present" });
      await new Promise((resolve) => setTimeout(resolve, 0));
      assert.equal((await verifier.check("r.io/hang:1", 40)).status, "present");
    } finally {
      await verifier.close();
    }
  });
  await t.step("within the deadline, later admissions still share the lookup", async () => {
    const checker = manualChecker();
    const verifier = new Verifier({ checker });
    try {
      const a = verifier.check("r.io/slow:1", 60_000);
      const b = verifier.check("r.io/slow:1", 60_000);
      checker.release("r.io/slow:1", { status: "present" });
      assert.deepEqual([(await a).source, (await b).source], ["miss", "coalesced"]);
    } finally {
      await verifier.close();
    }
  });
  await t.step("the request timeout is bounded by the admission deadline", async () => {
    const signals: AbortSignal[] = [];
    const hang: typeof fetch = (_input, init) =>
      new Promise((_resolve, reject) => {
        signals.push(init?.signal as AbortSignal);
        init?.signal?.addEventListener("abort", () => reject(init.signal?.reason));
      });
    const verifier = new Verifier({ fetch: hang, deadlineMs: 50, requestTimeoutMs: 60_000 });
    try {
      await verifier.check("r.io/hang:1");
      const until = performance.now() + 5_000;
      while (verifier.inFlight > 0 && performance.now() < until) await new Promise((r) => setTimeout(r, 10));
      assert.equal(verifier.inFlight, 0);
      const cached = await verifier.check("r.io/hang:1");
      assert.deepEqual([cached.status, cached.source], ["error", "hit"]);
      assert.match(cached.detail ?? "", /no answer within 50 ms/);
    } finally {
      await verifier.close();
    }
  });
});
