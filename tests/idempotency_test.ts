// Property test: for every preset in rules/, admitting a mutated Pod again changes nothing.

import assert from "node:assert/strict";
import fc from "fast-check";
import jsonpatch, { type Operation } from "fast-json-patch";
import { parseReference } from "../lib/image/reference.ts";
import { type MutateOptions, mutatePod, ORIGINAL_IMAGES_ANNOTATION, readPod } from "../lib/mutate/pod.ts";
import type { RuleSet } from "../lib/rules/compile.ts";
import { loadRuleTexts, type RuleText } from "../lib/compat/load.ts";
import { readRulePaths } from "../lib/sources/rule_files.ts";

const RULES_DIR = decodeURIComponent(new URL("../rules/", import.meta.url).pathname);

/** The example object from DESIGN.md, as written there. */
const DESIGN_EXAMPLE = `apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: docker-hub-cache
spec:
  priority: 0
  namespaces: [canary, staging]
  namespaceSelector: {}
  podSelector: {}
  rules:
    - exact: ghcr.io/fantasy/coolstuff:v1.0
      replace: my-registry.com/patched-coolstuff:latest
    - prefix: docker.io/library
      replace: harbor.example.com/dockerhub/library
    - prefix: docker.io
      replace: harbor.example.com/dockerhub
    - match: '^(gcr\\.io|quay\\.io|ghcr\\.io)/(.*)$'
      replace: cache.internal.com/$1/$2
    - prefix: internal-registry.company.com
      keep: true
`;

/** A rule that matches its own output: only the original-images annotation keeps re-admission stable. */
const SELF_MATCH = `apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: everything-to-cache
spec:
  rules:
    - match: '^(.*)$'
      replace: cache.io/$1
`;

/** Every `rules/*.yaml` preset (not `*.cases.yaml`), found at test time. */
async function presetTexts(): Promise<readonly RuleText[]> {
  const paths: string[] = [];
  try {
    for await (const entry of Deno.readDir(RULES_DIR)) {
      if (entry.isFile && entry.name.endsWith(".yaml") && !entry.name.endsWith(".cases.yaml")) {
        paths.push(`${RULES_DIR}${entry.name}`);
      }
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  paths.sort();
  const { texts, problems } = await readRulePaths(paths);
  assert.deepEqual(problems, []);
  return texts;
}

const TEXTS: readonly RuleText[] = [
  ...await presetTexts(),
  { name: "DESIGN.md example", text: DESIGN_EXAMPLE },
  { name: "self-matching rule", text: SELF_MATCH },
];

const RULE_SETS: readonly { name: string; ruleSet: RuleSet }[] = TEXTS.map((text) => {
  const { ruleSet, problems } = loadRuleTexts([text]);
  const errors = problems.filter((problem) => problem.severity === "error");
  assert.deepEqual(errors, [], `${text.name} does not load`);
  return { name: text.name, ruleSet };
});

const REGISTRIES = [
  "docker.io",
  "index.docker.io",
  "gcr.io",
  "quay.io",
  "ghcr.io",
  "k8s.gcr.io",
  "localhost:5000",
  "[2001:db8::1]:5000",
  "10.0.0.1:5000",
  "old-registry.company.com",
  "dev-registry.local",
];
const NAMESPACES = ["default", "canary", "staging", "dev-a", "kube-system"];
const LOWER_ALNUM = [..."abcdefghijklmnopqrstuvwxyz0123456789"];

const alnum = fc.string({ unit: fc.constantFrom(...LOWER_ALNUM), minLength: 1, maxLength: 6 });
const pathComponent = fc.oneof(
  fc.constantFrom("library", "nginx", "redis", "bitnami", "pause", "team", "app", "coredns", "fantasy"),
  fc.tuple(alnum, fc.array(fc.tuple(fc.constantFrom(".", "_", "__", "-", "--"), alnum), { maxLength: 2 }))
    .map(([head, rest]) => head + rest.map(([separator, part]) => separator + part).join("")),
);
const tag = fc.oneof(
  fc.constantFrom("latest", "1.25", "v1.0", "7", "3.20-alpine", "nonroot", "V1"),
  fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,15}$/),
);
const digest = fc.string({ unit: fc.constantFrom(..."0123456789abcdef"), minLength: 64, maxLength: 64 })
  .map((hex) => `sha256:${hex}`);
const composed = fc.record({
  registry: fc.option(fc.constantFrom(...REGISTRIES), { nil: undefined }),
  path: fc.array(pathComponent, { minLength: 1, maxLength: 3 }),
  tag: fc.option(tag, { nil: undefined }),
  digest: fc.option(digest, { nil: undefined }),
}).map(({ registry, path, tag, digest }) =>
  (registry === undefined ? "" : `${registry}/`) + path.join("/") + (tag === undefined ? "" : `:${tag}`) +
  (digest === undefined ? "" : `@${digest}`)
)
  // Without a registry, a first component with a dot is read as a host, where `_` is not allowed.
  .filter((image) => parseReference(image).ok);
const written = fc.constantFrom(
  "nginx",
  "nginx:1.25",
  "bitnami/redis:7",
  "busybox:1.36",
  "library/alpine",
  "docker.io/nginx",
  "index.docker.io/library/nginx:latest",
  "registry-1.docker.io/library/nginx:1.27",
  "k8s.gcr.io/pause:3.9",
  "registry.k8s.io/pause:3.10",
  "gcr.io/distroless/static:nonroot",
  "quay.io/prometheus/node-exporter:v1.8.0",
  "ghcr.io/fantasy/coolstuff:v1.0",
  "old-registry.company.com/team/app:2.1",
  "dev-registry.local/app:1",
  "internal-registry.company.com/tools/ci:3",
  "direct.to/nginx:1.25",
  "localhost:5000/app",
  "10.0.0.1:5000/team/app:v2",
  `[2001:db8::1]:5000/app@sha256:${"b".repeat(64)}`,
  `nginx:1.27@sha256:${"c".repeat(64)}`,
);
const image = fc.oneof(composed, written);

const FIELDS = ["containers", "initContainers", "ephemeralContainers", "volumes"] as const;
type Field = (typeof FIELDS)[number];
const field = fc.oneof(
  { arbitrary: fc.constant<Field>("containers"), weight: 4 },
  { arbitrary: fc.constantFrom<Field>("initContainers", "ephemeralContainers", "volumes"), weight: 1 },
);

interface Entry {
  readonly field: Field;
  readonly image: string;
}

const podCase = fc.record({
  rules: fc.nat({ max: RULE_SETS.length - 1 }),
  namespace: fc.constantFrom(...NAMESPACES),
  namespaceLabelsKnown: fc.boolean(),
  labels: fc.option(fc.constantFrom({}, { app: "web" }, { env: "dev", app: "api" }), { nil: undefined }),
  annotations: fc.option(fc.constantFrom({}, { "team.example.com/owner": "payments" }), { nil: undefined }),
  entries: fc.array(fc.record({ field, image }), { minLength: 1, maxLength: 4 }),
});

/** Slot key (as the annotation names it) of the i-th entry. */
function keyOf(entry: Entry, index: number): string {
  return entry.field === "volumes" ? `volume:v${index}` : `c${index}`;
}

function buildPod(
  namespace: string,
  entries: readonly Entry[],
  labels: Readonly<Record<string, string>> | undefined,
  annotations: Readonly<Record<string, string>> | undefined,
): Record<string, unknown> {
  const spec: Record<string, unknown[]> = { containers: [] };
  entries.forEach((entry, index) => {
    const item = entry.field === "volumes"
      ? { name: `v${index}`, image: { reference: entry.image } }
      : { name: `c${index}`, image: entry.image };
    (spec[entry.field] ??= []).push(item);
  });
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: "web",
      namespace,
      ...(labels === undefined ? {} : { labels }),
      ...(annotations === undefined ? {} : { annotations }),
    },
    spec,
  };
}

function applyPatch(pod: unknown, patch: readonly unknown[]): Record<string, unknown> {
  return jsonpatch.applyPatch(structuredClone(pod), structuredClone(patch) as Operation[], true)
    .newDocument as Record<string, unknown>;
}

function annotationsOf(pod: Record<string, unknown>): Record<string, unknown> | undefined {
  const metadata = pod["metadata"] as Record<string, unknown> | undefined;
  return metadata?.["annotations"] as Record<string, unknown> | undefined;
}

Deno.test("generated image references are valid", () => {
  fc.assert(
    fc.property(image, (reference) => {
      assert.ok(parseReference(reference).ok, reference);
    }),
    { numRuns: 300 },
  );
});

Deno.test("every preset loads without errors", () => {
  // RULE_SETS asserts this while loading; here the presets are at least listed.
  assert.ok(RULE_SETS.length >= 2);
});

Deno.test("mutating a mutated Pod changes nothing, for every preset", () => {
  fc.assert(
    fc.property(podCase, (input) => {
      const { name, ruleSet } = RULE_SETS[input.rules] ?? assert.fail("no rule set");
      const namespaceLabels = {
        "kubernetes.io/metadata.name": input.namespace,
        ...(input.namespace.startsWith("dev-") ? { env: "dev" } : {}),
      };
      const options: MutateOptions = {
        ruleSet,
        namespace: input.namespace,
        ...(input.namespaceLabelsKnown ? { namespaceLabels } : {}),
      };
      const pod = buildPod(input.namespace, input.entries, input.labels, input.annotations);
      const first = mutatePod(pod, options);
      const after = applyPatch(pod, first.patch);

      const second = mutatePod(after, options);
      assert.deepEqual(second.patch, [], `${name}: second admission patched again`);

      // Every image that changed is a valid reference, and is the one the change reports.
      const before = readPod(pod)?.slots ?? [];
      const now = readPod(after)?.slots ?? [];
      assert.equal(now.length, before.length);
      now.forEach((slot, index) => {
        const was = before[index]?.image;
        if (slot.image === was) return;
        assert.ok(parseReference(slot.image).ok, `${name}: ${was} became invalid ${slot.image}`);
        assert.ok(first.changes.some((change) => change.slot.key === slot.key && change.to === slot.image));
      });
      for (const change of first.changes) assert.ok(parseReference(change.to).ok, change.to);

      // The annotation records exactly the changed images, as first written.
      const text = annotationsOf(after)?.[ORIGINAL_IMAGES_ANNOTATION];
      if (first.changes.length === 0) {
        assert.deepEqual(first.patch, []);
        assert.equal(text, undefined);
      } else {
        assert.equal(typeof text, "string");
        const expected = Object.fromEntries(
          input.entries.flatMap((entry, index) =>
            first.changes.some((change) => change.slot.key === keyOf(entry, index))
              ? [[keyOf(entry, index), entry.image]]
              : []
          ),
        );
        assert.deepEqual(JSON.parse(text as string), expected);
      }

      // A later UPDATE that only touches a label changes nothing either.
      const touched = structuredClone(after);
      const metadata = touched["metadata"] as Record<string, unknown>;
      metadata["labels"] = { ...(metadata["labels"] as Record<string, string> | undefined), touched: "yes" };
      assert.deepEqual(mutatePod(touched, { ...options, oldPod: after }).patch, []);
    }),
    { numRuns: 3000 },
  );
});
