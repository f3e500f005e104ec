// The decider's memo of Pod templates: a remembered answer is the answer a fresh decision gives, over random Pods,
// requests and rule sets; a new rule set, or a registry asked, is never answered from memory.

import assert from "node:assert/strict";
import fc from "fast-check";
import v8 from "node:v8";
import vm from "node:vm";
import type { AdmitOutcome } from "../admission/admit.ts";
import { AdmitMemo } from "../admission/admit_memo.ts";
import { type AdmissionRequest, answerText, answerWithUid, decodeReview } from "../admission/review.ts";
import type { VerifyAnswer } from "../mutate/pod.ts";
import type { RuleSet } from "../rules/compile.ts";
import { createDecider, type DecisionDeps, type DecisionVerifier } from "./decision.ts";
import { compileRules } from "../../tests/support/rules.ts";

const HUB = compileRules(`apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: hub
spec:
  imagePullSecrets: [mirror-pull]
  rules:
    - exact: nginx
      replace: mirror.example/hub/library/nginx:1.27.3
    - prefix: docker.io
      replace: mirror.example/hub
    - match: '^(gcr\\.io|quay\\.io)/(.*)$'
      replace: cache.example/$1/$2
    - prefix: internal.example
      keep: true
---
apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: canary
spec:
  priority: 10
  namespaces: [canary]
  podSelector:
    matchLabels: { tier: web }
  rules:
    - prefix: docker.io/library
      replace: canary.example/library
`);

const VERIFIED = compileRules(`apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: verified
spec:
  rules:
    - prefix: quay.io
      replace: quay-mirror.example
      verify: true
    - prefix: docker.io
      replace: mirror.example/hub
`);

const IMAGES = [
  "nginx",
  "nginx:1.25",
  "docker.io/library/redis:7",
  "bitnami/postgresql:16",
  "quay.io/prometheus/node-exporter:v1.8.2",
  "gcr.io/distroless/static@sha256:" + "a".repeat(64),
  "internal.example/team/api:2",
  "mirror.example/hub/library/redis:7",
  "direct.to/docker.io/library/busybox:1",
  "Not A Valid Image!!",
];

const container = fc.record({
  name: fc.constantFrom("web", "sidecar", "init", "__proto__"),
  image: fc.constantFrom(...IMAGES),
});
const labels = fc.dictionary(
  fc.constantFrom("app", "tier", "mirrorhook.dev/rewrite", "mirrorhook.dev/rewritten", "app.kubernetes.io/name"),
  fc.constantFrom("web", "disabled", "true", "mirrorhook"),
  { maxKeys: 3 },
);
const annotations = fc.dictionary(
  fc.constantFrom("mirrorhook.dev/original-images", "kubernetes.io/config.mirror", "note"),
  fc.constantFrom('{"web":"nginx:1.25"}', '{"sidecar":"docker.io/library/redis:7"}', "not json", "x"),
  { maxKeys: 2 },
);
const pod = fc.record(
  {
    kind: fc.constantFrom("Pod", "Pod", "Pod", "Deployment"),
    metadata: fc.record(
      {
        namespace: fc.constantFrom("shop", "canary", "kube-system", "mirrorhook-system"),
        generateName: fc.constantFrom("web-7d9c8b6f5d-", "api-"),
        name: fc.constantFrom("web-0", "web-1"),
        labels,
        annotations,
      },
      { requiredKeys: [] },
    ),
    spec: fc.record(
      {
        containers: fc.array(container, { minLength: 1, maxLength: 3 }),
        initContainers: fc.array(container, { maxLength: 1 }),
        imagePullSecrets: fc.constantFrom([], [{ name: "mirror-pull" }], [{ name: "other" }]),
      },
      { requiredKeys: ["containers"] },
    ),
  },
  { requiredKeys: ["spec"] },
);
const request = fc.record({
  operation: fc.constantFrom("CREATE", "CREATE", "UPDATE", "DELETE"),
  namespace: fc.constantFrom(undefined, "shop", "canary", "canary", "kube-system"),
  subResource: fc.constantFrom(undefined, undefined, undefined, "status", "ephemeralcontainers"),
  dryRun: fc.boolean(),
  object: pod,
  oldObject: fc.option(pod, { nil: undefined }),
});
/** Changes to one part of a request: its variants differ from it in that part alone, so a key missing it would mix them. */
const variation = fc.oneof(
  fc.record({ operation: fc.constantFrom("CREATE", "UPDATE") }),
  fc.record({ namespace: fc.constantFrom(undefined, "shop", "canary", "kube-system") }),
  fc.record({ subResource: fc.constantFrom(undefined, "status", "ephemeralcontainers") }),
  fc.record({ oldObject: fc.option(pod, { nil: undefined }) }),
  fc.record({ oldObject: fc.constant("same"), operation: fc.constant("UPDATE") }),
  fc.record({ labels: fc.option(labels, { nil: undefined }) }),
  fc.record({ annotations: fc.option(annotations, { nil: undefined }) }),
  fc.record({ podNamespace: fc.constantFrom(undefined, "shop", "canary", "mirrorhook-system") }),
  fc.record({
    podNamespace: fc.constantFrom(undefined, "shop", "canary", "kube-system", "mirrorhook-system"),
    namespace: fc.constant(undefined),
  }),
  fc.record({ metadata: fc.constant(undefined) }),
  fc.record({ imagePullSecrets: fc.constantFrom(undefined, [], [{ name: "mirror-pull" }], [{ name: "other" }]) }),
  fc.record({ containers: fc.array(container, { maxLength: 3 }) }),
);

type Variation = {
  operation?: string;
  namespace?: string | undefined;
  subResource?: string | undefined;
  oldObject?: unknown;
  labels?: unknown;
  annotations?: unknown;
  podNamespace?: string | undefined;
  metadata?: undefined;
  imagePullSecrets?: unknown;
  containers?: unknown;
};

function vary(base: RequestShape, change: Variation): RequestShape {
  const object = structuredClone(base.object) as {
    metadata?: Record<string, unknown> | undefined;
    spec: Record<string, unknown>;
  };
  const metadata = object.metadata ?? {};
  if ("labels" in change) metadata["labels"] = change.labels;
  if ("annotations" in change) metadata["annotations"] = change.annotations;
  if ("podNamespace" in change) metadata["namespace"] = change.podNamespace;
  object.metadata = "metadata" in change ? undefined : metadata;
  if ("imagePullSecrets" in change) object.spec["imagePullSecrets"] = change.imagePullSecrets;
  if ("containers" in change) object.spec["containers"] = change.containers;
  const shape = { ...base, object };
  for (const key of ["operation", "namespace", "subResource", "oldObject"] as const) {
    if (key in change) (shape as Record<string, unknown>)[key] = change[key];
  }
  if (change.oldObject === "same") shape.oldObject = structuredClone(base.object);
  return shape;
}

const uid = fc.oneof(fc.uuid(), fc.string({ minLength: 1 }), fc.constant('quo"te\\\u2028'));

type RequestShape = {
  operation: string;
  namespace: string | undefined;
  subResource: string | undefined;
  dryRun: boolean;
  object: unknown;
  oldObject: unknown;
};

function review(shape: RequestShape, uid: string): AdmissionRequest {
  return decodeReview(JSON.parse(JSON.stringify({
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid,
      kind: { group: "", version: "v1", kind: "Pod" },
      resource: { group: "", version: "v1", resource: "pods" },
      ...shape,
    },
  })));
}

/** A verifier answering from a fixed table, counting what it was asked. */
function verifier(): DecisionVerifier & { asked: number } {
  const table = new Map<string, VerifyAnswer>([["quay-mirror.example/prometheus/node-exporter:v1.8.2", {
    status: "present",
  }]]);
  return {
    asked: 0,
    peek(target) {
      this.asked++;
      return table.get(target) ?? { status: "missing" };
    },
    refusal: () => undefined,
    checkAll: () => Promise.resolve(new Map()),
  };
}

/** The labels of namespace `canary`, as the cluster says now (they change: a namespace opts out). */
let canaryLabels: Record<string, string> = { stage: "canary" };

function deps(rules: () => RuleSet, withVerifier: boolean): DecisionDeps {
  return {
    rules,
    bypassPrefix: "direct.to/",
    excludedNamespaces: new Set(["kube-system"]),
    isOwnPod: (pod) => pod.namespace === "mirrorhook-system" && pod.labels["app.kubernetes.io/name"] === "mirrorhook",
    namespaceLabels: (namespace) => namespace === "canary" ? canaryLabels : undefined,
    ...(withVerifier ? { verifier: verifier() } : {}),
  };
}

function assertSameOutcome(remembered: AdmitOutcome, fresh: AdmitOutcome): void {
  assert.equal(answerText(remembered.review), JSON.stringify(fresh.review));
  assert.equal(JSON.stringify(remembered.review), JSON.stringify(fresh.review));
  const { review: _a, ...rest } = remembered;
  const { review: _b, ...freshRest } = fresh;
  assert.deepEqual(rest, freshRest);
}

Deno.test("a remembered admission is the fresh one, over random Pods, requests and rule sets", () => {
  let hits = 0;
  fc.assert(
    fc.property(
      request.chain((base) =>
        fc.array(variation, { maxLength: 4 }).map((changes) => [base, ...changes.map((change) => vary(base, change))])
      ),
      fc.array(fc.tuple(fc.nat(), uid, fc.constantFrom(HUB, HUB, VERIFIED), fc.boolean()), {
        minLength: 1,
        maxLength: 16,
      }),
      fc.boolean(),
      (shapes, sequence, withVerifier) => {
        let rules = HUB;
        const decide = createDecider(deps(() => rules, withVerifier));
        const last = new Map<number, AdmitOutcome>();
        for (const [index, id, ruleSet, optedOut] of sequence) {
          rules = ruleSet;
          canaryLabels = optedOut ? { stage: "canary", "mirrorhook.dev/rewrite": "disabled" } : { stage: "canary" };
          const request = review(shapes[index % shapes.length]!, id);
          const fresh = createDecider(deps(() => rules, withVerifier))(request);
          const remembered = decide(request);
          assert.ok(!(fresh instanceof Promise) && !(remembered instanceof Promise));
          assertSameOutcome(remembered, fresh);
          if (remembered.changes.length > 0 && last.get(index % shapes.length)?.changes === remembered.changes) hits++;
          last.set(index % shapes.length, remembered);
        }
      },
    ),
    { numRuns: 1000 },
  );
  assert.ok(hits > 100, `only ${hits} remembered answers`);
});

const TEMPLATE: RequestShape = {
  operation: "CREATE",
  namespace: "shop",
  subResource: undefined,
  dryRun: false,
  object: {
    kind: "Pod",
    metadata: { namespace: "shop", generateName: "web-7d9c8b6f5d-", labels: { app: "web" } },
    spec: { containers: [{ name: "web", image: "nginx:1.25" }, { name: "metrics", image: "quay.io/a/b:1" }] },
  },
  oldObject: undefined,
};

Deno.test("Pods of one template are decided once, each answered with its own uid", () => {
  const decide = createDecider(deps(() => HUB, true));
  const first = decide(review(TEMPLATE, "uid-1")) as AdmitOutcome;
  const second = decide(review(TEMPLATE, "uid-2")) as AdmitOutcome;
  assert.equal(second.changes, first.changes); // the same decision, not a new one
  assert.equal(first.review.response.uid, "uid-1");
  assert.equal(second.review.response.uid, "uid-2");
  assert.equal(JSON.parse(answerText(second.review)).response.uid, "uid-2");
  assert.ok(second.review.response.patch !== undefined);
  assert.equal(second.review.response.patch, first.review.response.patch);
});

Deno.test("a new rule set is never answered from what the old one decided", () => {
  let rules = HUB;
  const decide = createDecider(deps(() => rules, true));
  const before = decide(review(TEMPLATE, "uid-1")) as AdmitOutcome;
  rules = compileRules(`apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: other
spec:
  rules:
    - prefix: docker.io
      replace: other.example/hub
`);
  const after = decide(review(TEMPLATE, "uid-2")) as AdmitOutcome;
  assert.notEqual(after.changes, before.changes);
  assert.equal(after.changes[0]?.to, "other.example/hub/library/nginx:1.25");
});

Deno.test("an admission that asked a registry is asked again next time", () => {
  const options = deps(() => VERIFIED, true);
  const registry = options.verifier as ReturnType<typeof verifier>;
  const decide = createDecider(options);
  decide(review(TEMPLATE, "uid-1"));
  const asked = registry.asked;
  assert.ok(asked > 0);
  decide(review(TEMPLATE, "uid-2"));
  assert.equal(registry.asked, asked * 2);
});

Deno.test("the memo stays within its bounds and forgets all when full", () => {
  const memo = new AdmitMemo({ maxEntries: 4, maxChars: 64 * 1024 });
  const options = { ruleSet: HUB };
  for (let i = 0; i < 10; i++) {
    const request = review({ ...TEMPLATE, namespace: `ns-${i}` }, `uid-${i}`);
    const key = memo.key(request, options);
    assert.ok(key !== undefined);
    memo.set(key, options, createDecider({ rules: () => HUB })(request) as AdmitOutcome);
    assert.ok(memo.size <= 4);
  }
  // A Pod whose key is over a sixteenth of the characters is not remembered.
  const large = review({
    ...TEMPLATE,
    object: { spec: { containers: [{ name: "x".repeat(5000), image: "nginx" }] } },
  }, "uid");
  assert.equal(memo.key(large, options), undefined);
});

Deno.test("the memo counts what an outcome holds, not only its key", () => {
  // `$1` eight times: each image out is about eight times the one in the key, and is in the patch and the changes.
  const growing = compileRules(`apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: growing
spec:
  rules:
    - match: '^grow\\.example/([a-z]+)(:.*)$'
      replace: m.example/$1/$1/$1/$1/$1/$1/$1/$1$2
`);
  const memo = new AdmitMemo({ maxEntries: 100, maxChars: 8 * 1024 });
  const options = { ruleSet: growing };
  let keyChars = 0;
  for (let i = 0; i < 12; i++) {
    const request = review({
      ...TEMPLATE,
      namespace: `ns-${i}`,
      object: { spec: { containers: [{ name: "c", image: `grow.example/${"a".repeat(20)}` }] } },
    }, `uid-${i}`);
    const key = memo.key(request, options);
    assert.ok(key !== undefined);
    keyChars += key.length;
    memo.set(key, options, createDecider({ rules: () => growing })(request) as AdmitOutcome);
  }
  // The keys alone fit many times over; with their outcomes, they do not.
  assert.ok(keyChars < 4 * 1024, `${keyChars} characters of keys`);
  assert.ok(memo.size < 12, `${memo.size} outcomes remembered`);
});

Deno.test("a replaced rule set is not kept alive by the memo, with no admission after it", async () => {
  v8.setFlagsFromString("--expose-gc");
  const gc = vm.runInNewContext("gc") as () => void;
  let current: RuleSet | undefined = compileRules(`apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: old
spec:
  rules:
    - prefix: docker.io
      replace: old.example/hub
`);
  const old = new WeakRef(current);
  const decide = createDecider({ rules: () => current ?? HUB });
  decide(review(TEMPLATE, "uid-1"));
  decide(review(TEMPLATE, "uid-2"));
  current = undefined; // the rules reload; no Pod arrives since
  for (let i = 0; i < 5 && old.deref() !== undefined; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    gc();
  }
  assert.equal(old.deref(), undefined);
  assert.equal(
    (decide(review(TEMPLATE, "uid-3")) as AdmitOutcome).changes[0]?.to,
    "mirror.example/hub/library/nginx:1.25",
  );
});

Deno.test("an answer for another uid is written as JSON.stringify writes it, whatever the uid", () => {
  const answer = (createDecider({ rules: () => HUB })(review(TEMPLATE, "first")) as AdmitOutcome).review;
  fc.assert(fc.property(fc.string({ unit: "binary" }), (uid) => {
    const made = answerWithUid(answer, uid);
    assert.equal(answerText(made), JSON.stringify(made));
    assert.equal(made.response.uid, uid);
  }));
});
