// Checks the screening worker: same verdicts as in-process, cached by pattern, busy and late requests refused.

import assert from "node:assert/strict";
import { cachedVerdict, rememberVerdict, screenPattern, VERDICT_CACHE_LIMIT } from "../rules/pattern.ts";
import { PatternScreener, ScreeningRefused } from "./pattern_screener.ts";

/** Patterns the worker screens (a repeated group: not a plain pattern, see quickVerdict). */
function fresh(
  count: number,
  shape = (id: string, i: number) => `^r-${id}-${i}\\.example\\.com/(?:[a-z]+/)*(.*)$`,
): string[] {
  const id = crypto.randomUUID();
  return Array.from({ length: count }, (_, i) => shape(id, i));
}

Deno.test("PatternScreener gives the verdicts screenPattern() gives, and remembers them", async () => {
  const screener = new PatternScreener();
  try {
    const sources = [...fresh(300), `^(a+)+$-${crypto.randomUUID()}`, `(a|b)\\1+c${crypto.randomUUID()}`];
    const verdicts = await screener.screen(sources, { deadlineMs: 30_000 });
    assert.equal(verdicts.size, sources.length);
    for (const source of sources) {
      assert.deepEqual(cachedVerdict(source), verdicts.get(source), "cached in this thread");
      assert.deepEqual(verdicts.get(source), screenPattern(source));
    }
    assert.equal(verdicts.get(sources[301] ?? "")?.status, "unbounded");
    // Cached: answered without the worker, even with no time at all.
    assert.equal((await screener.screen(sources, { deadlineMs: 0 })).size, sources.length);
    assert.equal(screener.pending, 0);
  } finally {
    screener.close();
  }
});

Deno.test("PatternScreener refuses when its queue is full, and when the deadline passes", async () => {
  const screener = new PatternScreener({ queueLimit: 2, batchSize: 50 });
  try {
    const first = screener.screen(fresh(2000), { deadlineMs: 30_000 });
    const second = screener.screen(fresh(10), { deadlineMs: 30_000 });
    await assert.rejects(
      screener.screen(fresh(10), { deadlineMs: 30_000 }),
      (error) => error instanceof ScreeningRefused && error.reason === "busy",
    );
    assert.equal((await first).size, 2000);
    assert.equal((await second).size, 10);

    // Too late: refused, the running batch is abandoned, and the next request is served by a new worker.
    await assert.rejects(
      screener.screen(fresh(5000), { deadlineMs: 1 }),
      (error) => error instanceof ScreeningRefused && error.reason === "timeout",
    );
    const after = fresh(20);
    assert.equal((await screener.screen(after, { deadlineMs: 30_000 })).size, 20);
    assert.equal(screener.pending, 0);
  } finally {
    screener.close();
  }
  await assert.rejects(
    screener.screen(fresh(1), { deadlineMs: 1000 }),
    (error) => error instanceof ScreeningRefused && error.reason === "closed",
  );
});

Deno.test("PatternScreener answers plain patterns without a worker, and without keeping them", async () => {
  const screener = new PatternScreener({ workerUrl: new URL("./no_such_worker.ts", import.meta.url).href });
  try {
    const sources = fresh(100, (id, i) => `^r-${id}-${i}\\.example\\.com/([^/:@]+)([:@][^/]*)$`);
    const verdicts = await screener.screen(sources, { deadlineMs: 0 });
    assert.deepEqual(new Set([...verdicts.values()].map((verdict) => verdict.status)), new Set(["safe"]));
    assert.equal(verdicts.size, 100);
    assert.equal(screener.inline, false, "no worker was tried");
    assert.equal(cachedVerdict(sources[0] ?? ""), undefined);
  } finally {
    screener.close();
  }
});

Deno.test("PatternScreener screens in this thread when no worker can start", async () => {
  const screener = new PatternScreener({ workerUrl: new URL("./no_such_worker.ts", import.meta.url).href });
  try {
    const sources = fresh(10);
    const verdicts = await screener.screen(sources, { deadlineMs: 30_000 });
    assert.equal(verdicts.size, 10);
    assert.ok(screener.inline);
    assert.equal((await screener.screen(fresh(3), { deadlineMs: 30_000 })).size, 3);
  } finally {
    screener.close();
  }
});

Deno.test("the verdict cache drops the least recently used pattern, one at a time", () => {
  const id = crypto.randomUUID();
  const first = `^(?:first-${id})+$`;
  const second = `^(?:second-${id})+$`;
  rememberVerdict(first, { status: "safe" });
  rememberVerdict(second, { status: "safe" });
  for (let i = 0; i < VERDICT_CACHE_LIMIT - 2; i++) rememberVerdict(`^(?:filler-${id}-${i})+$`, { status: "safe" });
  screenPattern(first); // used again: now the most recent
  rememberVerdict(`^(?:one-more-${id})+$`, { status: "safe" });
  assert.equal(cachedVerdict(second), undefined, "the least recently used went");
  assert.deepEqual(cachedVerdict(first), { status: "safe" }, "the rest stayed");
  assert.deepEqual(cachedVerdict(`^(?:filler-${id}-0)+$`), { status: "safe" });
});
