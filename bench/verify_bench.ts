// Benchmarks target verification on a warm cache against no verification, for a 3-container Pod.
//
// The cache is warmed once at load, so every measured checkAll is answered from the cache (no network, no
// timers): this is the steady state of a rollout, where every Pod of a Deployment asks for the same images. Each
// group's summary prints the ratio to its baseline (no verification); the goal is within 10% at admission level.

import { Registry } from "prom-client";
import { mutatePod } from "../lib/mutate/pod.ts";
import { createWebhookCore, type WebhookRequest } from "../lib/server/handler.ts";
import { configureLogging, logger } from "../lib/server/log.ts";
import { createMetrics } from "../lib/server/metrics.ts";
import { compileRuleSet } from "../lib/rules/compile.ts";
import { validateObject } from "../lib/rules/schema.ts";
import { createVerifyMetrics } from "../lib/verify/metrics.ts";
import { Verifier } from "../lib/verify/verifier.ts";

const validated = validateObject({
  apiVersion: "mirrorhook.dev/v1alpha1",
  kind: "ClusterImageRewrite",
  metadata: { name: "hub" },
  spec: {
    verify: true,
    rules: [
      { prefix: "docker.io", replace: "harbor.example.com/dockerhub" },
      { match: "^(gcr\\.io|quay\\.io|ghcr\\.io)/(.*)$", replace: "cache.example.com/$1/$2" },
    ],
  },
});
if (validated.object === undefined) throw new Error("Cannot validate the bench rules");
const { ruleSet } = compileRuleSet([validated.object]);

const pod = {
  apiVersion: "v1",
  kind: "Pod",
  metadata: { generateName: "shop-web-7d9f8b6c5-", namespace: "shop", labels: { app: "shop-web" } },
  spec: {
    initContainers: [{ name: "migrate", image: "ghcr.io/shop/migrate:2.3.1" }],
    containers: [
      { name: "web", image: "nginx:1.27" },
      { name: "app", image: "quay.io/shop/app:v4.2.0" },
    ],
  },
};
const reviewText = JSON.stringify({
  apiVersion: "admission.k8s.io/v1",
  kind: "AdmissionReview",
  request: {
    uid: "0b1a6f5e-5f4c-4b87-8d1e-2f1b7c6a9d00",
    kind: { group: "", version: "v1", kind: "Pod" },
    resource: { group: "", version: "v1", resource: "pods" },
    namespace: "shop",
    operation: "CREATE",
    userInfo: { username: "system:serviceaccount:kube-system:replicaset-controller" },
    object: pod,
  },
});

// A registry that has everything; after warming, it is never asked again.
let fetches = 0;
const verifier = new Verifier({
  metrics: createVerifyMetrics(new Registry()),
  fetch: () => {
    fetches++;
    return Promise.resolve(new Response(null, { status: 200 }));
  },
});
const targets = mutatePod(pod, { ruleSet, namespace: "shop" }).changes.map((change) => change.to);
if (targets.length !== 3) throw new Error(`Expected 3 rewrites in the bench Pod, got ${targets.length}`);
const warm = await verifier.checkAll(targets, 2_000);
if ([...warm.values()].some((result) => result.status !== "present")) throw new Error("Cannot warm the cache");
const warmFetches = fetches;

let sink = 0;

// async throughout, so every variant pays the bench harness's cost of awaiting a promise.
// deno-lint-ignore require-await
async function mutateOnly(): Promise<void> {
  sink += mutatePod(pod, { ruleSet, namespace: "shop" }).patch.length;
}

async function mutateAndVerify(): Promise<void> {
  const result = mutatePod(pod, { ruleSet, namespace: "shop" });
  const checked = await verifier.checkAll(result.changes.map((change) => change.to), 2_000);
  sink += result.patch.length + checked.size;
}

// What the webhook does per request apart from TLS and HTTP, through the same core the server runs: decode,
// admit (with the verifier's cache read during admission when it is given), encode. Logs go nowhere.
configureLogging("info", () => {});
const body = new TextEncoder().encode(reviewText);
const request: WebhookRequest = {
  method: "POST",
  path: "/mutate",
  contentType: "application/json",
  readBody: () => Promise.resolve(body),
};
const coreWithout = createWebhookCore({
  rules: () => ruleSet,
  metrics: createMetrics({ defaultMetrics: false }),
  logger: logger("bench"),
});
const coreWith = createWebhookCore({
  rules: () => ruleSet,
  metrics: createMetrics({ defaultMetrics: false }),
  logger: logger("bench"),
  verifier,
});

async function admitOnly(): Promise<void> {
  sink += (await coreWithout(request)).body.length;
}

async function admitAndVerify(): Promise<void> {
  sink += (await coreWith(request)).body.length;
}

async function verifyOnly(): Promise<void> {
  sink += (await verifier.checkAll(targets, 2_000)).size;
}

// Warm the JIT for every variant first, so the one measured first is not penalized.
for (let i = 0; i < 20_000; i++) {
  await mutateOnly();
  await mutateAndVerify();
  await admitOnly();
  await admitAndVerify();
  await verifyOnly();
}

/**
 * Median time per call of `with` over `without`, from interleaved rounds: on a busy machine Deno.bench's averages
 * swing with GC pauses and neighbours, while alternating rounds see the same conditions.
 */
async function interleavedRatio(without: () => Promise<void>, withVerify: () => Promise<void>): Promise<number> {
  const rounds = 300;
  const perRound = 100;
  const a: number[] = [];
  const b: number[] = [];
  for (let round = 0; round < rounds; round++) {
    for (const [fn, out] of [[without, a], [withVerify, b]] as const) {
      const started = performance.now();
      for (let i = 0; i < perRound; i++) await fn();
      out.push((performance.now() - started) / perRound);
    }
  }
  const median = (values: number[]) => values.sort((x, y) => x - y)[Math.floor(values.length / 2)] ?? Number.NaN;
  return median(b) / median(a);
}

const mutateRatio = await interleavedRatio(mutateOnly, mutateAndVerify);
const admissionRatio = await interleavedRatio(admitOnly, admitAndVerify);
// deno-lint-ignore no-console
console.log(
  `verify on a warm cache, median of interleaved rounds: mutatePod x${mutateRatio.toFixed(3)}, ` +
    `webhook core (decode, admit, encode) x${admissionRatio.toFixed(3)} (goal at admission level: within x1.10)`,
);

const OPTIONS = { n: 50_000, warmup: 2_000 } as const;
Deno.bench({ ...OPTIONS, name: "mutatePod, no verification", group: "mutatePod", baseline: true, fn: mutateOnly });
Deno.bench({ ...OPTIONS, name: "mutatePod + checkAll, warm cache", group: "mutatePod", fn: mutateAndVerify });
Deno.bench({
  ...OPTIONS,
  name: "webhook core, no verification",
  group: "admission",
  baseline: true,
  fn: admitOnly,
});
Deno.bench({ ...OPTIONS, name: "webhook core, verify on a warm cache", group: "admission", fn: admitAndVerify });
Deno.bench({ ...OPTIONS, name: "checkAll alone, 3 references, warm cache", group: "checkAll", fn: verifyOnly });

globalThis.addEventListener("unload", () => {
  if (fetches !== warmFetches) throw new Error(`The warm cache made ${fetches - warmFetches} registry requests`);
  if (sink < 0) throw new Error("unreachable");
});
