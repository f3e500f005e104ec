// Tests for reading rule texts: YAML and JSON, documents and Lists, parse errors, limits, and problem positions.

import assert from "node:assert/strict";
import { loadRuleTexts, MAX_RULE_FILE_BYTES } from "./load.ts";
import type { Problem } from "../rules/problem.ts";

/** 1-based line and column of the first occurrence of `needle` in `text`. */
function at(text: string, needle: string, nth = 1): { line: number; column: number } {
  let index = -1;
  for (let i = 0; i < nth; i++) {
    index = text.indexOf(needle, index + 1);
    if (index < 0) throw new Error(`${JSON.stringify(needle)} not found ${nth} times`);
  }
  const before = text.slice(0, index);
  const line = before.split("\n").length;
  return { line, column: index - before.lastIndexOf("\n") };
}

type Seen = {
  severity: Problem["severity"];
  code: Problem["code"];
  path: string;
  rule?: number;
  object?: string;
  source?: string;
  line?: number;
  column?: number;
};

function seen(problems: readonly Problem[]): Seen[] {
  return problems.map((p) => ({
    severity: p.severity,
    code: p.code,
    path: p.path,
    ...(p.rule === undefined ? {} : { rule: p.rule }),
    ...(p.object === undefined ? {} : { object: p.object }),
    ...(p.source === undefined ? {} : { source: p.source }),
    ...(p.line === undefined ? {} : { line: p.line }),
    ...(p.column === undefined ? {} : { column: p.column }),
  })).sort((a, b) => (a.source ?? "").localeCompare(b.source ?? "") || (a.line ?? 0) - (b.line ?? 0));
}

function objectNames(result: ReturnType<typeof loadRuleTexts>): string[] {
  return result.ruleSet.objects.map((object) => object.label);
}

const HUB = `apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: hub
spec:
  rules:
    - prefix: docker.io
      replace: cache.example.com/hub
`;

const QUAY = `apiVersion: mirrorhook.dev/v1alpha1
kind: ImageRewrite
metadata:
  name: quay
  namespace: team
spec:
  rules:
    - prefix: quay.io
      replace: cache.example.com/quay
`;

const HUB_JSON = JSON.stringify(
  {
    apiVersion: "mirrorhook.dev/v1alpha1",
    kind: "ClusterImageRewrite",
    metadata: { name: "hub" },
    spec: { rules: [{ prefix: "docker.io", replace: "cache.example.com/hub" }] },
  },
  null,
  2,
);

function indent(text: string, spaces: number): string {
  return text.trimEnd().split("\n").map((line) => " ".repeat(spaces) + line).join("\n");
}

const LIST = `apiVersion: v1
kind: List
items:
  - ${indent(HUB, 4).trimStart()}
  - ${indent(QUAY, 4).trimStart()}
`;

Deno.test("loadRuleTexts() reads YAML and JSON", async (t) => {
  const rows: { name: string; text: string; objects: string[] }[] = [
    { name: "one YAML document", text: HUB, objects: ['ClusterImageRewrite "hub"'] },
    { name: "JSON", text: HUB_JSON, objects: ['ClusterImageRewrite "hub"'] },
    { name: "one-line JSON", text: JSON.stringify(JSON.parse(HUB_JSON)), objects: ['ClusterImageRewrite "hub"'] },
    {
      name: "two documents and an empty one",
      text: `---\n${HUB}---\n---\n${QUAY}`,
      objects: ['ImageRewrite "team/quay"', 'ClusterImageRewrite "hub"'],
    },
    { name: "kind List", text: LIST, objects: ['ImageRewrite "team/quay"', 'ClusterImageRewrite "hub"'] },
    {
      name: "JSON List",
      text: JSON.stringify({ apiVersion: "v1", kind: "List", items: [JSON.parse(HUB_JSON)] }),
      objects: ['ClusterImageRewrite "hub"'],
    },
    { name: "an empty text", text: "", objects: [] },
    { name: "only comments", text: "# nothing here\n", objects: [] },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      const result = loadRuleTexts([{ name: "rules.yaml", text: row.text }]);
      assert.deepEqual(seen(result.problems), []);
      assert.deepEqual(objectNames(result), row.objects);
      assert.equal(result.objects.length, row.objects.length);
    });
  }
});

const BOMB = [
  "a: &a [x, x, x, x, x, x, x, x, x, x]",
  "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]",
  "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]",
  "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]",
  "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]",
  "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]",
  "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]",
  "h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]",
  "i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]",
  "",
].join("\n");

const UNCLOSED = HUB.replace("      replace: cache.example.com/hub", "      replace: [cache.example.com/hub");
const DUPLICATE_IN_JSON = HUB_JSON.replace(`"replace"`, `"replace": "x.io/y",\n          "replace"`);

Deno.test("loadRuleTexts() reports YAML syntax errors at their line", async (t) => {
  const rows: { name: string; text: string; line: number; column: number }[] = [
    // The parser notices the missing "]" where the next line should have continued the sequence.
    { name: "unclosed flow sequence on line 8", text: UNCLOSED, line: 9, column: 1 },
    { name: "tab indentation on line 8", text: HUB.replace("      replace", "\treplace"), line: 8, column: 1 },
    {
      name: "duplicate key metadata on line 5",
      text: HUB.replace("spec:", "metadata:\n  name: other\nspec:"),
      line: 5,
      column: 1,
    },
    { name: "duplicate key replace in JSON", text: DUPLICATE_IN_JSON, ...at(DUPLICATE_IN_JSON, `"replace"`, 2) },
    { name: "alias bomb", text: BOMB, line: 1, column: 1 },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      const started = performance.now();
      const result = loadRuleTexts([{ name: "rules.yaml", text: row.text }]);
      assert.ok(result.problems.length > 0);
      for (const problem of result.problems) {
        assert.equal(problem.code, "yaml-syntax");
        assert.equal(problem.severity, "error");
        assert.equal(problem.source, "rules.yaml");
      }
      assert.deepEqual(
        { line: result.problems[0]?.line, column: result.problems[0]?.column },
        { line: row.line, column: row.column },
      );
      assert.deepEqual(objectNames(result), []);
      assert.ok(performance.now() - started < 5000);
    });
  }
});

Deno.test("loadRuleTexts() refuses texts it cannot read", async (t) => {
  const rows: { name: string; text: string; problems: Seen[] }[] = [
    {
      name: "a text over the size limit",
      text: `# ${"x".repeat(MAX_RULE_FILE_BYTES)}\n${HUB}`,
      problems: [{ severity: "error", code: "file-too-large", path: "", source: "rules.yaml" }],
    },
    {
      name: "a text under the limit in characters, over it in UTF-8 bytes",
      text: `# ${"é".repeat(MAX_RULE_FILE_BYTES / 2)}\n${HUB}`,
      problems: [{ severity: "error", code: "file-too-large", path: "", source: "rules.yaml" }],
    },
    {
      name: "a scalar document",
      text: "hello\n",
      problems: [{ severity: "error", code: "not-an-object", path: "", source: "rules.yaml", line: 1, column: 1 }],
    },
    {
      name: "a ConfigMap",
      text: "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata: {}\n",
      problems: [
        { severity: "error", code: "invalid-value", path: "apiVersion", source: "rules.yaml", line: 1, column: 1 },
        { severity: "error", code: "required", path: "spec", source: "rules.yaml", line: 1, column: 1 },
        { severity: "error", code: "unknown-kind", path: "kind", source: "rules.yaml", line: 2, column: 1 },
        { severity: "error", code: "unknown-field", path: "data", source: "rules.yaml", line: 5, column: 1 },
      ],
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      const result = loadRuleTexts([{ name: "rules.yaml", text: row.text }]);
      assert.deepEqual(seen(result.problems), row.problems);
      assert.deepEqual(objectNames(result), []);
    });
  }
});

Deno.test("loadRuleTexts() keeps good documents next to a broken one", () => {
  const broken = "apiVersion: [\n";
  const result = loadRuleTexts([{ name: "rules.yaml", text: `${HUB}---\n${broken}---\n${QUAY}` }]);
  assert.deepEqual(result.problems.map((p) => p.code), ["yaml-syntax"]);
  assert.deepEqual(result.objects.length, 2);
});

// Rule 2 has a bad prefix, rule 5 an invalid regex, rule 6 an unknown field: all reported in one run.
const EVERYTHING = `apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: hub
spec:
  rules:
    - exact: ghcr.io/fantasy/coolstuff:v1.0
      replace: my-registry.com/patched-coolstuff:latest
    - prefix: docker.io/library
      replace: harbor.example.com/dockerhub/library
    - prefix: bitnami
      replace: harbor.example.com/bitnami
    - match: '^docker\\\\.io/(.*)$'
      replace: cache.internal.com/$1
    - prefix: internal-registry.company.com
      keep: true
    - match: '^(gcr\\.io|quay\\.io/(.*)$'
      replace: cache.internal.com/$1/$2
    - prefix: quay.io
      replace: cache.internal.com/quay
      keepp: true
---
apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: good
spec:
  rules:
    - prefix: gcr.io
      replace: cache.internal.com/gcr
`;

Deno.test("loadRuleTexts() reports every problem at once, each at its line and column", () => {
  const result = loadRuleTexts([{ name: "rules.yaml", text: EVERYTHING }]);
  const object = 'ClusterImageRewrite "hub"';
  const source = "rules.yaml";
  assert.deepEqual(seen(result.problems), [
    {
      severity: "error",
      code: "invalid-prefix",
      path: "spec.rules[2].prefix",
      rule: 2,
      object,
      source,
      line: 11,
      column: 7,
    },
    {
      severity: "warning",
      code: "double-escape",
      path: "spec.rules[3].match",
      rule: 3,
      object,
      source,
      line: 13,
      column: 7,
    },
    {
      severity: "error",
      code: "invalid-regex",
      path: "spec.rules[5].match",
      rule: 5,
      object,
      source,
      line: 17,
      column: 7,
    },
    {
      severity: "error",
      code: "unknown-field",
      path: "spec.rules[6].keepp",
      rule: 6,
      object,
      source,
      line: 21,
      column: 7,
    },
  ]);
  assert.deepEqual(at(EVERYTHING, "match: '^(gcr"), { line: 17, column: 7 });
  assert.deepEqual(objectNames(result), ['ClusterImageRewrite "good"']);
  assert.deepEqual(result.objects.map((o) => o.metadata.name), ["good"]);
});

Deno.test("loadRuleTexts() places problems inside List items", () => {
  const text = LIST.replace("prefix: quay.io", "prefix: quay").replace(
    "replace: cache.example.com/hub",
    "replace: cache.example.com/hub\n          on: original",
  );
  const result = loadRuleTexts([{ name: "list.yaml", text }]);
  assert.deepEqual(seen(result.problems), [
    {
      severity: "error",
      code: "invalid-value",
      path: "spec.rules[0].on",
      rule: 0,
      object: 'ClusterImageRewrite "hub"',
      source: "list.yaml",
      ...at(text, "on: original"),
    },
    {
      severity: "error",
      code: "invalid-prefix",
      path: "spec.rules[0].prefix",
      rule: 0,
      object: 'ImageRewrite "team/quay"',
      source: "list.yaml",
      ...at(text, "prefix: quay"),
    },
  ]);
  assert.deepEqual(objectNames(result), []);
});

const EXACT_A = `apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: a
spec:
  rules:
    - prefix: quay.io
      replace: cache.example.com/quay
    - exact: nginx
      replace: a.example.com/nginx:1
`;

const EXACT_B = `# team b's mirror
apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: b
spec:
  rules:
    - exact: docker.io/library/nginx:latest
      replace: b.example.com/nginx:1
`;

Deno.test("loadRuleTexts() reports a conflict across files once, on the later file, naming the other", () => {
  const result = loadRuleTexts([{ name: "a.yaml", text: EXACT_A }, { name: "b.yaml", text: EXACT_B }]);
  assert.deepEqual(seen(result.problems), [
    {
      severity: "error",
      code: "conflict",
      path: "spec.rules[0].exact",
      rule: 0,
      object: 'ClusterImageRewrite "b"',
      source: "b.yaml",
      line: 8,
      column: 7,
    },
  ]);
  assert.deepEqual(
    result.problems.map((p) => p.related && [p.related.object, p.related.source, p.related.line, p.related.column]),
    [['ClusterImageRewrite "a"', "a.yaml", 9, 7]],
  );
  assert.deepEqual(objectNames(result), ['ClusterImageRewrite "a"']);
});

Deno.test("loadRuleTexts() reports duplicate objects at the second definition", async (t) => {
  await t.step("same name in two files", () => {
    const result = loadRuleTexts([{ name: "a.yaml", text: HUB }, { name: "b.yaml", text: `# again\n${HUB}` }]);
    assert.deepEqual(seen(result.problems), [
      {
        severity: "error",
        code: "duplicate-object",
        path: "",
        object: 'ClusterImageRewrite "hub"',
        source: "b.yaml",
        line: 2,
        column: 1,
      },
    ]);
    assert.deepEqual(objectNames(result), ['ClusterImageRewrite "hub"']);
  });
  await t.step("same name twice in one file", () => {
    const text = `${HUB}---\n${HUB}`;
    const result = loadRuleTexts([{ name: "a.yaml", text }]);
    assert.deepEqual(seen(result.problems), [
      {
        severity: "error",
        code: "duplicate-object",
        path: "",
        object: 'ClusterImageRewrite "hub"',
        source: "a.yaml",
        line: 10,
        column: 1,
      },
    ]);
  });
  await t.step("same name in two namespaces", () => {
    const result = loadRuleTexts([{ name: "a.yaml", text: `${QUAY}---\n${QUAY.replace("team", "other")}` }]);
    assert.deepEqual(seen(result.problems), []);
    assert.deepEqual(objectNames(result), ['ImageRewrite "other/quay"', 'ImageRewrite "team/quay"']);
  });
  await t.step("a broken copy of a good object", () => {
    const broken = HUB.replace("spec:\n", "spec:\n  extra: 1\n").replace("docker.io", "docker");
    const result = loadRuleTexts([{ name: "a.yaml", text: HUB }, { name: "b.yaml", text: broken }]);
    assert.deepEqual(seen(result.problems).map((p) => [p.code, p.source, p.line]), [
      ["unknown-field", "b.yaml", 6],
      ["invalid-prefix", "b.yaml", 8],
    ]);
    assert.deepEqual(objectNames(result), ['ClusterImageRewrite "hub"']);
  });
});

Deno.test("loadRuleTexts() carries warnings without refusing the object", () => {
  const text = HUB.replace("cache.example.com/hub", "docker.io/mirror");
  const result = loadRuleTexts([{ name: "a.yaml", text }]);
  assert.deepEqual(seen(result.problems), [
    {
      severity: "warning",
      code: "self-match",
      path: "spec.rules[0].replace",
      rule: 0,
      object: 'ClusterImageRewrite "hub"',
      source: "a.yaml",
      line: 8,
      column: 7,
    },
  ]);
  assert.deepEqual(objectNames(result), ['ClusterImageRewrite "hub"']);
});
