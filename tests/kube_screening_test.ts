// The cluster source screens its objects' patterns on the worker before evaluating them, and retries when refused.

import assert from "node:assert/strict";
import { decide } from "../lib/rules/engine.ts";
import { createMetrics } from "../lib/server/metrics.ts";
import { KubeRuleSource } from "../lib/sources/kube/source.ts";
import { RuleStore } from "../lib/sources/store.ts";
import { PatternScreener } from "../lib/server/pattern_screener.ts";
import { FakeKubeApi } from "./support/fake_kube_api.ts";
import { until } from "./support/wait.ts";
import { memoryLogger } from "./support/webhook.ts";

const { logger: root, records } = memoryLogger();
const logger = root.getChild("kube-screening");

Deno.test("the cluster source screens patterns off its thread, refuses unbounded ones, and retries a refusal", async () => {
  const api = FakeKubeApi.start();
  const screener = new PatternScreener();
  const id = crypto.randomUUID().slice(0, 8);
  const platform = `^ghcr\\.io/${id}/(.*)$`;
  const tenant = "^((a*)*b)\\2(?:[a-z0-9._-]{1,20}/){0,30}$";
  api.create({
    apiVersion: "mirrorhook.dev/v1alpha1",
    kind: "ClusterImageRewrite",
    metadata: { name: "ghcr" },
    spec: { rules: [{ match: platform, replace: "mirror.example.com/$1" }] },
  });
  api.create({
    apiVersion: "mirrorhook.dev/v1alpha1",
    kind: "ImageRewrite",
    metadata: { name: "squat", namespace: "team-a" },
    spec: { rules: [{ match: tenant, keep: true }] },
  });
  const asked: string[][] = [];
  const store = new RuleStore();
  const source = new KubeRuleSource({
    kubeConfig: api.kubeConfig(),
    store,
    metrics: createMetrics({ defaultMetrics: false }),
    logger,
    backoff: { initialMs: 20, maxMs: 200 },
    screen: (sources) => {
      asked.push([...sources]);
      // The first evaluation finds the worker busy: nothing is decided, and evaluation is tried again.
      if (asked.length === 1) return Promise.reject(new Error("Cannot screen patterns: 1024 requests are waiting"));
      return screener.screen(sources, { deadlineMs: 30_000 });
    },
  });
  source.start();
  try {
    await until("the platform's rule in force", () => {
      const decision = decide(store.current, `ghcr.io/${id}/app:1`, { context: { namespace: "team-b" } });
      return decision.action === "rewrite" && decision.output === "mirror.example.com/app:1";
    }, 10_000);
    assert.ok(asked.length >= 2, "refused once, then screened again");
    assert.deepEqual(new Set(asked[1]), new Set([platform, tenant]));
    const verdict = await until("the tenant's verdict", () => source.verdicts.get("ImageRewrite/team-a/squat"), 10_000);
    assert.equal(verdict.reason, "InvalidRule");
    assert.match(verdict.message, /linear time/);
    assert.ok(records.some((record) => String(record.message.join("")).includes("1024 requests are waiting")));
  } finally {
    await source.stop();
    screener.close();
    await api.close();
  }
});
