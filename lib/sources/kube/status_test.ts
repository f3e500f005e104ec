// Unit tests of the status our rule objects get: lastTransitionTime kept while Ready keeps its value, key order ignored.

import assert from "node:assert/strict";
import type { ObjectVerdict } from "./evaluate.ts";
import { desiredStatus, sameStatus } from "./status.ts";

type Json = Record<string, unknown>;

Deno.test("desiredStatus keeps lastTransitionTime while Ready keeps its value", async (t) => {
  const valid: ObjectVerdict = {
    key: "k",
    label: "l",
    generation: 2,
    reason: "Valid",
    message: "1 rule(s) in force",
    rules: 1,
  };
  const now = new Date("2026-05-01T12:00:00.250Z");
  const previous = (status: string) => ({
    conditions: [
      { type: "Other", status: "True" },
      { type: "Ready", status, lastTransitionTime: "2026-01-01T00:00:00Z", reason: "X", message: "old" },
    ],
  });
  const cases: { name: string; current: unknown; verdict: ObjectVerdict; transition: string }[] = [
    { name: "no status yet", current: undefined, verdict: valid, transition: "2026-05-01T12:00:00Z" },
    { name: "True stays True", current: previous("True"), verdict: valid, transition: "2026-01-01T00:00:00Z" },
    { name: "False becomes True", current: previous("False"), verdict: valid, transition: "2026-05-01T12:00:00Z" },
    {
      name: "False stays False with another reason",
      current: previous("False"),
      verdict: { ...valid, reason: "Conflict", rules: 0 },
      transition: "2026-01-01T00:00:00Z",
    },
  ];
  for (const row of cases) {
    await t.step(row.name, () => {
      const status = desiredStatus(row.current, row.verdict, now);
      const conditions = status["conditions"] as Json[];
      const ready = conditions.find((condition) => condition["type"] === "Ready");
      assert.equal(ready?.["lastTransitionTime"], row.transition);
      assert.equal(ready?.["observedGeneration"], 2);
      assert.equal(status["observedGeneration"], 2);
      assert.equal(status["rules"], row.verdict.rules);
      if (row.current !== undefined) assert.ok(conditions.some((condition) => condition["type"] === "Other"));
    });
  }
});

Deno.test("sameStatus ignores key order, as the API server re-orders keys", () => {
  assert.ok(sameStatus({ a: 1, b: { c: [1, { d: 2, e: 3 }] } }, { b: { c: [1, { e: 3, d: 2 }] }, a: 1 }));
  assert.ok(!sameStatus({ a: 1 }, { a: 2 }));
  assert.ok(!sameStatus(undefined, { a: 1 }));
});
