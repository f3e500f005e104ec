// Tests for the rule store: sources compiled together in order, problems by object, and problem changes.

import assert from "node:assert/strict";
import { compileRuleSet } from "../rules/compile.ts";
import { decide } from "../rules/engine.ts";
import { API_VERSION, type RewriteObject, type RuleSpec, validateObject } from "../rules/schema.ts";
import { type ProblemChange, RuleStore } from "./store.ts";

function object(kind: "ClusterImageRewrite" | "ImageRewrite", name: string, rules: RuleSpec[]): RewriteObject {
  const namespace = kind === "ImageRewrite" ? { namespace: "team-a" } : {};
  const result = validateObject({ apiVersion: API_VERSION, kind, metadata: { name, ...namespace }, spec: { rules } });
  assert.ok(result.object !== undefined);
  return result.object;
}

const HARBOR = { prefix: "docker.io", replace: "harbor.example.com/dockerhub" };
const ECR = { prefix: "docker.io", replace: "ecr.example.com/docker-hub" };

function output(store: RuleStore, namespace: string): string | undefined {
  const decision = decide(store.current, "nginx", { context: { namespace } });
  return decision.action === "rewrite" ? decision.output : undefined;
}

Deno.test("RuleStore: a file object wins a conflict with a cluster object, whichever came first", () => {
  const store = new RuleStore();
  store.register("file");
  store.register("kube");
  const changes: ProblemChange[] = [];
  store.onProblems((change) => changes.push(change));
  const squat = object("ClusterImageRewrite", "squat", [ECR]);
  store.update("kube", [squat]);
  assert.equal(output(store, "x"), "ecr.example.com/docker-hub/library/nginx:latest");
  assert.equal(changes.length, 0);

  const platform = object("ClusterImageRewrite", "platform", [HARBOR]);
  store.update("file", [platform]);
  assert.equal(output(store, "x"), "harbor.example.com/dockerhub/library/nginx:latest");
  assert.equal(store.inForce(platform), true);
  assert.equal(store.inForce(squat), false);
  assert.deepEqual(store.problemsOf(squat).map((p) => [p.code, p.related?.object]), [
    ["conflict", 'ClusterImageRewrite "platform"'],
  ]);
  assert.deepEqual(store.problemsOf(platform), []);
  assert.deepEqual(
    changes.map(({ added, resolved }) => [added.map((e) => [e.source, e.problem.code, e.relatedSource]), resolved]),
    [[[["kube", "conflict", "file"]], []]],
  );

  store.update("kube", []);
  assert.deepEqual(changes[1]?.resolved.map((e) => [e.source, e.problem.code]), [["kube", "conflict"]]);
  assert.deepEqual(changes[1]?.added, []);
});

Deno.test("RuleStore: a tenant's object overrides in its namespace only, with a warning on it", () => {
  const store = new RuleStore();
  store.register("file");
  store.register("kube");
  const platform = object("ClusterImageRewrite", "platform", [HARBOR]);
  const mine = object("ImageRewrite", "mine", [ECR]);
  store.update("file", [platform]);
  store.update("kube", [mine]);
  assert.equal(store.inForce(platform), true);
  assert.equal(store.inForce(mine), true);
  assert.deepEqual(store.problemsOf(mine).map((p) => [p.severity, p.code]), [["warning", "override"]]);
  assert.equal(output(store, "team-a"), "ecr.example.com/docker-hub/library/nginx:latest");
  assert.equal(output(store, "team-b"), "harbor.example.com/dockerhub/library/nginx:latest");
});

Deno.test("RuleStore: unchanged problems are not announced again", () => {
  const store = new RuleStore();
  store.register("kube");
  const changes: ProblemChange[] = [];
  store.onProblems((change) => changes.push(change));
  const first = object("ClusterImageRewrite", "a", [HARBOR]);
  const second = object("ClusterImageRewrite", "b", [ECR]);
  store.update("kube", [first, second]);
  store.update("kube", [first, second]);
  assert.equal(changes.length, 1);
  assert.deepEqual(changes[0]?.added.map((e) => e.problem.object), ['ClusterImageRewrite "b"']);
});

Deno.test("RuleStore.updateCompiled: a source alone in the store is compiled once, with others all together", () => {
  const store = new RuleStore();
  store.register("file");
  store.register("kube");
  const platform = object("ClusterImageRewrite", "platform", [HARBOR]);
  const compiled = compileRuleSet([platform]);
  store.updateCompiled("file", { objects: [platform], optOuts: [], compiled });
  assert.equal(store.current, compiled.ruleSet, "taken as it is, not compiled again");
  assert.equal(store.inForce(platform), true);

  store.update("kube", [object("ClusterImageRewrite", "other", [{ prefix: "quay.io", replace: "q.example.com" }])]);
  const again = compileRuleSet([platform]);
  store.updateCompiled("file", { objects: [platform], optOuts: [], compiled: again });
  assert.notEqual(store.current, again.ruleSet, "with another source's objects, everything is compiled together");
  assert.equal(store.current.ruleCount, 2);
  assert.equal(output(store, "x"), "harbor.example.com/dockerhub/library/nginx:latest");
});
