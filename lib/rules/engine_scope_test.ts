// Checks that decide() looks at a rule's scope before running its pattern: a tenant's pattern never sees other Pods.

import "./pattern_analysis.ts";
import assert from "node:assert/strict";
import { type CompiledRule, compileRuleSet } from "./compile.ts";
import { decide } from "./engine.ts";
import type { RewriteObject } from "./schema.ts";

function tenant(namespace: string, match: string): RewriteObject {
  return {
    apiVersion: "mirrorhook.dev/v1alpha1",
    kind: "ImageRewrite",
    metadata: { name: "tenant", namespace },
    spec: { priority: 0, rules: [{ match, replace: "tenant.example.com/x" }] },
  } as RewriteObject;
}

/** Replaces the rule's pattern's `test` by a counter. */
function spyOn(rule: CompiledRule | undefined): { runs: () => number; restore: () => void } {
  const pattern = rule?.pattern;
  assert.ok(pattern !== undefined);
  let runs = 0;
  const test = pattern.test;
  Object.defineProperty(pattern, "test", {
    configurable: true,
    value(this: RegExp, text: string) {
      runs++;
      return test.call(this, text);
    },
  });
  return { runs: () => runs, restore: () => delete (pattern as { test?: unknown }).test };
}

Deno.test("decide() checks a match rule's namespace before running its pattern", async (t) => {
  const id = `spy-${crypto.randomUUID().slice(0, 8)}`;
  const source = `${id}-(a|a)*c`;
  const { ruleSet, problems } = compileRuleSet([tenant("team-a", source)]);
  assert.deepEqual(problems, []);
  const spy = spyOn(ruleSet.levels[0]?.match[0]);
  try {
    await t.step("another namespace: the pattern never runs", () => {
      assert.equal(decide(ruleSet, "nginx:1.27", { context: { namespace: "team-b" } }).action, "none");
      assert.equal(decide(ruleSet, "a".repeat(32), { context: {} }).action, "none");
      assert.equal(spy.runs(), 0);
    });
    await t.step("its own namespace: the pattern runs", () => {
      assert.equal(decide(ruleSet, "nginx:1.27", { context: { namespace: "team-a" } }).action, "none");
      assert.equal(spy.runs(), 1);
    });
    await t.step("--explain still says an out-of-scope rule matched", () => {
      const decision = decide(ruleSet, `${id}-aac`, { context: { namespace: "team-b" }, explain: true });
      assert.equal(decision.action, "none");
      assert.equal(decision.notes.length, 1);
      assert.match(decision.notes[0] ?? "", /matched but ImageRewrite "team-a\/tenant"/);
    });
  } finally {
    spy.restore();
  }
});
