// Unit tests of which rule objects in the cluster are used (the older of two conflicting objects wins).

import assert from "node:assert/strict";
import { evaluateObjects } from "./evaluate.ts";

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
