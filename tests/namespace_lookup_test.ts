// A Pod in a namespace the watch has not delivered yet (one `kubectl apply` creating the namespace and a Deployment):
// rules with a namespaceSelector get the namespace's labels by one GET within a short deadline, over real HTTP(S)
// against an API server speaking the list/watch protocol; a GET that fails or hangs leaves them out with a warning.

import assert from "node:assert/strict";
import { type RunningServer, startServer } from "../lib/server/app.ts";
import { mintCertificates } from "../lib/server/certs.ts";
import { admissionReview } from "./support/admission_review.ts";
import { KubeHttp } from "../lib/sources/kube/http.ts";
import { Reflector } from "../lib/sources/kube/reflector.ts";
import { NAMESPACES } from "../lib/sources/kube/resources.ts";
import { FakeKubeApi } from "./support/fake_kube_api.ts";
import {
  memoryLogger,
  metricValue,
  patchedImage,
  readyz,
  scrapeMetrics,
  tempDir,
  testConfig,
  waitFor,
} from "./support/webhook.ts";

const HARBOR = "harbor.example.com/dockerhub/library/nginx:1.27";

function selected(spec: Record<string, unknown>): Record<string, unknown> {
  return {
    apiVersion: "mirrorhook.dev/v1alpha1",
    kind: "ClusterImageRewrite",
    metadata: { name: "hub" },
    spec: { ...spec, rules: [{ prefix: "docker.io", replace: "harbor.example.com/dockerhub" }] },
  };
}

function namespace(name: string, labels: Record<string, string> = {}): Record<string, unknown> {
  return { apiVersion: "v1", kind: "Namespace", metadata: { name, labels } };
}

/** A server reading rule objects and namespaces from `api`, ready; disposing shuts it down. */
async function serve(
  api: FakeKubeApi,
  options: { namespaceLookupTimeoutMs?: number } = {},
): Promise<
  {
    server: RunningServer;
    /** The image container 0 ends with, and the answer's warnings about namespace labels. */
    admit: (namespace: string) => Promise<{ image: string; warnings: string[] }>;
    messages: () => string[];
  } & AsyncDisposable
> {
  const dir = await tempDir("mirrorhook-ns-lookup-");
  const chain = await mintCertificates();
  await Deno.mkdir(`${dir.path}/tls`);
  await Deno.writeTextFile(`${dir.path}/tls/tls.crt`, chain.cert);
  await Deno.writeTextFile(`${dir.path}/tls/tls.key`, chain.key);
  await Deno.writeTextFile(`${dir.path}/kubeconfig`, api.kubeConfigYaml());
  const { logger, messages } = memoryLogger();
  const server = await startServer(
    testConfig({
      rules: [],
      tlsDir: `${dir.path}/tls`,
      kube: true,
      kubeconfig: `${dir.path}/kubeconfig`,
      ...options,
    }),
    { logger },
  );
  const client = Deno.createHttpClient({ caCerts: [chain.caCert] });
  const admit = async (ns: string) => {
    const response = await fetch(`https://localhost:${server.webhookPort}/mutate`, {
      method: "POST",
      client,
      headers: { "content-type": "application/json" },
      body: JSON.stringify(admissionReview({
        namespace: ns,
        object: {
          apiVersion: "v1",
          kind: "Pod",
          metadata: { generateName: "web-", namespace: ns, labels: { app: "web" } },
          spec: { containers: [{ name: "web", image: "nginx:1.27" }] },
        },
        asApiServer: true,
      })),
      signal: AbortSignal.timeout(10_000),
    });
    assert.equal(response.status, 200);
    const answer = (await response.json()).response;
    assert.equal(answer.allowed, true);
    // Only the lookup's warnings (a rewrite has its own).
    const warnings = ((answer.warnings ?? []) as string[]).filter((warning) => /namespaceSelector/.test(warning));
    return { image: patchedImage(answer) ?? "nginx:1.27", warnings };
  };
  const ready = await waitFor(async () => (await readyz(server.probePort)).status === 200 ? true : undefined, {
    timeoutMs: 5000,
  });
  assert.ok(ready, "/readyz never turned 200");
  return {
    server,
    admit,
    messages,
    [Symbol.asyncDispose]: async () => {
      client.close();
      await server.shutdown("test");
      await dir[Symbol.asyncDispose]();
    },
  };
}

const namespaceGets = (api: FakeKubeApi, name: string) =>
  api.count((request) => request.plural === "namespaces" && request.name === name && request.method === "GET");

Deno.test("a namespace not delivered by the watch yet is read once, and its Pod gets its namespaceSelector rule", async () => {
  await using api = FakeKubeApi.start();
  api.create(selected({ namespaceSelector: { matchLabels: { env: "prod" } } }));
  await using webhook = await serve(api);

  const release = api.holdWatchEvents("namespaces");
  api.create(namespace("shop", { env: "prod" }));
  const first = await webhook.admit("shop");
  assert.equal(first.image, HARBOR);
  assert.deepEqual(first.warnings, []);
  assert.equal(namespaceGets(api, "shop"), 1);
  // Now in the cache: the next Pod costs no GET.
  assert.equal((await webhook.admit("shop")).image, HARBOR);
  assert.equal(namespaceGets(api, "shop"), 1);
  assert.equal(
    metricValue(await scrapeMetrics(webhook.server.probePort), "mirrorhook_namespace_lookups_total", {
      result: "found",
    }),
    1,
  );

  // The watch stays the source of truth: its later events decide.
  release();
  api.modify("Namespace", "shop", undefined, (ns) => {
    (ns["metadata"] as Record<string, unknown>)["labels"] = { env: "dev" };
  });
  const changed = await waitFor(async () => (await webhook.admit("shop")).image === "nginx:1.27" ? true : undefined, {
    timeoutMs: 2000,
  });
  assert.ok(changed, "a label change from the watch was not in force");
  assert.equal(namespaceGets(api, "shop"), 1);
});

Deno.test("a NotIn namespaceSelector is decided on the namespace's real labels, not on none", async () => {
  await using api = FakeKubeApi.start();
  api.create(
    selected({ namespaceSelector: { matchExpressions: [{ key: "tier", operator: "NotIn", values: ["x"] }] } }),
  );
  await using webhook = await serve(api);
  api.holdWatchEvents("namespaces");
  api.create(namespace("excluded", { tier: "x" }));
  api.create(namespace("included", { tier: "y" }));
  assert.equal((await webhook.admit("excluded")).image, "nginx:1.27");
  assert.equal((await webhook.admit("included")).image, HARBOR);
});

Deno.test("concurrent admissions for one new namespace share one GET", async () => {
  await using api = FakeKubeApi.start();
  api.create(selected({ namespaceSelector: { matchLabels: { env: "prod" } } }));
  await using webhook = await serve(api);
  api.holdWatchEvents("namespaces");
  api.create(namespace("burst", { env: "prod" }));
  const releaseGets = api.holdGets("namespaces");
  const answers = Array.from({ length: 8 }, () => webhook.admit("burst"));
  // Every admission is waiting on the one held GET; let it through once they have all arrived.
  const arrived = await waitFor(
    async () =>
      metricValue(await scrapeMetrics(webhook.server.probePort), "mirrorhook_admission_in_flight") === 8
        ? true
        : undefined,
    { timeoutMs: 5000 },
  );
  assert.ok(arrived, "the admissions did not all arrive");
  releaseGets();
  for (const answer of await Promise.all(answers)) assert.equal(answer.image, HARBOR);
  assert.equal(namespaceGets(api, "burst"), 1);
});

Deno.test("a GET that fails leaves the selector's rules out with a warning, a log line and a metric", async () => {
  await using api = FakeKubeApi.start();
  api.create(selected({ namespaceSelector: { matchLabels: { env: "prod" } } }));
  await using webhook = await serve(api);
  api.holdWatchEvents("namespaces");
  api.create(namespace("broken", { env: "prod" }));
  api.failGets("namespaces", 500);
  const answer = await webhook.admit("broken");
  assert.equal(answer.image, "nginx:1.27");
  assert.equal(answer.warnings.length, 1);
  assert.match(answer.warnings[0] ?? "", /namespaceSelector were not applied.*namespace broken could not be read.*500/);
  assert.ok(webhook.messages().some((line) => /Cannot get namespace broken: 500/.test(line)), "no log line");
  const metrics = await scrapeMetrics(webhook.server.probePort);
  assert.equal(metricValue(metrics, "mirrorhook_namespace_lookups_total", { result: "error" }), 1);

  // Not remembered: once the API answers, the next Pod gets its rule.
  api.failGets("namespaces", undefined);
  assert.deepEqual(await webhook.admit("broken"), { image: HARBOR, warnings: [] });
});

Deno.test("a GET that hangs is given up at the lookup deadline: the Pod is answered with a warning", async () => {
  await using api = FakeKubeApi.start();
  api.create(selected({ namespaceSelector: { matchLabels: { env: "prod" } } }));
  await using webhook = await serve(api, { namespaceLookupTimeoutMs: 200 });
  api.holdWatchEvents("namespaces");
  api.create(namespace("slow", { env: "prod" }));
  const releaseGets = api.holdGets("namespaces");
  try {
    // Answered while the GET is still held: the admission waited for the deadline, not for the API.
    const answer = await webhook.admit("slow");
    assert.equal(answer.image, "nginx:1.27");
    assert.match(answer.warnings[0] ?? "", /namespace slow could not be read.*timed out after 200 ms/);
    const metrics = await scrapeMetrics(webhook.server.probePort);
    assert.equal(metricValue(metrics, "mirrorhook_namespace_lookups_total", { result: "timeout" }), 1);
  } finally {
    releaseGets();
  }
});

Deno.test("no rule with a namespaceSelector, or a namespace that does not exist: no GET, or no warning", async () => {
  await using api = FakeKubeApi.start();
  api.create(selected({ namespaces: ["elsewhere"] }));
  await using webhook = await serve(api);
  api.holdWatchEvents("namespaces");
  api.create(namespace("plain", { env: "prod" }));
  assert.deepEqual(await webhook.admit("plain"), { image: "nginx:1.27", warnings: [] });
  assert.equal(namespaceGets(api, "plain"), 0);

  // With a selector that matches namespaces without the label: a namespace the API does not have has no labels.
  api.modify("ClusterImageRewrite", "hub", undefined, (object) => {
    object["spec"] = selected({
      namespaceSelector: { matchExpressions: [{ key: "env", operator: "DoesNotExist" }] },
    })["spec"];
  });
  const inForce = await waitFor(async () => (await webhook.admit("ghost")).image === HARBOR ? true : undefined, {
    timeoutMs: 2000,
  });
  assert.ok(inForce, "the changed object was not in force");
  assert.deepEqual(await webhook.admit("ghost"), { image: HARBOR, warnings: [] });
});

Deno.test("a namespace read outside the watch never replaces what the watch delivered meanwhile", async () => {
  await using api = FakeKubeApi.start();
  const controller = new AbortController();
  const reflector = new Reflector({
    http: new KubeHttp(api.kubeConfig(), 5000),
    resource: NAMESPACES,
    logger: memoryLogger().logger,
    backoff: { initialMs: 50, maxMs: 100, notReadyMs: 50 },
    pageSize: 100,
    watchTimeoutSeconds: 60,
    forbiddenGraceMs: 1000,
    keep: (object) => object,
    onChange: () => {},
    onError: () => {},
    onRecover: () => {},
  });
  const run = reflector.run(controller.signal);
  try {
    assert.ok(await waitFor(() => reflector.synced || undefined, { timeoutMs: 5000 }), "never synced");
    const labelsOf = (key: string) =>
      (reflector.items.get(key)?.["metadata"] as { labels?: Record<string, string> } | undefined)?.labels;

    // Read ahead of the watch: stored.
    const early = reflector.expect("/early");
    early({ metadata: { name: "early", labels: { env: "prod" } } });
    assert.deepEqual(labelsOf("/early"), { env: "prod" });

    // The watch delivered the namespace while the read was under way: the read (older) is dropped.
    const late = reflector.expect("/late");
    api.create(namespace("late", { env: "dev" }));
    assert.ok(await waitFor(() => reflector.items.has("/late") || undefined, { timeoutMs: 5000 }), "no watch event");
    late({ metadata: { name: "late", labels: { env: "stale" } } });
    assert.equal(labelsOf("/late")?.["env"], "dev");
  } finally {
    controller.abort();
    await run;
  }
});
