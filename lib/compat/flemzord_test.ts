// Tests for RegistryRewriteRule objects: normalization as mutating-registry-webhook does it, translation, differences.

import assert from "node:assert/strict";
import { compileRuleSet } from "../rules/compile.ts";
import { decide } from "../rules/engine.ts";
import { validateObject } from "../rules/schema.ts";
import { behaviourOf, type Position } from "./common.ts";
import { readDocuments } from "../rules/documents.ts";
import { flemzordNormalize, translateFlemzord } from "./flemzord.ts";

Deno.test("flemzordNormalize() agrees with mutating-registry-webhook's TestNormalizeImage, ports included", async (t) => {
  const rows: [string, string][] = [
    ["nginx", "docker.io/library/nginx"],
    ["nginx:latest", "docker.io/library/nginx:latest"],
    ["library/nginx", "docker.io/library/nginx"],
    ["gcr.io/project/image:tag", "gcr.io/project/image:tag"],
    ["localhost/myimage", "localhost/myimage"],
    ["localhost:5000/myimage", "localhost:5000/myimage"],
    ["public.ecr.aws/orga/jeffail/benthos", "public.ecr.aws/orga/jeffail/benthos"],
    ["docker.io/caddy:2.7.6-alpine", "docker.io/library/caddy:2.7.6-alpine"],
    ["docker.io/myorg/myimage:latest", "docker.io/myorg/myimage:latest"],
    // What the code does with registries it does not recognise:
    ["registry.example.com:5000/team/app:1", "docker.io/registry.example.com:5000/team/app:1"],
    ["10.0.0.1:5000/app", "docker.io/10.0.0.1:5000/app"],
    ["index.docker.io/library/nginx", "index.docker.io/library/nginx"],
  ];
  for (const [image, expected] of rows) await t.step(image, () => assert.equal(flemzordNormalize(image), expected));
});

function translate(text: string) {
  const { items, problems } = readDocuments(text, "rules.yaml");
  assert.deepEqual(problems, []);
  return translateFlemzord(items, "rules.yaml");
}

function ruleSetOf(translation: ReturnType<typeof translate>) {
  const objects = translation.objects.map((object) => {
    const result = validateObject(object.raw);
    assert.deepEqual(result.problems, []);
    assert.ok(result.object !== undefined);
    return result.object;
  });
  return compileRuleSet(objects).ruleSet;
}

const RULES = `apiVersion: dev.flemzord.fr/v1alpha1
kind: RegistryRewriteRule
metadata:
  name: hub
spec:
  rules:
    - match: '^docker\\.io/(.*)'
      replace: 'ecr.aws/dockerhub/$1'
    - match: '^docker\\.io/library/nginx.*'
      replace: 'special-registry.example.com/nginx'
      priority: 100
    - match: '^quay\\.io/(.*)'
      replace: 'mirror.example.com/quay/$1'
      conditions:
        namespaces: [prod]
        labels: { team: platform }
`;

Deno.test("translateFlemzord() keeps the webhook's order: priority, then object name, then rule order", () => {
  const translation = translate(RULES);
  assert.deepEqual(
    translation.objects.map((object) => [
      (object.raw["metadata"] as { name: string }).name,
      (object.raw["spec"] as { priority: number }).priority,
    ]),
    [["hub-1", 100], ["hub-2", 0], ["hub-3", 0]],
  );
  const ruleSet = ruleSetOf(translation);
  // Cases from mutating-registry-webhook's pod_mutator_test.go.
  const at = (image: string, namespace?: string, podLabels?: Record<string, string>) => {
    const decision = decide(ruleSet, image, {
      context: {
        ...(namespace === undefined ? {} : { namespace }),
        podLabels: podLabels ?? {},
      },
    });
    return decision.action === "rewrite" ? decision.output : decision.input;
  };
  assert.equal(at("nginx:latest"), "special-registry.example.com/nginx:latest");
  assert.equal(at("caddy:2.7.6-alpine"), "ecr.aws/dockerhub/library/caddy:2.7.6-alpine");
  assert.equal(at("quay.io/a/b:1", "prod", { team: "platform" }), "mirror.example.com/quay/a/b:1");
  assert.equal(at("quay.io/a/b:1", "prod", { team: "data" }), "quay.io/a/b:1");
  assert.deepEqual(translation.optOuts.map((o) => [o.kind, o.key, o.value]), [[
    "annotation",
    "rewrite-disabled",
    "true",
  ]]);
});

Deno.test("translateFlemzord() places each translated rule at its line in the source", () => {
  const translation = translate(RULES);
  const positions = translation.objects.map((object) => object.locate(["spec", "rules", 0, "replace"]));
  assert.deepEqual(positions, [{ line: 10, column: 7 }, { line: 8, column: 7 }, { line: 13, column: 7 }] as Position[]);
  assert.deepEqual(translation.objects[2]?.locate(["spec", "namespaces", 0]), { line: 15, column: 22 });
});

Deno.test("translateFlemzord() reads spec-level priority and conditions as defaults for every rule", () => {
  const translation = translate(`apiVersion: dev.flemzord.fr/v1alpha1
kind: RegistryRewriteRule
metadata: { name: staging }
spec:
  priority: 5
  conditions: { namespaces: [staging] }
  rules:
    - { match: '^docker\\.io/(.*)', replace: 'stage.example.com/$1' }
    - { match: '^quay\\.io/(.*)', replace: 'stage.example.com/quay/$1', priority: 1 }
`);
  assert.deepEqual(translation.objects.map((object) => object.raw["spec"]), [
    { priority: 5, namespaces: ["staging"], rules: [{ match: "^docker\\.io/(.*)", replace: "stage.example.com/$1" }] },
    {
      priority: 1,
      namespaces: ["staging"],
      rules: [{ match: "^quay\\.io/(.*)", replace: "stage.example.com/quay/$1" }],
    },
  ]);
});

Deno.test("translateFlemzord() reports problems in the source, each with its behaviour or code", async (t) => {
  const rows: { name: string; rules: string; found: [string, string | undefined, number][] }[] = [
    {
      name: "a pattern Go rejects",
      rules: "    - { match: '^(?=docker)(.*)', replace: 'x.example.com/$1' }",
      found: [["error", "invalid-regex", 8]],
    },
    {
      name: "a group name Go reads past",
      rules: "    - { match: '^docker\\.io/(.*)', replace: 'x.example.com/$1_mirror' }",
      found: [["warning", "go-empty-expansion", 8]],
    },
    {
      name: "an unknown field",
      rules: "    - { match: '^quay\\.io/(.*)', replace: 'x.example.com/$1', weight: 3 }",
      found: [["warning", "ignored-field", 8]],
    },
    {
      name: "an empty label value",
      rules: "    - { match: '^quay\\.io/(.*)', replace: 'x.example.com/$1', conditions: { labels: { team: '' } } }",
      found: [["warning", "empty-label-value", 8]],
    },
    {
      name: "an unanchored pattern",
      rules: "    - { match: 'docker\\.io', replace: 'mirror.example.com' }",
      // index.docker.io contains docker.io: the webhook rewrites the middle of the name.
      found: [["warning", "index-docker-io", 8], ["warning", "registry-read-as-docker-hub", 8]],
    },
    {
      name: "a pattern that needs an untagged reference",
      rules: "    - { match: '^docker\\.io/library/busybox$', replace: 'x.example.com/busybox:1.36' }",
      found: [["warning", "no-default-tag", 8]],
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      const translation = translate(`apiVersion: dev.flemzord.fr/v1alpha1
kind: RegistryRewriteRule
metadata:
  name: hub
spec:
  # rules
  rules:
${row.rules}
`);
      assert.deepEqual(
        translation.problems.map((p) => [p.severity, behaviourOf(p) ?? p.code, p.line]),
        row.found,
      );
    });
  }
});

Deno.test("translateFlemzord() warns when Go's replace-all differs from one replacement", () => {
  const translation = translate(`apiVersion: dev.flemzord.fr/v1alpha1
kind: RegistryRewriteRule
metadata: { name: io }
spec:
  rules:
    - { match: 'o', replace: '0' }
`);
  assert.ok(translation.problems.some((p) => behaviourOf(p) === "replace-all"), JSON.stringify(translation.problems));
});

Deno.test("translateFlemzord() reads Lists of RegistryRewriteRules", () => {
  const { items } = readDocuments(
    `apiVersion: v1
kind: List
items:
  - apiVersion: dev.flemzord.fr/v1alpha1
    kind: RegistryRewriteRule
    metadata: { name: a }
    spec: { rules: [{ match: '^docker\\.io/(.*)', replace: 'x.example.com/$1' }] }
`,
    "list.yaml",
  );
  const translation = translateFlemzord(items, "list.yaml");
  assert.deepEqual(translation.objects.map((object) => object.locate(["spec", "rules", 0, "match"])), [{
    line: 7,
    column: 23,
  }]);
});
