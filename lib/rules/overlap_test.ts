// Tests for rules that decide the same references: conflicts, tenant overrides, enforced objects, rules that never decide.

import assert from "node:assert/strict";
import { compileRuleSet } from "./compile.ts";
import { decide } from "./engine.ts";
import { loadRuleTexts } from "../compat/load.ts";
import { formatProblem, type Problem } from "./problem.ts";
import { API_VERSION, type LabelSelector, type RewriteObject, type RuleSpec, validateObject } from "./schema.ts";

interface Options {
  readonly kind?: "ClusterImageRewrite" | "ImageRewrite";
  readonly namespace?: string;
  readonly priority?: number;
  readonly namespaces?: string[];
  readonly enforced?: boolean;
  readonly podSelector?: LabelSelector;
  readonly namespaceSelector?: LabelSelector;
}

function object(name: string, rules: RuleSpec[], options: Options = {}): RewriteObject {
  const result = validateObject({
    apiVersion: API_VERSION,
    kind: options.kind ?? "ClusterImageRewrite",
    metadata: { name, ...(options.namespace === undefined ? {} : { namespace: options.namespace }) },
    spec: {
      ...(options.priority === undefined ? {} : { priority: options.priority }),
      ...(options.namespaces === undefined ? {} : { namespaces: options.namespaces }),
      ...(options.enforced === undefined ? {} : { enforced: options.enforced }),
      ...(options.podSelector === undefined ? {} : { podSelector: options.podSelector }),
      ...(options.namespaceSelector === undefined ? {} : { namespaceSelector: options.namespaceSelector }),
      rules,
    },
  });
  assert.deepEqual(result.problems, []);
  assert.ok(result.object !== undefined);
  return result.object;
}

const tenant = (name: string, rules: RuleSpec[], namespace = "team-a") =>
  object(name, rules, { kind: "ImageRewrite", namespace });

/** `[severity, code, object, rule, other object, other rule]`. */
type Found = [Problem["severity"], Problem["code"], string, number | undefined, string | undefined, number | undefined];

function found(problems: readonly Problem[]): Found[] {
  return problems.map((p) => [p.severity, p.code, p.object ?? "", p.rule, p.related?.object, p.related?.rule]);
}

const C = (name: string) => `ClusterImageRewrite "${name}"`;
const N = (name: string, namespace = "team-a") => `ImageRewrite "${namespace}/${name}"`;

const HARBOR = { prefix: "docker.io", replace: "harbor.example.com/dockerhub" };
const ECR = { prefix: "docker.io/", replace: "123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub" };
const NGINX_A = { exact: "nginx", replace: "a.io/nginx:1" };
const NGINX_B = { exact: "docker.io/library/nginx:latest", replace: "b.io/nginx:1" };
const QUAY_A = { match: "^quay\\.io/(.*)$", replace: "a.io/quay/$1" };
const QUAY_B = { match: "^quay\\.io/(.*)$", replace: "b.io/quay/$1" };

const ROWS: { name: string; objects: RewriteObject[]; problems: Found[]; used: string[] }[] = [
  {
    name: "the same prefix (normalized) in two cluster objects: the first listed wins",
    objects: [object("harbor", [HARBOR]), object("ecr", [ECR])],
    problems: [["error", "conflict", C("ecr"), 0, C("harbor"), 0]],
    used: [C("harbor")],
  },
  {
    name: "the same prefix in two cluster objects, listed the other way",
    objects: [object("ecr", [ECR]), object("harbor", [HARBOR])],
    problems: [["error", "conflict", C("harbor"), 0, C("ecr"), 0]],
    used: [C("ecr")],
  },
  {
    name: "the same prefix at two priorities",
    objects: [object("harbor", [HARBOR], { priority: 1 }), object("ecr", [ECR])],
    problems: [],
    used: [C("harbor"), C("ecr")],
  },
  {
    name: "the same prefix with the same outcome: the later never decides",
    objects: [object("b", [HARBOR]), object("a", [{ ...HARBOR, prefix: "docker.io/" }])],
    problems: [["warning", "never-decides", C("b"), 0, C("a"), 0]],
    used: [C("a"), C("b")],
  },
  {
    name: "identical patterns with another replace",
    objects: [object("a", [QUAY_A]), object("b", [{ prefix: "gcr.io", keep: true }, QUAY_B])],
    problems: [["error", "conflict", C("b"), 1, C("a"), 0]],
    used: [C("a")],
  },
  {
    name: "identical patterns with the same replace: the later never decides",
    objects: [object("a", [QUAY_A]), object("b", [QUAY_A])],
    problems: [["warning", "never-decides", C("b"), 0, C("a"), 0]],
    used: [C("a"), C("b")],
  },
  {
    name: "identical patterns, one on the original reference",
    objects: [object("a", [QUAY_A]), object("b", [{ ...QUAY_B, on: "original" }])],
    problems: [],
    used: [C("a"), C("b")],
  },
  {
    name: "the same exact reference: the first listed wins, a bystander stays",
    objects: [object("b", [NGINX_B]), object("a", [NGINX_A]), object("c", [{ prefix: "quay.io", keep: true }])],
    problems: [["error", "conflict", C("a"), 0, C("b"), 0]],
    used: [C("b"), C("c")],
  },
  {
    name: "a scoped object's twin never decides only where the first covers it",
    objects: [object("a", [HARBOR], { namespaces: ["x"] }), object("b", [HARBOR])],
    problems: [],
    used: [C("a"), C("b")],
  },
  {
    name: "overlapping namespaces lists",
    objects: [
      object("a", [NGINX_A], { namespaces: ["canary", "staging"] }),
      object("b", [NGINX_B], { namespaces: ["staging", "prod"] }),
    ],
    problems: [["error", "conflict", C("b"), 0, C("a"), 0]],
    used: [C("a")],
  },
  {
    name: "disjoint namespaces lists",
    objects: [object("a", [NGINX_A], { namespaces: ["canary"] }), object("b", [NGINX_B], { namespaces: ["prod"] })],
    problems: [],
    used: [C("a"), C("b")],
  },
  {
    name: "a tenant's object created after the platform's: an override in its namespace",
    objects: [object("hub", [HARBOR]), tenant("mine", [ECR])],
    problems: [["warning", "override", N("mine"), 0, C("hub"), 0]],
    used: [N("mine"), C("hub")],
  },
  {
    name: "a tenant's object created before the platform's: still an override, never a squat",
    objects: [tenant("squat", [NGINX_B]), object("hub", [NGINX_A])],
    problems: [["warning", "override", N("squat"), 0, C("hub"), 0]],
    used: [N("squat"), C("hub")],
  },
  {
    name: "a tenant's object of a higher priority: still an override, in its namespace only",
    objects: [
      object("hub", [HARBOR]),
      object("mine", [ECR], { kind: "ImageRewrite", namespace: "team-a", priority: 5 }),
    ],
    problems: [["warning", "override", N("mine"), 0, C("hub"), 0]],
    used: [N("mine"), C("hub")],
  },
  {
    name: "a tenant's object of a lower priority: its rule never decides",
    objects: [object("hub", [HARBOR], { priority: 5 }), tenant("mine", [ECR])],
    problems: [["warning", "never-decides", N("mine"), 0, C("hub"), 0]],
    used: [C("hub"), N("mine")],
  },
  {
    name: "a tenant's object outside a cluster object's namespaces",
    objects: [tenant("mine", [NGINX_A]), object("hub", [NGINX_B], { namespaces: ["team-b"] })],
    problems: [],
    used: [N("mine"), C("hub")],
  },
  {
    name: "two tenants in two namespaces",
    objects: [tenant("a", [NGINX_A]), tenant("a", [NGINX_B], "team-b")],
    problems: [],
    used: [N("a"), N("a", "team-b")],
  },
  {
    name: "two objects in one namespace: the first listed wins",
    objects: [tenant("b", [QUAY_A]), tenant("a", [QUAY_B])],
    problems: [["error", "conflict", N("a"), 0, N("b"), 0]],
    used: [N("b")],
  },
  {
    name: "an enforced object silences a tenant's rule for the same references",
    objects: [tenant("mine", [ECR], "team-a"), object("platform", [HARBOR], { enforced: true })],
    problems: [["warning", "never-decides", N("mine"), 0, C("platform"), 0]],
    used: [C("platform"), N("mine")],
  },
  {
    name: "disjoint podSelectors (one label, two values): never the same Pod, so no conflict",
    objects: [
      object("team-a", [HARBOR], { podSelector: { matchLabels: { team: "a" } } }),
      object("team-b", [ECR], { podSelector: { matchLabels: { team: "b" } } }),
    ],
    problems: [],
    used: [C("team-a"), C("team-b")],
  },
  {
    name: "disjoint podSelectors (Exists and DoesNotExist; In and NotIn)",
    objects: [
      object("a", [QUAY_A], { podSelector: { matchExpressions: [{ key: "gpu", operator: "Exists" }] } }),
      object("b", [QUAY_B], { podSelector: { matchExpressions: [{ key: "gpu", operator: "DoesNotExist" }] } }),
      object("c", [NGINX_A], {
        podSelector: { matchExpressions: [{ key: "tier", operator: "In", values: ["web", "api"] }] },
      }),
      object("d", [NGINX_B], {
        podSelector: { matchExpressions: [{ key: "tier", operator: "NotIn", values: ["web", "api"] }] },
      }),
    ],
    problems: [],
    used: [C("a"), C("b"), C("c"), C("d")],
  },
  {
    name: "disjoint namespaceSelectors: no conflict",
    objects: [
      object("prod", [HARBOR], { namespaceSelector: { matchLabels: { env: "prod" } } }),
      object("dev", [ECR], { namespaceSelector: { matchLabels: { env: "dev" } } }),
    ],
    problems: [],
    used: [C("dev"), C("prod")],
  },
  {
    name: "namespaces [team-a] and a namespaceSelector on the name label of team-b: never the same namespace",
    objects: [
      object("a", [HARBOR], { namespaces: ["team-a"] }),
      object("b", [ECR], { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "team-b" } } }),
    ],
    problems: [],
    used: [C("a"), C("b")],
  },
  {
    name: "namespaces [team-a, team-b] and a namespaceSelector on the name label In [team-b]: a conflict",
    objects: [
      object("a", [HARBOR], { namespaces: ["team-a", "team-b"] }),
      object("b", [ECR], {
        namespaceSelector: {
          matchExpressions: [{ key: "kubernetes.io/metadata.name", operator: "In", values: ["team-b", "team-c"] }],
        },
      }),
    ],
    problems: [["error", "conflict", C("b"), 0, C("a"), 0]],
    used: [C("a")],
  },
  {
    name: "podSelectors that one Pod can satisfy both of: a conflict",
    objects: [
      object("a", [HARBOR], { podSelector: { matchLabels: { team: "a" } } }),
      object("b", [ECR], {
        podSelector: { matchExpressions: [{ key: "team", operator: "In", values: ["a", "b"] }] },
      }),
      object("c", [HARBOR], { podSelector: { matchLabels: { app: "web" } } }),
    ],
    problems: [
      ["error", "conflict", C("b"), 0, C("a"), 0],
    ],
    used: [C("a"), C("c")],
  },
  {
    name: "a platform object with a podSelector at a higher priority: the tenant's rule still decides elsewhere",
    objects: [
      object("hub", [HARBOR], { priority: 5, podSelector: { matchLabels: { cache: "hub" } } }),
      tenant("mine", [ECR]),
    ],
    problems: [],
    used: [C("hub"), N("mine")],
  },
  {
    name: "an enforced object with a namespaceSelector does not silence a tenant's rule",
    objects: [
      tenant("mine", [ECR]),
      object("platform", [HARBOR], { enforced: true, namespaceSelector: { matchLabels: { env: "prod" } } }),
    ],
    problems: [],
    used: [C("platform"), N("mine")],
  },
  {
    name: "a platform object listing the tenant's namespace at a higher priority: the tenant's rule never decides",
    objects: [object("hub", [HARBOR], { priority: 5, namespaces: ["team-a"] }), tenant("mine", [ECR])],
    problems: [["warning", "never-decides", N("mine"), 0, C("hub"), 0]],
    used: [C("hub"), N("mine")],
  },
  {
    name: "an enforced object and a cluster object of higher priority: the documented order, no problem",
    objects: [object("platform", [HARBOR], { enforced: true }), object("other", [ECR], { priority: 10 })],
    problems: [],
    used: [C("platform"), C("other")],
  },
];

Deno.test("compileRuleSet() decides overlaps between objects", async (t) => {
  for (const row of ROWS) {
    await t.step(row.name, () => {
      const result = compileRuleSet(row.objects);
      assert.deepEqual(found(result.problems), row.problems);
      assert.deepEqual(result.ruleSet.objects.map((o) => o.label), row.used);
      for (const input of row.objects) {
        const label = result.ruleSet.objects.find((o) => o.source === input)?.label;
        assert.equal(result.inForce.has(input), label !== undefined);
      }
    });
  }
});

Deno.test("a tenant's override changes its own namespace only", async (t) => {
  const platform = object("hub", [HARBOR]);
  const mine = tenant("mine", [ECR]);
  for (const objects of [[platform, mine], [mine, platform]]) {
    const { ruleSet } = compileRuleSet(objects);
    await t.step(`listed ${objects.map((o) => o.metadata.name).join(", ")}`, () => {
      const there = decide(ruleSet, "nginx", { context: { namespace: "team-a" } });
      const elsewhere = decide(ruleSet, "nginx", { context: { namespace: "team-b" } });
      assert.equal(
        there.action === "rewrite" && there.output,
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub/library/nginx:latest",
      );
      assert.equal(
        elsewhere.action === "rewrite" && elsewhere.output,
        "harbor.example.com/dockerhub/library/nginx:latest",
      );
    });
  }
  await t.step("an enforced platform object wins in the tenant's namespace too", () => {
    const { ruleSet } = compileRuleSet([mine, object("hub", [HARBOR], { enforced: true })]);
    const there = decide(ruleSet, "nginx", { context: { namespace: "team-a" } });
    assert.equal(there.action === "rewrite" && there.output, "harbor.example.com/dockerhub/library/nginx:latest");
  });
});

const HARBOR_FILE = `apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: dockerhub-harbor
spec:
  rules:
    - prefix: docker.io
      replace: harbor.example.com/dockerhub
`;

const ECR_FILE = `# ECR instead
apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: dockerhub-ecr
spec:
  rules:
    - prefix: quay.io
      keep: true
    - prefix: docker.io/
      replace: 123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub
`;

const TWICE_FILE = `apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: twice
spec:
  rules:
    - match: '^quay\\.io/(.*)$'
      replace: a.io/quay/$1
    - match: '^quay\\.io/(.*)$'
      replace: a.io/quay/$1
    - match: '^quay\\.io/(.*)$'
      replace: b.io/quay/$1
`;

/** `[code, file:line:col, related file:line:col]`. */
function placed(problems: readonly Problem[]): [string, string, string | undefined][] {
  return problems.map((p) => [
    p.code,
    `${p.source}:${p.line}:${p.column}`,
    p.related === undefined ? undefined : `${p.related.source}:${p.related.line}:${p.related.column}`,
  ]);
}

Deno.test("loadRuleTexts() places overlaps in files, naming both sides", async (t) => {
  await t.step("across two files", () => {
    const result = loadRuleTexts([{ name: "a.yaml", text: HARBOR_FILE }, { name: "b.yaml", text: ECR_FILE }]);
    assert.deepEqual(placed(result.problems), [["conflict", "b.yaml:10:7", "a.yaml:7:7"]]);
    assert.match(
      formatProblem(result.problems[0]!),
      /^b\.yaml:10:7: error: .*"dockerhub-harbor".* \(see a\.yaml:7:7\)$/,
    );
  });
  await t.step("twice in one file", () => {
    const result = loadRuleTexts([{ name: "twice.yaml", text: TWICE_FILE }]);
    assert.deepEqual(placed(result.problems).filter(([code]) => code !== "self-match"), [
      ["never-decides", "twice.yaml:9:7", "twice.yaml:7:7"],
      ["conflict", "twice.yaml:11:7", "twice.yaml:7:7"],
    ]);
  });
  await t.step("in one file holding both objects", () => {
    const result = loadRuleTexts([{ name: "both.yaml", text: `${HARBOR_FILE}---\n${ECR_FILE}` }]);
    assert.deepEqual(placed(result.problems), [["conflict", "both.yaml:19:7", "both.yaml:7:7"]]);
  });
});

Deno.test("objects with disjoint podSelectors each decide for their own Pods", () => {
  const { ruleSet, problems } = compileRuleSet([
    object("team-a", [HARBOR], { podSelector: { matchLabels: { team: "a" } } }),
    object("team-b", [ECR], { podSelector: { matchLabels: { team: "b" } } }),
  ]);
  assert.deepEqual(problems, []);
  const output = (team: string) => {
    const decision = decide(ruleSet, "nginx", { context: { namespace: "web", podLabels: { team } } });
    return decision.action === "rewrite" ? decision.output : decision.action;
  };
  assert.equal(output("a"), "harbor.example.com/dockerhub/library/nginx:latest");
  assert.equal(output("b"), "123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub/library/nginx:latest");
  assert.equal(output("c"), "none");
});
