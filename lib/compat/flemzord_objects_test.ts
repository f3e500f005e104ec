// Unit tests of RegistryRewriteRules read from the cluster: translated apart from ClusterImageRewrites, broken ones left out.

import assert from "node:assert/strict";
import { evaluateRegistryRewriteRules } from "./flemzord_objects.ts";

type Json = Record<string, unknown>;

function registryRewriteRule(name: string, rules: unknown[]): Json {
  return {
    apiVersion: "dev.flemzord.fr/v1alpha1",
    kind: "RegistryRewriteRule",
    metadata: { name, generation: 1, creationTimestamp: "2026-01-01T00:00:00Z", resourceVersion: "1" },
    spec: { rules },
  };
}

const HUB = { match: "^docker\\.io/(.*)$", replace: "harbor.example.com/dockerhub/$1" };
const QUAY = { match: "^quay\\.io/(.*)$", replace: "quay-cache.example.com/$1" };

Deno.test("evaluateRegistryRewriteRules: translations are named apart from ClusterImageRewrites", async (t) => {
  await t.step("one object per RegistryRewriteRule, prefixed", () => {
    const { used, verdicts, optOuts } = evaluateRegistryRewriteRules([registryRewriteRule("hub", [HUB, QUAY])]);
    assert.deepEqual(used.map((entry) => [entry.object.kind, entry.object.metadata.name, entry.owner]), [
      ["ClusterImageRewrite", "flemzord-hub", "RegistryRewriteRule//hub"],
    ]);
    assert.equal(verdicts.get("RegistryRewriteRule//hub")?.reason, "Valid");
    assert.equal(verdicts.get("RegistryRewriteRule//hub")?.rules, 2);
    assert.deepEqual(optOuts, [{ kind: "annotation", key: "rewrite-disabled", value: "true" }]);
  });
  await t.step("a split RegistryRewriteRule: every part is owned by it", () => {
    const { used, verdicts } = evaluateRegistryRewriteRules([
      registryRewriteRule("hub", [HUB, { ...QUAY, priority: 5 }]),
      registryRewriteRule("hub-1", [{ match: "^gcr\\.io/(.*)$", replace: "gcr-cache.example.com/$1" }]),
    ]);
    const owners = Object.fromEntries(used.map((entry) => [entry.object.metadata.name, entry.owner]));
    assert.equal(Object.keys(owners).length, 3);
    assert.ok(Object.keys(owners).every((name) => name.startsWith("flemzord-hub")));
    assert.equal(owners["flemzord-hub-1"], "RegistryRewriteRule//hub-1");
    assert.equal(Object.values(owners).filter((owner) => owner === "RegistryRewriteRule//hub").length, 2);
    assert.equal(verdicts.get("RegistryRewriteRule//hub")?.rules, 2);
  });
  await t.step("a real ClusterImageRewrite of the translated name stays; the RegistryRewriteRule is not used", () => {
    const { used, verdicts } = evaluateRegistryRewriteRules(
      [registryRewriteRule("hub", [HUB]), registryRewriteRule("quay", [QUAY])],
      new Set(["flemzord-hub"]),
    );
    assert.deepEqual(used.map((entry) => entry.object.metadata.name), ["flemzord-quay"]);
    const verdict = verdicts.get("RegistryRewriteRule//hub");
    assert.equal(verdict?.reason, "Conflict");
    assert.match(verdict?.message ?? "", /flemzord-hub/);
  });
});

Deno.test("evaluateRegistryRewriteRules: a broken RegistryRewriteRule is not used, and the others are", () => {
  const broken = registryRewriteRule("broken", [QUAY, { match: "^gcr\\.io/(unclosed", replace: "gcr.example.com/$1" }]);
  const good = registryRewriteRule("hub", [HUB]);
  const first = evaluateRegistryRewriteRules([broken, good]);
  assert.deepEqual(first.used.map((entry) => entry.object.metadata.name), ["flemzord-hub"]);
  assert.equal(first.verdicts.get("RegistryRewriteRule//broken")?.reason, "InvalidRule");
  assert.ok(first.problems.get("RegistryRewriteRule//broken")?.some((problem) => problem.code === "invalid-regex"));
  assert.ok(first.problems.get("RegistryRewriteRule//hub")?.every((problem) => problem.severity === "warning"));
  // Mutating-registry-webhook's opt-out holds while any RegistryRewriteRule exists, even a broken one.
  assert.equal(evaluateRegistryRewriteRules([broken]).optOuts.length, 1);
  assert.equal(evaluateRegistryRewriteRules([]).optOuts.length, 0);
  // The order objects arrive in does not matter.
  const second = evaluateRegistryRewriteRules([good, broken]);
  assert.deepEqual(second.used.map((entry) => entry.object.spec), first.used.map((entry) => entry.object.spec));
  assert.deepEqual([...second.verdicts.keys()].sort(), [...first.verdicts.keys()].sort());
});
