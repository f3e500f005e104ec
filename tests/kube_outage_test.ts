// The cluster source through an API-server restart, against the fake API answering as a starting kube-apiserver does.

import assert from "node:assert/strict";
import { decide } from "../lib/rules/engine.ts";
import { isConnectionRefused, KubeApiError, KubeHttp } from "../lib/sources/kube/http.ts";
import { KUBE_SOURCE, KubeRuleSource, type KubeSourceOptions } from "../lib/sources/kube/source.ts";
import { RuleStore } from "../lib/sources/store.ts";
import { FakeKubeApi, type RecordedRequest } from "./support/fake_kube_api.ts";
import { clusterRewrite } from "./support/rule_objects.ts";
import { delay, until } from "./support/wait.ts";
import { memoryLogger } from "./support/webhook.ts";

const { logger: root, records } = memoryLogger();
const logger = root.getChild("kube-outage");

type Json = Record<string, unknown>;

function registryRewriteRule(name: string, rules: unknown[]): Json {
  return { apiVersion: "dev.flemzord.fr/v1alpha1", kind: "RegistryRewriteRule", metadata: { name }, spec: { rules } };
}

/** Where the rules in force send `image`; undefined when they leave it alone. */
function rewriteOf(store: RuleStore, image: string): string | undefined {
  const decision = decide(store.current, image, { context: { namespace: "default" } });
  return decision.action === "rewrite" ? decision.output : undefined;
}

function setRules(api: FakeKubeApi, kind: string, name: string, rules: unknown[]): void {
  api.modify(kind, name, undefined, (object) => {
    (object["spec"] as Json)["rules"] = rules;
  });
}

const HUB = [{ match: "^docker\\.io/(.*)$", replace: "harbor.example.com/dockerhub/$1" }];
const QUAY = [{ prefix: "quay.io", replace: "quay-cache.example.com" }];

async function start(
  api: FakeKubeApi,
  options: Partial<Pick<KubeSourceOptions, "backoff" | "forbiddenGraceMs" | "optionalRecheckMs">> = {},
): Promise<{ store: RuleStore; source: KubeRuleSource } & AsyncDisposable> {
  const store = new RuleStore();
  const source = new KubeRuleSource({ kubeConfig: api.kubeConfig(), store, logger, ...options });
  source.start();
  await source.synced;
  return {
    store,
    source,
    async [Symbol.asyncDispose]() {
      await source.stop();
      await api.close();
    },
  };
}

function answeredWith(status: number, plural?: string) {
  return (request: RecordedRequest) => request.status === status && (plural === undefined || request.plural === plural);
}

Deno.test("KubeApiError takes the wait from Retry-After, else from the Status's details.retryAfterSeconds", () => {
  const status = {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message: "storage is (re)initializing",
    reason: "TooManyRequests",
    details: { retryAfterSeconds: 2 },
    code: 429,
  };
  assert.equal(new KubeApiError("list", { status: 429, body: status }).retryAfterSeconds, 2);
  assert.equal(new KubeApiError("list", { status: 429, body: status, retryAfterSeconds: 3 }).retryAfterSeconds, 3);
  assert.equal(new KubeApiError("list", { status: 503, body: "unavailable" }).retryAfterSeconds, undefined);
  assert.equal(new KubeApiError("list", { status: 429, body: status }).reason, "TooManyRequests");
});

Deno.test("nothing listening is recognised as connection refused (not ready yet), an answer is not", async () => {
  const api = FakeKubeApi.start();
  const http = new KubeHttp(api.kubeConfig(), 2000);
  const signal = new AbortController().signal;
  const answer = await http.request("GET", "/apis/mirrorhook.dev/v1alpha1/clusterimagerewrites", { signal });
  assert.equal(answer.status, 200);
  await api.stopListening();
  const error = await http.request("GET", "/apis/mirrorhook.dev/v1alpha1/clusterimagerewrites", { signal }).then(
    () => undefined,
    (error: unknown) => error,
  );
  assert.ok(error instanceof Error, "the request fails");
  assert.ok(isConnectionRefused(error), String(error));
  assert.ok(!isConnectionRefused(new KubeApiError("list", { status: 500, body: "refused" })));
  assert.ok(!isConnectionRefused(new Error("timed out after 2000 ms")));
  await api.close();
});

Deno.test("a 403 after a working watch (RBAC warming up after a restart) keeps the last rules, and changes follow once granted", async () => {
  const api = FakeKubeApi.start({ registryRewriteRules: "served" });
  api.create(clusterRewrite("quay", QUAY));
  api.create(registryRewriteRule("hub", HUB));
  await using replica = await start(api, { backoff: { initialMs: 20, maxMs: 200 } });
  const { store, source } = replica;
  assert.equal(rewriteOf(store, "nginx:1"), "harbor.example.com/dockerhub/library/nginx:1");
  const logged = records.length;

  // The API server restarts; while its authorizer warms up it refuses the service account with 403.
  await api.stopListening();
  api.listenAgain();
  api.failRequests("forbidden");
  await until(
    "RegistryRewriteRules refused three times",
    () => api.count(answeredWith(403, "registryrewriterules")) >= 3,
    5000,
  );
  await until(
    "ClusterImageRewrites refused three times",
    () => api.count(answeredWith(403, "clusterimagerewrites")) >= 3,
    5000,
  );
  assert.equal(rewriteOf(store, "nginx:1"), "harbor.example.com/dockerhub/library/nginx:1", "RegistryRewriteRule kept");
  assert.equal(rewriteOf(store, "quay.io/a/b:1"), "quay-cache.example.com/a/b:1", "ClusterImageRewrite kept");
  assert.equal(source.verdicts.get("RegistryRewriteRule//hub")?.reason, "Valid");
  assert.equal(store.ready, true);
  // Retried with the backoff (here at most 200 ms), not after the 60 s re-check of a resource never granted.
  assert.ok(api.count(answeredWith(403, "registryrewriterules")) >= 3);
  const warnings = records.slice(logged).filter((record) => record.level === "warning");
  assert.ok(warnings.length > 0, "the refusals are reported");

  // Changed meanwhile; in force as soon as the role is honoured again.
  setRules(api, "RegistryRewriteRule", "hub", [{ match: "^docker\\.io/(.*)$", replace: "mirror.example.org/$1" }]);
  setRules(api, "ClusterImageRewrite", "quay", [{ prefix: "quay.io", replace: "quay2.example.com" }]);
  api.failRequests(undefined);
  await until("the changes in force", () =>
    rewriteOf(store, "nginx:1") === "mirror.example.org/library/nginx:1" &&
    rewriteOf(store, "quay.io/a/b:1") === "quay2.example.com/a/b:1", 2000);
  assert.equal(store.status().find((status) => status.name === KUBE_SOURCE)?.lastError, undefined);
});

Deno.test("a 403 that outlasts the grace means the role does not grant RegistryRewriteRules: they are dropped, the source stays ready", async () => {
  const api = FakeKubeApi.start({ registryRewriteRules: "served" });
  api.create(clusterRewrite("quay", QUAY));
  api.create(registryRewriteRule("hub", HUB));
  await using replica = await start(api, {
    backoff: { initialMs: 20, maxMs: 100 },
    forbiddenGraceMs: 500,
    optionalRecheckMs: 100,
  });
  const { store } = replica;
  assert.equal(rewriteOf(store, "nginx:1"), "harbor.example.com/dockerhub/library/nginx:1");
  api.setRegistryRewriteRules("forbidden");
  const since = performance.now();
  await until("the RegistryRewriteRule dropped", () => rewriteOf(store, "nginx:1") === undefined, 5000);
  assert.ok(performance.now() - since >= 500, "not before the grace is over");
  assert.equal(rewriteOf(store, "quay.io/a/b:1"), "quay-cache.example.com/a/b:1");
  assert.equal(store.ready, true);

  // Granted again: read at the next re-check.
  api.setRegistryRewriteRules("served");
  await until("the RegistryRewriteRule back", () => rewriteOf(store, "nginx:1") !== undefined, 2000);
});

Deno.test("after a 10 s outage (refused, then 429 storage initializing, then 503) a change is in force within 5 s of the API being ready", async () => {
  const api = FakeKubeApi.start();
  api.create(clusterRewrite("hub", [{ prefix: "docker.io", replace: "harbor.example.com/dockerhub" }]));
  // The default backoff: 500 ms doubling to 30 s.
  await using replica = await start(api);
  const { store } = replica;
  assert.equal(rewriteOf(store, "nginx:1"), "harbor.example.com/dockerhub/library/nginx:1");

  // Down: nothing listens for 10 s. The rule is changed in etcd meanwhile.
  await api.stopListening();
  await delay(1000);
  setRules(api, "ClusterImageRewrite", "hub", [{ prefix: "docker.io", replace: "mirror.example.org/hub" }]);
  await delay(9000);
  assert.equal(rewriteOf(store, "nginx:1"), "harbor.example.com/dockerhub/library/nginx:1", "the last rules stay");
  assert.equal(store.ready, true);

  // Starting: the watch cache initializes (429, Retry-After: 1), then the API is briefly unavailable (503).
  api.listenAgain();
  api.failRequests("initializing");
  const initializing = performance.now();
  await delay(3000);
  api.failRequests("unavailable");
  await delay(1000);
  assert.equal(rewriteOf(store, "nginx:1"), "harbor.example.com/dockerhub/library/nginx:1");

  api.failRequests(undefined);
  const ready = performance.now();
  await until(
    "the change in force",
    () => rewriteOf(store, "nginx:1") === "mirror.example.org/hub/library/nginx:1",
    5000,
  );
  const inForceMs = Math.round(performance.now() - ready);
  logger.info("Change in force {ms} ms after the API server was ready", { ms: inForceMs });

  // Retry-After honoured: no resource asked again sooner than 1 s after a 429.
  for (const plural of ["imagerewrites", "clusterimagerewrites", "namespaces"]) {
    const times = api.requests.filter((request) => request.plural === plural && request.at >= initializing)
      .map((request) => request.at);
    const refused = api.requests.filter((request) =>
      request.plural === plural && request.status === 429 && request.at >= initializing
    );
    assert.ok(refused.length >= 1, `${plural} asked while initializing`);
    for (const request of refused) {
      const next = times.find((time) => time > request.at);
      if (next !== undefined) {
        assert.ok(next - request.at >= 1000, `${plural} retried ${next - request.at} ms after 429`);
      }
    }
  }
});
