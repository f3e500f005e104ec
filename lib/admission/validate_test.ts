// Table tests for validateRewriteReview: what /validate allows, denies (422 with every error) and skips.

import assert from "node:assert/strict";
import type { Problem } from "../rules/problem.ts";
import { API_VERSION } from "../rules/schema.ts";
import type { AdmissionRequest } from "./review.ts";
import { MAX_LISTED_ERRORS, validateRewriteReview, type ValidateSkip } from "./validate.ts";

const UID = "b2a4c0de-6393-11e8-b7cc-42010a800002";

type Kind = "ClusterImageRewrite" | "ImageRewrite";

const RESOURCE: Record<Kind, string> = { ClusterImageRewrite: "clusterimagerewrites", ImageRewrite: "imagerewrites" };

const HUB = { prefix: "docker.io", replace: "harbor.example.com/dockerhub" };

/** An object as the API server sends it: server-set metadata included. */
function object(kind: Kind, spec: unknown, name = "hub"): Record<string, unknown> {
  return {
    apiVersion: API_VERSION,
    kind,
    metadata: {
      name,
      ...(kind === "ImageRewrite" ? { namespace: "team" } : {}),
      uid: "0d5c8f3e-1b2a-4c3d-9e8f-7a6b5c4d3e2f",
      resourceVersion: "4242",
      generation: 1,
      creationTimestamp: "2025-01-01T00:00:00Z",
      annotations: { "kubectl.kubernetes.io/last-applied-configuration": "{}" },
      managedFields: [{ manager: "kubectl", operation: "Update", apiVersion: API_VERSION }],
    },
    spec,
  };
}

function request(
  kind: Kind,
  overrides: Partial<{ -readonly [K in keyof AdmissionRequest]: AdmissionRequest[K] }> = {},
): AdmissionRequest {
  return {
    uid: UID,
    kind: { group: "mirrorhook.dev", version: "v1alpha1", kind },
    resource: { group: "mirrorhook.dev", version: "v1alpha1", resource: RESOURCE[kind] },
    name: "hub",
    ...(kind === "ImageRewrite" ? { namespace: "team" } : {}),
    operation: "CREATE",
    dryRun: false,
    username: "alice",
    ...overrides,
  };
}

function create(kind: Kind, spec: unknown): AdmissionRequest {
  return request(kind, { object: object(kind, spec) });
}

function update(kind: Kind, spec: unknown, oldSpec: unknown): AdmissionRequest {
  return request(kind, { operation: "UPDATE", object: object(kind, spec), oldObject: object(kind, oldSpec) });
}

function withoutName(request: AdmissionRequest): AdmissionRequest {
  const { name: _name, ...rest } = request;
  return rest;
}

type Found = { code: Problem["code"]; path: string };

interface Row {
  name: string;
  request: AdmissionRequest;
  allowed: boolean;
  /** status.code of a denial. */
  code?: number;
  errors?: Found[];
  warnings?: Found[];
  skipped?: ValidateSkip;
  ratcheted?: boolean;
}

const CATASTROPHIC = "^(a+)+$";

const ROWS: Row[] = [
  // Allowed.
  { name: "a valid ClusterImageRewrite", request: create("ClusterImageRewrite", { rules: [HUB] }), allowed: true },
  {
    name: "a valid ImageRewrite with a podSelector",
    request: create("ImageRewrite", { podSelector: { matchLabels: { app: "web" } }, rules: [HUB] }),
    allowed: true,
  },
  {
    name: "a ClusterImageRewrite with namespaces, a selector, priority and every rule kind",
    request: create("ClusterImageRewrite", {
      priority: 10,
      namespaces: ["canary", "staging"],
      namespaceSelector: { matchExpressions: [{ key: "env", operator: "In", values: ["dev"] }] },
      rules: [
        { exact: "ghcr.io/fantasy/coolstuff:v1.0", replace: "my-registry.com/patched-coolstuff:latest" },
        { prefix: "internal.example.com", keep: true },
        { match: "^(gcr\\.io|quay\\.io)/(.*)$", replace: "cache.example.com/$1/$2", on: "original" },
      ],
    }),
    allowed: true,
  },
  {
    name: "verify on the spec with onMissing rewrite",
    request: create("ClusterImageRewrite", { verify: true, onMissing: "rewrite", rules: [HUB] }),
    allowed: true,
  },
  {
    name: "a dry-run CREATE is validated the same way",
    request: { ...create("ClusterImageRewrite", { rules: [HUB] }), dryRun: true },
    allowed: true,
  },
  // Allowed with warnings.
  {
    name: "a pattern with \\\\. (warning)",
    request: create("ClusterImageRewrite", {
      rules: [{ match: "^quay\\\\.io/(.*)$", replace: "cache.example.com/$1" }],
    }),
    allowed: true,
    warnings: [{ code: "double-escape", path: "spec.rules[0].match" }],
  },
  {
    name: "a prefix rule that matches its own output (warning)",
    request: create("ClusterImageRewrite", { rules: [{ prefix: "docker.io", replace: "docker.io/mirror" }] }),
    allowed: true,
    warnings: [{ code: "self-match", path: "spec.rules[0].replace" }],
  },
  {
    name: "onMissing without verify (warning)",
    request: create("ClusterImageRewrite", { onMissing: "keep", rules: [HUB] }),
    allowed: true,
    warnings: [{ code: "ignored", path: "spec.onMissing" }],
  },
  // Denied: structural errors.
  {
    name: "an unknown rule field",
    request: create("ClusterImageRewrite", { rules: [{ ...HUB, regex: "x" }] }),
    allowed: false,
    code: 422,
    errors: [{ code: "unknown-field", path: "spec.rules[0].regex" }],
  },
  {
    name: "an unknown spec field",
    request: create("ClusterImageRewrite", { rules: [HUB], mirrors: [] }),
    allowed: false,
    code: 422,
    errors: [{ code: "unknown-field", path: "spec.mirrors" }],
  },
  {
    name: "exact and prefix in one rule",
    request: create("ClusterImageRewrite", { rules: [{ exact: "nginx", prefix: "docker.io", replace: "a.io/b" }] }),
    allowed: false,
    code: 422,
    errors: [{ code: "rule-kind", path: "spec.rules[0]" }],
  },
  {
    name: "no exact, prefix or match",
    request: create("ClusterImageRewrite", { rules: [{ replace: "a.io/b" }] }),
    allowed: false,
    code: 422,
    errors: [{ code: "rule-kind", path: "spec.rules[0]" }],
  },
  {
    name: "keep and replace",
    request: create("ClusterImageRewrite", { rules: [{ ...HUB, keep: true }] }),
    allowed: false,
    code: 422,
    errors: [{ code: "keep-and-replace", path: "spec.rules[0]" }],
  },
  {
    name: "neither keep nor replace",
    request: create("ClusterImageRewrite", { rules: [{ prefix: "docker.io" }] }),
    allowed: false,
    code: 422,
    errors: [{ code: "required", path: "spec.rules[0].replace" }],
  },
  {
    name: "on with a prefix rule",
    request: create("ClusterImageRewrite", { rules: [{ ...HUB, on: "original" }] }),
    allowed: false,
    code: 422,
    errors: [{ code: "invalid-value", path: "spec.rules[0].on" }],
  },
  {
    name: "an empty rule list",
    request: create("ClusterImageRewrite", { rules: [] }),
    allowed: false,
    code: 422,
    errors: [{ code: "required", path: "spec.rules" }],
  },
  {
    name: "an ImageRewrite with namespaces and a namespaceSelector",
    request: create("ImageRewrite", { namespaces: ["a"], namespaceSelector: {}, rules: [HUB] }),
    allowed: false,
    code: 422,
    errors: [
      { code: "invalid-value", path: "spec.namespaceSelector" },
      { code: "invalid-value", path: "spec.namespaces" },
    ],
  },
  {
    name: "an ImageRewrite whose object names no namespace: it is stored in the request's",
    request: (() => {
      const written = object("ImageRewrite", { rules: [HUB] });
      const { namespace: _namespace, ...metadata } = written["metadata"] as Record<string, unknown>;
      return request("ImageRewrite", { object: { ...written, metadata } });
    })(),
    allowed: true,
  },
  {
    name: "onMissing maybe",
    request: create("ClusterImageRewrite", { rules: [{ ...HUB, verify: true, onMissing: "maybe" }] }),
    allowed: false,
    code: 422,
    errors: [{ code: "invalid-value", path: "spec.rules[0].onMissing" }],
  },
  {
    name: "a priority that is not a 32-bit integer",
    request: create("ClusterImageRewrite", { priority: 2 ** 31, rules: [HUB] }),
    allowed: false,
    code: 422,
    errors: [{ code: "type", path: "spec.priority" }],
  },
  // Denied: compile errors.
  {
    name: "an invalid regular expression",
    request: create("ClusterImageRewrite", { rules: [{ match: "^(quay\\.io/", replace: "a.io/$1" }] }),
    allowed: false,
    code: 422,
    errors: [{ code: "invalid-regex", path: "spec.rules[0].match" }],
  },
  {
    name: "a catastrophic pattern",
    request: create("ClusterImageRewrite", { rules: [{ match: CATASTROPHIC, replace: "a.io/b" }] }),
    allowed: false,
    code: 422,
    errors: [{ code: "catastrophic-pattern", path: "spec.rules[0].match" }],
  },
  {
    name: "a replacement that cannot yield a reference",
    request: create("ClusterImageRewrite", { rules: [{ prefix: "docker.io", replace: "Not A Registry" }] }),
    allowed: false,
    code: 422,
    errors: [{ code: "invalid-replacement", path: "spec.rules[0].replace" }],
  },
  {
    name: "a prefix without a registry",
    request: create("ClusterImageRewrite", { rules: [{ prefix: "library", replace: "a.io/b" }] }),
    allowed: false,
    code: 422,
    errors: [{ code: "invalid-prefix", path: "spec.rules[0].prefix" }],
  },
  {
    name: "two exact rules deciding one reference differently",
    request: create("ClusterImageRewrite", {
      rules: [{ exact: "nginx:1", replace: "a.io/nginx:1" }, { exact: "docker.io/library/nginx:1", keep: true }],
    }),
    allowed: false,
    code: 422,
    errors: [{ code: "conflict", path: "spec.rules[1].exact" }],
  },
  {
    name: "a structural error and a compile error in other rules: both listed",
    request: create("ClusterImageRewrite", {
      rules: [{ ...HUB, regex: "x" }, HUB, { match: "([a-z]+", replace: "a.io/$1" }],
    }),
    allowed: false,
    code: 422,
    errors: [
      { code: "unknown-field", path: "spec.rules[0].regex" },
      { code: "invalid-regex", path: "spec.rules[2].match" },
    ],
  },
  {
    name: "CREATE with generateName (request.name empty): the object's name is used",
    request: withoutName(request("ClusterImageRewrite", { object: object("ClusterImageRewrite", { rules: [] }) })),
    allowed: false,
    code: 422,
    errors: [{ code: "required", path: "spec.rules" }],
  },
  // UPDATE.
  {
    name: "UPDATE to a valid spec",
    request: update("ClusterImageRewrite", { rules: [HUB] }, { rules: [{ prefix: "docker.io" }] }),
    allowed: true,
  },
  {
    name: "UPDATE to an invalid spec",
    request: update("ClusterImageRewrite", { rules: [{ prefix: "docker.io" }] }, { rules: [HUB] }),
    allowed: false,
    code: 422,
    errors: [{ code: "required", path: "spec.rules[0].replace" }],
  },
  {
    name: "UPDATE of an invalid object that leaves spec unchanged (a finalizer removed)",
    request: update(
      "ClusterImageRewrite",
      { rules: [{ match: CATASTROPHIC, replace: "a.io/b" }] },
      { rules: [{ replace: "a.io/b", match: CATASTROPHIC }] },
    ),
    allowed: true,
    errors: [{ code: "catastrophic-pattern", path: "spec.rules[0].match" }],
    ratcheted: true,
  },
  // Skipped: allowed without looking.
  {
    name: "DELETE",
    request: request("ClusterImageRewrite", { operation: "DELETE", oldObject: object("ClusterImageRewrite", {}) }),
    allowed: true,
    skipped: "operation",
  },
  {
    name: "an invalid object written through the status subresource",
    request: request("ImageRewrite", {
      operation: "UPDATE",
      subResource: "status",
      object: object("ImageRewrite", { rules: [] }),
      oldObject: object("ImageRewrite", { rules: [] }),
    }),
    allowed: true,
    skipped: "subresource",
  },
  {
    name: "a Pod",
    request: {
      ...request("ClusterImageRewrite", { object: { kind: "Pod" } }),
      kind: { group: "", version: "v1", kind: "Pod" },
      resource: { group: "", version: "v1", resource: "pods" },
    },
    allowed: true,
    skipped: "not-a-rule-object",
  },
  {
    name: "imagerewrites of another API group",
    request: {
      ...create("ImageRewrite", { rules: [] }),
      resource: { group: "example.com", version: "v1", resource: "imagerewrites" },
    },
    allowed: true,
    skipped: "not-a-rule-object",
  },
  // Malformed.
  {
    name: "CREATE without request.object",
    request: request("ClusterImageRewrite"),
    allowed: false,
    code: 400,
  },
];

interface ResponseShape {
  uid: string;
  allowed: boolean;
  warnings?: string[];
  status?: {
    code: number;
    reason: string;
    message: string;
    details?: { name?: string; group?: string; kind?: string; causes?: { reason: string; field?: string }[] };
  };
}

function responseOf(review: Record<string, unknown>): ResponseShape {
  assert.equal(review["apiVersion"], "admission.k8s.io/v1");
  assert.equal(review["kind"], "AdmissionReview");
  return review["response"] as ResponseShape;
}

function found(problems: readonly Problem[], severity: Problem["severity"]): Found[] {
  return problems
    .filter((problem) => problem.severity === severity)
    .map(({ code, path }) => ({ code, path }))
    .sort((a, b) => `${a.path} ${a.code}`.localeCompare(`${b.path} ${b.code}`));
}

function sorted(list: readonly Found[]): Found[] {
  return [...list].sort((a, b) => `${a.path} ${a.code}`.localeCompare(`${b.path} ${b.code}`));
}

Deno.test("validateRewriteReview() allows, warns, denies and skips", async (t) => {
  for (const row of ROWS) {
    await t.step(row.name, () => {
      const outcome = validateRewriteReview(row.request);
      const response = responseOf(outcome.review);
      assert.equal(response.uid, UID);
      assert.equal(outcome.allowed, row.allowed);
      assert.equal(response.allowed, row.allowed);
      assert.equal(outcome.skipped, row.skipped);
      assert.equal(outcome.ratcheted, row.ratcheted);
      assert.deepEqual(found(outcome.problems, "error"), sorted(row.errors ?? []));
      assert.deepEqual(found(outcome.problems, "warning"), sorted(row.warnings ?? []));
      const errors = outcome.problems.filter((problem) => problem.severity === "error");
      const warnings = outcome.problems.filter((problem) => problem.severity === "warning");
      if (row.allowed) {
        assert.equal(response.status, undefined);
        // Warnings, and on a ratcheted UPDATE the errors, come back as admission warnings.
        assert.equal(response.warnings?.length ?? 0, warnings.length + errors.length);
        return;
      }
      assert.equal(response.status?.code, row.code);
      assert.equal(response.status?.reason, row.code === 422 ? "Invalid" : "BadRequest");
      assert.equal(response.warnings?.length ?? 0, warnings.length);
      if (row.code !== 422) return;
      // Every error is in the message (as the compiler words it) and in details.causes with its field.
      for (const error of errors) assert.ok(response.status?.message.includes(error.message), error.message);
      assert.deepEqual(
        response.status?.details?.causes?.map((cause) => cause.field).sort(),
        errors.map((e) => e.path).sort(),
      );
      assert.equal(response.status?.details?.group, "mirrorhook.dev");
      assert.equal(response.status?.details?.kind, row.request.resource.resource);
      assert.equal(response.status?.details?.name, "hub");
    });
  }
});

Deno.test("validateRewriteReview() lists at most MAX_LISTED_ERRORS errors and counts the rest", () => {
  const rules = Array.from({ length: MAX_LISTED_ERRORS + 20 }, (_, i) => ({ prefix: `docker.io/p${i}` }));
  const outcome = validateRewriteReview(create("ClusterImageRewrite", { rules }));
  const response = responseOf(outcome.review);
  assert.equal(outcome.allowed, false);
  assert.equal(response.status?.code, 422);
  assert.equal(outcome.problems.filter((problem) => problem.severity === "error").length, MAX_LISTED_ERRORS + 20);
  assert.equal(response.status?.details?.causes?.length, MAX_LISTED_ERRORS);
  assert.ok(response.status?.message.includes("spec.rules[99].replace"));
  assert.ok(!response.status?.message.includes("spec.rules[100].replace"));
  assert.ok(response.status?.message.includes("20"));
});
