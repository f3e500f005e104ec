// Tests for reporting the store's problems: one log line per new problem between objects, and a bounded counter.

import assert from "node:assert/strict";
import { configureSync, getLogger, type LogRecord } from "@logtape/logtape";
import { Registry } from "prom-client";
import { API_VERSION, type RewriteObject, type RuleSpec, validateObject } from "../rules/schema.ts";
import { RuleStore } from "../sources/store.ts";
import { reportRuleProblems } from "./rule_problems.ts";

const records: LogRecord[] = [];
configureSync({
  reset: true,
  sinks: { memory: (record: LogRecord) => void records.push(record) },
  loggers: [
    { category: ["rule-problems-test"], lowestLevel: "debug", sinks: ["memory"] },
    { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["memory"] },
  ],
});

function object(kind: "ClusterImageRewrite" | "ImageRewrite", name: string, rules: RuleSpec[]): RewriteObject {
  const namespace = kind === "ImageRewrite" ? { namespace: "team-a" } : {};
  const result = validateObject({ apiVersion: API_VERSION, kind, metadata: { name, ...namespace }, spec: { rules } });
  assert.ok(result.object !== undefined);
  return result.object;
}

const HARBOR = { prefix: "docker.io", replace: "harbor.example.com/dockerhub" };
const ECR = { prefix: "docker.io", replace: "ecr.example.com/docker-hub" };

Deno.test("reportRuleProblems() logs problems across sources once, and leaves the file source's own to it", async () => {
  const store = new RuleStore();
  store.register("file");
  store.register("kube");
  const registry = new Registry();
  const unsubscribe = reportRuleProblems(store, { logger: getLogger(["rule-problems-test"]), registry });
  const lines = () =>
    records.filter((r) => String(r.message.join("")).startsWith("Rule problem")).map((r) => [
      r.level,
      r.properties["source"],
      r.properties["code"],
    ]);

  // Two file objects in conflict: the file source reports that itself (and refuses the files).
  store.update("file", [object("ClusterImageRewrite", "a", [HARBOR]), object("ClusterImageRewrite", "b", [ECR])]);
  assert.deepEqual(lines(), []);
  store.update("file", [object("ClusterImageRewrite", "a", [HARBOR])]);

  // A tenant's object in the cluster overrides the file's: one warning, logged once however often the store updates.
  const mine = object("ImageRewrite", "mine", [ECR]);
  store.update("kube", [mine]);
  store.update("kube", [mine]);
  assert.deepEqual(lines(), [["warning", "kube", "override"]]);

  store.update("kube", []);
  assert.deepEqual(lines().at(-1), ["info", "kube", "override"]);
  const text = await registry.getSingleMetricAsString("mirrorhook_rule_problems_total");
  assert.match(text, /mirrorhook_rule_problems_total\{source="file",code="conflict"\} 1/);
  assert.match(text, /mirrorhook_rule_problems_total\{source="kube",code="override"\} 1/);
  unsubscribe();
});
