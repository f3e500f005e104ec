// Unit tests of the CRD source's pure parts: which objects are used (older wins), and the status they get.

import assert from "node:assert/strict";
import {
  desiredStatus,
  evaluateObjects,
  evaluateRegistryRewriteRules,
  type ObjectVerdict,
  sameStatus,
} from "./kube_source.ts";

type Json = Record<string, unknown>;

function object(
  kind: "ClusterImageRewrite" | "ImageRewrite",
  name: string,
  created: string,
  rules: unknown[],
  namespace?: string,
): Json {
  return {
    apiVersion: "mirrorhook.dev/v1alpha1",
    kind,
    metadata: {
      name,
      ...(namespace === undefined ? {} : { namespace }),
      generation: 1,
      creationTimestamp: created,
      resourceVersion: "1",
    },
    spec: { rules },
  };
}

const exact = (replace: string) => [{ exact: "ghcr.io/a/b:1", replace }];

Deno.test("evaluateObjects: the older of two conflicting objects is used", async (t) => {
  const cases: { name: string; objects: Json[]; used: string[]; conflicted: string; older: string }[] = [
    {
      name: "older by creationTimestamp, whatever the order given",
      objects: [
        object("ClusterImageRewrite", "a-newer", "2026-01-02T00:00:00Z", exact("one.example.com/b:1")),
        object("ClusterImageRewrite", "z-older", "2026-01-01T00:00:00Z", exact("two.example.com/b:1")),
      ],
      used: ["z-older"],
      conflicted: "ClusterImageRewrite//a-newer",
      older: 'ClusterImageRewrite "z-older"',
    },
    {
      name: "same second: namespace/name decides",
      objects: [
        object("ImageRewrite", "b", "2026-01-01T00:00:00Z", exact("one.example.com/b:1"), "team"),
        object("ImageRewrite", "a", "2026-01-01T00:00:00Z", exact("two.example.com/b:1"), "team"),
      ],
      used: ["a"],
      conflicted: "ImageRewrite/team/b",
      older: 'ImageRewrite "team/a"',
    },
  ];
  for (const row of cases) {
    await t.step(row.name, () => {
      const { used, verdicts } = evaluateObjects(row.objects);
      assert.deepEqual(used.map((o) => o.metadata.name), row.used);
      const verdict = verdicts.get(row.conflicted);
      assert.equal(verdict?.reason, "Conflict");
      assert.equal(verdict?.rules, 0);
      assert.ok(verdict?.message.includes(row.older), verdict?.message);
    });
  }
});

Deno.test("evaluateObjects: objects that cannot overlap or agree are both used", async (t) => {
  const cases: { name: string; objects: Json[] }[] = [
    {
      name: "ImageRewrites in different namespaces",
      objects: [
        object("ImageRewrite", "a", "2026-01-01T00:00:00Z", exact("one.example.com/b:1"), "team-a"),
        object("ImageRewrite", "b", "2026-01-02T00:00:00Z", exact("two.example.com/b:1"), "team-b"),
      ],
    },
    {
      name: "same decision",
      objects: [
        object("ClusterImageRewrite", "a", "2026-01-01T00:00:00Z", exact("one.example.com/b:1")),
        object("ClusterImageRewrite", "b", "2026-01-02T00:00:00Z", exact("one.example.com/b:1")),
      ],
    },
  ];
  for (const row of cases) {
    await t.step(row.name, () => {
      const { used, verdicts } = evaluateObjects(row.objects);
      assert.equal(used.length, 2);
      assert.ok([...verdicts.values()].every((verdict) => verdict.reason === "Valid"));
    });
  }
});

Deno.test("evaluateObjects: an invalid object is not used and its verdict names the rule", () => {
  const { used, verdicts } = evaluateObjects([
    object("ClusterImageRewrite", "bad", "2026-01-01T00:00:00Z", [
      { prefix: "docker.io", replace: "harbor.example.com/hub" },
      { match: "(", replace: "x.example.com/y" },
    ]),
  ]);
  assert.equal(used.length, 0);
  const verdict = verdicts.get("ClusterImageRewrite//bad");
  assert.equal(verdict?.reason, "InvalidRule");
  assert.match(verdict?.message ?? "", /rule 1\b/);
});

Deno.test("desiredStatus keeps lastTransitionTime while Ready keeps its value", async (t) => {
  const valid: ObjectVerdict = {
    key: "k",
    label: "l",
    generation: 2,
    reason: "Valid",
    message: "1 rule(s) in force",
    rules: 1,
  };
  const now = new Date("2026-05-01T12:00:00.250Z");
  const previous = (status: string) => ({
    conditions: [
      { type: "Other", status: "True" },
      { type: "Ready", status, lastTransitionTime: "2026-01-01T00:00:00Z", reason: "X", message: "old" },
    ],
  });
  const cases: { name: string; current: unknown; verdict: ObjectVerdict; transition: string }[] = [
    { name: "no status yet", current: undefined, verdict: valid, transition: "2026-05-01T12:00:00Z" },
    { name: "True stays True", current: previous("True"), verdict: valid, transition: "2026-01-01T00:00:00Z" },
    { name: "False becomes True", current: previous("False"), verdict: valid, transition: "2026-05-01T12:00:00Z" },
    {
      name: "False stays False with another reason",
      current: previous("False"),
      verdict: { ...valid, reason: "Conflict", rules: 0 },
      transition: "2026-01-01T00:00:00Z",
    },
  ];
  for (const row of cases) {
    await t.step(row.name, () => {
      const status = desiredStatus(row.current, row.verdict, now);
      const conditions = status["conditions"] as Json[];
      const ready = conditions.find((condition) => condition["type"] === "Ready");
      assert.equal(ready?.["lastTransitionTime"], row.transition);
      assert.equal(ready?.["observedGeneration"], 2);
      assert.equal(status["observedGeneration"], 2);
      assert.equal(status["rules"], row.verdict.rules);
      if (row.current !== undefined) assert.ok(conditions.some((condition) => condition["type"] === "Other"));
    });
  }
});

Deno.test("sameStatus ignores key order, as the API server re-orders keys", () => {
  assert.ok(sameStatus({ a: 1, b: { c: [1, { d: 2, e: 3 }] } }, { b: { c: [1, { e: 3, d: 2 }] }, a: 1 }));
  assert.ok(!sameStatus({ a: 1 }, { a: 2 }));
  assert.ok(!sameStatus(undefined, { a: 1 }));
});

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
