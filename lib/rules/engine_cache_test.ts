// Checks the decision cache: one per rule set, never carrying one Pod's scope into another's decision, and bounded.

import assert from "node:assert/strict";
import { compileRuleSet, type RuleSet } from "./compile.ts";
import {
  decide,
  DECISION_CACHE_CHARS,
  DECISION_CACHE_SIZE,
  DecisionCache,
  decisionCache,
  RuleScope,
} from "./engine.ts";
import type { RewriteObject } from "./schema.ts";

function object(
  kind: "ImageRewrite" | "ClusterImageRewrite",
  name: string,
  spec: Record<string, unknown>,
  namespace?: string,
): RewriteObject {
  return {
    apiVersion: "mirrorhook.dev/v1alpha1",
    kind,
    metadata: { name, ...(namespace === undefined ? {} : { namespace }) },
    spec: { priority: 0, ...spec },
  } as unknown as RewriteObject;
}

function compile(objects: RewriteObject[]): RuleSet {
  const { ruleSet, problems } = compileRuleSet(objects);
  assert.deepEqual(problems.filter((problem) => problem.severity === "error"), []);
  return ruleSet;
}

function output(ruleSet: RuleSet, image: string, namespace?: string, podLabels?: Record<string, string>): string {
  const decision = decide(ruleSet, image, {
    context: { ...(namespace === undefined ? {} : { namespace }), ...(podLabels === undefined ? {} : { podLabels }) },
  });
  return decision.action === "rewrite" ? decision.output : decision.action;
}

Deno.test("a rule change is never answered from the previous rules' cache", () => {
  const before = compile([
    object("ClusterImageRewrite", "hub", { rules: [{ prefix: "docker.io", replace: "old.example.com/hub" }] }),
  ]);
  assert.equal(output(before, "nginx:1.27"), "old.example.com/hub/library/nginx:1.27");
  // The same rule set answers from its cache: the very same decision object.
  assert.equal(
    decide(before, "nginx:1.27", { context: {} }),
    decide(before, "nginx:1.27", { context: { namespace: "shop" } }),
  );
  const after = compile([
    object("ClusterImageRewrite", "hub", { rules: [{ prefix: "docker.io", replace: "new.example.com/hub" }] }),
  ]);
  assert.equal(output(after, "nginx:1.27"), "new.example.com/hub/library/nginx:1.27");
  const removed = compile([]);
  assert.equal(output(removed, "nginx:1.27"), "none");
  // The earlier rule set, still held by an admission in flight, keeps its own answers.
  assert.equal(output(before, "nginx:1.27"), "old.example.com/hub/library/nginx:1.27");
});

Deno.test("a namespaced rule decides only in its namespace, whichever namespace asked first", async (t) => {
  const objects = [
    object("ImageRewrite", "tenant", { rules: [{ prefix: "docker.io", replace: "team-a.example.com/hub" }] }, "team-a"),
    object(
      "ImageRewrite",
      "tenant",
      { rules: [{ match: "^docker\\.io/", replace: "team-c.example.com/x" }] },
      "team-c",
    ),
    object("ClusterImageRewrite", "all", {
      priority: -1,
      rules: [{ prefix: "docker.io", replace: "all.example.com" }],
    }),
  ];
  for (const first of ["team-a", "team-b", "team-c"]) {
    await t.step(`${first} first`, () => {
      const ruleSet = compile(objects); // a fresh cache each time
      const expected: Record<string, string> = {
        "team-a": "team-a.example.com/hub/library/nginx:1.27",
        "team-b": "all.example.com/library/nginx:1.27",
        "team-c": "team-c.example.com/xlibrary/nginx:1.27",
      };
      const order = [first, ...Object.keys(expected).filter((namespace) => namespace !== first)];
      for (const namespace of [...order, ...order]) {
        assert.equal(output(ruleSet, "nginx:1.27", namespace), expected[namespace], namespace);
      }
    });
  }
});

Deno.test("a podSelector rule follows each Pod's labels, not the first Pod's", () => {
  const ruleSet = compile([
    object("ClusterImageRewrite", "canary", {
      podSelector: { matchLabels: { track: "canary" } },
      rules: [{ prefix: "docker.io", replace: "canary.example.com/hub" }],
    }),
  ]);
  assert.equal(output(ruleSet, "nginx:1.27", "shop", { track: "canary" }), "canary.example.com/hub/library/nginx:1.27");
  assert.equal(output(ruleSet, "nginx:1.27", "shop", { track: "stable" }), "none");
  assert.equal(output(ruleSet, "nginx:1.27", "shop", { track: "canary" }), "canary.example.com/hub/library/nginx:1.27");
});

Deno.test("the decision cache is bounded and forgets images not used lately", () => {
  const ruleSet = compile([
    object("ClusterImageRewrite", "hub", { rules: [{ prefix: "docker.io", replace: "mirror.example.com/hub" }] }),
  ]);
  const cache = new DecisionCache(ruleSet, "direct.to/", 4);
  const scope = new RuleScope({});
  const kept = cache.decide("keep-me:1", scope);
  const first = cache.decide("image-0:1", scope);
  assert.equal(cache.decide("image-0:1", scope), first); // remembered: the same decision
  for (let i = 1; i < 100; i++) {
    cache.decide(`image-${i}:1`, scope);
    assert.equal(cache.decide("keep-me:1", scope), kept); // used all along: never forgotten
    assert.ok(cache.size <= 4);
  }
  // Forgotten, so decided again: a new decision, to the same answer.
  const again = cache.decide("image-0:1", scope);
  assert.notEqual(again, first);
  assert.deepEqual(again, first);
  // The shared cache of a rule set is bounded too.
  const shared = decisionCache(ruleSet, "direct.to/");
  for (let i = 0; i < 10_000; i++) shared.decide(`flood-${i}:1`, scope);
  assert.ok(shared.size <= DECISION_CACHE_SIZE);
  assert.ok(shared.size >= DECISION_CACHE_SIZE / 2);
});

Deno.test("long images fill the decision cache sooner, and longer than a reference are not kept", () => {
  const ruleSet = compile([
    object("ClusterImageRewrite", "hub", { rules: [{ prefix: "docker.io", replace: "mirror.example.com/hub" }] }),
  ]);
  const cache = decisionCache(ruleSet, "direct.to/");
  const scope = new RuleScope({});
  for (let i = 0; i < 3_000; i++) {
    cache.decide(`registry.example.com/${"a".repeat(200)}/${i}:${"t".repeat(100)}${"-".repeat(600)}`, scope);
    assert.ok(cache.chars <= DECISION_CACHE_CHARS);
  }
  assert.ok(cache.size < 1_100, `${cache.size} images of ~1,000 characters`);
  const huge = `nginx:${"x".repeat(100_000)}`;
  const first = cache.decide(huge, scope);
  assert.equal(first.action, "invalid-input");
  assert.notEqual(cache.decide(huge, scope), first); // decided again: never remembered
  assert.ok(cache.chars <= DECISION_CACHE_CHARS);
});

Deno.test("the bypass prefix is part of the cache key", () => {
  const ruleSet = compile([
    object("ClusterImageRewrite", "hub", { rules: [{ prefix: "docker.io", replace: "mirror.example.com/hub" }] }),
  ]);
  const image = "direct.to/nginx:1.27";
  assert.equal(decide(ruleSet, image, { context: {} }).action, "bypass");
  const other = decide(ruleSet, image, { context: {}, bypassPrefix: "" });
  assert.equal(other.action, "none"); // direct.to is then a registry like any other
});
