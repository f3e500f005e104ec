// `mirror: true` on verified rules, admission side, with two real registries (Debian's docker-registry): a missing
// image is copied into the first target in the background, the next admission rewrites to it, a burst of admissions
// starts one copy, and a dryRun request starts none.

import assert from "node:assert/strict";
import jsonpatch from "fast-json-patch";
import { createWebhookHandler } from "../lib/server/handler.ts";
import { createMetrics } from "../lib/server/metrics.ts";
import { loadRuleTexts } from "../lib/compat/load.ts";
import { Verifier } from "../lib/verify/verifier.ts";
import { Transport } from "../lib/verify/transport.ts";
import { Mirrorer, type MirrorEvent } from "../lib/mirror/mirrorer.ts";
import { OnDemandMirror } from "../lib/mirror/on_demand.ts";
import { registryInstalled, startRegistry } from "./support/registry.ts";
import { head, pushPlatformImage } from "./support/images.ts";
import { memoryLogger } from "./support/webhook.ts";
import { admissionReview } from "./support/admission_review.ts";

const ignore = Deno.env.get("MIRRORHOOK_SKIP_REGISTRY") === "1" && !registryInstalled();

async function admitted(
  handle: (request: Request) => Promise<Response>,
  image: string,
  dryRun = false,
): Promise<{ image: string; warnings: string[] }> {
  const object = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "p", namespace: "default" },
    spec: { containers: [{ name: "c", image }] },
  };
  const res = await handle(
    new Request("https://x/mutate", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(admissionReview({ namespace: "default", dryRun, object })),
    }),
  );
  const { response } = await res.json();
  let pod: unknown = object;
  if (typeof response.patch === "string") {
    pod = jsonpatch.applyPatch(structuredClone(object), JSON.parse(atob(response.patch)), true, false).newDocument;
  }
  return {
    image: (pod as { spec: { containers: { image: string }[] } }).spec.containers[0]?.image ?? "",
    warnings: response.warnings ?? [],
  };
}

Deno.test({
  name: "mirror: true copies a missing image into the first target; later admissions rewrite to it",
  ignore,
  fn: async (t) => {
    await using source = await startRegistry();
    await using target = await startRegistry();
    const pushed = await pushPlatformImage(source.url, "team/app", "v1", {
      platforms: ["linux/amd64", "linux/arm64"],
    });
    await pushPlatformImage(source.url, "team/dry", "v1", { seed: 9 });
    const transport = await Transport.create({ insecure: [source.host, target.host] });
    const events: MirrorEvent[] = [];
    const mirrorer = new Mirrorer({ transport, onEvent: (event) => void events.push(event) });
    const verifier = await Verifier.create({ insecureRegistries: [source.host, target.host] });
    const onDemand = new OnDemandMirror(mirrorer, { onCopied: (copied) => verifier.forget(copied) });
    const loaded = loadRuleTexts([{
      name: "r.yaml",
      text: `apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: filling-mirror
spec:
  verify: true
  mirror: true
  rules:
    - prefix: ${source.host}/team
      replace: ${target.host}/team
`,
    }]);
    assert.deepEqual(loaded.problems.filter((p) => p.severity === "error"), []);
    const handle = createWebhookHandler({
      rules: () => loaded.ruleSet,
      metrics: createMetrics({ defaultMetrics: false }),
      logger: memoryLogger().logger,
      verifier,
      verifyDeadlineMs: 5000,
      mirror: onDemand,
    });
    const started = () => events.filter((event) => event.type === "started").length;
    try {
      await t.step("a dryRun admission starts no copy", async () => {
        const result = await admitted(handle, `${source.host}/team/dry:v1`, true);
        assert.equal(result.image, `${source.host}/team/dry:v1`);
        await onDemand.idle();
        assert.equal(started(), 0);
        assert.equal(mirrorer.pending, 0);
        assert.equal((await head(target.url, "/v2/team/dry/manifests/v1")).status, 404);
      });

      await t.step("a burst of 20 admissions of a missing image keeps it and starts one copy", async () => {
        const results = await Promise.all(
          Array.from({ length: 20 }, () => admitted(handle, `${source.host}/team/app:v1`)),
        );
        for (const result of results) assert.equal(result.image, `${source.host}/team/app:v1`);
        await onDemand.idle();
        assert.equal(started(), 1);
        assert.ok(events.some((event) => event.type === "finished"), JSON.stringify(events));
      });

      await t.step("the copy has the source's digest, and the next admission rewrites to it", async () => {
        const response = await head(target.url, "/v2/team/app/manifests/v1");
        assert.equal(response.status, 200);
        assert.equal(response.digest, pushed.digest);
        const result = await admitted(handle, `${source.host}/team/app:v1`);
        assert.equal(result.image, `${target.host}/team/app:v1`);
      });
    } finally {
      await onDemand.idle();
      await verifier.close();
      transport.close();
    }
  },
});
