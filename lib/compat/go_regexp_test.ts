// Tests for Go pattern and template conversion, and for the model of Go's ReplaceAllString (cases from Go's docs).

import assert from "node:assert/strict";
import {
  convertGoPattern,
  convertGoTemplate,
  expandGo,
  goReplaceAll,
  literalPrefix,
  patternGroups,
  type TemplateNote,
} from "./go_regexp.ts";

Deno.test("convertGoPattern() writes Go patterns in JavaScript syntax", async (t) => {
  const rows: [string, string][] = [
    ["^docker\\.io/(.*)", "^docker\\.io/(.*)"],
    ["^gcr\\.io/(?P<project>[^/]+)/(?P<image>.+)", "^gcr\\.io/(?<project>[^/]+)/(?<image>.+)"],
    ["^gcr\\.io/(?<project>[^/]+)", "^gcr\\.io/(?<project>[^/]+)"],
    ["\\Aquay\\.io/(.*)\\z", "^quay\\.io/(.*)$"],
    ["(?i)^docker\\.io/(.*)", "(?i:^docker\\.io/(.*))"],
    ["^(?:a(?i)b)c", "^(?:a(?i:b))c"],
    ["^(?i:ab)c", "^(?i:ab)c"],
    ["\\Qa.b\\E/x", "a\\.b/x"],
    ["\\Qa.b", "a\\.b"],
    ["[[:alpha:]][[:digit:]_]+", "[A-Za-z][0-9_]+"],
    ["[]a]", "[\\]a]"],
    ["[^]a]", "[^\\]a]"],
    ["\\x{41}\\x42", "\\x41\\x42"],
    ["a\\tb", "a\\tb"],
    ["a\\/b\\-c", "a\\/b\\-c"],
  ];
  for (const [go, js] of rows) {
    await t.step(go, () => assert.deepEqual(convertGoPattern(go), { ok: true, source: js }));
  }
});

Deno.test("convertGoPattern() refuses what Go rejects or JavaScript cannot express", async (t) => {
  for (
    const go of [
      "(?=x)",
      "(?!x)",
      "(?<=x)y",
      "(a)\\1",
      "\\pL+",
      "\\p{Greek}",
      "(?U)a*",
      "(a",
      "a)",
      "\\y",
      "(?P<1W>x*)",
      "(?P=name)",
      "[[:^alpha:]]",
      "[[:nope:]]",
      "[a",
      "\\x{110000}",
    ]
  ) {
    await t.step(go, () => assert.equal(convertGoPattern(go).ok, false));
  }
});

Deno.test("convertGoTemplate() keeps Go's expansion, and names references Go leaves empty", async (t) => {
  const rows: { pattern: string; template: string; replace: string; notes?: TemplateNote[] }[] = [
    { pattern: "a(x*)b", template: "$1", replace: "$1" },
    { pattern: "a(x*)b", template: "$1W", replace: "", notes: [{ token: "$1W", reason: "name-swallows-text" }] },
    { pattern: "a(x*)b", template: "${1}W", replace: "$1W" },
    { pattern: "a(x*)b", template: "${1}0", replace: "$010" },
    { pattern: "a(x*)b", template: "$0", replace: "$&" },
    { pattern: "a(x*)b", template: "$2", replace: "", notes: [{ token: "$2", reason: "no-such-group" }] },
    { pattern: "a(?<n>x*)b", template: "${n}-$n", replace: "$<n>-$<n>" },
    {
      pattern: "(x)",
      template: "${ECR_REGISTRY}/dockerhub/$1",
      replace: "/dockerhub/$1",
      notes: [{ token: "${ECR_REGISTRY}", reason: "no-such-group" }],
    },
    { pattern: "(x)", template: "$$1", replace: "$$1" },
    { pattern: "(x)", template: "a$-b$", replace: "a$$-b$$" },
    { pattern: "(x)", template: "${1", replace: "$${1" },
    { pattern: "(x)", template: "cost$&", replace: "cost$$&" },
  ];
  for (const row of rows) {
    await t.step(`${row.pattern} ${row.template}`, () => {
      assert.deepEqual(convertGoTemplate(row.template, patternGroups(row.pattern)), {
        replace: row.replace,
        notes: row.notes ?? [],
      });
    });
  }
});

Deno.test("goReplaceAll() replaces as Go's ReplaceAllString does (examples from Go's documentation)", async (t) => {
  const rows: [string, string, string, string][] = [
    ["a(x*)b", "-ab-axxb-", "T", "-T-T-"],
    ["a(x*)b", "-ab-axxb-", "$1", "--xx-"],
    ["a(x*)b", "-ab-axxb-", "$1W", "---"],
    ["a(x*)b", "-ab-axxb-", "${1}W", "-W-xxW-"],
    ["a*", "baaac", "X", "XbXcX"],
    ["^docker\\.io/(.*)", "docker.io/library/nginx", "ecr.aws/dockerhub/$1", "ecr.aws/dockerhub/library/nginx"],
    ["io", "docker.io/io/app", "IO", "docker.IO/IO/app"],
  ];
  for (const [pattern, text, template, expected] of rows) {
    await t.step(`${pattern} on ${text} with ${template}`, () => {
      assert.equal(goReplaceAll(new RegExp(pattern), text, template), expected);
    });
  }
});

Deno.test("a converted template gives Go's result for the first match", async (t) => {
  const rows: [string, string, string][] = [
    ["^gcr\\.io/(?P<project>[^/]+)/(?P<image>.+)", "c.io/gcr/${project}/${image}", "gcr.io/p/app:1"],
    ["^docker\\.io/(.*)", "c.io/hub/$1", "docker.io/library/nginx:latest"],
    ["^(quay|ghcr)\\.io/(.*)$", "c.io/${1}0/$2$$", "quay.io/a/b:1"],
    ["^([^/]+)/(.*)", "c.io/$1x/$2", "quay.io/a/b:1"],
  ];
  for (const [goPattern, template, text] of rows) {
    await t.step(`${goPattern} → ${template}`, () => {
      const converted = convertGoPattern(goPattern);
      assert.ok(converted.ok);
      const pattern = new RegExp(converted.source);
      const { replace } = convertGoTemplate(template, patternGroups(converted.source));
      assert.equal(text.replace(pattern, replace), goReplaceAll(pattern, text, template));
      const match = pattern.exec(text);
      assert.ok(match !== null);
      assert.equal(text.replace(pattern, replace), expandGo(template, match) + text.slice(match[0].length));
    });
  }
});

Deno.test("literalPrefix() finds the text an anchored pattern starts with", async (t) => {
  const rows: [string, string][] = [
    ["^docker\\.io/(.*)", "docker.io/"],
    ["^gcr\\.io/([^/]+)/(.+)", "gcr.io/"],
    ["^docker\\.io/library/busybox$", "docker.io/library/busybox"],
    ["^registry\\.k8s\\.io/pause:3\\.9", "registry.k8s.io/pause:3.9"],
    ["^quay\\.ios?/", "quay.io"],
    ["^([^/]+/[^/]+)$", ""],
    ["docker\\.io/(.*)", ""],
    ["^\\d+", ""],
  ];
  for (const [pattern, prefix] of rows) await t.step(pattern, () => assert.equal(literalPrefix(pattern), prefix));
});
