// The /mutate handler called with `new Request(...)`: routing, limits, error responses, onError, metrics and logs.

import assert from "node:assert/strict";
import { resetSync } from "@logtape/logtape";
import type { AdmitOutcome } from "../admission/admit.ts";
import { createDecider, type Decide } from "./decision.ts";
import { createWebhook, createWebhookHandler, type HandlerDeps } from "./handler.ts";
import { createRecorder } from "./record.ts";
import { toFetchHandler } from "./transport.ts";
import { configureLogging, logger } from "./log.ts";
import { createMetrics, type Metrics } from "./metrics.ts";
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
    - match: '^(gcr\\.io|quay\\.io|ghcr\\.io)/(.*)$'
      replace: cache.internal.com/$1/$2
---
apiVersion: mirrorhook.dev/v1alpha1
kind: ImageRewrite
metadata:
  name: team-mirror
  namespace: team-a
spec:
  priority: 10
  rules:
    - prefix: docker.io/library
      replace: team-a.registry.local/library
`);

const UID = "b3c2e1f0-7a1d-4c55-9d6e-2f1a0e9c8b7a";
const SECRET = "hunter2-do-not-log";
const URL_MUTATE = "https://x/mutate";

function podReview(fields: Record<string, unknown> = {}): Record<string, unknown> {
  return admissionReview({
    uid: UID,
    namespace: "shop",
    userInfo: { username: "system:serviceaccount:kube-system:replicaset-controller" },
    object: {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { generateName: "web-7d9c8b6f5-", namespace: "shop", labels: { app: "web" } },
      spec: {
        initContainers: [{ name: "migrate", image: "busybox:1.36" }],
        containers: [
          { name: "web", image: "nginx:1.27", env: [{ name: "DB_PASSWORD", value: SECRET }] },
          { name: "metrics", image: "quay.io/prometheus/node-exporter:v1.8.2" },
        ],
      },
    },
    asApiServer: true,
    fields,
  });
}

function post(body: BodyInit | null, headers: Record<string, string> = { "content-type": "application/json" }) {
  return new Request(URL_MUTATE, { method: "POST", body, headers });
}

function postJson(value: unknown): Request {
  return post(JSON.stringify(value));
}

/** A body that arrives in chunks with no Content-Length, as with `Transfer-Encoding: chunked`. */
function chunked(total: number, chunkSize = 4096): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent >= total) {
        controller.close();
        return;
      }
      const size = Math.min(chunkSize, total - sent);
      controller.enqueue(new TextEncoder().encode("x".repeat(size)));
      sent += size;
    },
  });
}

interface Harness {
  readonly handle: (request: Request) => Promise<Response>;
  readonly metrics: Metrics;
  readonly logs: Record<string, unknown>[];
}

function setup(deps: Partial<HandlerDeps> = {}): Harness {
  const logs: Record<string, unknown>[] = [];
  configureLogging("debug", (line) => logs.push(JSON.parse(line)));
  const metrics = createMetrics({ defaultMetrics: false });
  const handle = createWebhookHandler({ rules: () => RULES, metrics, logger: logger("handler-test"), ...deps });
  return { handle, metrics, logs };
}

type Labels = Record<string, string>;
interface Readable {
  get(): Promise<{ values: { labels: Partial<Record<string, string | number>>; value: number }[] }>;
}

/** The value of the series with exactly these labels (0 when absent). */
async function value(metric: Readable, labels: Labels = {}): Promise<number> {
  const { values } = await metric.get();
  const wanted = Object.entries(labels);
  const found = values.find((v) =>
    Object.keys(v.labels).length === wanted.length && wanted.every(([key, val]) => v.labels[key] === val)
  );
  return found?.value ?? 0;
}

async function total(metric: Readable): Promise<number> {
  return (await metric.get()).values.reduce((sum, v) => sum + v.value, 0);
}

async function responseOf(res: Response): Promise<Record<string, unknown>> {
  assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
  const body = await res.json();
  assert.equal(body.apiVersion, "admission.k8s.io/v1");
  assert.equal(body.kind, "AdmissionReview");
  return body.response;
}

function patchOf(response: Record<string, unknown>): { op: string; path: string; value: unknown }[] | undefined {
  if (response["patch"] === undefined) return undefined;
  assert.equal(response["patchType"], "JSONPatch");
  const bytes = Uint8Array.from(atob(response["patch"] as string), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

function propertiesOf(log: Record<string, unknown>): Record<string, unknown> {
  return log["properties"] as Record<string, unknown>;
}

Deno.test("createWebhookHandler() answers only POST /mutate and POST /validate", async (t) => {
  const rows: { name: string; request: Request; status: number }[] = [
    { name: "POST /", request: new Request("https://x/", { method: "POST" }), status: 404 },
    {
      name: "POST /validate without content type",
      request: new Request("https://x/validate", { method: "POST" }),
      status: 415,
    },
    { name: "GET /validate", request: new Request("https://x/validate"), status: 405 },
    { name: "POST /mutate/", request: new Request("https://x/mutate/", { method: "POST" }), status: 404 },
    { name: "GET /healthz", request: new Request("https://x/healthz"), status: 404 },
    { name: "GET /mutate", request: new Request(URL_MUTATE), status: 405 },
    { name: "PUT /mutate", request: new Request(URL_MUTATE, { method: "PUT", body: "{}" }), status: 405 },
    { name: "DELETE /mutate", request: new Request(URL_MUTATE, { method: "DELETE" }), status: 405 },
  ];
  for (const row of rows) {
    await t.step(row.name, async () => {
      const { handle, metrics } = setup();
      const res = await handle(row.request);
      await res.body?.cancel();
      assert.equal(res.status, row.status);
      if (row.status === 405) assert.equal(res.headers.get("allow"), "POST");
      // Routing answers (404, 405) are not admission requests; a 415 on a real path is counted as invalid.
      assert.equal(await total(metrics.requests), row.status === 415 ? 1 : 0);
      assert.equal(await value(metrics.inFlight), 0);
    });
  }
  resetSync();
});

Deno.test("createWebhookHandler() denies bodies it cannot read with an AdmissionReview", async (t) => {
  const LIMIT = 1024;
  const big = JSON.stringify(podReview({ name: "x".repeat(2 * LIMIT) }));
  const rows: { name: string; request: () => Request; status: number; uid?: string }[] = [
    { name: "content type text/plain", request: () => post("{}", { "content-type": "text/plain" }), status: 415 },
    {
      name: "content type application/yaml",
      request: () => post("{}", { "content-type": "application/yaml" }),
      status: 415,
    },
    { name: "no content type", request: () => post("{}", {}), status: 415 },
    {
      name: "over the limit with a Content-Length",
      request: () => post(big, { "content-type": "application/json", "content-length": String(big.length) }),
      status: 413,
    },
    {
      name: "over the limit by Content-Length alone",
      request: () => post("{}", { "content-type": "application/json", "content-length": String(LIMIT + 1) }),
      status: 413,
    },
    {
      name: "over the limit with an understated Content-Length",
      request: () => post(big, { "content-type": "application/json", "content-length": "10" }),
      status: 413,
    },
    {
      name: "over the limit as a chunked stream",
      request: () => post(chunked(4 * LIMIT, 100), { "content-type": "application/json" }),
      status: 413,
    },
    { name: "empty body", request: () => post(null), status: 400 },
    { name: "invalid JSON", request: () => post('{"apiVersion": '), status: 400 },
    { name: "garbage bytes", request: () => post(new Uint8Array([0, 255, 254, 7, 1, 128])), status: 400 },
    { name: "JSON array", request: () => postJson([podReview()]), status: 400 },
    {
      name: "apiVersion admission.k8s.io/v1beta1, uid echoed",
      request: () => postJson({ ...podReview(), apiVersion: "admission.k8s.io/v1beta1" }),
      status: 400,
      uid: UID,
    },
    { name: "kind Pod, uid echoed", request: () => postJson({ ...podReview(), kind: "Pod" }), status: 400, uid: UID },
    { name: "no request", request: () => postJson({ ...podReview(), request: undefined }), status: 400 },
    { name: "no uid", request: () => postJson(podReview({ uid: undefined })), status: 400 },
    {
      name: "no operation, uid echoed",
      request: () => postJson(podReview({ operation: undefined })),
      status: 400,
      uid: UID,
    },
  ];
  for (const row of rows) {
    await t.step(row.name, async () => {
      const { handle, metrics, logs } = setup({ maxBodyBytes: LIMIT });
      const res = await handle(row.request());
      assert.equal(res.status, row.status);
      const response = await responseOf(res);
      assert.equal(response["allowed"], false);
      assert.equal(response["uid"], row.uid ?? "");
      assert.equal((response["status"] as { code: number }).code, row.status);
      assert.equal(patchOf(response), undefined);
      assert.equal(
        await value(metrics.requests, { operation: "unknown", result: "invalid", dry_run: "false" }) +
          await value(metrics.requests, { operation: "CREATE", result: "invalid", dry_run: "false" }),
        1,
      );
      assert.equal(await value(metrics.inFlight), 0);
      assert.equal(logs.filter((log) => log["level"] === "WARN").length, 1);
    });
  }

  await t.step("a body of exactly the limit is read; one byte less is not enough", async () => {
    const body = JSON.stringify(podReview());
    const size = new TextEncoder().encode(body).length;
    const exact = setup({ maxBodyBytes: size });
    assert.equal((await exact.handle(post(body))).status, 200);
    const under = setup({ maxBodyBytes: size - 1 });
    const res = await under.handle(post(body));
    assert.equal(res.status, 413);
    await res.body?.cancel();
    const streamed = await under.handle(post(new Blob([body]).stream()));
    assert.equal(streamed.status, 413);
    await streamed.body?.cancel();
  });
  resetSync();
});

Deno.test("createWebhookHandler() admits Pods", async (t) => {
  await t.step("a Deployment's Pod: 200, uid, JSONPatch of images", async () => {
    const { handle } = setup();
    const res = await handle(postJson(podReview()));
    assert.equal(res.status, 200);
    const response = await responseOf(res);
    assert.equal(response["uid"], UID);
    assert.equal(response["allowed"], true);
    const patch = patchOf(response) ?? [];
    const images = Object.fromEntries(
      patch.filter((op) => op.path.endsWith("/image")).map((op) => [op.path, op.value]),
    );
    assert.deepEqual(images, {
      "/spec/initContainers/0/image": "harbor.example.com/dockerhub/library/busybox:1.36",
      "/spec/containers/0/image": "harbor.example.com/dockerhub/library/nginx:1.27",
      "/spec/containers/1/image": "cache.internal.com/quay.io/prometheus/node-exporter:v1.8.2",
    });
    assert.ok(Array.isArray(response["warnings"]) && response["warnings"].length === 3);
  });

  await t.step("content type with charset", async () => {
    const { handle } = setup();
    const res = await handle(post(JSON.stringify(podReview()), { "content-type": "application/json; charset=utf-8" }));
    assert.equal(res.status, 200);
    assert.notEqual(patchOf(await responseOf(res)), undefined);
  });

  await t.step("a request marked dryRun gets the patch", async () => {
    const { handle, metrics } = setup();
    const response = await responseOf(await handle(postJson(podReview({ dryRun: true }))));
    assert.notEqual(patchOf(response), undefined);
    assert.equal(await value(metrics.requests, { operation: "CREATE", result: "rewritten", dry_run: "true" }), 1);
  });

  await t.step("dry-run mode: no patch, warnings, counted as would-rewrite", async () => {
    const { handle, metrics, logs } = setup({ dryRun: true });
    const response = await responseOf(await handle(postJson(podReview())));
    assert.equal(response["allowed"], true);
    assert.equal(patchOf(response), undefined);
    assert.ok(Array.isArray(response["warnings"]) && response["warnings"].length === 3);
    assert.equal(await value(metrics.requests, { operation: "CREATE", result: "rewritten", dry_run: "false" }), 0);
    assert.equal(await value(metrics.requests, { operation: "CREATE", result: "would-rewrite", dry_run: "false" }), 1);
    assert.equal(await total(metrics.rewrites), 3);
    assert.equal(logs.filter((log) => propertiesOf(log)["uid"] === UID).length, 1);
  });

  await t.step("excluded namespace: allowed, no patch", async () => {
    const { handle } = setup({ excludedNamespaces: new Set(["shop"]) });
    const response = await responseOf(await handle(postJson(podReview())));
    assert.equal(response["uid"], UID);
    assert.equal(response["allowed"], true);
    assert.equal(patchOf(response), undefined);
  });

  await t.step("own Pod: allowed, no patch", async () => {
    const { handle } = setup({ isOwnPod: () => true });
    assert.equal(patchOf(await responseOf(await handle(postJson(podReview())))), undefined);
  });

  await t.step("configured bypass prefix", async () => {
    const { handle, metrics } = setup({ bypassPrefix: "raw/" });
    const review = podReview();
    const object = (review["request"] as { object: { spec: { containers: { image: string }[] } } }).object;
    object.spec.containers[0]!.image = "raw/nginx:1";
    const patch = patchOf(await responseOf(await handle(postJson(review)))) ?? [];
    assert.ok(patch.some((op) => op.path === "/spec/containers/0/image" && op.value === "docker.io/library/nginx:1"));
    // The bypass names its registry in the image, which any Pod chooses: never a label value.
    assert.equal(await value(metrics.rewrites, { kind: "bypass", object: "bypass", registry: "bypass" }), 1);
  });
  resetSync();
});

Deno.test("createWebhookHandler() counts requests, rewrites, skips and in-flight requests", async () => {
  const { handle, metrics } = setup();
  const send = async (review: unknown) => {
    const res = await handle(postJson(review));
    assert.equal(res.status, 200);
    return responseOf(res);
  };
  await send(podReview());
  await send(podReview({ uid: "2", namespace: "team-a" }));
  await send(podReview({ uid: "3", namespace: "kube-system" }));
  await send(podReview({ uid: "4", operation: "DELETE", object: null }));
  await send(podReview({ uid: "5", operation: "UPDATE", subResource: "status" }));
  await send(podReview({
    uid: "6",
    kind: { group: "", version: "v1", kind: "ConfigMap" },
    resource: { group: "", version: "v1", resource: "configmaps" },
    object: { apiVersion: "v1", kind: "ConfigMap", data: { image: "nginx" } },
  }));
  await send(podReview({
    uid: "7",
    object: { kind: "Pod", metadata: {}, spec: { containers: [{ name: "a", image: "registry.local/a:1" }] } },
  }));
  await send(podReview({
    uid: "8",
    object: { kind: "Pod", metadata: {}, spec: { containers: [{ name: "a", image: "Docker.io/Library/NGINX" }] } },
  }));

  const requests = async (operation: string, result: string) =>
    await value(metrics.requests, { operation, result, dry_run: "false" });
  assert.equal(await requests("CREATE", "rewritten"), 2);
  assert.equal(await requests("CREATE", "skipped"), 2);
  assert.equal(await requests("CREATE", "unchanged"), 2);
  assert.equal(await requests("DELETE", "skipped"), 1);
  assert.equal(await requests("UPDATE", "skipped"), 1);
  assert.equal(await total(metrics.requests), 8);

  assert.equal(
    await value(metrics.rewrites, { kind: "ClusterImageRewrite", object: "hub", registry: "harbor.example.com" }),
    2,
  );
  assert.equal(
    await value(metrics.rewrites, { kind: "ClusterImageRewrite", object: "hub", registry: "cache.internal.com" }),
    2,
  );
  assert.equal(
    await value(metrics.rewrites, {
      kind: "ImageRewrite",
      object: "team-a/team-mirror",
      registry: "team-a.registry.local",
    }),
    2,
  );
  assert.equal(await total(metrics.rewrites), 6);

  assert.equal(await value(metrics.skips, { reason: "excluded-namespace" }), 1);
  assert.equal(await value(metrics.skips, { reason: "operation" }), 1);
  assert.equal(await value(metrics.skips, { reason: "subresource" }), 1);
  assert.equal(await value(metrics.skips, { reason: "not-a-pod" }), 1);
  assert.equal(await total(metrics.skips), 4);

  assert.equal(await value(metrics.invalidImages, { reason: "invalid-input" }), 1);
  assert.equal(await total(metrics.errors), 0);
  assert.equal(await value(metrics.inFlight), 0);
  assert.match(
    await metrics.registry.getSingleMetricAsString("mirrorhook_admission_duration_seconds"),
    /mirrorhook_admission_duration_seconds_count\{operation="CREATE"\} 6/,
  );
  resetSync();
});

Deno.test("createWebhookHandler() counts a request in flight until it is answered", async () => {
  const { handle, metrics } = setup();
  const body = new TextEncoder().encode(JSON.stringify(podReview()));
  let release: (() => void) | undefined;
  const gate = new Promise<void>((resolve) => release = resolve);
  let pulled = false;
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (!pulled) {
        pulled = true;
        controller.enqueue(body.subarray(0, 10));
        return;
      }
      await gate;
      controller.enqueue(body.subarray(10));
      controller.close();
    },
  });
  const pending = handle(post(stream));
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(await value(metrics.inFlight), 1);
  release?.();
  const res = await pending;
  assert.equal(res.status, 200);
  await res.body?.cancel();
  assert.equal(await value(metrics.inFlight), 0);
  resetSync();
});

Deno.test("createWebhookHandler() logs one line per rewrite, without the request body", async () => {
  const { handle, logs } = setup();
  await (await handle(postJson(podReview()))).body?.cancel();
  const mine = logs.filter((log) => propertiesOf(log)["uid"] === UID);
  assert.equal(mine.length, 1);
  const log = mine[0]!;
  assert.equal(log["level"], "INFO");
  const properties = propertiesOf(log);
  assert.equal(properties["uid"], UID);
  assert.equal(properties["namespace"], "shop");
  assert.equal(properties["pod"], "web-7d9c8b6f5-");
  assert.equal(properties["operation"], "CREATE");
  assert.equal(typeof properties["durationMs"], "number");
  assert.ok((properties["durationMs"] as number) >= 0);
  const rewrites = properties["rewrites"] as { container: string; from: string; to: string }[];
  assert.deepEqual(rewrites.map((r) => [r.container, r.from, r.to]).sort(), [
    [
      "metrics",
      "quay.io/prometheus/node-exporter:v1.8.2",
      "cache.internal.com/quay.io/prometheus/node-exporter:v1.8.2",
    ],
    ["migrate", "busybox:1.36", "harbor.example.com/dockerhub/library/busybox:1.36"],
    ["web", "nginx:1.27", "harbor.example.com/dockerhub/library/nginx:1.27"],
  ]);
  for (const key of ["object", "oldObject", "request", "body", "review", "userInfo"]) {
    assert.equal(key in properties, false, key);
  }
  const all = JSON.stringify(logs);
  assert.equal(all.includes(SECRET), false);
  assert.equal(all.includes("DB_PASSWORD"), false);

  // Nothing to rewrite: no line at info level or above.
  const before = logs.length;
  await (await handle(postJson(podReview({ uid: "quiet", object: { kind: "Pod", spec: { containers: [] } } })))).body
    ?.cancel();
  assert.deepEqual(logs.slice(before).filter((log) => log["level"] !== "DEBUG"), []);
  resetSync();
});

const throwingDecide: Decide = (): Promise<AdmitOutcome> => {
  throw new TypeError("Cannot read properties of undefined (reading 'image')");
};

/** The webhook with its own decision: the production parts except `decide`. */
function setupWith(decide: Decide, onError?: "allow" | "deny"): Harness {
  const logs: Record<string, unknown>[] = [];
  configureLogging("debug", (line) => logs.push(JSON.parse(line)));
  const metrics = createMetrics({ defaultMetrics: false });
  const record = createRecorder({ metrics, logger: logger("handler-test") });
  const handle = toFetchHandler(createWebhook({ decide, record, ...(onError === undefined ? {} : { onError }) }));
  return { handle, metrics, logs };
}

Deno.test("createWebhook() applies onError when rule evaluation fails", async (t) => {
  const brokenStore = createDecider({
    rules: () => {
      throw new Error("rule store broken");
    },
  });
  const rows: { name: string; harness: () => Harness; allowed: boolean }[] = [
    { name: "default (allow), decide throws", harness: () => setupWith(throwingDecide), allowed: true },
    { name: "allow, decide throws", harness: () => setupWith(throwingDecide, "allow"), allowed: true },
    { name: "allow, rules() throws", harness: () => setupWith(brokenStore), allowed: true },
    { name: "deny, decide throws", harness: () => setupWith(throwingDecide, "deny"), allowed: false },
  ];
  for (const row of rows) {
    await t.step(row.name, async () => {
      const { handle, metrics, logs } = row.harness();
      const res = await handle(postJson(podReview()));
      assert.equal(res.status, 200);
      const response = await responseOf(res);
      assert.equal(response["uid"], UID);
      assert.equal(response["allowed"], row.allowed);
      assert.equal(patchOf(response), undefined);
      if (row.allowed) {
        assert.ok(Array.isArray(response["warnings"]) && response["warnings"].length === 1);
        assert.equal(response["status"], undefined);
      } else {
        assert.equal((response["status"] as { code: number }).code, 500);
      }
      assert.equal(await value(metrics.errors, { stage: "rules" }), 1);
      assert.equal(await total(metrics.errors), 1);
      assert.equal(await value(metrics.requests, { operation: "CREATE", result: "error", dry_run: "false" }), 1);
      assert.equal(await total(metrics.requests), 1);
      assert.equal(await value(metrics.inFlight), 0);
      assert.match(
        await metrics.registry.getSingleMetricAsString("mirrorhook_errors_total"),
        /mirrorhook_errors_total\{stage="rules"\} 1/,
      );
      const errors = logs.filter((log) => log["level"] === "ERROR");
      assert.equal(errors.length, 1);
      assert.equal(propertiesOf(errors[0]!)["uid"], UID);
      assert.equal(JSON.stringify(logs).includes(SECRET), false);
    });
  }
  resetSync();
});

function ruleObjectReview(spec: Record<string, unknown>, operation = "CREATE"): Record<string, unknown> {
  return admissionReview({
    uid: UID,
    name: "hub",
    operation,
    object: { apiVersion: "mirrorhook.dev/v1alpha1", kind: "ClusterImageRewrite", metadata: { name: "hub" }, spec },
  });
}

Deno.test("POST /validate answers for rule objects with the compiler's verdict", async (t) => {
  const rows: { name: string; spec: Record<string, unknown>; allowed: boolean }[] = [
    {
      name: "valid object",
      spec: { rules: [{ prefix: "docker.io", replace: "harbor.example.com/hub" }] },
      allowed: true,
    },
    { name: "catastrophic pattern", spec: { rules: [{ match: "^(a+)+$", replace: "x.io/y" }] }, allowed: false },
    { name: "unknown field", spec: { rules: [{ prefix: "docker.io", replace: "h.io/x", bogus: 1 }] }, allowed: false },
  ];
  for (const row of rows) {
    await t.step(row.name, async () => {
      const { handle, metrics } = setup();
      const res = await handle(
        new Request("https://x/validate", {
          method: "POST",
          body: JSON.stringify(ruleObjectReview(row.spec)),
          headers: { "content-type": "application/json" },
        }),
      );
      assert.equal(res.status, 200, "a denial is an answer, not a failed call");
      const response = await responseOf(res);
      assert.equal(response["uid"], UID);
      assert.equal(response["allowed"], row.allowed);
      if (!row.allowed) assert.equal((response["status"] as Record<string, unknown>)["code"], 422);
      assert.equal(
        await value(metrics.validations, { operation: "CREATE", result: row.allowed ? "valid" : "invalid" }),
        1,
      );
    });
  }
});

Deno.test("createWebhookHandler() never echoes body text from a JSON parse error, in the answer or the logs", async () => {
  const { handle, logs } = setup();
  for (const body of [`{"env": [{"value": '${SECRET}'}]}`, `{"auths": {"x": {"auth": ${SECRET}`, `${SECRET}`]) {
    const res = await handle(post(body));
    assert.equal(res.status, 400);
    const text = await res.text();
    assert.match(text, /invalid JSON/);
    assert.equal(text.includes("hunter2"), false, text);
  }
  const all = JSON.stringify(logs);
  assert.equal(all.includes("hunter2"), false, all);
  resetSync();
});

Deno.test("createWebhookHandler() labels metrics only with bounded values", async () => {
  const { handle, metrics } = setup({ bypassPrefix: "direct.to/" });
  for (let i = 0; i < 50; i++) {
    await (await handle(postJson(podReview({ uid: `u${i}`, operation: `OP-${i}-${"x".repeat(1000)}` })))).body
      ?.cancel();
  }
  const review = podReview({ uid: "bypass" });
  const object = (review["request"] as { object: { spec: { containers: { image: string }[] } } }).object;
  object.spec.containers[0]!.image = "direct.to/attacker-registry-12345.example/x:1";
  await (await handle(postJson(review))).body?.cancel();
  const text = await metrics.registry.metrics();
  assert.equal(text.includes("OP-"), false, "a client-chosen operation became a label value");
  assert.equal(text.includes("attacker-registry"), false, "the bypass put a Pod's registry in a label");
  assert.equal(await value(metrics.requests, { operation: "other", result: "skipped", dry_run: "false" }), 50);
  resetSync();
});

Deno.test("createWebhookHandler() logs dry-run mode and API-server dry runs apart", async () => {
  const dry = setup({ dryRun: true });
  await (await dry.handle(postJson(podReview()))).body?.cancel();
  const dryLine = propertiesOf(dry.logs.find((log) => propertiesOf(log)["uid"] === UID)!);
  assert.equal(dryLine["dryRun"], true);
  assert.equal("requestDryRun" in dryLine, false);
  const live = setup();
  await (await live.handle(postJson(podReview({ dryRun: true })))).body?.cancel();
  const liveLine = live.logs.find((log) => propertiesOf(log)["uid"] === UID)!;
  assert.equal(propertiesOf(liveLine)["dryRun"], false);
  assert.equal(propertiesOf(liveLine)["requestDryRun"], true);
  assert.match(String(liveLine["message"]), /Rewrote/);
  assert.equal(await value(live.metrics.requests, { operation: "CREATE", result: "rewritten", dry_run: "true" }), 1);
  resetSync();
});

Deno.test("createWebhookHandler() cuts values it echoes from a request to 256 bytes", async () => {
  const { handle, logs } = setup();
  const huge = "K".repeat(1024 * 1024);
  const res = await handle(postJson({ ...podReview(), kind: huge }));
  assert.equal(res.status, 400);
  const text = await res.text();
  assert.ok(text.length < 2048, `answer of ${text.length} bytes`);
  assert.ok(JSON.stringify(logs).length < 8192);
  resetSync();
});
