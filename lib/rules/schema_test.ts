// Tests for structural validation of rule objects: every error with its code, path and rule index.

import assert from "node:assert/strict";
import type { Problem } from "./problem.ts";
import { API_VERSION, validateObject } from "./schema.ts";

type Expected = { code: Problem["code"]; path: string; rule?: number };

const RULE = { prefix: "docker.io", replace: "cache.example.com/hub" };

function cluster(spec: unknown, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { apiVersion: API_VERSION, kind: "ClusterImageRewrite", metadata: { name: "hub" }, spec, ...extra };
}

function namespaced(spec: unknown, metadata: Record<string, unknown> = { name: "hub", namespace: "team" }) {
  return { apiVersion: API_VERSION, kind: "ImageRewrite", metadata, spec };
}

function withRule(rule: unknown): Record<string, unknown> {
  return cluster({ rules: [rule] });
}

function withSelector(selector: unknown): Record<string, unknown> {
  return cluster({ podSelector: selector, rules: [RULE] });
}

function summarize(problems: readonly Problem[], severity: Problem["severity"]): Expected[] {
  return problems
    .filter((problem) => problem.severity === severity)
    .map((problem) => ({
      code: problem.code,
      path: problem.path,
      ...(problem.rule === undefined ? {} : { rule: problem.rule }),
    }))
    .sort((a, b) => `${a.path} ${a.code}`.localeCompare(`${b.path} ${b.code}`));
}

function sorted(expected: Expected[]): Expected[] {
  return [...expected].sort((a, b) => `${a.path} ${a.code}`.localeCompare(`${b.path} ${b.code}`));
}

const INVALID: { name: string; input: unknown; errors: Expected[] }[] = [
  // Not an object at all.
  { name: "a string", input: "hello", errors: [{ code: "not-an-object", path: "" }] },
  { name: "null", input: null, errors: [{ code: "not-an-object", path: "" }] },
  { name: "a list", input: [RULE], errors: [{ code: "not-an-object", path: "" }] },
  // Top level.
  {
    name: "apiVersion mirrorhook.dev/v1",
    input: cluster({ rules: [RULE] }, { apiVersion: "mirrorhook.dev/v1" }),
    errors: [{ code: "invalid-value", path: "apiVersion" }],
  },
  {
    name: "apiVersion missing",
    input: cluster({ rules: [RULE] }, { apiVersion: undefined }),
    errors: [{ code: "invalid-value", path: "apiVersion" }],
  },
  {
    name: "kind ConfigMap",
    input: cluster({ rules: [RULE] }, { kind: "ConfigMap" }),
    errors: [{ code: "unknown-kind", path: "kind" }],
  },
  {
    name: "kind missing",
    input: cluster({ rules: [RULE] }, { kind: undefined }),
    errors: [{ code: "unknown-kind", path: "kind" }],
  },
  {
    name: "unknown top-level field data",
    input: cluster({ rules: [RULE] }, { data: {} }),
    errors: [{ code: "unknown-field", path: "data" }],
  },
  // metadata.
  {
    name: "metadata missing",
    input: cluster({ rules: [RULE] }, { metadata: undefined }),
    errors: [{ code: "required", path: "metadata" }],
  },
  {
    name: "metadata a string",
    input: cluster({ rules: [RULE] }, { metadata: "hub" }),
    errors: [{ code: "type", path: "metadata" }],
  },
  {
    name: "metadata.name missing",
    input: cluster({ rules: [RULE] }, { metadata: { labels: { a: "b" } } }),
    errors: [{ code: "required", path: "metadata.name" }],
  },
  {
    name: "metadata.name a number",
    input: cluster({ rules: [RULE] }, { metadata: { name: 42 } }),
    errors: [{ code: "type", path: "metadata.name" }],
  },
  {
    name: "metadata.name Docker_Hub",
    input: cluster({ rules: [RULE] }, { metadata: { name: "Docker_Hub" } }),
    errors: [{ code: "invalid-value", path: "metadata.name" }],
  },
  {
    name: "metadata.name 254 characters",
    input: cluster({ rules: [RULE] }, { metadata: { name: "a".repeat(254) } }),
    errors: [{ code: "invalid-value", path: "metadata.name" }],
  },
  {
    name: "ImageRewrite without namespace",
    input: namespaced({ rules: [RULE] }, { name: "hub" }),
    errors: [{ code: "required", path: "metadata.namespace" }],
  },
  {
    name: "ImageRewrite namespace Team_A",
    input: namespaced({ rules: [RULE] }, { name: "hub", namespace: "Team_A" }),
    errors: [{ code: "invalid-value", path: "metadata.namespace" }],
  },
  {
    name: "ImageRewrite namespace 64 characters",
    input: namespaced({ rules: [RULE] }, { name: "hub", namespace: "a".repeat(64) }),
    errors: [{ code: "invalid-value", path: "metadata.namespace" }],
  },
  {
    name: "ImageRewrite namespace a number",
    input: namespaced({ rules: [RULE] }, { name: "hub", namespace: 7 }),
    errors: [{ code: "type", path: "metadata.namespace" }],
  },
  // spec.
  { name: "spec missing", input: cluster(undefined), errors: [{ code: "required", path: "spec" }] },
  { name: "spec a list", input: cluster([RULE]), errors: [{ code: "type", path: "spec" }] },
  {
    name: "unknown spec field prioriti",
    input: cluster({ prioriti: 1, rules: [RULE] }),
    errors: [{ code: "unknown-field", path: "spec.prioriti" }],
  },
  {
    name: "priority a string",
    input: cluster({ priority: "10", rules: [RULE] }),
    errors: [{ code: "type", path: "spec.priority" }],
  },
  {
    name: "priority 1.5",
    input: cluster({ priority: 1.5, rules: [RULE] }),
    errors: [{ code: "type", path: "spec.priority" }],
  },
  {
    name: "priority 2^31",
    input: cluster({ priority: 2 ** 31, rules: [RULE] }),
    errors: [{ code: "type", path: "spec.priority" }],
  },
  {
    name: "priority -2^31-1",
    input: cluster({ priority: -(2 ** 31) - 1, rules: [RULE] }),
    errors: [{ code: "type", path: "spec.priority" }],
  },
  {
    name: "namespaces a string",
    input: cluster({ namespaces: "canary", rules: [RULE] }),
    errors: [{ code: "type", path: "spec.namespaces" }],
  },
  {
    name: "namespaces [canary, Prod]",
    input: cluster({ namespaces: ["canary", "Prod"], rules: [RULE] }),
    errors: [{ code: "invalid-value", path: "spec.namespaces[1]" }],
  },
  {
    name: "namespaces on ImageRewrite",
    input: namespaced({ namespaces: ["team"], rules: [RULE] }),
    errors: [{ code: "invalid-value", path: "spec.namespaces" }],
  },
  {
    name: "namespaceSelector on ImageRewrite",
    input: namespaced({ namespaceSelector: { matchLabels: { env: "prod" } }, rules: [RULE] }),
    errors: [{ code: "invalid-value", path: "spec.namespaceSelector" }],
  },
  // spec.rules.
  { name: "rules missing", input: cluster({ priority: 1 }), errors: [{ code: "required", path: "spec.rules" }] },
  { name: "rules an object", input: cluster({ rules: RULE }), errors: [{ code: "type", path: "spec.rules" }] },
  { name: "rules empty", input: cluster({ rules: [] }), errors: [{ code: "required", path: "spec.rules" }] },
  { name: "rule a string", input: withRule("docker.io"), errors: [{ code: "type", path: "spec.rules[0]", rule: 0 }] },
  {
    name: "rule with unknown field regex",
    input: withRule({ ...RULE, regex: "x" }),
    errors: [{ code: "unknown-field", path: "spec.rules[0].regex", rule: 0 }],
  },
  {
    name: "rule with none of exact/prefix/match",
    input: withRule({ replace: "cache.example.com/hub" }),
    errors: [{ code: "rule-kind", path: "spec.rules[0]", rule: 0 }],
  },
  {
    name: "rule with exact and prefix",
    input: withRule({ exact: "nginx", prefix: "docker.io", replace: "cache.example.com/hub" }),
    errors: [{ code: "rule-kind", path: "spec.rules[0]", rule: 0 }],
  },
  {
    name: "rule with exact, prefix and match",
    input: withRule({ exact: "nginx", prefix: "docker.io", match: "^x$", replace: "cache.example.com/hub" }),
    errors: [{ code: "rule-kind", path: "spec.rules[0]", rule: 0 }],
  },
  {
    name: "rule with exact a number",
    input: withRule({ exact: 5, replace: "cache.example.com/hub" }),
    errors: [{ code: "type", path: "spec.rules[0].exact", rule: 0 }],
  },
  {
    name: "rule with empty prefix",
    input: withRule({ prefix: "", replace: "cache.example.com/hub" }),
    errors: [{ code: "invalid-value", path: "spec.rules[0].prefix", rule: 0 }],
  },
  {
    name: "rule with keep and replace",
    input: withRule({ ...RULE, keep: true }),
    errors: [{ code: "keep-and-replace", path: "spec.rules[0]", rule: 0 }],
  },
  {
    name: "rule with neither keep nor replace",
    input: withRule({ prefix: "docker.io" }),
    errors: [{ code: "required", path: "spec.rules[0].replace", rule: 0 }],
  },
  {
    name: "rule with keep false and no replace",
    input: withRule({ prefix: "docker.io", keep: false }),
    errors: [{ code: "required", path: "spec.rules[0].replace", rule: 0 }],
  },
  {
    name: "rule with keep yes",
    input: withRule({ prefix: "docker.io", keep: "yes" }),
    errors: [
      { code: "type", path: "spec.rules[0].keep", rule: 0 },
      { code: "required", path: "spec.rules[0].replace", rule: 0 },
    ],
  },
  {
    name: "rule with replace a list",
    input: withRule({ prefix: "docker.io", replace: ["a"] }),
    errors: [{ code: "type", path: "spec.rules[0].replace", rule: 0 }],
  },
  {
    name: "rule with empty replace",
    input: withRule({ prefix: "docker.io", replace: "" }),
    errors: [{ code: "invalid-replacement", path: "spec.rules[0].replace", rule: 0 }],
  },
  {
    name: "on original on an exact rule",
    input: withRule({ exact: "nginx", replace: "cache.example.com/nginx", on: "original" }),
    errors: [{ code: "invalid-value", path: "spec.rules[0].on", rule: 0 }],
  },
  {
    name: "on original on a prefix rule",
    input: withRule({ ...RULE, on: "original" }),
    errors: [{ code: "invalid-value", path: "spec.rules[0].on", rule: 0 }],
  },
  {
    name: "on raw on a match rule",
    input: withRule({ match: "^x$", replace: "cache.example.com/x", on: "raw" }),
    errors: [{ code: "invalid-value", path: "spec.rules[0].on", rule: 0 }],
  },
  {
    name: "error in rule 2 of 3",
    input: cluster({ rules: [RULE, RULE, { prefix: "docker.io" }] }),
    errors: [{ code: "required", path: "spec.rules[2].replace", rule: 2 }],
  },
  // Verification.
  {
    name: "rule with verify yes",
    input: withRule({ ...RULE, verify: "yes" }),
    errors: [{ code: "type", path: "spec.rules[0].verify", rule: 0 }],
  },
  {
    name: "rule with onMissing fail",
    input: withRule({ ...RULE, verify: true, onMissing: "fail" }),
    errors: [{ code: "invalid-value", path: "spec.rules[0].onMissing", rule: 0 }],
  },
  {
    name: "spec.verify a string",
    input: cluster({ verify: "true", rules: [RULE] }),
    errors: [{ code: "type", path: "spec.verify" }],
  },
  {
    name: "spec.onMissing skip",
    input: cluster({ verify: true, onMissing: "skip", rules: [RULE] }),
    errors: [{ code: "invalid-value", path: "spec.onMissing" }],
  },
  {
    name: "spec.onMissing a boolean",
    input: cluster({ verify: true, onMissing: true, rules: [RULE] }),
    errors: [{ code: "invalid-value", path: "spec.onMissing" }],
  },
  // Selectors.
  {
    name: "podSelector a string",
    input: withSelector("app=web"),
    errors: [{ code: "type", path: "spec.podSelector" }],
  },
  {
    name: "podSelector with unknown field matchLabel",
    input: withSelector({ matchLabel: { app: "web" } }),
    errors: [{ code: "unknown-field", path: "spec.podSelector.matchLabel" }],
  },
  {
    name: "matchLabels a list",
    input: withSelector({ matchLabels: ["app"] }),
    errors: [{ code: "type", path: "spec.podSelector.matchLabels" }],
  },
  {
    name: "matchLabels value with a space",
    input: withSelector({ matchLabels: { app: "web server" } }),
    errors: [{ code: "invalid-value", path: "spec.podSelector.matchLabels.app" }],
  },
  {
    name: "matchLabels value a number",
    input: withSelector({ matchLabels: { replicas: 3 } }),
    errors: [{ code: "invalid-value", path: "spec.podSelector.matchLabels.replicas" }],
  },
  {
    name: "matchLabels key -app",
    input: withSelector({ matchLabels: { "-app": "web" } }),
    errors: [{ code: "invalid-value", path: 'spec.podSelector.matchLabels["-app"]' }],
  },
  {
    name: "matchLabels key with prefix Example.com/app",
    input: withSelector({ matchLabels: { "Example.com/app": "web" } }),
    errors: [{ code: "invalid-value", path: 'spec.podSelector.matchLabels["Example.com/app"]' }],
  },
  {
    name: "matchExpressions an object",
    input: withSelector({ matchExpressions: { key: "app" } }),
    errors: [{ code: "type", path: "spec.podSelector.matchExpressions" }],
  },
  {
    name: "matchExpressions item a string",
    input: withSelector({ matchExpressions: ["app in (web)"] }),
    errors: [{ code: "type", path: "spec.podSelector.matchExpressions[0]" }],
  },
  {
    name: "matchExpressions item with unknown field value",
    input: withSelector({ matchExpressions: [{ key: "app", operator: "In", values: ["web"], value: "web" }] }),
    errors: [{ code: "unknown-field", path: "spec.podSelector.matchExpressions[0].value" }],
  },
  {
    name: "matchExpressions key missing",
    input: withSelector({ matchExpressions: [{ operator: "Exists" }] }),
    errors: [{ code: "required", path: "spec.podSelector.matchExpressions[0].key" }],
  },
  {
    name: "matchExpressions operator Equals",
    input: withSelector({ matchExpressions: [{ key: "app", operator: "Equals", values: ["web"] }] }),
    errors: [{ code: "invalid-value", path: "spec.podSelector.matchExpressions[0].operator" }],
  },
  {
    name: "matchExpressions In without values",
    input: withSelector({ matchExpressions: [{ key: "app", operator: "In" }] }),
    errors: [{ code: "required", path: "spec.podSelector.matchExpressions[0].values" }],
  },
  {
    name: "matchExpressions NotIn with empty values",
    input: withSelector({ matchExpressions: [{ key: "app", operator: "NotIn", values: [] }] }),
    errors: [{ code: "required", path: "spec.podSelector.matchExpressions[0].values" }],
  },
  {
    name: "matchExpressions Exists with values",
    input: withSelector({ matchExpressions: [{ key: "app", operator: "Exists", values: ["web"] }] }),
    errors: [{ code: "invalid-value", path: "spec.podSelector.matchExpressions[0].values" }],
  },
  {
    name: "matchExpressions values [1]",
    input: withSelector({ matchExpressions: [{ key: "app", operator: "In", values: [1] }] }),
    errors: [{ code: "type", path: "spec.podSelector.matchExpressions[0].values" }],
  },
  {
    name: "namespaceSelector operator Equals",
    input: cluster({ namespaceSelector: { matchExpressions: [{ key: "env", operator: "Equals" }] }, rules: [RULE] }),
    errors: [{ code: "invalid-value", path: "spec.namespaceSelector.matchExpressions[0].operator" }],
  },
  // Everything at once: validation does not stop at the first problem.
  {
    name: "unknown fields at every level at once",
    input: cluster(
      {
        extra: 1,
        podSelector: { matchLabels: {}, other: 1 },
        rules: [{ ...RULE, when: "always" }, RULE, { match: "^x$", keep: true, also: 1 }],
      },
      { extra: 1 },
    ),
    errors: [
      { code: "unknown-field", path: "extra" },
      { code: "unknown-field", path: "spec.extra" },
      { code: "unknown-field", path: "spec.podSelector.other" },
      { code: "unknown-field", path: "spec.rules[0].when", rule: 0 },
      { code: "unknown-field", path: "spec.rules[2].also", rule: 2 },
    ],
  },
];

Deno.test("validateObject() reports every structural error with its path", async (t) => {
  for (const row of INVALID) {
    await t.step(row.name, () => {
      const result = validateObject(row.input);
      assert.deepEqual(summarize(result.problems, "error"), sorted(row.errors));
      assert.equal(result.object, undefined);
    });
  }
});

const VALID: { name: string; input: unknown; warnings?: Expected[] }[] = [
  { name: "minimal ClusterImageRewrite", input: withRule(RULE) },
  {
    name: "ClusterImageRewrite with every field",
    input: cluster({
      priority: -(2 ** 31),
      namespaces: ["canary", "staging"],
      namespaceSelector: { matchLabels: { env: "prod" } },
      podSelector: {
        matchLabels: { "app.kubernetes.io/name": "web", empty: "" },
        matchExpressions: [
          { key: "tier", operator: "In", values: ["a", "b"] },
          { key: "tier", operator: "NotIn", values: ["c"] },
          { key: "example.com/opt-in", operator: "Exists" },
          { key: "skip", operator: "DoesNotExist", values: [] },
        ],
      },
      rules: [
        { exact: "ghcr.io/fantasy/coolstuff:v1.0", replace: "my-registry.com/patched-coolstuff:latest" },
        { prefix: "docker.io/library", replace: "harbor.example.com/dockerhub/library" },
        { match: "^(gcr\\.io|quay\\.io)/(.*)$", replace: "cache.internal.com/$1/$2", on: "normalized" },
        { match: "^nginx$", replace: "cache.internal.com/nginx", on: "original" },
        { prefix: "internal-registry.company.com", keep: true },
        { prefix: "docker.io", keep: false, replace: "harbor.example.com/dockerhub" },
      ],
    }),
  },
  { name: "ImageRewrite with podSelector", input: namespaced({ podSelector: {}, rules: [RULE] }) },
  {
    name: "object as kubectl returns it",
    input: cluster(
      { rules: [RULE] },
      {
        metadata: { name: "hub", uid: "1", generation: 3, resourceVersion: "9", labels: { a: "b" }, annotations: {} },
        status: { conditions: [] },
      },
    ),
  },
  {
    name: "ClusterImageRewrite with metadata.namespace",
    input: cluster({ rules: [RULE] }, { metadata: { name: "hub", namespace: "default" } }),
    warnings: [{ code: "ignored", path: "metadata.namespace" }],
  },
  {
    name: "namespaces []",
    input: cluster({ namespaces: [], rules: [RULE] }),
    warnings: [{ code: "invalid-value", path: "spec.namespaces" }],
  },
  { name: "spec.verify true", input: cluster({ verify: true, rules: [RULE] }) },
  {
    name: "spec.verify true with onMissing rewrite",
    input: cluster({ verify: true, onMissing: "rewrite", rules: [RULE] }),
  },
  { name: "rule with verify true", input: withRule({ ...RULE, verify: true }) },
  { name: "rule with verify true and onMissing keep", input: withRule({ ...RULE, verify: true, onMissing: "keep" }) },
  {
    name: "rule with verify false under spec.verify true",
    input: cluster({ verify: true, rules: [{ ...RULE, verify: false }, RULE] }),
  },
  {
    name: "spec.onMissing with one verified rule",
    input: cluster({
      onMissing: "rewrite",
      rules: [{ ...RULE, verify: true }, { prefix: "quay.io", replace: "c.io/q" }],
    }),
  },
  {
    name: "spec.onMissing without verify",
    input: cluster({ onMissing: "rewrite", rules: [RULE] }),
    warnings: [{ code: "ignored", path: "spec.onMissing" }],
  },
  {
    name: "rule with verify false and onMissing rewrite",
    input: withRule({ ...RULE, verify: false, onMissing: "rewrite" }),
    warnings: [{ code: "ignored", path: "spec.rules[0].onMissing", rule: 0 }],
  },
  {
    name: "keep rule with verify true",
    input: withRule({ prefix: "docker.io", keep: true, verify: true }),
    warnings: [{ code: "ignored", path: "spec.rules[0].verify", rule: 0 }],
  },
  {
    name: "keep rule with onMissing keep",
    input: withRule({ prefix: "docker.io", keep: true, onMissing: "keep" }),
    warnings: [{ code: "ignored", path: "spec.rules[0].onMissing", rule: 0 }],
  },
];

Deno.test("validateObject() accepts valid objects", async (t) => {
  for (const row of VALID) {
    await t.step(row.name, () => {
      const result = validateObject(row.input);
      assert.deepEqual(summarize(result.problems, "error"), []);
      assert.deepEqual(summarize(result.problems, "warning"), sorted(row.warnings ?? []));
      assert.notEqual(result.object, undefined);
      assert.equal(result.draft, undefined);
    });
  }
});

Deno.test("validateObject() keeps what it read", () => {
  const result = validateObject(
    namespaced({
      priority: 5,
      podSelector: { matchLabels: { app: "web" } },
      rules: [RULE, { prefix: "a.io", keep: true }],
    }),
  );
  assert.deepEqual(result.object, {
    kind: "ImageRewrite",
    metadata: { name: "hub", namespace: "team" },
    spec: { priority: 5, podSelector: { matchLabels: { app: "web" } }, rules: [RULE, { prefix: "a.io", keep: true }] },
  });
  const defaults = validateObject(cluster({ rules: [RULE] }, { metadata: { name: "hub", namespace: "default" } }));
  assert.deepEqual(defaults.object?.metadata, { name: "hub" });
  assert.equal(defaults.object?.spec.priority, 0);
});

Deno.test("validateObject() keeps verify and onMissing as written", () => {
  const rule = { ...RULE, verify: false, onMissing: "keep" };
  const result = validateObject(cluster({ verify: true, onMissing: "rewrite", rules: [rule, RULE] }));
  assert.deepEqual(result.object?.spec, { priority: 0, verify: true, onMissing: "rewrite", rules: [rule, RULE] });
});

Deno.test("validateObject() drafts the sound rules of an object with errors", async (t) => {
  await t.step("error in rule 1 of 3", () => {
    const result = validateObject(cluster({ rules: [RULE, { ...RULE, bogus: 1 }, { prefix: "quay.io", keep: true }] }));
    assert.equal(result.object, undefined);
    assert.deepEqual(result.draft?.ruleIndexes, [0, 2]);
    assert.deepEqual(result.draft?.object.spec.rules, [RULE, { prefix: "quay.io", keep: true }]);
  });
  await t.step("error outside the rules", () => {
    const result = validateObject(cluster({ rules: [RULE] }, { extra: 1 }));
    assert.equal(result.object, undefined);
    assert.deepEqual(result.draft?.ruleIndexes, [0]);
  });
  await t.step("every rule broken", () => {
    const result = validateObject(cluster({ rules: [{ prefix: "docker.io" }] }));
    assert.equal(result.draft, undefined);
  });
  await t.step("kind ConfigMap", () => {
    assert.equal(validateObject(cluster({ rules: [RULE] }, { kind: "ConfigMap" })).draft, undefined);
  });
  await t.step("metadata.name missing", () => {
    assert.equal(validateObject(cluster({ rules: [RULE] }, { metadata: {} })).draft, undefined);
  });
});

Deno.test("validateObject() accepts spec.enforced on a ClusterImageRewrite only", async (t) => {
  const check = (kind: string, enforced: unknown) =>
    validateObject({
      apiVersion: API_VERSION,
      kind,
      metadata: { name: "hub", ...(kind === "ImageRewrite" ? { namespace: "team" } : {}) },
      spec: { enforced, rules: [{ prefix: "docker.io", replace: "harbor.example.com/dockerhub" }] },
    });
  await t.step("true on a ClusterImageRewrite", () => {
    const result = check("ClusterImageRewrite", true);
    assert.deepEqual(result.problems, []);
    assert.equal(result.object?.spec.enforced, true);
  });
  await t.step("on an ImageRewrite", () => {
    assert.deepEqual(check("ImageRewrite", true).problems.map((p) => [p.code, p.path]), [
      ["invalid-value", "spec.enforced"],
    ]);
  });
  await t.step("not a boolean", () => {
    assert.deepEqual(check("ClusterImageRewrite", "yes").problems.map((p) => [p.code, p.path]), [
      ["type", "spec.enforced"],
    ]);
  });
});
