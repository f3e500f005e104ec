// Tests for deciding one image: rule kinds, decision order, scopes, bypass, invalid references and lookup at scale.

import "./pattern_analysis.ts";
import assert from "node:assert/strict";
import { compileRuleSet, type ImageContext, type RuleSet } from "./compile.ts";
import { decide, type DecideOptions, type Decision, DEFAULT_BYPASS_PREFIX, describeRule } from "./engine.ts";
import { hasErrors } from "./problem.ts";
import { API_VERSION, type LabelSelector, type RewriteObject, type RuleSpec, validateObject } from "./schema.ts";

interface Options {
  readonly kind?: "ClusterImageRewrite" | "ImageRewrite";
  readonly namespace?: string;
  readonly priority?: number;
  readonly namespaces?: string[];
  readonly podSelector?: LabelSelector;
  readonly namespaceSelector?: LabelSelector;
}

function object(name: string, rules: RuleSpec[], options: Options = {}): RewriteObject {
  const { kind = "ClusterImageRewrite", namespace, ...spec } = options;
  const result = validateObject({
    apiVersion: API_VERSION,
    kind,
    metadata: { name, ...(namespace === undefined ? {} : { namespace }) },
    spec: { ...spec, rules },
  });
  assert.deepEqual(result.problems.filter((p) => p.severity === "error"), []);
  assert.ok(result.object !== undefined);
  return result.object;
}

function ruleSet(...objects: RewriteObject[]): RuleSet {
  const result = compileRuleSet(objects);
  assert.ok(!hasErrors(result.problems), result.problems.map((p) => p.message).join("\n"));
  return result.ruleSet;
}

/** What a test compares: action, output and which object and rule decided. */
interface Outcome {
  action: Decision["action"];
  output?: string;
  by?: string;
}

function outcome(decision: Decision): Outcome {
  return {
    action: decision.action,
    ...("output" in decision ? { output: decision.output } : {}),
    ...("rule" in decision && decision.rule !== undefined ? { by: describeRule(decision.rule) } : {}),
  };
}

interface Row {
  image: string;
  context?: ImageContext;
  options?: Omit<DecideOptions, "context">;
  expect: Outcome;
  /** Step name when the image alone would repeat. */
  name?: string;
}

async function table(t: Deno.TestContext, rules: RuleSet, rows: Row[]): Promise<void> {
  for (const row of rows) {
    await t.step(row.name ?? row.image, () => {
      assert.deepEqual(outcome(decide(rules, row.image, { ...row.options, context: row.context ?? {} })), row.expect);
    });
  }
}

const DIGEST = `sha256:${"a".repeat(64)}`;

Deno.test("decide() applies exact rules to the normalized reference", async (t) => {
  const rules = ruleSet(object("hub", [
    { exact: "ghcr.io/fantasy/coolstuff:v1.0", replace: "my-registry.com/patched-coolstuff:latest" },
    { exact: "nginx", replace: "mirror.io/nginx" },
    { exact: `redis@${DIGEST}`, replace: "mirror.io/redis:7" },
  ]));
  const by = (rule: number) => `ClusterImageRewrite hub, rule ${rule}`;
  await table(t, rules, [
    {
      image: "ghcr.io/fantasy/coolstuff:v1.0",
      expect: { action: "rewrite", output: "my-registry.com/patched-coolstuff:latest", by: by(0) },
    },
    { image: "ghcr.io/fantasy/coolstuff:v1.1", expect: { action: "none" } },
    { image: "nginx", expect: { action: "rewrite", output: "mirror.io/nginx:latest", by: by(1) } },
    { image: "nginx:latest", expect: { action: "rewrite", output: "mirror.io/nginx:latest", by: by(1) } },
    { image: "docker.io/library/nginx", expect: { action: "rewrite", output: "mirror.io/nginx:latest", by: by(1) } },
    {
      image: "index.docker.io/library/nginx:latest",
      expect: { action: "rewrite", output: "mirror.io/nginx:latest", by: by(1) },
    },
    { image: "nginx:1.27", expect: { action: "none" } },
    { image: `nginx@${DIGEST}`, expect: { action: "none" } },
    { image: `redis@${DIGEST}`, expect: { action: "rewrite", output: "mirror.io/redis:7", by: by(2) } },
    { image: `redis:7@${DIGEST}`, expect: { action: "none" } },
  ]);
});

Deno.test("decide() applies prefix rules on whole path segments, keeping tag and digest", async (t) => {
  const rules = ruleSet(object("hub", [
    { prefix: "docker.io/library", replace: "harbor.example.com/dockerhub/library" },
    { prefix: "localhost:5000/team/", replace: "harbor.example.com/local/" },
    { prefix: "quay.io/prometheus/node-exporter", replace: "harbor.example.com/node-exporter" },
  ]));
  const by = (rule: number) => `ClusterImageRewrite hub, rule ${rule}`;
  await table(t, rules, [
    {
      image: "docker.io/library/nginx:1",
      expect: { action: "rewrite", output: "harbor.example.com/dockerhub/library/nginx:1", by: by(0) },
    },
    {
      image: "nginx",
      expect: { action: "rewrite", output: "harbor.example.com/dockerhub/library/nginx:latest", by: by(0) },
    },
    {
      image: `nginx@${DIGEST}`,
      expect: { action: "rewrite", output: `harbor.example.com/dockerhub/library/nginx@${DIGEST}`, by: by(0) },
    },
    {
      image: `nginx:1.27@${DIGEST}`,
      expect: { action: "rewrite", output: `harbor.example.com/dockerhub/library/nginx:1.27@${DIGEST}`, by: by(0) },
    },
    { image: "docker.io/libraryx/a", expect: { action: "none" } },
    { image: "bitnami/redis", expect: { action: "none" } },
    {
      image: "localhost:5000/team/app:2",
      expect: { action: "rewrite", output: "harbor.example.com/local/app:2", by: by(1) },
    },
    { image: "localhost:5000/teams/app:2", expect: { action: "none" } },
    { image: "localhost:5001/team/app:2", expect: { action: "none" } },
    {
      image: "quay.io/prometheus/node-exporter:v1.8.0",
      expect: { action: "rewrite", output: "harbor.example.com/node-exporter:v1.8.0", by: by(2) },
    },
    { image: "quay.io/prometheus/node-exporter-x:v1", expect: { action: "none" } },
  ]);
});

Deno.test("decide() applies match rules with JavaScript replacement syntax", async (t) => {
  const rules = ruleSet(object("hub", [
    { match: "^(gcr\\.io|quay\\.io|ghcr\\.io)/(.*)$", replace: "cache.internal.com/$1/$2" },
    { match: "^registry\\.k8s\\.io/(?<repo>[^:@]+)(?<rest>.*)$", replace: "cache.internal.com/k8s/$<repo>$<rest>" },
    { match: "^nginx(:.*)?$", replace: "cache.internal.com/written/nginx$1", on: "original" },
    { match: "^docker\\.io/library/nginx:.*$", replace: "cache.internal.com/normalized/nginx:stable" },
  ]));
  const by = (rule: number) => `ClusterImageRewrite hub, rule ${rule}`;
  await table(t, rules, [
    {
      image: "quay.io/prometheus/node-exporter:v1",
      expect: { action: "rewrite", output: "cache.internal.com/quay.io/prometheus/node-exporter:v1", by: by(0) },
    },
    {
      image: `ghcr.io/a/b@${DIGEST}`,
      expect: { action: "rewrite", output: `cache.internal.com/ghcr.io/a/b@${DIGEST}`, by: by(0) },
    },
    {
      image: "registry.k8s.io/pause:3.9",
      expect: { action: "rewrite", output: "cache.internal.com/k8s/pause:3.9", by: by(1) },
    },
    { image: "nginx:1", expect: { action: "rewrite", output: "cache.internal.com/written/nginx:1", by: by(2) } },
    { image: "nginx", expect: { action: "rewrite", output: "cache.internal.com/written/nginx:latest", by: by(2) } },
    {
      image: "docker.io/library/nginx:1",
      expect: { action: "rewrite", output: "cache.internal.com/normalized/nginx:stable", by: by(3) },
    },
    { image: "k8s.gcr.io/pause", expect: { action: "none" } },
  ]);
});

Deno.test("decide() stops at keep rules", async (t) => {
  const rules = ruleSet(object("hub", [
    { exact: "docker.io/library/busybox:1.36", keep: true },
    { prefix: "internal-registry.company.com", keep: true },
    { match: "^docker\\.io/bitnami/", keep: true },
    { prefix: "docker.io", replace: "cache.io/hub" },
  ]));
  const by = (rule: number) => `ClusterImageRewrite hub, rule ${rule}`;
  await table(t, rules, [
    { image: "busybox:1.36", expect: { action: "keep", by: by(0) } },
    { image: "busybox:1.37", expect: { action: "rewrite", output: "cache.io/hub/library/busybox:1.37", by: by(3) } },
    { image: "internal-registry.company.com/app:1", expect: { action: "keep", by: by(1) } },
    { image: "bitnami/redis", expect: { action: "rewrite", output: "cache.io/hub/bitnami/redis:latest", by: by(3) } },
  ]);
  // A match rule only runs after every prefix rule of its priority.
  const matchFirst = ruleSet(
    object("hub", [{ match: "^docker\\.io/bitnami/", keep: true }]),
    object("low", [
      { prefix: "docker.io", replace: "cache.io/hub" },
    ], { priority: -1 }),
  );
  await table(t, matchFirst, [
    {
      name: "bitnami/redis with the prefix at a lower priority",
      image: "bitnami/redis",
      expect: { action: "keep", by: by(0) },
    },
  ]);
});

Deno.test("decide() follows the documented order", async (t) => {
  await t.step("bypass before every rule", async (t) => {
    const rules = ruleSet(
      object("hub", [{ exact: "nginx", replace: "a.io/nginx" }, { prefix: "docker.io", keep: true }]),
    );
    await table(t, rules, [
      { image: "direct.to/nginx", expect: { action: "bypass", output: "docker.io/library/nginx:latest" } },
      {
        image: "direct.to/docker.io/library/nginx:1",
        expect: { action: "bypass", output: "docker.io/library/nginx:1" },
      },
    ]);
  });

  await t.step("higher priority first, whatever the rule kind", async (t) => {
    const rules = ruleSet(
      object("low", [{ exact: "nginx", replace: "low.io/nginx" }]),
      object("high", [{ match: "^docker\\.io/(.*)$", replace: "high.io/$1" }], { priority: 10 }),
      object("negative", [{ exact: "redis", replace: "negative.io/redis" }], { priority: -5 }),
    );
    await table(t, rules, [
      {
        image: "nginx",
        expect: { action: "rewrite", output: "high.io/library/nginx:latest", by: "ClusterImageRewrite high, rule 0" },
      },
      { image: "quay.io/a/b", expect: { action: "none" } },
    ]);
  });

  await t.step("exact, then prefix longest first, then match in the order written", async (t) => {
    const rules = ruleSet(object("hub", [
      { match: "^docker\\.io/library/.*$", replace: "match0.io/x" },
      { match: "^docker\\.io/.*$", replace: "match1.io/x" },
      { prefix: "docker.io", replace: "short.io" },
      { prefix: "docker.io/library", replace: "long.io" },
      { exact: "nginx", replace: "exact.io/nginx" },
      { match: "^quay\\.io/.*$", replace: "match5.io/x" },
      { match: "^quay\\.io/a/.*$", replace: "match6.io/x" },
    ]));
    const by = (rule: number) => `ClusterImageRewrite hub, rule ${rule}`;
    await table(t, rules, [
      { image: "nginx", expect: { action: "rewrite", output: "exact.io/nginx:latest", by: by(4) } },
      { image: "redis", expect: { action: "rewrite", output: "long.io/redis:latest", by: by(3) } },
      { image: "bitnami/redis", expect: { action: "rewrite", output: "short.io/bitnami/redis:latest", by: by(2) } },
      { image: "quay.io/a/b", expect: { action: "rewrite", output: "match5.io/x:latest", by: by(5) } },
    ]);
  });

  await t.step("nested prefixes written deepest first, with siblings: the longest that fits decides", async (t) => {
    const rules = ruleSet(object("hub", [
      { prefix: "docker.io/library/nginx", replace: "deep.io/nginx" },
      { prefix: "docker.io/bitnami", replace: "sibling.io" },
      { prefix: "docker.io/library", replace: "long.io" },
      { prefix: "docker.io", replace: "short.io" },
    ]));
    const by = (rule: number) => `ClusterImageRewrite hub, rule ${rule}`;
    await table(t, rules, [
      { image: "nginx", expect: { action: "rewrite", output: "deep.io/nginx:latest", by: by(0) } },
      { image: "bitnami/redis", expect: { action: "rewrite", output: "sibling.io/redis:latest", by: by(1) } },
      { image: "redis", expect: { action: "rewrite", output: "long.io/redis:latest", by: by(2) } },
      { image: "grafana/loki", expect: { action: "rewrite", output: "short.io/grafana/loki:latest", by: by(3) } },
      { image: "quay.io/a/b", expect: { action: "none" } },
    ]);
  });

  await t.step("match rules of one priority: object order, then the order written", async (t) => {
    const rules = ruleSet(
      object("b", [{ match: "^quay\\.io/.*$", replace: "b.io/x" }]),
      // Another pattern for the same images: identical patterns would conflict.
      object("a", [{ match: "^gcr\\.io/.*$", replace: "a.io/gcr" }, { match: "^quay\\.io/(.*)$", replace: "a.io/x" }]),
    );
    await table(t, rules, [
      {
        image: "quay.io/x/y",
        expect: { action: "rewrite", output: "a.io/x:latest", by: "ClusterImageRewrite a, rule 1" },
      },
    ]);
  });

  await t.step("ties: namespaced before cluster, then by name", async (t) => {
    // Four patterns for the same images (the same prefix or pattern twice would conflict).
    const rules = ruleSet(
      object("a", [{ match: "^docker\\.io/(.*)$", replace: "cluster-a.io/$1" }]),
      object("b", [{ match: "^docker\\.io/(.+)$", replace: "cluster-b.io/$1" }]),
      object("z", [{ match: "^docker\\.io/([^@]*)$", replace: "team-z.io/$1" }], {
        kind: "ImageRewrite",
        namespace: "team",
      }),
      object("y", [{ match: "^docker\\.io/([^:]*):(.*)$", replace: "team-y.io/$1:$2" }], {
        kind: "ImageRewrite",
        namespace: "team",
      }),
    );
    await table(t, rules, [
      {
        name: "nginx in team",
        image: "nginx",
        context: { namespace: "team" },
        expect: { action: "rewrite", output: "team-y.io/library/nginx:latest", by: "ImageRewrite team/y, rule 0" },
      },
      {
        name: "nginx in other",
        image: "nginx",
        context: { namespace: "other" },
        expect: { action: "rewrite", output: "cluster-a.io/library/nginx:latest", by: "ClusterImageRewrite a, rule 0" },
      },
    ]);
    assert.deepEqual(rules.objects.map((o) => o.label), [
      'ImageRewrite "team/y"',
      'ImageRewrite "team/z"',
      'ClusterImageRewrite "a"',
      'ClusterImageRewrite "b"',
    ]);
  });
});

Deno.test("decide() honours scopes", async (t) => {
  const fallback = object("fallback", [{ prefix: "docker.io", replace: "fallback.io" }], { priority: -1 });
  const scoped = (options: Options) =>
    ruleSet(object("scoped", [{ prefix: "docker.io", replace: "scoped.io" }], options), fallback);
  const hit: Outcome = {
    action: "rewrite",
    output: "scoped.io/library/nginx:latest",
    by: "ClusterImageRewrite scoped, rule 0",
  };
  const miss: Outcome = {
    action: "rewrite",
    output: "fallback.io/library/nginx:latest",
    by: "ClusterImageRewrite fallback, rule 0",
  };
  const rows: { name: string; options: Options; context: ImageContext; expect: Outcome }[] = [
    {
      name: "namespaces [canary] in canary",
      options: { namespaces: ["canary"] },
      context: { namespace: "canary" },
      expect: hit,
    },
    {
      name: "namespaces [canary] in prod",
      options: { namespaces: ["canary"] },
      context: { namespace: "prod" },
      expect: miss,
    },
    { name: "namespaces [canary] without a namespace", options: { namespaces: ["canary"] }, context: {}, expect: miss },
    { name: "namespaces [] in canary", options: { namespaces: [] }, context: { namespace: "canary" }, expect: miss },
    {
      name: "podSelector app=web on app=web,tier=1",
      options: { podSelector: { matchLabels: { app: "web" } } },
      context: { podLabels: { app: "web", tier: "1" } },
      expect: hit,
    },
    {
      name: "podSelector app=web on app=api",
      options: { podSelector: { matchLabels: { app: "web" } } },
      context: { podLabels: { app: "api" } },
      expect: miss,
    },
    {
      name: "podSelector app=web on no labels",
      options: { podSelector: { matchLabels: { app: "web" } } },
      context: {},
      expect: miss,
    },
    { name: "podSelector {} on no labels", options: { podSelector: {} }, context: {}, expect: hit },
    ...([
      ["In", ["web", "api"], { app: "api" }, hit],
      ["In", ["web", "api"], { app: "db" }, miss],
      ["In", ["web", "api"], {}, miss],
      ["NotIn", ["web"], { app: "api" }, hit],
      ["NotIn", ["web"], {}, hit],
      ["NotIn", ["web"], { app: "web" }, miss],
      ["Exists", undefined, { app: "" }, hit],
      ["Exists", undefined, { other: "x" }, miss],
      ["DoesNotExist", undefined, { other: "x" }, hit],
      ["DoesNotExist", undefined, { app: "web" }, miss],
    ] as const).map(([operator, values, podLabels, expect]) => ({
      name: `podSelector app ${operator}${values === undefined ? "" : ` (${values.join(",")})`} on ${
        JSON.stringify(podLabels)
      }`,
      options: {
        podSelector: {
          matchExpressions: [{ key: "app", operator, ...(values === undefined ? {} : { values: [...values] }) }],
        },
      },
      context: { podLabels },
      expect,
    })),
    {
      name: "namespaceSelector env=prod without namespace labels",
      options: { namespaceSelector: { matchLabels: { env: "prod" } } },
      context: { namespace: "shop" },
      expect: miss,
    },
    {
      name: "namespaceSelector {} without namespace labels (empty selects every namespace)",
      options: { namespaceSelector: {} },
      context: { namespace: "shop" },
      expect: hit,
    },
    {
      name: "namespaceSelector env=prod on env=prod",
      options: { namespaceSelector: { matchLabels: { env: "prod" } } },
      context: { namespace: "shop", namespaceLabels: { env: "prod" } },
      expect: hit,
    },
    {
      name: "namespaceSelector env=prod on env=dev",
      options: { namespaceSelector: { matchLabels: { env: "prod" } } },
      context: { namespace: "shop", namespaceLabels: { env: "dev" } },
      expect: miss,
    },
    {
      name: "ImageRewrite team in team",
      options: { kind: "ImageRewrite", namespace: "team" },
      context: { namespace: "team" },
      expect: { ...hit, by: "ImageRewrite team/scoped, rule 0" },
    },
    {
      name: "ImageRewrite team in other",
      options: { kind: "ImageRewrite", namespace: "team" },
      context: { namespace: "other" },
      expect: miss,
    },
    {
      name: "ImageRewrite team without a namespace",
      options: { kind: "ImageRewrite", namespace: "team" },
      context: {},
      expect: miss,
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      assert.deepEqual(outcome(decide(scoped(row.options), "nginx", { context: row.context })), row.expect);
    });
  }
});

Deno.test("decide() bypasses rules for the bypass prefix", async (t) => {
  const rules = ruleSet(
    object("hub", [{ prefix: "docker.io", replace: "cache.io/hub" }, { prefix: "direct.to", keep: true }]),
  );
  await table(t, rules, [
    { image: "direct.to/nginx:1", expect: { action: "bypass", output: "docker.io/library/nginx:1" } },
    { image: "direct.to/quay.io/a/b@" + DIGEST, expect: { action: "bypass", output: `quay.io/a/b@${DIGEST}` } },
    { image: "direct.to/Nginx", expect: { action: "invalid-output", output: "Nginx" } },
    { image: "direct.to/", expect: { action: "invalid-output", output: "" } },
    {
      name: "direct.to/nginx with bypass prefix mirror.local/raw/",
      image: "direct.to/nginx",
      options: { bypassPrefix: "mirror.local/raw/" },
      expect: { action: "keep", by: "ClusterImageRewrite hub, rule 1" },
    },
    {
      name: "mirror.local/raw/nginx with bypass prefix mirror.local/raw/",
      image: "mirror.local/raw/nginx",
      options: { bypassPrefix: "mirror.local/raw/" },
      expect: { action: "bypass", output: "docker.io/library/nginx:latest" },
    },
    {
      name: "mirror.local/raw/nginx with bypass prefix mirror.local/raw",
      image: "mirror.local/raw/nginx",
      options: { bypassPrefix: "mirror.local/raw" },
      expect: { action: "bypass", output: "docker.io/library/nginx:latest" },
    },
    {
      name: "mirror.local/rawx/nginx with bypass prefix mirror.local/raw",
      image: "mirror.local/rawx/nginx",
      options: { bypassPrefix: "mirror.local/raw" },
      expect: { action: "none" },
    },
    {
      name: "direct.to/nginx with the bypass disabled",
      image: "direct.to/nginx",
      options: { bypassPrefix: "" },
      expect: { action: "keep", by: "ClusterImageRewrite hub, rule 1" },
    },
  ]);
  assert.equal(DEFAULT_BYPASS_PREFIX, "direct.to/");
});

Deno.test("decide() reports invalid images and outputs, never rewriting them", async (t) => {
  const rules = ruleSet(object("hub", [
    { match: "^docker\\.io/(.*)$", replace: `cache.io/${"a".repeat(200)}/$1` },
    { prefix: "quay.io", replace: `cache.io/${"q".repeat(200)}` },
  ]));
  const long = `bitnami/${"b".repeat(60)}:1`;
  const invalid: [string, string][] = [
    ["", "empty"],
    ["Nginx", "uppercase-repository"],
    ["nginx:", "invalid-tag"],
    ["nginx@sha256:abc", "invalid-digest"],
    ["bad_host.io:x/a", "invalid-registry"],
    ["nginx/", "invalid-format"],
    [`quay.io/${"x".repeat(300)}`, "name-too-long"],
    ["a".repeat(2000), "name-too-long"],
  ];
  for (const [image, reason] of invalid) {
    await t.step(image === "" ? "an empty image" : image.slice(0, 40), () => {
      const decision = decide(rules, image, { context: {} });
      assert.equal(decision.action, "invalid-input");
      assert.equal(decision.action === "invalid-input" ? decision.error.reason : undefined, reason);
    });
  }
  await t.step(`match output over 255 characters for ${long}`, () => {
    const decision = decide(rules, long, { context: {} });
    assert.equal(decision.action, "invalid-output");
    if (decision.action !== "invalid-output") return;
    assert.equal(decision.error.reason, "name-too-long");
    assert.equal(decision.output, `cache.io/${"a".repeat(200)}/${long}`);
    assert.equal(decision.rule?.index, 0);
  });
  await t.step("prefix output over 255 characters", () => {
    const decision = decide(rules, `quay.io/${"p".repeat(60)}`, { context: {} });
    assert.equal(decision.action, "invalid-output");
    assert.equal(decision.action === "invalid-output" ? decision.rule?.index : undefined, 1);
  });
});

Deno.test("decide() explains matches that were out of scope", async (t) => {
  const rules = ruleSet(
    object("canary", [{ prefix: "docker.io", replace: "canary.io" }], { namespaces: ["canary"], priority: 1 }),
    object("hub", [{ exact: "nginx", replace: "hub.io/nginx" }], { kind: "ImageRewrite", namespace: "team" }),
    object("everywhere", [{ match: "^docker\\.io/.*$", replace: "all.io/x" }]),
  );
  await t.step("nginx in prod with explain", () => {
    const decision = decide(rules, "nginx", { context: { namespace: "prod" }, explain: true });
    assert.deepEqual(outcome(decision), {
      action: "rewrite",
      output: "all.io/x:latest",
      by: "ClusterImageRewrite everywhere, rule 0",
    });
    assert.equal(decision.notes.length, 2);
    assert.ok(decision.notes[0]?.includes("ClusterImageRewrite canary, rule 0"));
    assert.ok(decision.notes[1]?.includes("ImageRewrite team/hub, rule 0"));
  });
  await t.step("nginx in prod without explain", () => {
    assert.deepEqual(decide(rules, "nginx", { context: { namespace: "prod" } }).notes, []);
  });
  await t.step("nginx in canary with explain", () => {
    const decision = decide(rules, "nginx", { context: { namespace: "canary" }, explain: true });
    assert.equal(outcome(decision).by, "ClusterImageRewrite canary, rule 0");
    assert.deepEqual(decision.notes, []);
  });
  await t.step("quay.io/a/b in prod with explain", () => {
    assert.deepEqual(decide(rules, "quay.io/a/b", { context: { namespace: "prod" }, explain: true }).notes, []);
  });
});

Deno.test("decide() looks rules up in an exact map and a prefix trie", async (t) => {
  const count = 10_000;
  const exact: RuleSpec[] = [];
  const prefixes: RuleSpec[] = [];
  for (let i = 0; i < count; i++) {
    exact.push({ exact: `registry${i}.example.com/app:${i}`, replace: `mirror.example.com/exact/app:${i}` });
    prefixes.push({ prefix: `docker.io/team${i}`, replace: `mirror.example.com/team${i}` });
  }
  const started = performance.now();
  const rules = ruleSet(object("exact", exact), object("prefixes", prefixes));
  const compileMs = performance.now() - started;
  await t.step("compiles into one level with a map and a trie", () => {
    assert.equal(rules.ruleCount, 2 * count);
    assert.equal(rules.levels.length, 1);
    const level = rules.levels[0];
    assert.equal(level?.exact.size, count);
    assert.equal(level?.match.length, 0);
    assert.deepEqual([...level?.prefixes.children.keys() ?? []], ["docker.io"]);
    assert.equal(level?.prefixes.children.get("docker.io")?.children.size, count);
    assert.ok(compileMs < 20_000, `compiled in ${compileMs} ms`);
  });
  await t.step("registry9876.example.com/app:9876", () => {
    const decision = decide(rules, "registry9876.example.com/app:9876", { context: {} });
    assert.deepEqual(outcome(decision), {
      action: "rewrite",
      output: "mirror.example.com/exact/app:9876",
      by: "ClusterImageRewrite exact, rule 9876",
    });
  });
  await t.step("team4321/app:1", () => {
    assert.deepEqual(outcome(decide(rules, "team4321/app:1", { context: {} })), {
      action: "rewrite",
      output: "mirror.example.com/team4321/app:1",
      by: "ClusterImageRewrite prefixes, rule 4321",
    });
  });
  await t.step(
    "team43210/app:1",
    () => assert.deepEqual(outcome(decide(rules, "team43210/app:1", { context: {} })), { action: "none" }),
  );
  await t.step("10,000 decisions", () => {
    const begin = performance.now();
    for (let i = 0; i < count; i++) {
      decide(rules, i % 2 === 0 ? `team${i}/app` : `registry${i}.example.com/app:${i}`, { context: {} });
    }
    const perDecision = (performance.now() - begin) / count;
    assert.ok(perDecision < 0.5, `${perDecision} ms per decision`);
  });
});
