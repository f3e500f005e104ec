// A registry that accepts connections and never answers costs one admission one deadline, not every admission.

import assert from "node:assert/strict";
import { loadRuleTexts } from "../lib/compat/load.ts";
import { createWebhookHandler } from "../lib/server/handler.ts";
import { createMetrics } from "../lib/server/metrics.ts";
import { createVerifyMetrics } from "../lib/verify/metrics.ts";
import { VerifyPolicy } from "../lib/verify/policy.ts";
import { Verifier } from "../lib/verify/verifier.ts";
import { startSilentServer } from "./support/registry.ts";
import { memoryLogger } from "./support/webhook.ts";
import { admissionReview } from "./support/admission_review.ts";

function rules(host: string): string {
  return `apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: hanging-mirror
spec:
  verify: true
  onMissing: keep
  rules:
    - prefix: docker.io/team
      replace: ${host}/team
`;
}

function body(): string {
  return JSON.stringify(admissionReview({
    namespace: "default",
    object: {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { generateName: "web-", namespace: "default" },
      spec: { containers: [{ name: "web", image: "team/app:v1" }] },
    },
  }));
}

/** The webhook core with a verifier built as `serve` builds it; `lookupDeadlineMs` is the verifier's own. */
async function setUp(host: string, deadlineMs: number, lookupDeadlineMs: number) {
  const loaded = loadRuleTexts([{ name: "r.yaml", text: rules(host) }]);
  const metrics = createMetrics({ defaultMetrics: false });
  const verifyMetrics = createVerifyMetrics(metrics.registry);
  const verifier = await Verifier.create({
    policy: VerifyPolicy.create({ registries: [host] }),
    insecureRegistries: [host],
    deadlineMs: lookupDeadlineMs,
    metrics: verifyMetrics,
  });
  const handle = createWebhookHandler({
    rules: () => loaded.ruleSet,
    metrics,
    logger: memoryLogger().logger,
    verifier,
    verifyDeadlineMs: deadlineMs,
  });
  const admit = async (): Promise<{ ms: number; warnings: string[]; patched: boolean }> => {
    const started = performance.now();
    const response = await handle(
      new Request("https://webhook/mutate", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: body(),
      }),
    );
    const { response: answer } = await response.json();
    return { ms: performance.now() - started, warnings: answer.warnings ?? [], patched: answer.patch !== undefined };
  };
  const checks = async (cache: string) =>
    (await verifyMetrics.checks.get()).values
      .filter((value) => value.labels["cache"] === cache)
      .reduce((sum, value) => sum + value.value, 0);
  return { admit, checks, close: () => verifier.close() };
}

Deno.test("a hanging registry: only the first admission waits the deadline", async (t) => {
  await t.step("a lookup still under way past the deadline: 20 concurrent admissions fall back at once", async () => {
    await using silent = startSilentServer();
    const deadlineMs = 400;
    // The verifier's own bound is longer than the admissions' deadline, so the lookup is still running.
    const { admit, checks, close } = await setUp(silent.host, deadlineMs, 5_000);
    try {
      const first = await admit();
      assert.ok(first.ms >= deadlineMs - 5, `the first admission answered in ${first.ms} ms`);
      assert.equal(first.patched, false);
      assert.ok(
        first.warnings.some((warning) => /could not be checked \(timeout/.test(warning)),
        first.warnings.join("\n"),
      );
      const started = performance.now();
      const later = await Promise.all(Array.from({ length: 20 }, () => admit()));
      const batchMs = performance.now() - started;
      assert.ok(batchMs < deadlineMs, `20 admissions took ${batchMs} ms: they waited for the registry`);
      for (const result of later) {
        assert.equal(result.patched, false);
        assert.ok(
          result.warnings.some((warning) =>
            /could not be checked \(timeout: .*still unanswered past the deadline/.test(warning)
          ),
          result.warnings.join("\n"),
        );
      }
      assert.equal(await checks("overdue"), 20);
      assert.equal(silent.accepted(), 1);
    } finally {
      await close();
    }
  });
  await t.step("as serve sets it up, the request ends with the deadline and the failure is cached", async () => {
    await using silent = startSilentServer();
    const deadlineMs = 400;
    const { admit, checks, close } = await setUp(silent.host, deadlineMs, deadlineMs);
    try {
      const first = await admit();
      assert.equal(first.patched, false);
      // The lookup ends by the deadline (bounded request) or just after; wait for it without a fixed sleep.
      const until = performance.now() + 2_000;
      while ((await checks("miss")) < 1 && performance.now() < until) await new Promise((r) => setTimeout(r, 10));
      const started = performance.now();
      const later = await Promise.all(Array.from({ length: 20 }, () => admit()));
      const batchMs = performance.now() - started;
      assert.ok(batchMs < deadlineMs, `20 admissions took ${batchMs} ms`);
      for (const result of later) {
        assert.ok(result.warnings.some((warning) => /could not be checked/.test(warning)), result.warnings.join("\n"));
      }
      assert.equal((await checks("hit")) + (await checks("overdue")), 20);
      assert.equal(silent.accepted(), 1);
    } finally {
      await close();
    }
  });
});
