// Admission with `verify: true` rules against a real registry (Debian's docker-registry): present targets are
// rewritten, missing ones keep the original, onMissing: rewrite overrides, and a dead registry falls back in time.

import assert from "node:assert/strict";
import jsonpatch from "fast-json-patch";
import { createWebhookHandler } from "../lib/server/handler.ts";
import { createMetrics } from "../lib/server/metrics.ts";
import { loadRuleTexts } from "../lib/compat/load.ts";
import { createVerifyMetrics } from "../lib/verify/metrics.ts";
import { Verifier } from "../lib/verify/verifier.ts";
import { pushImage, registryInstalled, startRegistry } from "./support/registry.ts";
import { memoryLogger } from "./support/webhook.ts";
import { run } from "../lib/cli/program.ts";
import { admissionReview } from "./support/admission_review.ts";

const ignore = Deno.env.get("MIRRORHOOK_SKIP_REGISTRY") === "1" && !registryInstalled();

function rules(host: string, onMissing: "keep" | "rewrite"): string {
  return `apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: verified-mirror
spec:
  verify: true
  onMissing: ${onMissing}
  rules:
    - prefix: docker.io/team
      replace: ${host}/team
`;
}

function review(images: string[]): Record<string, unknown> {
  return admissionReview({
    namespace: "default",
    object: {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "p", namespace: "default" },
      spec: { containers: images.map((image, i) => ({ name: `c${i}`, image })) },
    },
  });
}

async function admitted(
  handle: (request: Request) => Promise<Response>,
  images: string[],
): Promise<{ images: string[]; warnings: string[]; ms: number }> {
  const body = review(images);
  const started = performance.now();
  const res = await handle(
    new Request("https://x/mutate", {
      method: "POST",
      body: JSON.stringify(body),
      headers: { "content-type": "application/json" },
    }),
  );
  const ms = performance.now() - started;
  const { response } = await res.json();
  let pod = (body["request"] as Record<string, unknown>)["object"];
  if (typeof response.patch === "string") {
    const ops = JSON.parse(atob(response.patch));
    pod = jsonpatch.applyPatch(structuredClone(pod), ops, true, false).newDocument;
  }
  const containers = (pod as { spec: { containers: { image: string }[] } }).spec.containers;
  return { images: containers.map((c) => c.image), warnings: response.warnings ?? [], ms };
}

Deno.test({
  name: "admission verifies rewrite targets with the registry before rewriting",
  ignore,
  fn: async (t) => {
    await using registry = await startRegistry();
    await pushImage(registry.url, "team/app", "v1");
    const metrics = createMetrics({ defaultMetrics: false });
    const verifyMetrics = createVerifyMetrics(metrics.registry);
    const verifier = await Verifier.create({ insecureRegistries: [registry.host], metrics: verifyMetrics });
    const handlerFor = (onMissing: "keep" | "rewrite", deadlineMs = 2000) => {
      const loaded = loadRuleTexts([{ name: "r.yaml", text: rules(registry.host, onMissing) }]);
      assert.deepEqual(loaded.problems.filter((p) => p.severity === "error"), []);
      return createWebhookHandler({
        rules: () => loaded.ruleSet,
        metrics,
        logger: memoryLogger().logger,
        verifier,
        verifyDeadlineMs: deadlineMs,
        verifyDecisions: verifyMetrics.decisions,
      });
    };
    try {
      await t.step("a present tag is rewritten, a missing one keeps the original", async () => {
        const result = await admitted(handlerFor("keep"), ["team/app:v1", "team/app:v2", "nginx:1"]);
        assert.deepEqual(result.images, [`${registry.host}/team/app:v1`, "team/app:v2", "nginx:1"]);
        assert.ok(result.warnings.some((w) => /verified in the registry/.test(w)));
        assert.ok(result.warnings.some((w) => /^mirrorhook: kept team\/app:v2: .* is not in the registry/.test(w)));
      });

      await t.step("onMissing: rewrite rewrites anyway, and says so", async () => {
        const result = await admitted(handlerFor("rewrite"), ["team/app:v2"]);
        assert.deepEqual(result.images, [`${registry.host}/team/app:v2`]);
        assert.ok(result.warnings.some((w) => /although .* is not in the registry/.test(w)));
      });

      await t.step("decisions are counted by result and action", async () => {
        const values = (await verifyMetrics.decisions.get()).values;
        const count = (result: string, action: string) =>
          values.find((v) => v.labels["result"] === result && v.labels["action"] === action)?.value ?? 0;
        assert.equal(count("verified", "rewrite"), 1);
        assert.equal(count("missing", "keep"), 1);
        assert.equal(count("missing", "rewrite"), 1);
      });

      await t.step("mirrorhook rewrite --verify checks targets from the command line", async () => {
        const dir = await Deno.makeTempDir();
        try {
          await Deno.writeTextFile(`${dir}/r.yaml`, rules(registry.host, "keep").replace("  verify: true\n", ""));
          let out = "";
          let err = "";
          const code = await run(
            [
              "rewrite",
              "-r",
              `${dir}/r.yaml`,
              "--verify",
              "--insecure-registry",
              registry.host,
              "--explain",
              "team/app:v1",
              "team/app:v2",
            ],
            {
              stdout: (text) => void (out += text),
              stderr: (text) => void (err += text),
              readText: (p) => Deno.readTextFile(p),
            },
          );
          assert.equal(code, 0, err);
          const results = out.split("\n").filter((line) => line !== "" && !line.startsWith(" "));
          assert.deepEqual(results, [`${registry.host}/team/app:v1`, "team/app:v2"]);
          assert.match(out, /verify: .*team\/app:v1 is present in the registry/);
          assert.match(out, /verify: .*team\/app:v2 is not in the registry/);
        } finally {
          await Deno.remove(dir, { recursive: true });
        }
      });

      await t.step("a stopped registry falls back to onMissing within the deadline", async () => {
        await registry.stop();
        verifier.clearCache();
        const result = await admitted(handlerFor("keep", 500), ["team/app:v1"]);
        assert.deepEqual(result.images, ["team/app:v1"]);
        assert.ok(result.ms < 1500, `took ${result.ms} ms`);
        assert.ok(result.warnings.some((w) => /could not be checked/.test(w)));
      });
    } finally {
      await verifier.close();
    }
  },
});
