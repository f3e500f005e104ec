// Tests for --explain's losers: every other rule that matched, in decision order, with why it lost.

import assert from "node:assert/strict";
import { decide } from "./engine.ts";
import { explainLosers } from "./explain.ts";
import { loadRuleTexts } from "../compat/load.ts";

const RULES = `apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata: {name: hub}
spec:
  rules:
    - prefix: docker.io
      replace: harbor.example.com/dockerhub
    - prefix: docker.io/library
      replace: harbor.example.com/official
    - match: '^docker\\.io/(.*)$'
      replace: other.example.com/$1
---
apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata: {name: top}
spec:
  priority: 5
  rules:
    - exact: nginx:1
      replace: pinned.example.com/nginx:1
---
apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata: {name: platform}
spec:
  enforced: true
  priority: -5
  rules:
    - exact: busybox:1
      replace: platform.example.com/busybox:1
---
apiVersion: mirrorhook.dev/v1alpha1
kind: ImageRewrite
metadata: {name: mine, namespace: team-a}
spec:
  rules:
    - prefix: docker.io
      replace: ecr.example.com/hub
    - match: '^docker\\.io/library/busybox:.*$'
      replace: ecr.example.com/busybox:1
`;

const loaded = loadRuleTexts([{ name: "rules.yaml", text: RULES }]);

Deno.test("explainLosers() lists every other matching rule in decision order, with why it lost", async (t) => {
  assert.deepEqual(loaded.problems.filter((p) => p.severity === "error"), []);
  const rows: { image: string; namespace: string; lines: string[] }[] = [
    {
      image: "nginx:1",
      namespace: "team-a",
      lines: [
        "also matched: ClusterImageRewrite hub, rule 1, which lost: lower priority (0 < 5)",
        "also matched: ImageRewrite team-a/mine, rule 0, which lost: lower priority (0 < 5)",
        "also matched: ClusterImageRewrite hub, rule 0, which lost: lower priority (0 < 5)",
        "also matched: ClusterImageRewrite hub, rule 2, which lost: lower priority (0 < 5)",
      ],
    },
    {
      image: "nginx:2",
      namespace: "team-b",
      lines: [
        'also matched: ClusterImageRewrite hub, rule 0, which lost: shorter prefix ("docker.io" is shorter than "docker.io/library")',
        "also matched: ClusterImageRewrite hub, rule 2, which lost: prefix rules come before match rules at one priority",
      ],
    },
    {
      image: "bitnami/redis",
      namespace: "team-a",
      lines: [
        "also matched: ClusterImageRewrite hub, rule 0, which lost: namespaced objects come before cluster-wide ones at one priority",
        "also matched: ClusterImageRewrite hub, rule 2, which lost: prefix rules come before match rules at one priority",
      ],
    },
    {
      image: "busybox:1",
      namespace: "team-a",
      lines: [
        'also matched: ClusterImageRewrite hub, rule 1, which lost: ClusterImageRewrite "platform" is enforced and decides first',
        'also matched: ImageRewrite team-a/mine, rule 0, which lost: ClusterImageRewrite "platform" is enforced and decides first',
        'also matched: ClusterImageRewrite hub, rule 0, which lost: ClusterImageRewrite "platform" is enforced and decides first',
        'also matched: ImageRewrite team-a/mine, rule 1, which lost: ClusterImageRewrite "platform" is enforced and decides first',
        'also matched: ClusterImageRewrite hub, rule 2, which lost: ClusterImageRewrite "platform" is enforced and decides first',
      ],
    },
    { image: "quay.io/a/b", namespace: "team-a", lines: [] },
  ];
  for (const row of rows) {
    await t.step(`${row.image} in ${row.namespace}`, () => {
      const context = { namespace: row.namespace };
      const decision = decide(loaded.ruleSet, row.image, { context });
      assert.deepEqual(explainLosers(loaded.ruleSet, decision, { context }), row.lines);
    });
  }
});
