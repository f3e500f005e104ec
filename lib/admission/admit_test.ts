// Table tests for admit(): which requests are looked at, what the response carries, dry-run, audit annotations.

import assert from "node:assert/strict";
import jsonpatch, { type Operation } from "fast-json-patch";
import { ORIGINAL_IMAGES_ANNOTATION, REWRITTEN_LABEL } from "../mutate/pod.ts";
import { admit, type AdmitOptions, type AdmitOutcome, type AdmitSkip } from "./admit.ts";
import { type AdmissionRequest, decodeReview } from "./review.ts";
import { admissionReview } from "../../tests/support/admission_review.ts";
import { compileRules } from "../../tests/support/rules.ts";

const RULES = compileRules(`apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: hub
spec:
  rules:
    - prefix: docker.io/library
      replace: harbor.example.com/dockerhub/library
    - prefix: docker.io
      replace: harbor.example.com/dockerhub
    - match: '^(gcr\\.io|quay\\.io|ghcr\\.io)/(.*)$'
      replace: cache.internal.com/$1/$2
    - prefix: internal-registry.company.com
      keep: true
`);

const UID = "0df28fbd-5f5f-11e8-bc74-36e6bb280816";

interface PodSpec {
  containers?: { name: string; image: string }[];
  initContainers?: { name: string; image: string }[];
  ephemeralContainers?: { name: string; image: string }[];
}

function pod(spec: PodSpec, metadata: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "web-0", namespace: "shop", labels: { app: "web" }, ...metadata },
    spec: { containers: [], ...spec },
  };
}

const WEB = pod({
  initContainers: [{ name: "migrate", image: "bitnami/postgresql:16" }],
  containers: [
    { name: "web", image: "nginx:1.27" },
    { name: "metrics", image: "quay.io/prometheus/node-exporter:v1.8.2" },
    { name: "api", image: "internal-registry.company.com/team/api:2" },
  ],
});

/** A request decoded from an AdmissionReview, as the handler would pass it. */
function request(fields: Record<string, unknown>): AdmissionRequest {
  return decodeReview(admissionReview({
    uid: UID,
    namespace: "shop",
    userInfo: { username: "alice" },
    object: WEB,
    fields: { oldObject: null, dryRun: false, ...fields },
  }));
}

function responseOf(outcome: AdmitOutcome): Record<string, unknown> {
  const response = outcome.review["response"];
  assert.ok(typeof response === "object" && response !== null);
  return response as Record<string, unknown>;
}

function patchOf(response: Record<string, unknown>): Operation[] | undefined {
  const patch = response["patch"];
  if (patch === undefined) return undefined;
  assert.equal(response["patchType"], "JSONPatch");
  const bytes = Uint8Array.from(atob(patch as string), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

/** Images of a Pod as `field/name → image`. */
function images(object: unknown): Record<string, string> {
  const spec = (object as { spec: Record<string, unknown> }).spec;
  const out: Record<string, string> = {};
  for (const field of ["containers", "initContainers", "ephemeralContainers"]) {
    for (const container of (spec[field] ?? []) as { name: string; image: string }[]) {
      out[`${field}/${container.name}`] = container.image;
    }
  }
  return out;
}

function applied(object: unknown, patch: readonly Operation[]): Record<string, unknown> {
  return jsonpatch.applyPatch(structuredClone(object), [...patch], true, false).newDocument as Record<string, unknown>;
}

interface Row {
  name: string;
  request: Record<string, unknown>;
  options?: Partial<AdmitOptions>;
  result: AdmitOutcome["result"];
  skipped?: AdmitSkip;
  /** Images after the patch (only when a patch is expected). */
  images?: Record<string, string>;
  warnings?: number;
  audit?: readonly string[];
}

const WEB_REWRITTEN = {
  "initContainers/migrate": "harbor.example.com/dockerhub/bitnami/postgresql:16",
  "containers/web": "harbor.example.com/dockerhub/library/nginx:1.27",
  "containers/metrics": "cache.internal.com/quay.io/prometheus/node-exporter:v1.8.2",
  "containers/api": "internal-registry.company.com/team/api:2",
};

/** WEB after admission, as stored: the object an UPDATE's oldObject carries. */
const WEB_STORED = pod({
  initContainers: [{ name: "migrate", image: "harbor.example.com/dockerhub/bitnami/postgresql:16" }],
  containers: [
    { name: "web", image: "harbor.example.com/dockerhub/library/nginx:1.27" },
    { name: "metrics", image: "cache.internal.com/quay.io/prometheus/node-exporter:v1.8.2" },
    { name: "api", image: "internal-registry.company.com/team/api:2" },
  ],
}, {
  labels: { app: "web", [REWRITTEN_LABEL]: "true" },
  annotations: {
    [ORIGINAL_IMAGES_ANNOTATION]: JSON.stringify({
      metrics: "quay.io/prometheus/node-exporter:v1.8.2",
      migrate: "bitnami/postgresql:16",
      web: "nginx:1.27",
    }),
  },
});

function withImage(object: Record<string, unknown>, field: keyof PodSpec, name: string, image: string) {
  const copy = structuredClone(object) as { spec: Record<string, { name: string; image: string }[]> };
  const list = copy.spec[field] ?? [];
  copy.spec[field] = list;
  const existing = list.find((container) => container.name === name);
  if (existing === undefined) list.push({ name, image });
  else existing.image = image;
  return copy as unknown as Record<string, unknown>;
}

const ROWS: Row[] = [
  {
    name: "Pod CREATE",
    request: {},
    result: "rewritten",
    images: WEB_REWRITTEN,
    warnings: 3,
    audit: ["rewritten-images"],
  },
  {
    name: "Pod CREATE in namespace from the request only",
    request: { namespace: "shop", object: pod({ containers: [{ name: "web", image: "nginx" }] }, { namespace: "" }) },
    result: "rewritten",
    images: { "containers/web": "harbor.example.com/dockerhub/library/nginx:latest" },
    warnings: 1,
    audit: ["rewritten-images"],
  },
  {
    name: "Pod CREATE with nothing to rewrite",
    request: { object: pod({ containers: [{ name: "api", image: "internal-registry.company.com/team/api:2" }] }) },
    result: "unchanged",
    warnings: 0,
    audit: [],
  },
  {
    name: "Pod CREATE with an invalid image",
    request: { object: pod({ containers: [{ name: "bad", image: "Docker.io/Library/NGINX" }] }) },
    result: "unchanged",
    warnings: 1,
    audit: ["invalid-images"],
  },
  {
    name: "Pod CREATE with an invalid and a rewritten image",
    request: {
      object: pod({ containers: [{ name: "bad", image: "nginx:bad tag" }, { name: "web", image: "nginx:1.27" }] }),
    },
    result: "rewritten",
    images: { "containers/bad": "nginx:bad tag", "containers/web": "harbor.example.com/dockerhub/library/nginx:1.27" },
    warnings: 2,
    audit: ["rewritten-images", "invalid-images"],
  },
  {
    name: "Pod UPDATE changing one image",
    request: {
      operation: "UPDATE",
      name: "web-0",
      object: withImage(WEB_STORED, "containers", "web", "nginx:1.28"),
      oldObject: WEB_STORED,
    },
    result: "rewritten",
    images: { ...WEB_REWRITTEN, "containers/web": "harbor.example.com/dockerhub/library/nginx:1.28" },
    warnings: 1,
    audit: ["rewritten-images"],
  },
  {
    name: "Pod UPDATE touching only a label",
    request: {
      operation: "UPDATE",
      name: "web-0",
      object: { ...WEB_STORED, metadata: { ...(WEB_STORED["metadata"] as object), labels: { app: "web2" } } },
      oldObject: WEB_STORED,
    },
    result: "unchanged",
    warnings: 0,
    audit: [],
  },
  {
    name: "Pod UPDATE leaves unchanged images that rules now match",
    request: { operation: "UPDATE", name: "web-0", object: WEB, oldObject: WEB },
    result: "unchanged",
    warnings: 0,
    audit: [],
  },
  {
    name: "ephemeralcontainers UPDATE",
    request: {
      operation: "UPDATE",
      subResource: "ephemeralcontainers",
      name: "web-0",
      object: withImage(WEB_STORED, "ephemeralContainers", "debugger-x7k2p", "busybox:1.36"),
      oldObject: WEB_STORED,
    },
    result: "rewritten",
    images: {
      ...WEB_REWRITTEN,
      "ephemeralContainers/debugger-x7k2p": "harbor.example.com/dockerhub/library/busybox:1.36",
    },
    warnings: 1,
    audit: ["rewritten-images"],
  },
  {
    name: "status subresource",
    request: { operation: "UPDATE", subResource: "status", object: WEB, oldObject: WEB },
    result: "skipped",
    skipped: "subresource",
  },
  {
    name: "binding subresource",
    request: {
      operation: "CREATE",
      subResource: "binding",
      kind: { group: "", version: "v1", kind: "Binding" },
      object: { apiVersion: "v1", kind: "Binding", metadata: { name: "web-0" }, target: { kind: "Node", name: "n1" } },
    },
    result: "skipped",
  },
  {
    name: "eviction subresource",
    request: {
      operation: "CREATE",
      subResource: "eviction",
      kind: { group: "policy", version: "v1", kind: "Eviction" },
      object: { apiVersion: "policy/v1", kind: "Eviction", metadata: { name: "web-0" } },
    },
    result: "skipped",
  },
  {
    name: "DELETE",
    request: { operation: "DELETE", object: null, oldObject: WEB },
    result: "skipped",
    skipped: "operation",
  },
  {
    name: "CONNECT (exec)",
    request: {
      operation: "CONNECT",
      subResource: "exec",
      kind: { group: "", version: "v1", kind: "PodExecOptions" },
      object: { kind: "PodExecOptions", apiVersion: "v1", command: ["sh"], container: "web" },
    },
    result: "skipped",
  },
  {
    name: "CONNECT on pods",
    request: { operation: "CONNECT", object: WEB },
    result: "skipped",
    skipped: "operation",
  },
  {
    name: "ConfigMap",
    request: {
      kind: { group: "", version: "v1", kind: "ConfigMap" },
      resource: { group: "", version: "v1", resource: "configmaps" },
      object: { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "c" }, data: { image: "nginx" } },
    },
    result: "skipped",
    skipped: "not-a-pod",
  },
  {
    name: "Deployment",
    request: {
      kind: { group: "apps", version: "v1", kind: "Deployment" },
      resource: { group: "apps", version: "v1", resource: "deployments" },
      object: { apiVersion: "apps/v1", kind: "Deployment", spec: { template: { spec: WEB["spec"] } } },
    },
    result: "skipped",
    skipped: "not-a-pod",
  },
  {
    name: "pods in another API group",
    request: {
      kind: { group: "metrics.k8s.io", version: "v1beta1", kind: "Pod" },
      resource: { group: "metrics.k8s.io", version: "v1beta1", resource: "pods" },
    },
    result: "skipped",
    skipped: "not-a-pod",
  },
  {
    name: "Pod kind with a non-Pod object",
    request: { object: { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "c" } } },
    result: "skipped",
    skipped: "not-a-pod",
  },
  {
    name: "Pod CREATE without object",
    request: { object: null },
    result: "skipped",
    skipped: "not-a-pod",
  },
  {
    name: "kube-system excluded by default",
    request: { namespace: "kube-system", object: pod({ containers: [{ name: "c", image: "nginx" }] }) },
    result: "skipped",
    skipped: "excluded-namespace",
  },
  {
    name: "configured excluded namespace",
    request: { namespace: "legacy", object: pod({ containers: [{ name: "c", image: "nginx" }] }) },
    options: { excludedNamespaces: new Set(["legacy"]) },
    result: "skipped",
    skipped: "excluded-namespace",
  },
  {
    name: "kube-system when the configured list omits it",
    request: { namespace: "kube-system", object: pod({ containers: [{ name: "c", image: "nginx" }] }) },
    options: { excludedNamespaces: new Set(["legacy"]) },
    result: "rewritten",
    images: { "containers/c": "harbor.example.com/dockerhub/library/nginx:latest" },
    warnings: 1,
    audit: ["rewritten-images"],
  },
  {
    name: "Pod opted out by label",
    request: {
      object: pod({ containers: [{ name: "c", image: "nginx" }] }, {
        labels: { "mirrorhook.dev/rewrite": "disabled" },
      }),
    },
    result: "skipped",
    skipped: "opted-out",
  },
  {
    name: "namespace opted out by label",
    request: { object: pod({ containers: [{ name: "c", image: "nginx" }] }) },
    options: { namespaceLabels: { "mirrorhook.dev/rewrite": "disabled" } },
    result: "skipped",
    skipped: "opted-out",
  },
  {
    name: "mirror Pod",
    request: {
      object: pod({ containers: [{ name: "c", image: "nginx" }] }, {
        annotations: { "kubernetes.io/config.mirror": "abc" },
      }),
    },
    result: "skipped",
    skipped: "mirror-pod",
  },
  {
    name: "own Pod",
    request: { object: pod({ containers: [{ name: "c", image: "nginx" }] }) },
    options: { isOwnPod: () => true },
    result: "skipped",
    skipped: "own-pod",
  },
  {
    name: "bypass prefix",
    request: { object: pod({ containers: [{ name: "c", image: "direct.to/docker.io/library/nginx:1" }] }) },
    result: "rewritten",
    images: { "containers/c": "docker.io/library/nginx:1" },
    warnings: 1,
    audit: ["rewritten-images"],
  },
  {
    name: "configured bypass prefix",
    request: { object: pod({ containers: [{ name: "c", image: "raw/nginx:1" }] }) },
    options: { bypassPrefix: "raw/" },
    result: "rewritten",
    images: { "containers/c": "docker.io/library/nginx:1" },
    warnings: 1,
    audit: ["rewritten-images"],
  },
  {
    name: "request marked dryRun is answered as usual",
    request: { dryRun: true },
    result: "rewritten",
    images: WEB_REWRITTEN,
    warnings: 3,
    audit: ["rewritten-images"],
  },
];

Deno.test("admit() decides each request", async (t) => {
  for (const row of ROWS) {
    await t.step(row.name, () => {
      const req = request(row.request);
      const outcome = admit(req, { ruleSet: RULES, ...row.options });
      const response = responseOf(outcome);
      assert.equal(response["uid"], UID);
      assert.equal(response["allowed"], true);
      assert.equal(outcome.result, row.result);
      if (row.skipped !== undefined) assert.equal(outcome.skipped, row.skipped);
      else assert.equal(outcome.skipped !== undefined, row.result === "skipped");
      const patch = patchOf(response);
      assert.equal(outcome.patched, row.images !== undefined);
      if (row.images === undefined) {
        assert.equal(patch, undefined);
        assert.equal("patchType" in response, false);
      } else {
        assert.ok(patch !== undefined);
        const after = applied(req.object, patch);
        assert.deepEqual(images(after), row.images);
        assert.equal((after["metadata"] as { labels: Record<string, string> }).labels[REWRITTEN_LABEL], "true");
        // Re-admitting the result changes nothing, on CREATE and on an UPDATE from itself.
        const readmissions = [
          { operation: "CREATE", subResource: "", object: after, oldObject: null },
          { operation: "UPDATE", object: after, oldObject: after },
        ];
        for (const again of readmissions) {
          const second = admit(request({ ...row.request, ...again }), { ruleSet: RULES, ...row.options });
          assert.equal(patchOf(responseOf(second)), undefined, `re-admitted as ${again.operation}`);
        }
      }
      const warnings = response["warnings"];
      assert.equal(Array.isArray(warnings) ? warnings.length : 0, row.warnings ?? 0);
      assert.equal(outcome.changes.length > 0, row.result === "rewritten");
      const audit = response["auditAnnotations"] as Record<string, string> | undefined;
      assert.deepEqual(auditNames(audit ?? {}).sort(), [...(row.audit ?? [])].sort());
      for (const value of Object.values(audit ?? {})) assert.equal(typeof JSON.parse(value), "object");
    });
  }
});

Deno.test("admit() in dry-run mode computes, warns and annotates but never patches", async (t) => {
  const rows: { name: string; request: Record<string, unknown>; changes: number }[] = [
    { name: "Pod CREATE", request: {}, changes: 3 },
    { name: "request marked dryRun", request: { dryRun: true }, changes: 3 },
    {
      name: "Pod UPDATE changing one image",
      request: {
        operation: "UPDATE",
        object: withImage(WEB_STORED, "containers", "web", "nginx:1.28"),
        oldObject: WEB_STORED,
      },
      changes: 1,
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      const outcome = admit(request(row.request), { ruleSet: RULES, dryRun: true });
      const response = responseOf(outcome);
      assert.equal(response["uid"], UID);
      assert.equal(response["allowed"], true);
      assert.equal(outcome.result, "rewritten");
      assert.equal(outcome.patched, false);
      assert.equal(outcome.changes.length, row.changes);
      assert.equal("patch" in response, false);
      assert.equal("patchType" in response, false);
      assert.ok(Array.isArray(response["warnings"]));
      assert.equal(response["warnings"].length, row.changes);
      const audit = response["auditAnnotations"] as Record<string, string>;
      assert.deepEqual(auditNames(audit), ["would-rewrite"]);
      assert.equal(Object.keys(JSON.parse(auditValue(audit, "would-rewrite") ?? "{}")).length, row.changes);
    });
  }

  await t.step("nothing to rewrite", () => {
    const outcome = admit(
      request({ object: pod({ containers: [{ name: "a", image: "internal-registry.company.com/a:1" }] }) }),
      {
        ruleSet: RULES,
        dryRun: true,
      },
    );
    assert.equal(outcome.result, "unchanged");
    assert.deepEqual(responseOf(outcome), { uid: UID, allowed: true });
  });
});

/** Audit annotation keys without their content hash: `rewritten-images-0a1b2c3d` → `rewritten-images`. */
function auditNames(audit: Record<string, string>): string[] {
  return Object.keys(audit).map((key) => {
    assert.match(key, /^[a-z-]+-[0-9a-f]{8}$/);
    return key.replace(/-[0-9a-f]{8}$/, "");
  });
}

function auditValue(audit: Record<string, string>, name: string): string | undefined {
  const key = Object.keys(audit).find((key) => key.replace(/-[0-9a-f]{8}$/, "") === name);
  return key === undefined ? undefined : audit[key];
}

Deno.test("admit() audit annotations name every rewritten slot", () => {
  const outcome = admit(request({}), { ruleSet: RULES });
  const audit = responseOf(outcome)["auditAnnotations"] as Record<string, string>;
  const rewritten = JSON.parse(auditValue(audit, "rewritten-images") ?? "{}");
  assert.deepEqual(Object.keys(rewritten).sort(), ["metrics", "migrate", "web"]);
  for (const value of Object.values(rewritten)) assert.equal(typeof value, "string");
  assert.deepEqual(
    outcome.changes.map((change) => [change.slot.key, change.to]).sort(),
    [
      ["metrics", WEB_REWRITTEN["containers/metrics"]],
      ["migrate", WEB_REWRITTEN["initContainers/migrate"]],
      ["web", WEB_REWRITTEN["containers/web"]],
    ],
  );
});

Deno.test("admit() audit annotation keys end in the 32-bit FNV-1a of their value, as 8 hex digits", () => {
  // The reference implementation, in unsigned arithmetic, checked against the published test vectors.
  const fnv1a = (text: string) => {
    let hash = 0x811c9dc5;
    for (let i = 0; i < text.length; i++) hash = Math.imul((hash ^ text.charCodeAt(i)) >>> 0, 0x01000193) >>> 0;
    return hash.toString(16).padStart(8, "0");
  };
  assert.deepEqual(["", "a", "foobar"].map(fnv1a), ["811c9dc5", "e40c292c", "bf9cf968"]);
  const audit = responseOf(admit(request({}), { ruleSet: RULES }))["auditAnnotations"] as Record<string, string>;
  assert.ok(Object.keys(audit).length > 0);
  for (const [key, value] of Object.entries(audit)) assert.equal(key.slice(-9), `-${fnv1a(value)}`);
});

Deno.test("admit() audit annotation keys of a reinvocation never repeat an earlier key with another value", () => {
  // First invocation: the Pod as created. Then a sidecar injector adds a container, and the API server calls
  // mirrorhook again (reinvocationPolicy: IfNeeded) with the Pod as patched by both webhooks.
  const first = admit(request({}), { ruleSet: RULES });
  const firstAudit = responseOf(first)["auditAnnotations"] as Record<string, string>;
  const afterFirst = applied(WEB, patchOf(responseOf(first)) ?? []) as { spec: { containers: unknown[] } };
  afterFirst.spec.containers.push({ name: "istio-proxy", image: "docker.io/istio/proxyv2:1.24.0" });
  const second = admit(request({ object: afterFirst }), { ruleSet: RULES });
  const secondAudit = responseOf(second)["auditAnnotations"] as Record<string, string>;
  assert.equal(second.changes.length, 1, "only the sidecar is new");
  // The API server keeps the first value of a key and refuses a different value under the same key.
  for (const [key, value] of Object.entries(secondAudit)) {
    if (key in firstAudit) assert.equal(firstAudit[key], value, `audit key ${key} reused with another value`);
  }
  assert.deepEqual(Object.keys(JSON.parse(auditValue(secondAudit, "rewritten-images") ?? "{}")), ["istio-proxy"]);
  // The same answer twice (the API server retrying) gives the same key and value.
  assert.deepEqual(responseOf(admit(request({}), { ruleSet: RULES }))["auditAnnotations"], firstAudit);
});

Deno.test("admit() bounds every echoed image: a 2 MiB invalid image is not returned in full", () => {
  const huge = "a".repeat(2 * 1024 * 1024) + "!";
  const outcome = admit(
    request({ object: pod({ containers: [{ name: "a", image: huge }] }) }),
    { ruleSet: RULES },
  );
  const response = responseOf(outcome);
  const text = JSON.stringify(response);
  assert.ok(text.length < 4096, `answer is ${text.length} bytes`);
  const invalid = JSON.parse(auditValue(response["auditAnnotations"] as Record<string, string>, "invalid-images")!);
  assert.ok(new TextEncoder().encode(invalid["a"]).byteLength <= 256);
  assert.match(invalid["a"], /…\(2097153 bytes\)$/);
});
