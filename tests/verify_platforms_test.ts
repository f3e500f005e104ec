// `platforms` on verified rules against a real registry (Debian's docker-registry): an index must list every
// required platform, a single-platform image's config must be one of them, and the warning names what is missing.

import assert from "node:assert/strict";
import jsonpatch from "fast-json-patch";
import { createWebhookHandler } from "../lib/server/handler.ts";
import { createMetrics } from "../lib/server/metrics.ts";
import { loadRuleTexts } from "../lib/compat/load.ts";
import { createVerifyMetrics } from "../lib/verify/metrics.ts";
import { Verifier } from "../lib/verify/verifier.ts";
import { validateObject } from "../lib/rules/schema.ts";
import { registryInstalled, startRegistry } from "./support/registry.ts";
import { pushPlatformImage } from "./support/images.ts";
import { memoryLogger } from "./support/webhook.ts";
import { admissionReview } from "./support/admission_review.ts";

const ignore = Deno.env.get("MIRRORHOOK_SKIP_REGISTRY") === "1" && !registryInstalled();

/** One verified object per required platform set, each for its own source repository. */
function rules(host: string): string {
  const object = (name: string, repo: string, platforms: string[]) =>
    `apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: ${name}
spec:
  verify: true
  platforms: [${platforms.join(", ")}]
  rules:
    - prefix: docker.io/${repo}
      replace: ${host}/${repo}
`;
  return [
    object("both", "both", ["linux/amd64", "linux/arm64"]),
    object("s390x", "s390x", ["linux/s390x"]),
    object("arm-variant", "armv", ["linux/arm/v7"]),
  ].join("---\n");
}

async function admitted(
  handle: (request: Request) => Promise<Response>,
  images: string[],
): Promise<{ images: string[]; warnings: string[] }> {
  const object = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "p", namespace: "default" },
    spec: { containers: images.map((image, i) => ({ name: `c${i}`, image })) },
  };
  const res = await handle(
    new Request("https://x/mutate", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(admissionReview({ namespace: "default", object })),
    }),
  );
  const { response } = await res.json();
  let pod: unknown = object;
  if (typeof response.patch === "string") {
    pod = jsonpatch.applyPatch(structuredClone(object), JSON.parse(atob(response.patch)), true, false).newDocument;
  }
  const containers = (pod as { spec: { containers: { image: string }[] } }).spec.containers;
  return { images: containers.map((c) => c.image), warnings: response.warnings ?? [] };
}

Deno.test({
  name: "verified rules with platforms: a target counts as present only when it serves them",
  ignore,
  fn: async (t) => {
    await using registry = await startRegistry();
    const host = registry.host;
    // both/multi: an index of linux/amd64 and linux/arm64; both/single and s390x/single: one linux/amd64 image.
    await pushPlatformImage(registry.url, "both/multi", "v1", { platforms: ["linux/amd64", "linux/arm64"] });
    await pushPlatformImage(registry.url, "both/single", "v1", { seed: 2 });
    await pushPlatformImage(registry.url, "s390x/multi", "v1", { platforms: ["linux/amd64", "linux/arm64"] });
    await pushPlatformImage(registry.url, "armv/multi", "v1", { platforms: ["linux/arm/v6", "linux/arm64"], seed: 3 });
    await pushPlatformImage(registry.url, "armv/single", "v1", { platforms: ["linux/arm/v7"], seed: 4 });
    const metrics = createMetrics({ defaultMetrics: false });
    const verifyMetrics = createVerifyMetrics(metrics.registry);
    const verifier = await Verifier.create({ insecureRegistries: [host], metrics: verifyMetrics });
    const loaded = loadRuleTexts([{ name: "r.yaml", text: rules(host) }]);
    assert.deepEqual(loaded.problems.filter((p) => p.severity === "error"), []);
    const handle = createWebhookHandler({
      rules: () => loaded.ruleSet,
      metrics,
      logger: memoryLogger().logger,
      verifier,
      verifyDeadlineMs: 5000,
      verifyDecisions: verifyMetrics.decisions,
    });
    const requests = async () =>
      (await verifyMetrics.registryRequests.get()).values.reduce((sum, v) => sum + v.value, 0);
    try {
      await t.step("an index listing every platform is present; a single image of one of them too", async () => {
        const result = await admitted(handle, ["both/multi:v1", "both/single:v1"]);
        assert.deepEqual(result.images, [`${host}/both/multi:v1`, `${host}/both/single:v1`]);
      });

      await t.step("an index without a required platform is absent, and the warning names it", async () => {
        const result = await admitted(handle, ["s390x/multi:v1"]);
        assert.deepEqual(result.images, ["s390x/multi:v1"]);
        assert.ok(
          result.warnings.some((w) =>
            w.includes(`kept s390x/multi:v1: ${host}/s390x/multi:v1 lacks platform linux/s390x`)
          ),
          result.warnings.join("\n"),
        );
      });

      await t.step("a variant must match: arm/v6 is not arm/v7; a single arm/v7 image is", async () => {
        const result = await admitted(handle, ["armv/multi:v1", "armv/single:v1"]);
        assert.deepEqual(result.images, ["armv/multi:v1", `${host}/armv/single:v1`]);
        assert.ok(result.warnings.some((w) => w.includes("lacks platform linux/arm/v7")), result.warnings.join("\n"));
      });

      await t.step("a single image of another platform is absent, its own platform named", async () => {
        const text = rules(host).replace("linux/s390x", "linux/arm64");
        const armOnly = loadRuleTexts([{ name: "r.yaml", text }]);
        const other = createWebhookHandler({
          rules: () => armOnly.ruleSet,
          metrics,
          logger: memoryLogger().logger,
          verifier,
          verifyDeadlineMs: 5000,
        });
        await pushPlatformImage(registry.url, "s390x/single", "v1", { seed: 5 });
        const result = await admitted(other, ["s390x/single:v1"]);
        assert.deepEqual(result.images, ["s390x/single:v1"]);
        assert.ok(
          result.warnings.some((w) => w.includes("lacks platform linux/arm64 (it is single-platform linux/amd64)")),
          result.warnings.join("\n"),
        );
      });

      await t.step(
        "answers are cached with their platforms: a second admission asks the registry nothing",
        async () => {
          const before = await requests();
          const result = await admitted(handle, ["both/multi:v1", "both/single:v1", "s390x/multi:v1"]);
          assert.deepEqual(result.images, [`${host}/both/multi:v1`, `${host}/both/single:v1`, "s390x/multi:v1"]);
          assert.equal(await requests(), before);
        },
      );

      await t.step("the same reference without platforms is a separate answer", async () => {
        const plain = await verifier.check(`${host}/s390x/multi:v1`);
        assert.equal(plain.status, "present");
        const withPlatform = await verifier.check(`${host}/s390x/multi:v1 platforms=linux/s390x`);
        assert.equal(withPlatform.status, "missing");
      });
    } finally {
      await verifier.close();
    }
  },
});

Deno.test("platforms and imagePullSecrets are validated with their paths", () => {
  const object = (extra: Record<string, unknown>, rule: Record<string, unknown> = {}) => ({
    apiVersion: "mirrorhook.dev/v1alpha1",
    kind: "ClusterImageRewrite",
    metadata: { name: "x" },
    spec: { verify: true, ...extra, rules: [{ prefix: "docker.io/a", replace: "m.example/a", ...rule }] },
  });
  const errors = (value: unknown) =>
    validateObject(value).problems.filter((p) => p.severity === "error").map((p) => p.message);
  assert.deepEqual(
    errors(object({ platforms: ["linux/amd64", "linux/arm/v7"], imagePullSecrets: ["mirror-pull"] })),
    [],
  );
  assert.match(errors(object({ platforms: ["amd64"] }))[0] ?? "", /spec\.platforms\[0\].*"amd64".*os\/architecture/);
  assert.match(errors(object({ platforms: "linux/amd64" }))[0] ?? "", /spec\.platforms: expected a list/);
  assert.match(errors(object({}, { platforms: [] }))[0] ?? "", /rules\[0\]\.platforms: expected at least one/);
  assert.match(
    errors(object({}, { imagePullSecrets: ["Bad_Name"] }))[0] ?? "",
    /rules\[0\]\.imagePullSecrets\[0\].*"Bad_Name".*Secret name/,
  );
});
