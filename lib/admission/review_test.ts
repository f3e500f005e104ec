// Table tests for decodeReview (every malformed shape is a 400 ReviewError) and the response builders.

import assert from "node:assert/strict";
import {
  ADMISSION_API_VERSION,
  type AdmissionRequest,
  allowResponse,
  decodeReview,
  denyResponse,
  ReviewError,
} from "./review.ts";

const UID = "705ab4f5-6393-11e8-b7cc-42010a800002";

/** A request as the API server sends it for a Pod CREATE. */
function podRequest(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    uid: UID,
    kind: { group: "", version: "v1", kind: "Pod" },
    resource: { group: "", version: "v1", resource: "pods" },
    requestKind: { group: "", version: "v1", kind: "Pod" },
    requestResource: { group: "", version: "v1", resource: "pods" },
    name: "web-0",
    namespace: "shop",
    operation: "CREATE",
    userInfo: { username: "alice", groups: ["system:authenticated"] },
    object: { apiVersion: "v1", kind: "Pod", metadata: { name: "web-0" }, spec: { containers: [] } },
    oldObject: null,
    dryRun: false,
    options: { kind: "CreateOptions", apiVersion: "meta.k8s.io/v1" },
    ...overrides,
  };
}

function review(request: unknown, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { apiVersion: ADMISSION_API_VERSION, kind: "AdmissionReview", request, ...overrides };
}

function without(record: Record<string, unknown>, key: string): Record<string, unknown> {
  const { [key]: _dropped, ...rest } = record;
  return rest;
}

Deno.test("decodeReview() narrows valid reviews", async (t) => {
  const rows: { name: string; body: unknown; expected: Partial<AdmissionRequest> }[] = [
    {
      name: "Pod CREATE",
      body: review(podRequest()),
      expected: {
        uid: UID,
        kind: { group: "", version: "v1", kind: "Pod" },
        resource: { group: "", version: "v1", resource: "pods" },
        name: "web-0",
        namespace: "shop",
        operation: "CREATE",
        dryRun: false,
        username: "alice",
      },
    },
    {
      name: "Pod CREATE with generateName (no name) and no namespace",
      body: review(podRequest({ name: undefined, namespace: "" })),
      expected: { uid: UID, operation: "CREATE" },
    },
    {
      name: "Pod UPDATE with oldObject and dryRun",
      body: review(podRequest({ operation: "UPDATE", oldObject: { kind: "Pod" }, dryRun: true })),
      expected: { operation: "UPDATE", oldObject: { kind: "Pod" }, dryRun: true },
    },
    {
      name: "ephemeralcontainers subresource",
      body: review(podRequest({ operation: "UPDATE", subResource: "ephemeralcontainers" })),
      expected: { subResource: "ephemeralcontainers" },
    },
    {
      name: "DELETE without object",
      body: review(podRequest({ operation: "DELETE", object: null, oldObject: { kind: "Pod" } })),
      expected: { operation: "DELETE", oldObject: { kind: "Pod" } },
    },
    {
      name: "core group omitted from kind and resource",
      body: review(podRequest({ kind: { version: "v1", kind: "Pod" }, resource: { version: "v1", resource: "pods" } })),
      expected: {
        kind: { group: "", version: "v1", kind: "Pod" },
        resource: { group: "", version: "v1", resource: "pods" },
      },
    },
    {
      name: "ConfigMap",
      body: review(
        podRequest({
          kind: { group: "", version: "v1", kind: "ConfigMap" },
          resource: { group: "", version: "v1", resource: "configmaps" },
        }),
      ),
      expected: { kind: { group: "", version: "v1", kind: "ConfigMap" } },
    },
    {
      name: "no userInfo",
      body: review(without(podRequest(), "userInfo")),
      expected: { uid: UID },
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      const decoded = decodeReview(row.body);
      for (const [key, value] of Object.entries(row.expected)) {
        assert.deepEqual(decoded[key as keyof AdmissionRequest], value, key);
      }
    });
  }

  await t.step("empty and null optional fields are absent", () => {
    const decoded = decodeReview(review(podRequest({ name: "", namespace: "", subResource: "", object: null })));
    for (const key of ["name", "namespace", "subResource", "object", "oldObject"]) assert.equal(key in decoded, false);
  });
});

Deno.test("decodeReview() rejects malformed reviews with a 400 ReviewError", async (t) => {
  const rows: { name: string; body: unknown; uid: string | undefined }[] = [
    { name: "null", body: null, uid: undefined },
    { name: "a string", body: "AdmissionReview", uid: undefined },
    { name: "a number", body: 42, uid: undefined },
    { name: "an array", body: [review(podRequest())], uid: undefined },
    { name: "an empty object", body: {}, uid: undefined },
    { name: "kind missing", body: without(review(podRequest()), "kind"), uid: UID },
    { name: "kind Pod", body: review(podRequest(), { kind: "Pod" }), uid: UID },
    { name: "kind AdmissionReviewList", body: review(podRequest(), { kind: "AdmissionReviewList" }), uid: UID },
    { name: "apiVersion missing", body: without(review(podRequest()), "apiVersion"), uid: UID },
    {
      name: "apiVersion admission.k8s.io/v1beta1",
      body: review(podRequest(), { apiVersion: "admission.k8s.io/v1beta1" }),
      uid: UID,
    },
    { name: "apiVersion v1", body: review(podRequest(), { apiVersion: "v1" }), uid: UID },
    {
      name: "apiVersion v1beta1 without uid",
      body: review(without(podRequest(), "uid"), { apiVersion: "admission.k8s.io/v1beta1" }),
      uid: undefined,
    },
    { name: "request missing", body: without(review(null), "request"), uid: undefined },
    { name: "request null", body: review(null), uid: undefined },
    { name: "request an array", body: review([podRequest()]), uid: undefined },
    { name: "request a string", body: review("CREATE"), uid: undefined },
    { name: "uid missing", body: review(without(podRequest(), "uid")), uid: undefined },
    { name: "uid empty", body: review(podRequest({ uid: "" })), uid: undefined },
    { name: "uid a number", body: review(podRequest({ uid: 7 })), uid: undefined },
    { name: "kind missing from request", body: review(without(podRequest(), "kind")), uid: UID },
    { name: "request kind a string", body: review(podRequest({ kind: "Pod" })), uid: UID },
    { name: "request kind without kind", body: review(podRequest({ kind: { group: "", version: "v1" } })), uid: UID },
    { name: "request kind without version", body: review(podRequest({ kind: { group: "", kind: "Pod" } })), uid: UID },
    { name: "request kind.kind a number", body: review(podRequest({ kind: { version: "v1", kind: 1 } })), uid: UID },
    { name: "resource missing", body: review(without(podRequest(), "resource")), uid: UID },
    { name: "resource a string", body: review(podRequest({ resource: "pods" })), uid: UID },
    {
      name: "resource without resource",
      body: review(podRequest({ resource: { group: "", version: "v1" } })),
      uid: UID,
    },
    { name: "operation missing", body: review(without(podRequest(), "operation")), uid: UID },
    { name: "operation a number", body: review(podRequest({ operation: 1 })), uid: UID },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      assert.throws(() => decodeReview(row.body), (error: unknown) => {
        assert.ok(error instanceof ReviewError);
        assert.equal(error.status, 400);
        assert.equal(error.uid, row.uid);
        return true;
      });
    });
  }
});

function decodePatch(response: Record<string, unknown>): unknown {
  assert.equal(response["patchType"], "JSONPatch");
  const patch = response["patch"];
  assert.equal(typeof patch, "string");
  const bytes = Uint8Array.from(atob(patch as string), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

function responseOf(review: Record<string, unknown>): Record<string, unknown> {
  assert.equal(review["apiVersion"], ADMISSION_API_VERSION);
  assert.equal(review["kind"], "AdmissionReview");
  const response = review["response"];
  assert.ok(typeof response === "object" && response !== null);
  return response as Record<string, unknown>;
}

Deno.test("allowResponse() builds an allowed AdmissionReview", async (t) => {
  await t.step("no options: uid and allowed only", () => {
    assert.deepEqual(responseOf(allowResponse(UID)), { uid: UID, allowed: true });
  });

  await t.step("empty patch, warnings and annotations: no keys for them", () => {
    const response = responseOf(allowResponse(UID, { patch: [], warnings: [], auditAnnotations: {} }));
    assert.deepEqual(response, { uid: UID, allowed: true });
  });

  await t.step("patch: base64 JSONPatch that decodes to the operations", () => {
    const patch = [
      { op: "replace", path: "/spec/containers/0/image", value: "harbor.example.com/dockerhub/library/nginx:1.27" },
      { op: "add", path: "/metadata/labels/mirrorhook.dev~1rewritten", value: "true" },
    ];
    const response = responseOf(allowResponse(UID, { patch }));
    assert.equal(response["uid"], UID);
    assert.equal(response["allowed"], true);
    assert.deepEqual(decodePatch(response), patch);
  });

  await t.step("patch with non-ASCII text round-trips as UTF-8", () => {
    const patch = [{ op: "add", path: "/metadata/annotations/note", value: "café ☕ 日本" }];
    assert.deepEqual(decodePatch(responseOf(allowResponse(UID, { patch }))), patch);
  });

  await t.step("large patch (over one 32 KiB chunk) round-trips", () => {
    const patch = Array.from({ length: 2000 }, (_, i) => ({
      op: "replace",
      path: `/spec/containers/${i}/image`,
      value: `registry.example.com/team/image-${i}:1.0`,
    }));
    assert.deepEqual(decodePatch(responseOf(allowResponse(UID, { patch }))), patch);
  });

  await t.step("warnings and audit annotations carried", () => {
    const response = responseOf(
      allowResponse(UID, { warnings: ["one", "two"], auditAnnotations: { "rewritten-images": "{}" } }),
    );
    assert.deepEqual(response["warnings"], ["one", "two"]);
    assert.deepEqual(response["auditAnnotations"], { "rewritten-images": "{}" });
    assert.equal("patch" in response, false);
    assert.equal("patchType" in response, false);
  });

  await t.step("warnings bounded in total length, with one summary line", () => {
    const warnings = Array.from(
      { length: 100 },
      (_, i) => `mirrorhook: rewrote image-${i} to mirror.example.com/image-${i}:1`,
    );
    const out = responseOf(allowResponse(UID, { warnings }))["warnings"];
    assert.ok(Array.isArray(out));
    // The API server keeps at most 4096 characters of warnings in all.
    const total = out.reduce((sum: number, w: unknown) => sum + String(w).length, 0);
    assert.ok(total <= 4096, `${total} characters`);
    assert.ok(out.length > 1 && out.length < warnings.length, `${out.length} warnings`);
    assert.deepEqual(out.slice(0, out.length - 1), warnings.slice(0, out.length - 1));
    assert.match(String(out[out.length - 1]), new RegExp(`${warnings.length - (out.length - 1)} more`));
  });

  await t.step("each warning bounded to 256 characters", () => {
    const out = responseOf(allowResponse(UID, { warnings: ["x".repeat(10_000), "short"] }))["warnings"];
    assert.ok(Array.isArray(out));
    assert.equal(out.length, 2);
    assert.ok(typeof out[0] === "string" && out[0].length <= 256);
    assert.equal(out[1], "short");
  });
});

Deno.test("denyResponse() builds a denied AdmissionReview", async (t) => {
  const rows: { name: string; uid: string | undefined; code: number; reason: string }[] = [
    { name: "400 with uid", uid: UID, code: 400, reason: "BadRequest" },
    { name: "400 without uid", uid: undefined, code: 400, reason: "BadRequest" },
    { name: "413", uid: undefined, code: 413, reason: "RequestEntityTooLarge" },
    { name: "415", uid: undefined, code: 415, reason: "UnsupportedMediaType" },
    { name: "422", uid: UID, code: 422, reason: "Invalid" },
    { name: "500", uid: UID, code: 500, reason: "InternalError" },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      const response = responseOf(denyResponse(row.uid, { code: row.code, message: "Cannot decode AdmissionReview" }));
      assert.equal(response["uid"], row.uid ?? "");
      assert.equal(response["allowed"], false);
      const status = response["status"] as Record<string, unknown>;
      assert.equal(status["code"], row.code);
      assert.equal(status["status"], "Failure");
      assert.equal(typeof status["message"], "string");
      assert.equal(status["reason"], row.reason);
      assert.equal("patch" in response, false);
      assert.equal("warnings" in response, false);
    });
  }

  await t.step("warnings bounded", () => {
    const response = responseOf(
      denyResponse(UID, {
        code: 500,
        message: "failed",
        warnings: Array.from({ length: 400 }, (_, i) => `warning number ${i}`),
      }),
    );
    assert.ok(Array.isArray(response["warnings"]));
    const total = response["warnings"].reduce((sum: number, w: unknown) => sum + String(w).length, 0);
    assert.ok(total <= 4096 && response["warnings"].length < 400);
  });
});
