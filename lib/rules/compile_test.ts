// Tests for compiling rule objects: semantic errors and warnings, conflicts, drafts and the rules hash.

import "./pattern_analysis.ts";
import assert from "node:assert/strict";
import { compileRuleSet } from "./compile.ts";
import { decide } from "./engine.ts";
import { loadRuleTexts } from "../compat/load.ts";
import { hasLinearEngine, rememberVerdict, screenPattern } from "./pattern.ts";
import type { Problem } from "./problem.ts";
import { API_VERSION, type RewriteObject, type RuleSpec, validateObject } from "./schema.ts";

interface Options {
  readonly kind?: "ClusterImageRewrite" | "ImageRewrite";
  readonly namespace?: string;
  readonly priority?: number;
  readonly namespaces?: string[];
}

/** A structurally valid object (asserted), ready to compile. */
function object(name: string, rules: RuleSpec[], options: Options = {}): RewriteObject {
  const kind = options.kind ?? "ClusterImageRewrite";
  const result = validateObject({
    apiVersion: API_VERSION,
    kind,
    metadata: { name, ...(options.namespace === undefined ? {} : { namespace: options.namespace }) },
    spec: {
      ...(options.priority === undefined ? {} : { priority: options.priority }),
      ...(options.namespaces === undefined ? {} : { namespaces: options.namespaces }),
      rules,
    },
  });
  assert.deepEqual(result.problems, []);
  assert.ok(result.object !== undefined);
  return result.object;
}

type Seen = { severity: Problem["severity"]; code: Problem["code"]; path: string; rule?: number; object?: string };

function seen(problems: readonly Problem[]): Seen[] {
  return problems.map((p) => ({
    severity: p.severity,
    code: p.code,
    path: p.path,
    ...(p.rule === undefined ? {} : { rule: p.rule }),
    ...(p.object === undefined ? {} : { object: p.object }),
  }));
}

const HUB = 'ClusterImageRewrite "hub"';

function error(code: Problem["code"], field: string, rule = 0, at = HUB): Seen {
  return { severity: "error", code, path: `spec.rules[${rule}].${field}`, rule, object: at };
}

function warning(code: Problem["code"], field: string, rule = 0, at = HUB): Seen {
  return { severity: "warning", code, path: `spec.rules[${rule}].${field}`, rule, object: at };
}

const ROWS: { name: string; rule: RuleSpec; problems: Seen[] }[] = [
  // Patterns.
  { name: "match (a", rule: { match: "(a", replace: "cache.io/$1" }, problems: [error("invalid-regex", "match")] },
  { name: "match [z-a]", rule: { match: "[z-a]", keep: true }, problems: [error("invalid-regex", "match")] },
  {
    name: "match ^(a+)+$",
    rule: { match: "^(a+)+$", replace: "cache.io/x" },
    problems: [error("catastrophic-pattern", "match")],
  },
  {
    name: "match ^(a+)+$ with keep",
    rule: { match: "^(a+)+$", keep: true },
    problems: [error("catastrophic-pattern", "match")],
  },
  // Polynomial backtracking is no error: the `l` flag's linear engine runs it in linear time.
  { name: "match (.*)a(.*)b(.*)c", rule: { match: "(.*)a(.*)b(.*)c", keep: true }, problems: [] },
  {
    name: "match ^(a|b)\\1+c",
    rule: { match: "^(a|b)\\1+c", keep: true },
    problems: [error("unbounded-pattern", "match")],
  },
  {
    name: "match ^(?=x)docker",
    rule: { match: "^(?=x)docker", keep: true },
    problems: [error("unbounded-pattern", "match")],
  },
  {
    name: "match ^a{64}$",
    rule: { match: "^a{64}$", keep: true },
    problems: [error("unbounded-pattern", "match")],
  },
  {
    name: "match of 1025 characters",
    rule: { match: "a".repeat(1025), keep: true },
    problems: [error("pattern-too-long", "match")],
  },
  { name: "match of 1024 characters", rule: { match: "a".repeat(1024), keep: true }, problems: [] },
  { name: "match ^docker\\.io/(.*)$", rule: { match: "^docker\\.io/(.*)$", replace: "cache.io/$1" }, problems: [] },
  {
    name: "match ^(gcr\\.io|quay\\.io|ghcr\\.io)/(.*)$",
    rule: { match: "^(gcr\\.io|quay\\.io|ghcr\\.io)/(.*)$", replace: "cache.internal.com/$1/$2" },
    problems: [],
  },
  {
    name: "match ^docker\\\\.io/(.*)$",
    rule: { match: "^docker\\\\.io/(.*)$", replace: "cache.io/$1" },
    problems: [warning("double-escape", "match")],
  },
  // Self-matches.
  {
    name: "prefix docker.io to docker.io/mirror",
    rule: { prefix: "docker.io", replace: "docker.io/mirror" },
    problems: [warning("self-match", "replace")],
  },
  {
    name: "prefix docker.io to mirror (Docker Hub)",
    rule: { prefix: "docker.io", replace: "mirror" },
    problems: [warning("self-match", "replace")],
  },
  {
    name: "prefix docker.io/library to docker.io/libraryx",
    rule: { prefix: "docker.io/library", replace: "docker.io/libraryx" },
    problems: [],
  },
  {
    name: "match ^(.*)$ to cache.io/$1",
    rule: { match: "^(.*)$", replace: "cache.io/$1" },
    problems: [warning("self-match", "match")],
  },
  {
    name: "exact nginx to docker.io/library/nginx:latest",
    rule: { exact: "nginx", replace: "docker.io/library/nginx:latest" },
    problems: [warning("self-match", "replace")],
  },
  // Replacements that cannot yield a valid reference.
  {
    name: "match replace cache.io/Mirror/$1",
    rule: { match: "^docker\\.io/(.*)$", replace: "cache.io/Mirror/$1" },
    problems: [error("invalid-replacement", "replace")],
  },
  {
    name: "match replace cache.io/my mirror/$1",
    rule: { match: "^docker\\.io/(.*)$", replace: "cache.io/my mirror/$1" },
    problems: [error("invalid-replacement", "replace")],
  },
  {
    name: "match replace cache.io/$<missing>",
    rule: { match: "^docker\\.io/(?<repo>.*)$", replace: "cache.io/$<missing>" },
    problems: [error("invalid-replacement", "replace")],
  },
  {
    name: "match replace cache.io/$<repo> without named groups",
    rule: { match: "^docker\\.io/(.*)$", replace: "cache.io/$<repo>" },
    problems: [error("invalid-replacement", "replace")],
  },
  {
    name: "match replace cache.io/$<repo>",
    rule: { match: "^docker\\.io/(?<repo>.*)$", replace: "cache.io/$<repo>" },
    problems: [],
  },
  {
    name: "match replace $3 with 2 groups",
    rule: { match: "^(docker\\.io)/(.*)$", replace: "cache.io/$1/$3" },
    problems: [error("invalid-replacement", "replace")],
  },
  {
    name: "exact replace Nginx:1",
    rule: { exact: "nginx", replace: "cache.io/Nginx:1" },
    problems: [error("invalid-replacement", "replace")],
  },
  {
    name: "exact replace with a bad digest",
    rule: { exact: "nginx", replace: "cache.io/nginx@sha256:abc" },
    problems: [error("invalid-replacement", "replace")],
  },
  {
    name: "prefix replace cache.io/hub:1",
    rule: { prefix: "docker.io", replace: "cache.io/hub:1" },
    problems: [error("invalid-replacement", "replace")],
  },
  {
    name: "prefix replace with a digest",
    rule: { prefix: "docker.io", replace: `cache.io/hub@sha256:${"a".repeat(64)}` },
    problems: [error("invalid-replacement", "replace")],
  },
  {
    name: "prefix replace cache.io/Hub",
    rule: { prefix: "docker.io", replace: "cache.io/Hub" },
    problems: [error("invalid-replacement", "replace")],
  },
  // A pattern that matches part of the reference: the replacement takes that part only (JavaScript's replace).
  {
    name: "match ^docker\\.io/library/ replace mirror.example.com/lib/ (the rest of the reference stays)",
    rule: { match: "^docker\\.io/library/", replace: "mirror.example.com/lib/" },
    problems: [],
  },
  {
    name: "match :latest$ replace :stable (the name before it stays)",
    rule: { match: ":latest$", replace: ":stable" },
    problems: [],
  },
  {
    name: "match ^(.*)$ replace :stable (the whole reference)",
    rule: { match: "^(.*)$", replace: ":stable" },
    problems: [error("invalid-replacement", "replace")],
  },
  {
    name: "match ^docker\\.io/(.*) replace cache.io/ (the group runs to the end: the output is cache.io/ alone)",
    rule: { match: "^docker\\.io/(.*)", replace: "cache.io/" },
    problems: [error("invalid-replacement", "replace")],
  },
  {
    name: "match ^docker\\.io/library/ replace Mirror/ (invalid wherever it lands)",
    rule: { match: "^docker\\.io/library/", replace: "mirror.example.com/Lib/" },
    problems: [error("invalid-replacement", "replace")],
  },
  // References and prefixes.
  { name: "exact Nginx", rule: { exact: "Nginx", keep: true }, problems: [error("invalid-reference", "exact")] },
  { name: "exact nginx:", rule: { exact: "nginx:", keep: true }, problems: [error("invalid-reference", "exact")] },
  { name: "prefix library", rule: { prefix: "library", keep: true }, problems: [error("invalid-prefix", "prefix")] },
  {
    name: "prefix bitnami/redis",
    rule: { prefix: "bitnami/redis", replace: "cache.io/redis" },
    problems: [error("invalid-prefix", "prefix")],
  },
  {
    name: "prefix docker.io/library/nginx:1",
    rule: { prefix: "docker.io/library/nginx:1", keep: true },
    problems: [error("invalid-prefix", "prefix")],
  },
  {
    name: "prefix docker.io/Library",
    rule: { prefix: "docker.io/Library", keep: true },
    problems: [error("invalid-prefix", "prefix")],
  },
  {
    name: "prefix bad_host.io",
    rule: { prefix: "bad_host.io", keep: true },
    problems: [error("invalid-prefix", "prefix")],
  },
  { name: "prefix localhost:5000/", rule: { prefix: "localhost:5000/", keep: true }, problems: [] },
  { name: "prefix [2001:db8::1]:5000", rule: { prefix: "[2001:db8::1]:5000", keep: true }, problems: [] },
];

Deno.test("compileRuleSet() checks each rule", async (t) => {
  for (const row of ROWS) {
    await t.step(row.name, () => {
      const result = compileRuleSet([object("hub", [row.rule])]);
      assert.deepEqual(seen(result.problems), row.problems);
      const failed = row.problems.some((p) => p.severity === "error");
      assert.equal(result.ruleSet.objects.length, failed ? 0 : 1);
      assert.equal(result.ruleSet.ruleCount, failed ? 0 : 1);
    });
  }
});

Deno.test("compileRuleSet() refuses a pattern V8's linear engine refuses, whatever the screen said", () => {
  // The test task runs with the linear engine, as serve must; without it this test would prove nothing.
  assert.equal(hasLinearEngine(), true);
  // A verdict from elsewhere (the screening worker) that is wrong: the back-reference cannot run in linear time.
  const source = "^(quay|ghcr)\\.io/\\1/(.*)$";
  rememberVerdict(source, { status: "safe" });
  assert.equal(screenPattern(source).status, "safe");
  const result = compileRuleSet([object("hub", [{ match: source, replace: "cache.io/$2" }])]);
  assert.deepEqual(seen(result.problems), [error("unbounded-pattern", "match")]);
  assert.match(
    result.problems[0]?.message ?? "",
    /linear-time engine .* refuses it \(.*Cannot be executed in linear time\)/,
  );
  assert.equal(result.ruleSet.ruleCount, 0);
  // Nothing was left to fail at admission: the image is not rewritten, and deciding it throws nothing.
  assert.equal(decide(result.ruleSet, "quay.io/quay/app:1", { context: {} }).action, "none");
});

const RULE_HUB: RuleSpec = { prefix: "docker.io", replace: "cache.io/hub" };

const VERIFY_ROWS: {
  name: string;
  spec: { verify?: boolean; onMissing?: "keep" | "rewrite" };
  rule: RuleSpec;
  verify: boolean;
  onMissing: "keep" | "rewrite";
}[] = [
  { name: "defaults", spec: {}, rule: RULE_HUB, verify: false, onMissing: "keep" },
  { name: "spec.verify true", spec: { verify: true }, rule: RULE_HUB, verify: true, onMissing: "keep" },
  {
    name: "spec.verify true, onMissing rewrite",
    spec: { verify: true, onMissing: "rewrite" },
    rule: RULE_HUB,
    verify: true,
    onMissing: "rewrite",
  },
  { name: "rule verify true", spec: {}, rule: { ...RULE_HUB, verify: true }, verify: true, onMissing: "keep" },
  {
    name: "rule verify false overrides spec.verify true",
    spec: { verify: true, onMissing: "rewrite" },
    rule: { ...RULE_HUB, verify: false },
    verify: false,
    onMissing: "rewrite",
  },
  {
    name: "rule onMissing keep overrides spec onMissing rewrite",
    spec: { verify: true, onMissing: "rewrite" },
    rule: { ...RULE_HUB, onMissing: "keep" },
    verify: true,
    onMissing: "keep",
  },
  {
    name: "exact rule under spec.verify true",
    spec: { verify: true },
    rule: { exact: "nginx", replace: "cache.io/nginx:1" },
    verify: true,
    onMissing: "keep",
  },
  {
    name: "match rule with verify true",
    spec: {},
    rule: { match: "^quay\\.io/(.*)$", replace: "cache.io/quay/$1", verify: true, onMissing: "rewrite" },
    verify: true,
    onMissing: "rewrite",
  },
  {
    name: "keep rule under spec.verify true",
    spec: { verify: true },
    rule: { prefix: "quay.io", keep: true },
    verify: false,
    onMissing: "keep",
  },
];

Deno.test("compileRuleSet() carries the effective verify and onMissing onto each rule", async (t) => {
  for (const row of VERIFY_ROWS) {
    await t.step(row.name, () => {
      const validated = validateObject({
        apiVersion: API_VERSION,
        kind: "ClusterImageRewrite",
        metadata: { name: "hub" },
        spec: { ...row.spec, rules: [row.rule] },
      });
      assert.deepEqual(validated.problems, []);
      assert.ok(validated.object !== undefined);
      const result = compileRuleSet([validated.object]);
      assert.deepEqual(result.problems, []);
      const level = result.ruleSet.levels[0];
      const rule = [...(level?.exact.values() ?? [])].flat()[0] ?? level?.match[0] ??
        [...(level?.prefixes.children.values() ?? [])][0]?.rules[0];
      assert.ok(rule !== undefined);
      assert.deepEqual({ verify: rule.verify, onMissing: rule.onMissing }, {
        verify: row.verify,
        onMissing: row.onMissing,
      });
    });
  }
});

Deno.test("compileRuleSet() warns on \\\\. in a YAML single-quoted pattern", () => {
  const text = [
    `apiVersion: ${API_VERSION}`,
    "kind: ClusterImageRewrite",
    "metadata:",
    "  name: hub",
    "spec:",
    "  rules:",
    "    - match: '^docker\\\\.io/(.*)$'",
    "      replace: cache.io/$1",
    "",
  ].join("\n");
  const result = loadRuleTexts([{ name: "a.yaml", text }]);
  assert.deepEqual(result.problems.map((p) => [p.severity, p.code, p.path, p.rule, p.line, p.column]), [
    ["warning", "double-escape", "spec.rules[0].match", 0, 7, 7],
  ]);
  assert.equal(result.ruleSet.ruleCount, 1);
});

const NGINX_A = { exact: "nginx", replace: "a.io/nginx:1" };
const NGINX_B = { exact: "docker.io/library/nginx:latest", replace: "b.io/nginx:1" };

Deno.test("compileRuleSet() finds rules of one object that decide the same references", async (t) => {
  await t.step("another outcome", () => {
    const result = compileRuleSet([object("hub", [NGINX_A, { prefix: "quay.io", keep: true }, NGINX_B])]);
    assert.deepEqual(seen(result.problems), [error("conflict", "exact", 2)]);
    assert.equal(result.problems[0]?.related?.rule, 0);
    assert.equal(result.ruleSet.objects.length, 0);
  });
  await t.step("the same outcome", () => {
    const result = compileRuleSet([object("hub", [NGINX_A, { ...NGINX_A, exact: "index.docker.io/library/nginx" }])]);
    assert.deepEqual(seen(result.problems), [warning("never-decides", "exact", 1)]);
    assert.equal(result.ruleSet.objects.length, 1);
  });
  await t.step("keep and replace", () => {
    const result = compileRuleSet([object("hub", [NGINX_A, { exact: "nginx:latest", keep: true }])]);
    assert.deepEqual(seen(result.problems), [error("conflict", "exact", 1)]);
  });
});

Deno.test("compileRuleSet() leaves out duplicate and failing objects", () => {
  const good = object("good", [{ prefix: "quay.io", keep: true }]);
  const bad = object("bad", [{ prefix: "library", keep: true }]);
  const result = compileRuleSet([good, bad, object("good", [{ prefix: "gcr.io", keep: true }])]);
  assert.deepEqual(
    seen(result.problems).sort((a, b) => String(a.object).localeCompare(String(b.object))),
    [
      { severity: "error", code: "duplicate-object", path: "", object: 'ClusterImageRewrite "good"' },
      error("invalid-prefix", "prefix", 0, 'ClusterImageRewrite "bad"'),
    ].sort((a, b) => String(a.object).localeCompare(String(b.object))),
  );
  assert.deepEqual(result.ruleSet.objects.map((o) => o.source), [good]);
});

Deno.test("compileRuleSet() checks drafts with their written rule indexes, never using them", () => {
  const draft = object("draft", [{ prefix: "library", keep: true }, { match: "(a", keep: true }, NGINX_B]);
  const placed: string[] = [];
  const result = compileRuleSet([object("a", [NGINX_A])], {
    drafts: [{ object: draft, ruleIndexes: [1, 4, 6] }],
    place: (problem, source) => {
      placed.push(source.metadata.name);
      return { ...problem, source: `${source.metadata.name}.yaml` };
    },
  });
  const at = 'ClusterImageRewrite "draft"';
  assert.deepEqual(seen(result.problems), [
    error("invalid-prefix", "prefix", 1, at),
    error("invalid-regex", "match", 4, at),
  ]);
  assert.deepEqual(placed, ["draft", "draft"]);
  assert.deepEqual(result.problems.map((p) => p.source), ["draft.yaml", "draft.yaml"]);
  assert.deepEqual(result.ruleSet.objects.map((o) => o.label), ['ClusterImageRewrite "a"']);
});

Deno.test("compileRuleSet() hashes the rules in force", async (t) => {
  const a = object("a", [{ prefix: "docker.io", replace: "cache.io/hub" }], { priority: 1 });
  const b = object("b", [{ match: "^quay\\.io/(.*)$", replace: "cache.io/quay/$1" }]);
  const c = object("c", [NGINX_A], { kind: "ImageRewrite", namespace: "team" });
  const hash = compileRuleSet([a, b, c]).ruleSet.hash;
  await t.step("sha256 hex", () => assert.match(hash, /^[0-9a-f]{64}$/));
  await t.step("same objects in another order", () => {
    assert.equal(compileRuleSet([c, b, a]).ruleSet.hash, hash);
    assert.equal(compileRuleSet([b, a, c]).ruleSet.hash, hash);
  });
  await t.step("same objects with other metadata", () => {
    const again = object("a", [{ prefix: "docker.io", replace: "cache.io/hub" }], { priority: 1 });
    assert.equal(
      compileRuleSet([{ ...again, metadata: { ...again.metadata, generation: 7 } }, b, c]).ruleSet.hash,
      hash,
    );
  });
  await t.step("a changed replacement", () => {
    const changed = object("a", [{ prefix: "docker.io", replace: "cache.io/hub2" }], { priority: 1 });
    assert.notEqual(compileRuleSet([changed, b, c]).ruleSet.hash, hash);
  });
  await t.step("a changed priority", () => {
    const changed = object("a", [{ prefix: "docker.io", replace: "cache.io/hub" }], { priority: 2 });
    assert.notEqual(compileRuleSet([changed, b, c]).ruleSet.hash, hash);
  });
  await t.step("a renamed object", () => {
    const renamed = object("a2", [{ prefix: "docker.io", replace: "cache.io/hub" }], { priority: 1 });
    assert.notEqual(compileRuleSet([renamed, b, c]).ruleSet.hash, hash);
  });
  await t.step("one object fewer", () => assert.notEqual(compileRuleSet([a, b]).ruleSet.hash, hash));
});

Deno.test("mirror: true is refused on a namespaced ImageRewrite, allowed on a ClusterImageRewrite", () => {
  const text = (kind: string) =>
    `apiVersion: ${API_VERSION}
kind: ${kind}
metadata:
  name: copy
${kind === "ImageRewrite" ? "  namespace: team-a\n" : ""}spec:
  rules:
    - prefix: docker.io
      replace: mirror.example.com/hub
      verify: true
      mirror: true
`;
  const tenant = loadRuleTexts([{ name: "tenant.yaml", text: text("ImageRewrite") }]);
  const refused = tenant.problems.filter((problem) => problem.code === "mirror-not-allowed");
  assert.equal(refused.length, 1);
  assert.equal(refused[0]!.severity, "error");
  assert.equal(refused[0]!.line, 11);
  assert.equal(decide(tenant.ruleSet, "nginx", { context: { namespace: "team-a" } }).action, "none");
  const platform = loadRuleTexts([{ name: "platform.yaml", text: text("ClusterImageRewrite") }]);
  assert.deepEqual(platform.problems.filter((problem) => problem.severity === "error"), []);
  const decision = decide(platform.ruleSet, "nginx", { context: { namespace: "team-a" } });
  assert.equal(decision.action === "rewrite" && decision.rule.mirror, true);
});
