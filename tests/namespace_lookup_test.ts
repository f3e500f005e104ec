// A Pod in a namespace the watch has not delivered yet (one `kubectl apply` creating the namespace and a Deployment):
// rules with a namespaceSelector get the namespace's labels by one GET within a short deadline, over real HTTP(S)
// against an API server speaking the list/watch protocol; a GET that fails or hangs leaves them out with a warning.

import assert from "node:assert/strict";
import { type RunningServer, startServer } from "../lib/server/app.ts";
import { mintCertificates } from "../lib/server/certs.ts";
import { admissionReview } from "./support/admission_review.ts";
import { KubeHttp } from "../lib/sources/kube/http.ts";
import { Reflector } from "../lib/sources/kube/reflector.ts";
import { KubeRuleSource } from "../lib/sources/kube/source.ts";
import { RuleStore } from "../lib/sources/store.ts";
import { NAMESPACES } from "../lib/sources/kube/resources.ts";
import { FakeKubeApi } from "./support/fake_kube_api.ts";
import { clusterRewrite } from "./support/rule_objects.ts";
import { truncate } from "../lib/util/truncate.ts";
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
  return clusterRewrite("hub", [{ prefix: "docker.io", replace: "harbor.example.com/dockerhub" }], spec);
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

Deno.test("no rule with a namespaceSelector: no GET; a namespace that does not exist: no labels, and said", async () => {
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
  assert.deepEqual(await webhook.admit("ghost"), { image: HARBOR, warnings: [notFound("ghost")] });
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

// /mutate has no client authentication: any caller can name any namespace, and each GET is made under mirrorhook's
// ServiceAccount. The tests below count GETs, metrics and log lines.

/** The warning of an admission whose namespace was not found (a real API server admits Pods into existing ones only). */
const notFound = (name: string) =>
  `mirrorhook: rules with a namespaceSelector were decided as for a namespace without labels: namespace ${name} was not found`;

const lookupGets = (api: FakeKubeApi) =>
  api.count((request) => request.plural === "namespaces" && request.method === "GET" && request.name !== undefined);

const lookups = async (webhook: { server: RunningServer }, result: string) =>
  metricValue(await scrapeMetrics(webhook.server.probePort), "mirrorhook_namespace_lookups_total", { result }) ?? 0;

Deno.test("a namespace the API does not have is read once and remembered, until the watch delivers it", async () => {
  await using api = FakeKubeApi.start();
  api.create(selected({ namespaceSelector: { matchLabels: { env: "prod" } } }));
  await using webhook = await serve(api);
  // Each answer says so: a 404 remembered from a caller of /mutate must not decide a real Pod without a word.
  for (let i = 0; i < 50; i++) {
    assert.deepEqual(await webhook.admit("ghost"), { image: "nginx:1.27", warnings: [notFound("ghost")] });
  }
  assert.equal(namespaceGets(api, "ghost"), 1);
  assert.equal(await lookups(webhook, "not-found"), 1);

  // Created since: the watch's event replaces the remembered 404 at once.
  api.create(namespace("ghost", { env: "prod" }));
  const delivered = await waitFor(async () => (await webhook.admit("ghost")).image === HARBOR ? true : undefined, {
    timeoutMs: 2000,
  });
  assert.ok(delivered, "the watch's event was not in force");
  assert.equal(namespaceGets(api, "ghost"), 1);
});

Deno.test("a name no namespace can have is never looked up: decided as a namespace without labels", async () => {
  await using api = FakeKubeApi.start();
  // Matches a namespace without the label: a Pod in a namespace without labels is rewritten.
  api.create(selected({ namespaceSelector: { matchExpressions: [{ key: "env", operator: "DoesNotExist" }] } }));
  await using webhook = await serve(api);
  const long = "x".repeat(4000);
  const names = ["..", ".", long, "Shop", "a.b", "-a", "a".repeat(64)];
  for (const name of names) {
    const shown = truncate(name, 80); // the 4,000-character name is cut, as every echoed value is
    assert.deepEqual(await webhook.admit(name), { image: HARBOR, warnings: [notFound(shown)] }, name.slice(0, 80));
  }
  assert.equal(lookupGets(api), 0);
  assert.equal(await lookups(webhook, "invalid"), names.length);
  assert.ok(!webhook.messages().some((line) => line.includes("x".repeat(100))), "the oversized name was logged");
});

Deno.test("with 32 lookups held, a real new namespace is skipped with a log line and result=skipped, no GET", async () => {
  await using api = FakeKubeApi.start();
  api.create(selected({ namespaceSelector: { matchLabels: { env: "prod" } } }));
  await using webhook = await serve(api, { namespaceLookupTimeoutMs: 30_000 });
  api.holdWatchEvents("namespaces");
  api.create(namespace("shop", { env: "prod" }));
  const release = api.holdGets("namespaces");
  try {
    const flood = Array.from({ length: 32 }, (_, i) => webhook.admit(`junk-${i}`));
    const arrived = await waitFor(
      async () =>
        metricValue(await scrapeMetrics(webhook.server.probePort), "mirrorhook_admission_in_flight") === 32
          ? true
          : undefined,
      { timeoutMs: 5000 },
    );
    assert.ok(arrived, "the 32 admissions did not all arrive");
    for (let i = 0; i < 2; i++) {
      const real = await webhook.admit("shop");
      assert.equal(real.image, "nginx:1.27");
      assert.match(
        real.warnings[0] ?? "",
        /namespace shop could not be read \(Cannot get namespace shop: 32 namespace lookups are under way/,
      );
    }
    assert.equal(namespaceGets(api, "shop"), 0);
    assert.equal(await lookups(webhook, "skipped"), 2);
    assert.equal(await lookups(webhook, "error"), 0);
    const lines = webhook.messages().filter((line) => /Cannot get namespace shop: 32 namespace lookups/.test(line));
    assert.equal(lines.length, 1, "one log line for the skipped lookups, not one each");
    release();
    await Promise.all(flood);
  } finally {
    release();
  }
  // The bound is lifted (once a token is back, 50 ms at 20 a second): a later Pod gets its rule.
  const lifted = await waitFor(async () => (await webhook.admit("shop")).image === HARBOR ? true : undefined, {
    timeoutMs: 5000,
  });
  assert.ok(lifted, "shop was never read");
  assert.equal(namespaceGets(api, "shop"), 1);
});

Deno.test("lookup GETs are rate-limited (burst 32, 20 a second), a 404 is remembered 10 s, skips are logged once per 10 s", async () => {
  await using api = FakeKubeApi.start();
  const { logger, messages } = memoryLogger();
  let now = 0;
  const source = new KubeRuleSource({ kubeConfig: api.kubeConfig(), store: new RuleStore(), logger, clock: () => now });
  source.start();
  try {
    await source.synced;
    const results = async (names: string[]) => {
      const found: string[] = [];
      for (const name of names) found.push((await source.lookupNamespace(name)).result);
      return found;
    };
    const skipLines = () =>
      messages().filter((line) => /Cannot get namespace .*: over 20 namespace lookups/.test(line));
    const names = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => `${prefix}-${i}`);

    // At once: the burst, the rest skipped with one log line.
    assert.deepEqual(await results(names("n", 40)), [
      ...Array(32).fill("not-found"),
      ...Array(8).fill("skipped"),
    ]);
    assert.equal(lookupGets(api), 32);
    assert.equal(skipLines().length, 1);
    // Remembered: no GET.
    assert.deepEqual(await results(["n-0", "n-31"]), ["not-found", "not-found"]);
    assert.equal(lookupGets(api), 32);

    // A second later: 20 more.
    now = 1000;
    assert.deepEqual(await results(names("m", 30)), [...Array(20).fill("not-found"), ...Array(10).fill("skipped")]);
    assert.equal(lookupGets(api), 52);
    assert.equal(skipLines().length, 1);

    // Ten seconds on: the 404 of n-0 is forgotten, and the next skip is logged with the count of the quiet ones.
    now = 11_000;
    assert.deepEqual(await results(["n-0"]), ["not-found"]);
    assert.equal(namespaceGets(api, "n-0"), 2);
    assert.deepEqual(await results(names("k", 32)), [...Array(31).fill("not-found"), "skipped"]);
    assert.equal(skipLines().length, 2);
    assert.match(skipLines()[1] ?? "", /Cannot get namespace k-31: .*\b17 other lookups skipped/);

    // The watch delivering a namespace drops its remembered 404: once deleted again, it is read again.
    now = 30_000;
    assert.deepEqual(await results(["late"]), ["not-found"]);
    api.create(namespace("late", { env: "prod" }));
    assert.ok(await waitFor(() => source.namespaceLabels("late") ?? undefined, { timeoutMs: 5000 }), "no event");
    api.delete("Namespace", "late");
    assert.ok(await waitFor(() => source.namespaceLabels("late") === undefined || undefined, { timeoutMs: 5000 }));
    assert.deepEqual(await results(["late"]), ["not-found"]);
    assert.equal(namespaceGets(api, "late"), 2);
  } finally {
    await source.stop();
  }
});
