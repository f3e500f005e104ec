// Benchmarks the rule engine: per-image decide cost at 10 to 10,000 rules, whole-Pod mutation, and compilation.
//
// Every `decide` iteration decides all of IMAGES (200 references); divide the time per iteration by 200 for the
// cost per image. Rule sets are compiled once, at load, outside the measured functions.

import { compileRuleSet, type RuleSet } from "../lib/rules/compile.ts";
import { decide } from "../lib/rules/engine.ts";
import { mutatePod } from "../lib/mutate/pod.ts";
import type { RewriteObject } from "../lib/rules/schema.ts";
import { generateRuleObjects, IMAGES, spreadImages } from "./rules_fixture.ts";

const CONTEXT = { namespace: "shop" } as const;

function compileOrThrow(objects: readonly RewriteObject[]): RuleSet {
  const { ruleSet, problems } = compileRuleSet(objects);
  const errors = problems.filter((problem) => problem.severity === "error");
  if (errors.length > 0) {
    throw new Error(`Cannot compile the bench rules: ${errors.length} error(s), first: ${errors[0]?.message}`);
  }
  return ruleSet;
}

/** `exact 70, prefix 60, match 20, none 50`: what the images do under `ruleSet`, so the rows can be compared. */
function outcomes(ruleSet: RuleSet, images: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const image of images) {
    const decision = decide(ruleSet, image, { context: CONTEXT });
    const key = decision.action === "rewrite" || decision.action === "keep" ? decision.rule.type : decision.action;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return ["exact", "prefix", "match", "none", "invalid-input", "invalid-output"]
    .filter((key) => counts.has(key))
    .map((key) => `${key} ${counts.get(key)}`)
    .join(", ");
}

// The 10-rule baseline has no regex (5 exact + 5 prefix); "60" is the same 10 plus the 50 regexes the large sets
// carry, so the growth from 10 to 10,000 can be split into "regexes" and "size of the map and trie".
const objects10k = generateRuleObjects(10_000);
const sets = [
  { label: "10 rules (5 exact, 5 prefix)", ruleSet: compileOrThrow(generateRuleObjects(10, { regexRules: 0 })) },
  { label: "60 rules (the 10 + 50 regex)", ruleSet: compileOrThrow(generateRuleObjects(60)) },
  { label: "1,000 rules (475 exact, 475 prefix, 50 regex)", ruleSet: compileOrThrow(generateRuleObjects(1_000)) },
  { label: "10,000 rules (4,975 exact, 4,975 prefix, 50 regex)", ruleSet: compileOrThrow(objects10k) },
] as const;
const large = sets[3].ruleSet;

let sink = 0;

function decideAll(ruleSet: RuleSet, images: readonly string[]): void {
  for (const image of images) sink += decide(ruleSet, image, { context: CONTEXT }).action.length;
}

for (const [index, { label, ruleSet }] of sets.entries()) {
  Deno.bench({
    name: `decide ${IMAGES.length} images, ${label}: ${outcomes(ruleSet, IMAGES)}`,
    group: "decide",
    baseline: index === 0,
    fn: () => decideAll(ruleSet, IMAGES),
  });
}

const spread = spreadImages(10_000);
Deno.bench({
  name: `decide ${spread.length} images spread over all 10,000 rules: ${outcomes(large, spread)}`,
  group: "decide",
  fn: () => decideAll(large, spread),
});

/** A Pod with `count` containers (the first one an init container), images taken evenly from `images`. */
function buildPod(count: number, images: readonly string[]): Record<string, unknown> {
  const step = Math.max(1, Math.floor(images.length / count));
  const containers = Array.from({ length: count }, (_, i) => ({
    name: `c-${i}`,
    image: images[(i * step) % images.length],
    resources: { requests: { cpu: "10m", memory: "16Mi" } },
  }));
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      generateName: "shop-web-7d9f8b6c5-",
      namespace: CONTEXT.namespace,
      labels: { app: "shop-web", "pod-template-hash": "7d9f8b6c5" },
      annotations: { "kubectl.kubernetes.io/default-container": "c-1" },
    },
    spec: { initContainers: containers.slice(0, 1), containers: containers.slice(1) },
  };
}

// Distinct images (spread over the rules) so mutatePod's per-Pod memo does not hide any decision.
for (const [count, baseline] of [[3, true], [40, false]] as const) {
  const pod = buildPod(count, spread);
  Deno.bench({
    name: `mutatePod, ${count} containers, 10,000 rules`,
    group: "mutatePod",
    baseline,
    fn: () => {
      sink += mutatePod(pod, { ruleSet: large, namespace: CONTEXT.namespace }).patch.length;
    },
  });
}

// The regex screen (recheck) caches verdicts per pattern, so after the compiles above these measure a warm cache:
// the steady state of a rules reload that keeps its regexes.
const objects1k = generateRuleObjects(1_000);
Deno.bench({
  name: "compile 1,000 rules",
  group: "compile",
  baseline: true,
  fn: () => {
    sink += compileRuleSet(objects1k).ruleSet.ruleCount;
  },
});
Deno.bench({
  name: "compile 10,000 rules",
  group: "compile",
  fn: () => {
    sink += compileRuleSet(objects10k).ruleSet.ruleCount;
  },
});

// Keeps `sink` observable so no measured call can be dropped as dead code.
globalThis.addEventListener("unload", () => {
  if (sink < 0) throw new Error("unreachable");
});
