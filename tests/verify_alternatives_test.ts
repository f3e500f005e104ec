// Ordered alternatives (`to:`) on verified rules against two real registries (Debian's docker-registry): the first
// target that has the image wins, the second is used when the first lacks it, none → onMissing; said in warnings,
// logs and metrics; an image already on any target is left alone.

import assert from "node:assert/strict";
import jsonpatch from "fast-json-patch";
import { createWebhookHandler } from "../lib/server/handler.ts";
import { createMetrics } from "../lib/server/metrics.ts";
import { loadRuleTexts } from "../lib/compat/load.ts";
import { createVerifyMetrics } from "../lib/verify/metrics.ts";
import { Verifier } from "../lib/verify/verifier.ts";
import { mutatePod } from "../lib/mutate/pod.ts";
import { run } from "../lib/cli/program.ts";
import { registryInstalled, startRegistry } from "./support/registry.ts";
import { pushPlatformImage } from "./support/images.ts";
import { memoryLogger } from "./support/webhook.ts";
import { admissionReview } from "./support/admission_review.ts";

const ignore = Deno.env.get("MIRRORHOOK_SKIP_REGISTRY") === "1" && !registryInstalled();

function rules(first: string, second: string, onMissing: "keep" | "rewrite"): string {
  return `apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: mirrors
spec:
  verify: true
  onMissing: ${onMissing}
  rules:
    - prefix: docker.io/team
      to: [${first}/team, ${second}/hub/team]
`;
}

function podOf(images: string[], annotations: Record<string, string> = {}) {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "p", namespace: "default", annotations },
    spec: { containers: images.map((image, i) => ({ name: `c${i}`, image })) },
  };
}

async function admitted(
  handle: (request: Request) => Promise<Response>,
  images: string[],
): Promise<{ images: string[]; warnings: string[]; pod: unknown; patched: boolean }> {
  const object = podOf(images);
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
    pod = jsonpatch.applyPatch(structuredClone(pod), JSON.parse(atob(response.patch)), true, false).newDocument;
  }
  const containers = (pod as { spec: { containers: { image: string }[] } }).spec.containers;
  return {
    images: containers.map((c) => c.image),
    warnings: response.warnings ?? [],
    pod,
    patched: typeof response.patch === "string",
  };
}

Deno.test({
  name: "ordered alternatives: the first target whose registry has the image wins",
  ignore,
  fn: async (t) => {
    await using one = await startRegistry();
    await using two = await startRegistry();
    // both: on both mirrors; second: only on the second; none: on neither.
    await pushPlatformImage(one.url, "team/both", "v1");
    await pushPlatformImage(two.url, "hub/team/both", "v1");
    await pushPlatformImage(two.url, "hub/team/second", "v1", { seed: 7 });
    const metrics = createMetrics({ defaultMetrics: false });
    const verifyMetrics = createVerifyMetrics(metrics.registry);
    const verifier = await Verifier.create({ insecureRegistries: [one.host, two.host], metrics: verifyMetrics });
    const logs = memoryLogger();
    const handlerFor = (onMissing: "keep" | "rewrite") => {
      const loaded = loadRuleTexts([{ name: "r.yaml", text: rules(one.host, two.host, onMissing) }]);
      assert.deepEqual(loaded.problems.filter((p) => p.severity === "error"), []);
      return {
        ruleSet: loaded.ruleSet,
        handle: createWebhookHandler({
          rules: () => loaded.ruleSet,
          metrics,
          logger: logs.logger,
          verifier,
          verifyDeadlineMs: 5000,
          verifyDecisions: verifyMetrics.decisions,
          verifyChosen: verifyMetrics.chosen,
        }),
      };
    };
    const keep = handlerFor("keep");
    try {
      await t.step("on both mirrors: the first wins", async () => {
        const result = await admitted(keep.handle, ["team/both:v1"]);
        assert.deepEqual(result.images, [`${one.host}/team/both:v1`]);
        assert.ok(
          result.warnings.some((w) => w.endsWith("(ClusterImageRewrite mirrors, rule 0; verified in the registry)")),
        );
      });

      await t.step("only on the second: the second is used, and the first's absence is said", async () => {
        const result = await admitted(keep.handle, ["team/second:v1"]);
        assert.deepEqual(result.images, [`${two.host}/hub/team/second:v1`]);
        assert.ok(
          result.warnings.some((w) =>
            w.includes(
              `to ${two.host}/hub/team/second:v1 (ClusterImageRewrite mirrors, rule 0; verified in the registry; skipped ${one.host}/team/second:v1 is not in the registry)`,
            )
          ),
          result.warnings.join("\n"),
        );
        const line = logs.records.map((r) => JSON.stringify(r.properties)).find((l) =>
          l.includes("team/second") && l.includes("targetPosition")
        );
        assert.ok(line !== undefined && line.includes('"targetPosition":1'), logs.messages().join("\n"));
      });

      await t.step("on neither: onMissing keep keeps the original, naming both", async () => {
        const result = await admitted(keep.handle, ["team/none:v1"]);
        assert.deepEqual(result.images, ["team/none:v1"]);
        assert.ok(
          result.warnings.some((w) =>
            w.startsWith("mirrorhook: kept team/none:v1: no target has it: ") &&
            w.includes(
              `${one.host}/team/none:v1 is not in the registry; ${two.host}/hub/team/none:v1 is not in the registry`,
            )
          ),
          result.warnings.join("\n"),
        );
      });

      await t.step("on neither: onMissing rewrite rewrites to the first", async () => {
        const result = await admitted(handlerFor("rewrite").handle, ["team/none:v1"]);
        assert.deepEqual(result.images, [`${one.host}/team/none:v1`]);
        assert.ok(result.warnings.some((w) => w.includes("although no target has it")));
      });

      await t.step("mirrorhook rewrite --verify --explain chooses the same way and says why", async () => {
        const dir = await Deno.makeTempDir();
        try {
          await Deno.writeTextFile(`${dir}/r.yaml`, rules(one.host, two.host, "keep"));
          let out = "";
          let err = "";
          const code = await run(
            [
              "rewrite",
              "-r",
              `${dir}/r.yaml`,
              "--verify",
              "--insecure-registry",
              one.host,
              "--insecure-registry",
              two.host,
              "--explain",
              "team/both:v1",
              "team/second:v1",
              "team/none:v1",
            ],
            { stdout: (text) => void (out += text), stderr: (text) => void (err += text), readText: Deno.readTextFile },
          );
          assert.equal(code, 0, err);
          const results = out.split("\n").filter((line) => line !== "" && !line.startsWith(" "));
          assert.deepEqual(results, [`${one.host}/team/both:v1`, `${two.host}/hub/team/second:v1`, "team/none:v1"]);
          assert.ok(
            out.includes(
              `final: rewrote team/second:v1 to ${two.host}/hub/team/second:v1: present in the registry; skipped ${one.host}/team/second:v1 is not in the registry`,
            ),
            out,
          );
          assert.ok(out.includes("final: kept team/none:v1: no target has it: "), out);
        } finally {
          await Deno.remove(dir, { recursive: true });
        }
      });

      await t.step("metrics count the chosen position", async () => {
        const values = (await verifyMetrics.chosen.get()).values;
        const count = (position: string) => values.find((v) => v.labels["position"] === position)?.value ?? 0;
        assert.equal(count("0"), 2); // both (first), none with onMissing: rewrite (to the first)
        assert.equal(count("1"), 1); // second
      });

      await t.step(
        "idempotent: admitting the patched Pod again, or a Pod already on the second, changes nothing",
        async () => {
          const first = await admitted(keep.handle, ["team/second:v1"]);
          const again = mutatePod(first.pod, { ruleSet: keep.ruleSet, verified: () => ({ status: "missing" }) });
          assert.deepEqual(again.patch, []);
          // The prefix docker.io/team does not match the mirrors' names; a match rule that would is covered by the
          // original-images annotation above, and an image written as the second target is no candidate at all.
          const direct = mutatePod(podOf([`${two.host}/hub/team/second:v1`]), {
            ruleSet: keep.ruleSet,
            verified: () => ({ status: "missing" }),
          });
          assert.deepEqual(direct.patch, []);
        },
      );
    } finally {
      await verifier.close();
    }
  },
});

Deno.test("ordered alternatives: without verify the first target is used; a match rule's own targets are left alone", () => {
  const loaded = loadRuleTexts([{
    name: "r.yaml",
    text: `apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: plain
spec:
  rules:
    - match: '^(?:docker\\.io|a\\.example|b\\.example)/team/(.*)$'
      to: ['a.example/team/$1', 'b.example/team/$1']
`,
  }]);
  assert.deepEqual(loaded.problems.filter((p) => p.severity === "error"), []);
  const ruleSet = loaded.ruleSet;
  const images = (pod: unknown) => (pod as { spec: { containers: { image: string }[] } }).spec.containers;
  const pod = podOf(["team/app:1", "a.example/team/app:1", "b.example/team/app:1"]);
  const result = mutatePod(pod, { ruleSet });
  const patched = jsonpatch.applyPatch(structuredClone(pod), result.patch as jsonpatch.Operation[], true, false)
    .newDocument;
  // The first is rewritten to the first target; images already on either target are not touched.
  assert.deepEqual(images(patched).map((c) => c.image), [
    "a.example/team/app:1",
    "a.example/team/app:1",
    "b.example/team/app:1",
  ]);
  assert.deepEqual(mutatePod(patched, { ruleSet }).patch, []);
});
