// The CRD rule source against a fake API server speaking the real wire protocol: list, watch, 410, bookmarks, status.

import assert from "node:assert/strict";
import { decide } from "../lib/rules/engine.ts";
import { createMetrics, type Metrics } from "../lib/server/metrics.ts";
import { mintCertificates } from "../lib/server/certs.ts";
import { loadKubeConfig } from "../lib/sources/kube/http.ts";
import { KUBE_SOURCE, KubeRuleSource } from "../lib/sources/kube/source.ts";
import { RuleStore } from "../lib/sources/store.ts";
import { FakeKubeApi, type RecordedRequest } from "./support/fake_kube_api.ts";
import { clusterRewrite, namespacedRewrite } from "./support/rule_objects.ts";
import { settled, until } from "./support/wait.ts";
import { memoryLogger } from "./support/webhook.ts";

const { logger: root, records } = memoryLogger();
const logger = root.getChild("kube");

type Json = Record<string, unknown>;

const HUB_RULES = [{ prefix: "docker.io", replace: "harbor.example.com/dockerhub" }];

/** Where the rules in force send `image` for a Pod in `namespace`; undefined when they leave it alone. */
function rewriteOf(store: RuleStore, image: string, namespace = "default", namespaceLabels?: Json): string | undefined {
  const decision = decide(store.current, image, {
    context: {
      namespace,
      ...(namespaceLabels === undefined ? {} : { namespaceLabels: namespaceLabels as Record<string, string> }),
    },
  });
  return decision.action === "rewrite" ? decision.output : undefined;
}

/** The Ready condition on an object as the API holds it. */
function ready(api: FakeKubeApi, kind: string, name: string, namespace?: string): Json | undefined {
  const status = api.get(kind, name, namespace)?.["status"] as Json | undefined;
  const conditions = (status?.["conditions"] ?? []) as Json[];
  return conditions.find((condition) => condition["type"] === "Ready");
}

function isList(plural: string) {
  return (request: RecordedRequest) => request.method === "GET" && request.plural === plural && !request.watch;
}

function isWatch(plural: string) {
  return (request: RecordedRequest) => request.plural === plural && request.watch;
}

function isStatusWrite(status?: number) {
  return (request: RecordedRequest) =>
    request.method === "PUT" && request.subresource === "status" && (status === undefined || request.status === status);
}

async function gauge(metrics: Metrics, name: "rulesLoaded" | "objectsLoaded"): Promise<number | undefined> {
  return (await metrics[name].get()).values.find((value) => value.labels["source"] === KUBE_SOURCE)?.value;
}

async function reloads(metrics: Metrics, result: string): Promise<number> {
  return (await metrics.reloads.get()).values.find((value) =>
    value.labels["source"] === KUBE_SOURCE && value.labels["result"] === result
  )?.value ?? 0;
}

interface Replica {
  readonly store: RuleStore;
  readonly source: KubeRuleSource;
  readonly metrics: Metrics;
}

interface Fixture extends AsyncDisposable {
  readonly api: FakeKubeApi;
  /** Starts one more replica of the source on the fake API. */
  replica(options?: { pageSize?: number; now?: () => Date; optionalRecheckMs?: number }): Replica;
}

function fixture(api: FakeKubeApi = FakeKubeApi.start()): Fixture {
  const replicas: Replica[] = [];
  return {
    api,
    replica(options = {}) {
      const store = new RuleStore();
      const metrics = createMetrics({ defaultMetrics: false });
      const source = new KubeRuleSource({
        kubeConfig: api.kubeConfig(),
        store,
        metrics,
        logger,
        backoff: { initialMs: 20, maxMs: 200 },
        ...(options.pageSize === undefined ? {} : { pageSize: options.pageSize }),
        ...(options.now === undefined ? {} : { now: options.now }),
        ...(options.optionalRecheckMs === undefined ? {} : { optionalRecheckMs: options.optionalRecheckMs }),
      });
      source.start();
      const replica = { store, source, metrics };
      replicas.push(replica);
      return replica;
    },
    async [Symbol.asyncDispose]() {
      await Promise.all(replicas.map((replica) => replica.source.stop()));
      await api.close();
    },
  };
}

Deno.test("readiness waits for the first complete list of both kinds, read page by page", async () => {
  await using f = fixture();
  for (let i = 0; i < 5; i++) {
    f.api.create(clusterRewrite(`other-${i}`, [{ exact: `ghcr.io/x/y${i}:1`, replace: "mirror.io/y:1" }]));
  }
  f.api.create(clusterRewrite("hub", HUB_RULES));
  f.api.create(namespacedRewrite("team-a", "own", [{ prefix: "quay.io", replace: "quay-cache.example.com" }]));
  const release = f.api.holdLists("clusterimagerewrites");
  const { store, source } = f.replica({ pageSize: 2 });

  await until(
    "the ImageRewrite and Namespace lists",
    () =>
      f.api.count((r) => isList("imagerewrites")(r) && r.status === 200) > 0 &&
      f.api.count((r) => isList("namespaces")(r) && r.status === 200) > 0,
  );
  assert.equal(store.ready, false);
  assert.equal(store.status().find((s) => s.name === KUBE_SOURCE)?.loaded, false);
  assert.equal(rewriteOf(store, "nginx:1.27"), undefined);

  release();
  await source.synced;
  assert.equal(store.ready, true);
  assert.equal(rewriteOf(store, "nginx:1.27"), "harbor.example.com/dockerhub/library/nginx:1.27");
  assert.equal(rewriteOf(store, "quay.io/a/b:1", "team-a"), "quay-cache.example.com/a/b:1");
  assert.equal(store.current.objects.length, 7);
  // 6 cluster objects in pages of 2: the first request and two continuations.
  assert.equal(f.api.count((r) => isList("clusterimagerewrites")(r) && r.query.has("continue")), 2);
  for (const request of f.api.requests.filter((r) => r.watch)) {
    assert.equal(request.query.get("allowWatchBookmarks"), "true");
    assert.match(request.query.get("resourceVersion") ?? "", /^\d+$/);
  }
});

Deno.test("adding, changing and deleting objects changes the rules in force within a second", async () => {
  await using f = fixture();
  const { store, source } = f.replica();
  await source.synced;
  assert.equal(rewriteOf(store, "nginx:1.27"), undefined);

  f.api.create(clusterRewrite("hub", HUB_RULES));
  await until(
    "the new object in force",
    () => rewriteOf(store, "nginx:1.27") === "harbor.example.com/dockerhub/library/nginx:1.27",
    1000,
  );

  f.api.modify("ClusterImageRewrite", "hub", undefined, (object) => {
    (object["spec"] as Json)["rules"] = [{ prefix: "docker.io", replace: "mirror.example.org/hub" }];
  });
  await until(
    "the change in force",
    () => rewriteOf(store, "nginx:1.27") === "mirror.example.org/hub/library/nginx:1.27",
    1000,
  );

  f.api.create(namespacedRewrite("team-a", "quay", [{ prefix: "quay.io", replace: "quay-cache.example.com" }]));
  await until(
    "the ImageRewrite in force",
    () => rewriteOf(store, "quay.io/a/b:1", "team-a") === "quay-cache.example.com/a/b:1",
    1000,
  );
  assert.equal(rewriteOf(store, "quay.io/a/b:1", "team-b"), undefined, "an ImageRewrite applies only in its namespace");

  f.api.delete("ClusterImageRewrite", "hub");
  f.api.delete("ImageRewrite", "quay", "team-a");
  await until("the deletions in force", () => store.current.objects.length === 0, 1000);
  assert.equal(rewriteOf(store, "nginx:1.27"), undefined);
});

Deno.test("a dropped watch reconnects from its resourceVersion and loses no change made meanwhile", async () => {
  await using f = fixture();
  f.api.create(clusterRewrite("gone-soon", [{ prefix: "quay.io", replace: "quay-cache.example.com" }]));
  const { store, source } = f.replica();
  await source.synced;
  await until("open watches", () => f.api.openWatches() === 3);
  const lists = f.api.count(isList("clusterimagerewrites"));
  const watches = f.api.count(isWatch("clusterimagerewrites"));

  assert.equal(f.api.dropWatches(), 3);
  // Both changes happen before the source can reconnect.
  f.api.create(clusterRewrite("hub", HUB_RULES));
  f.api.delete("ClusterImageRewrite", "gone-soon");

  await until(
    "the changes made while disconnected",
    () =>
      rewriteOf(store, "nginx:1.27") === "harbor.example.com/dockerhub/library/nginx:1.27" &&
      rewriteOf(store, "quay.io/a/b:1") === undefined,
  );
  assert.equal(f.api.count(isList("clusterimagerewrites")), lists, "no relist: the watch resumed");
  assert.ok(f.api.count(isWatch("clusterimagerewrites")) > watches);
});

for (const expiredWatch of ["event", "http"] as const) {
  Deno.test(`410 Gone (${expiredWatch === "event" ? "ERROR watch event" : "HTTP status"}) relists and keeps changes made while disconnected`, async () => {
    await using f = fixture(FakeKubeApi.start({ expiredWatch }));
    f.api.create(clusterRewrite("gone-soon", [{ prefix: "quay.io", replace: "quay-cache.example.com" }]));
    const { store, source } = f.replica();
    await source.synced;
    await until("open watches", () => f.api.openWatches() === 3);
    const lists = f.api.count(isList("clusterimagerewrites"));

    f.api.dropWatches();
    f.api.create(clusterRewrite("hub", HUB_RULES));
    f.api.delete("ClusterImageRewrite", "gone-soon");
    f.api.compact();

    await until(
      "the changes made while disconnected",
      () =>
        rewriteOf(store, "nginx:1.27") === "harbor.example.com/dockerhub/library/nginx:1.27" &&
        rewriteOf(store, "quay.io/a/b:1") === undefined,
    );
    assert.equal(f.api.count(isList("clusterimagerewrites")), lists + 1, "one relist");
    if (expiredWatch === "http") {
      assert.ok(f.api.count((r) => isWatch("clusterimagerewrites")(r) && r.status === 410) >= 1);
    }
    // After the relist the source watches again, and follows changes.
    await until("watches again", () => f.api.openWatches("clusterimagerewrites") === 1);
    f.api.delete("ClusterImageRewrite", "hub");
    await until("a change after the relist", () => rewriteOf(store, "nginx:1.27") === undefined, 1000);
  });
}

Deno.test("an open watch that expires (ERROR 410 mid-stream) relists", async () => {
  await using f = fixture();
  const { store, source } = f.replica();
  await source.synced;
  await until("open watches", () => f.api.openWatches() === 3);
  const lists = f.api.count(isList("clusterimagerewrites"));
  f.api.compact();
  f.api.expireWatches();
  await until("a relist", () => f.api.count(isList("clusterimagerewrites")) === lists + 1);
  f.api.create(clusterRewrite("hub", HUB_RULES));
  await until("a change after the relist", () => rewriteOf(store, "nginx:1.27") !== undefined, 1000);
});

Deno.test("a BOOKMARK advances the resourceVersion the next watch starts from", async () => {
  await using f = fixture();
  const { source } = f.replica();
  await source.synced;
  await until("open watches", () => f.api.openWatches() === 3);
  const lists = f.api.count(isList("clusterimagerewrites"));
  const watches = f.api.count(isWatch("clusterimagerewrites"));
  // Changes elsewhere move the global resourceVersion past anything the cluster-rewrite watch has seen.
  for (let i = 0; i < 3; i++) f.api.create({ apiVersion: "v1", kind: "Namespace", metadata: { name: `team-${i}` } });
  const bookmarked = f.api.resourceVersion;
  f.api.bookmark();
  // History before the bookmark is gone: resuming from an older resourceVersion would meet 410 and relist.
  f.api.compact();
  // A clean close (as at timeoutSeconds) delivers everything sent before it.
  f.api.closeWatches();

  const resumed = await until("the next watch", () => f.api.requests.filter(isWatch("clusterimagerewrites"))[watches]);
  assert.equal(resumed.query.get("resourceVersion"), String(bookmarked));
  assert.equal(resumed.status, 200);
  assert.equal(f.api.count(isList("clusterimagerewrites")), lists, "no relist");
});

Deno.test("a broken object is Ready=False InvalidRule naming the rule, and the others stay in force", async () => {
  await using f = fixture();
  f.api.create(clusterRewrite("hub", HUB_RULES));
  f.api.create(clusterRewrite("broken", [
    { prefix: "quay.io", replace: "quay-cache.example.com" },
    { match: "(unclosed", replace: "cache.example.com/x" },
  ]));
  f.api.create(namespacedRewrite("team-a", "typo", [{ prefx: "gcr.io", replace: "gcr-cache.example.com" }]));
  // A clock a minute further on every reading, so that each transition has its own time.
  let clock = Date.parse("2026-03-01T00:00:00Z");
  const { store, source, metrics } = f.replica({ now: () => new Date(clock += 60_000) });
  await source.synced;

  const broken = await until("the broken object's status", () => ready(f.api, "ClusterImageRewrite", "broken"));
  assert.equal(broken["status"], "False");
  assert.equal(broken["reason"], "InvalidRule");
  assert.match(String(broken["message"]), /rule 1\b/);
  assert.match(String(broken["message"]), /regular expression/);
  assert.equal(broken["observedGeneration"], 1);
  const brokenStatus = f.api.get("ClusterImageRewrite", "broken")?.["status"] as Json;
  assert.equal(brokenStatus["observedGeneration"], 1);
  assert.equal(brokenStatus["rules"], 0);

  const typo = await until(
    "the structurally invalid object's status",
    () => ready(f.api, "ImageRewrite", "typo", "team-a"),
  );
  assert.equal(typo["reason"], "InvalidRule");
  assert.match(String(typo["message"]), /rule 0\b/);
  assert.match(String(typo["message"]), /prefx/);

  const hub = await until("the good object's status", () => ready(f.api, "ClusterImageRewrite", "hub"));
  assert.equal(hub["status"], "True");
  assert.equal(hub["reason"], "Valid");
  assert.equal((f.api.get("ClusterImageRewrite", "hub")?.["status"] as Json)["rules"], 1);
  assert.equal(rewriteOf(store, "nginx:1.27"), "harbor.example.com/dockerhub/library/nginx:1.27");
  assert.equal(rewriteOf(store, "quay.io/a/b:1"), undefined, "no rule of a broken object is used");
  assert.equal(await gauge(metrics, "objectsLoaded"), 1);
  assert.equal(await gauge(metrics, "rulesLoaded"), 1);
  assert.ok(await reloads(metrics, "error") >= 1);

  f.api.modify("ClusterImageRewrite", "broken", undefined, (object) => {
    ((object["spec"] as Json)["rules"] as Json[])[1] = {
      match: "^gcr\\.io/(.*)$",
      replace: "gcr-cache.example.com/$1",
    };
  });
  const fixed = await until("the fixed object's status", () => {
    const condition = ready(f.api, "ClusterImageRewrite", "broken");
    return condition?.["status"] === "True" ? condition : undefined;
  });
  assert.equal(fixed["observedGeneration"], 2);
  assert.notEqual(fixed["lastTransitionTime"], broken["lastTransitionTime"]);
  assert.equal(rewriteOf(store, "quay.io/a/b:1"), "quay-cache.example.com/a/b:1");
  assert.equal(await gauge(metrics, "rulesLoaded"), 3);
});

Deno.test("of two conflicting objects the older wins; the newer is Ready=False Conflict until the older changes or goes", async () => {
  await using f = fixture();
  const exact = (replace: string, reference = "ghcr.io/fantasy/coolstuff:v1.0") => [{ exact: reference, replace }];
  f.api.create(clusterRewrite("older", exact("mirror-one.example.com/coolstuff:v1.0")));
  f.api.create(clusterRewrite("newer", exact("mirror-two.example.com/coolstuff:v1.0")));
  const { store, source } = f.replica();
  await source.synced;

  const conflict = await until(
    "the conflict on the newer object",
    () => ready(f.api, "ClusterImageRewrite", "newer"),
  );
  assert.equal(conflict["status"], "False");
  assert.equal(conflict["reason"], "Conflict");
  assert.match(String(conflict["message"]), /ClusterImageRewrite "older"/);
  assert.match(String(conflict["message"]), /ClusterImageRewrite "newer"/);
  assert.equal(
    (await until("the older object's status", () => ready(f.api, "ClusterImageRewrite", "older")))["reason"],
    "Valid",
  );
  assert.equal(rewriteOf(store, "ghcr.io/fantasy/coolstuff:v1.0", "team-a"), "mirror-one.example.com/coolstuff:v1.0");

  // The older object changes and no longer decides that reference: the newer one is used by itself.
  f.api.modify("ClusterImageRewrite", "older", undefined, (object) => {
    (object["spec"] as Json)["rules"] = exact("mirror-one.example.com/other:v1", "ghcr.io/fantasy/other:v1");
  });
  await until("the newer object in use", () => ready(f.api, "ClusterImageRewrite", "newer")?.["reason"] === "Valid");
  assert.equal(rewriteOf(store, "ghcr.io/fantasy/coolstuff:v1.0", "team-a"), "mirror-two.example.com/coolstuff:v1.0");

  // It conflicts again: the older object still wins.
  f.api.modify("ClusterImageRewrite", "older", undefined, (object) => {
    (object["spec"] as Json)["rules"] = exact("mirror-one.example.com/coolstuff:v1.0");
  });
  await until("the conflict again", () => ready(f.api, "ClusterImageRewrite", "newer")?.["reason"] === "Conflict");
  assert.equal(rewriteOf(store, "ghcr.io/fantasy/coolstuff:v1.0", "team-a"), "mirror-one.example.com/coolstuff:v1.0");

  f.api.delete("ClusterImageRewrite", "older");
  await until("the newer object in use", () => ready(f.api, "ClusterImageRewrite", "newer")?.["reason"] === "Valid");
  assert.equal(rewriteOf(store, "ghcr.io/fantasy/coolstuff:v1.0", "team-a"), "mirror-two.example.com/coolstuff:v1.0");
});

Deno.test("status is written only when it changes, and a 409 Conflict is re-read and retried", async () => {
  await using f = fixture();
  f.api.create(clusterRewrite("hub", HUB_RULES));
  f.api.create(clusterRewrite("quay", [{ prefix: "quay.io", replace: "quay-cache.example.com" }]));
  const { source } = f.replica();
  await source.synced;
  await until(
    "both statuses",
    () => ready(f.api, "ClusterImageRewrite", "hub") && ready(f.api, "ClusterImageRewrite", "quay"),
  );
  const writes = await settled("status writes", () => f.api.count(isStatusWrite()));
  assert.equal(writes, 2);
  const firstTransition = ready(f.api, "ClusterImageRewrite", "hub")?.["lastTransitionTime"];

  // A label change (no new generation) and a new object: only the new object's status is written.
  f.api.modify("ClusterImageRewrite", "hub", undefined, (object) => {
    (object["metadata"] as Json)["labels"] = { team: "platform" };
  });
  f.api.create(clusterRewrite("gcr", [{ prefix: "gcr.io", replace: "gcr-cache.example.com" }]));
  await until("the new object's status", () => ready(f.api, "ClusterImageRewrite", "gcr"));
  assert.equal(await settled("status writes", () => f.api.count(isStatusWrite())), writes + 1);
  assert.equal(ready(f.api, "ClusterImageRewrite", "hub")?.["lastTransitionTime"], firstTransition);

  // Another writer changes the object between our read and our write: 409, GET, write again.
  f.api.beforeStatusWrite = (_plural, _namespace, name) => {
    f.api.beforeStatusWrite = undefined;
    f.api.modify("ClusterImageRewrite", name, undefined, (object) => {
      (object["metadata"] as Json)["annotations"] = { "example.com/touched": "yes" };
    });
  };
  const gets = f.api.count((r) => r.method === "GET" && r.name === "hub");
  f.api.modify("ClusterImageRewrite", "hub", undefined, (object) => {
    (object["spec"] as Json)["priority"] = 10;
  });
  await until(
    "the status of generation 2",
    () => ready(f.api, "ClusterImageRewrite", "hub")?.["observedGeneration"] === 2,
  );
  assert.equal(await settled("status writes", () => f.api.count(isStatusWrite())), writes + 3);
  assert.equal(f.api.count(isStatusWrite(409)), 1);
  assert.equal(f.api.count(isStatusWrite(200)), writes + 2);
  assert.ok(f.api.count((r) => r.method === "GET" && r.name === "hub") > gets, "re-read after the conflict");
  assert.equal(ready(f.api, "ClusterImageRewrite", "hub")?.["lastTransitionTime"], firstTransition, "still Ready=True");
});

Deno.test("two replicas on one API converge on the same rules and statuses without a write loop", async () => {
  await using f = fixture();
  f.api.create(clusterRewrite("hub", HUB_RULES));
  f.api.create(clusterRewrite("broken", [{ match: "(", replace: "x.example.com/y" }]));
  f.api.create(clusterRewrite("older", [{ exact: "ghcr.io/a/b:1", replace: "one.example.com/b:1" }]));
  f.api.create(clusterRewrite("newer", [{ exact: "ghcr.io/a/b:1", replace: "two.example.com/b:1" }]));
  const a = f.replica();
  const b = f.replica();
  await Promise.all([a.source.synced, b.source.synced]);
  assert.equal(a.store.current.hash, b.store.current.hash);

  const expected = { hub: "Valid", broken: "InvalidRule", older: "Valid", newer: "Conflict" };
  await until(
    "every status",
    () =>
      Object.entries(expected).every(([name, reason]) =>
        ready(f.api, "ClusterImageRewrite", name)?.["reason"] === reason
      ),
  );
  await settled("status writes", () => f.api.count(isStatusWrite()));
  // Each status is stored once; the other replica's write meets 409, re-reads, finds it there, and stops.
  for (const name of Object.keys(expected)) {
    assert.equal(f.api.count((r) => isStatusWrite(200)(r) && r.name === name), 1, `successful writes for ${name}`);
  }
  assert.ok(f.api.count(isStatusWrite(409)) <= Object.keys(expected).length);
  const transitions = Object.keys(expected).map((name) =>
    ready(f.api, "ClusterImageRewrite", name)?.["lastTransitionTime"]
  );

  // A change: both replicas follow it, one write carries it, and the writes stop again.
  f.api.delete("ClusterImageRewrite", "older");
  await until("the newer object in use", () => ready(f.api, "ClusterImageRewrite", "newer")?.["reason"] === "Valid");
  await until("both replicas agree", () =>
    a.store.current.hash === b.store.current.hash &&
    rewriteOf(a.store, "ghcr.io/a/b:1") === "two.example.com/b:1" &&
    rewriteOf(b.store, "ghcr.io/a/b:1") === "two.example.com/b:1");
  await settled("status writes", () => f.api.count(isStatusWrite()));
  assert.equal(f.api.count((r) => isStatusWrite(200)(r) && r.name === "newer"), 2);
  assert.equal(f.api.count(isStatusWrite(200)), Object.keys(expected).length + 1);
  assert.deepEqual(
    ["hub", "broken"].map((name) => ready(f.api, "ClusterImageRewrite", name)?.["lastTransitionTime"]),
    transitions.slice(0, 2),
  );
});

Deno.test("namespace labels are tracked for namespaceSelector", async () => {
  await using f = fixture();
  f.api.create({ apiVersion: "v1", kind: "Namespace", metadata: { name: "team-a", labels: { env: "prod" } } });
  f.api.create(clusterRewrite("prod-only", HUB_RULES, { namespaceSelector: { matchLabels: { env: "prod" } } }));
  const { store, source } = f.replica();
  await source.synced;
  assert.equal(source.namespaceLabels("team-a")?.["env"], "prod");
  assert.equal(source.namespaceLabels("team-a")?.["kubernetes.io/metadata.name"], "team-a");
  assert.equal(source.namespaceLabels("nowhere"), undefined);
  const nginx = () => rewriteOf(store, "nginx:1", "team-a", source.namespaceLabels("team-a"));
  assert.equal(nginx(), "harbor.example.com/dockerhub/library/nginx:1");

  f.api.modify("Namespace", "team-a", undefined, (object) => {
    (object["metadata"] as Json)["labels"] = { env: "dev" };
  });
  await until("the label change", () => source.namespaceLabels("team-a")?.["env"] === "dev", 1000);
  assert.equal(nginx(), undefined);

  f.api.create({ apiVersion: "v1", kind: "Namespace", metadata: { name: "team-b", labels: { env: "prod" } } });
  await until("the new namespace", () => source.namespaceLabels("team-b")?.["env"] === "prod", 1000);
  f.api.delete("Namespace", "team-a");
  await until("the deletion", () => source.namespaceLabels("team-a") === undefined, 1000);
});

Deno.test("connects over TLS with a kubeconfig file and a bearer token; a wrong token is an error, not a crash", async () => {
  const chain = await mintCertificates({ ipAddresses: ["127.0.0.1"], dnsNames: ["localhost"] });
  const dir = await Deno.makeTempDir({ prefix: "mirrorhook-kube-" });
  try {
    await using f = fixture(FakeKubeApi.start({ tls: { cert: chain.cert, key: chain.key }, caCert: chain.caCert }));
    f.api.create(clusterRewrite("hub", HUB_RULES));
    const path = `${dir}/kubeconfig`;
    await Deno.writeTextFile(path, f.api.kubeConfigYaml());
    const store = new RuleStore();
    const source = new KubeRuleSource({
      kubeConfig: await loadKubeConfig({ path }),
      store,
      logger,
      backoff: { initialMs: 20, maxMs: 100 },
    });
    source.start();
    try {
      await source.synced;
      assert.equal(rewriteOf(store, "nginx:1.27"), "harbor.example.com/dockerhub/library/nginx:1.27");
    } finally {
      await source.stop();
    }

    await Deno.writeTextFile(path, f.api.kubeConfigYaml().replace(f.api.token, "wrong-token"));
    const denied = new RuleStore();
    const metrics = createMetrics({ defaultMetrics: false });
    const intruder = new KubeRuleSource({
      kubeConfig: await loadKubeConfig({ path }),
      store: denied,
      metrics,
      logger,
      backoff: { initialMs: 20, maxMs: 100 },
    });
    intruder.start();
    try {
      const error = await until("the error", () => denied.status().find((s) => s.name === KUBE_SOURCE)?.lastError);
      assert.match(error, /401/);
      assert.equal(denied.ready, false);
      assert.ok(await reloads(metrics, "error") >= 1);
    } finally {
      await intruder.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------------------------
// RegistryRewriteRules (mutating-registry-webhook, dev.flemzord.fr/v1alpha1): read when their CRD is installed.

function registryRewriteRule(name: string, rules: unknown[], spec: Json = {}): Json {
  return {
    apiVersion: "dev.flemzord.fr/v1alpha1",
    kind: "RegistryRewriteRule",
    metadata: { name },
    spec: { ...spec, rules },
  };
}

const FLEMZORD_HUB = [{ match: "^docker\\.io/(.*)$", replace: "harbor.example.com/dockerhub/$1" }];

function isRegistryRewriteRules(request: RecordedRequest): boolean {
  return request.plural === "registryrewriterules";
}

/** Any request that is not a read. */
function isWrite(request: RecordedRequest): boolean {
  return request.method !== "GET";
}

for (const state of ["absent", "forbidden"] as const) {
  Deno.test(`RegistryRewriteRules ${state === "absent" ? "without their CRD (404)" : "not granted (403)"}: ready anyway, and read once they are served`, async () => {
    await using f = fixture(FakeKubeApi.start({ registryRewriteRules: state }));
    f.api.create(clusterRewrite("quay", [{ prefix: "quay.io", replace: "quay-cache.example.com" }]));
    const logged = records.length;
    const { store, source } = f.replica({ optionalRecheckMs: 50 });
    await source.synced;
    assert.equal(store.ready, true);
    assert.equal(store.status().find((s) => s.name === KUBE_SOURCE)?.lastError, undefined);
    assert.equal(rewriteOf(store, "quay.io/a/b:1"), "quay-cache.example.com/a/b:1");
    assert.ok(f.api.count((r) => isRegistryRewriteRules(r) && r.status === (state === "absent" ? 404 : 403)) >= 1);
    // Looked for again every 50 ms, logged once.
    await until("three looks", () => f.api.count((r) => isList("registryrewriterules")(r)) >= 3);
    const warnings = records.slice(logged).filter((record) =>
      record.level === "warning" && record.properties["resource"] === "registryrewriterules.dev.flemzord.fr"
    );
    assert.equal(warnings.length, state === "forbidden" ? 1 : 0);
    assert.equal(store.current.optOuts, undefined);

    // The CRD is installed (or granted) later: its objects are read within the re-check interval.
    f.api.setRegistryRewriteRules("served");
    f.api.create(registryRewriteRule("hub", FLEMZORD_HUB));
    await until(
      "the RegistryRewriteRule in force",
      () => rewriteOf(store, "nginx:1.27") === "harbor.example.com/dockerhub/library/nginx:1.27",
      1000,
    );
    assert.equal(rewriteOf(store, "quay.io/a/b:1"), "quay-cache.example.com/a/b:1");

    // The CRD is removed again: its objects go with it, and the source stays ready.
    f.api.setRegistryRewriteRules("absent");
    await until("the rules gone", () => rewriteOf(store, "nginx:1.27") === undefined, 1000);
    assert.equal(store.ready, true);
    assert.equal(rewriteOf(store, "quay.io/a/b:1"), "quay-cache.example.com/a/b:1");
    assert.equal(f.api.count(isWrite), 1, "only the status of the ClusterImageRewrite");
  });
}

Deno.test("a RegistryRewriteRule rewrites within a second with its Pod opt-out, follows changes, and gets no status write", async () => {
  await using f = fixture(FakeKubeApi.start({ registryRewriteRules: "served" }));
  // A real ClusterImageRewrite of the same name: the translation is named apart and both are in force.
  f.api.create(clusterRewrite("hub", [{ prefix: "quay.io", replace: "quay-cache.example.com" }]));
  const { store, source, metrics } = f.replica();
  await source.synced;
  assert.equal(rewriteOf(store, "nginx:1.27"), undefined);
  assert.equal(store.current.optOuts, undefined);
  const reloadsBefore = await reloads(metrics, "success");

  f.api.create(registryRewriteRule("hub", FLEMZORD_HUB));
  await until(
    "the RegistryRewriteRule in force",
    () => rewriteOf(store, "nginx:1.27") === "harbor.example.com/dockerhub/library/nginx:1.27",
    1000,
  );
  assert.deepEqual(store.current.optOuts, [{ kind: "annotation", key: "rewrite-disabled", value: "true" }]);
  assert.deepEqual(store.current.objects.map((object) => object.label).sort(), [
    'ClusterImageRewrite "flemzord-hub"',
    'ClusterImageRewrite "hub"',
  ]);
  assert.equal(rewriteOf(store, "quay.io/a/b:1"), "quay-cache.example.com/a/b:1");
  assert.equal(source.verdicts.get("RegistryRewriteRule//hub")?.reason, "Valid");
  assert.ok(await reloads(metrics, "success") > reloadsBefore);

  f.api.modify("RegistryRewriteRule", "hub", undefined, (object) => {
    (object["spec"] as Json)["rules"] = [{ match: "^docker\\.io/(.*)$", replace: "mirror.example.org/hub/$1" }];
  });
  await until(
    "the change in force",
    () => rewriteOf(store, "nginx:1.27") === "mirror.example.org/hub/library/nginx:1.27",
    1000,
  );

  f.api.delete("RegistryRewriteRule", "hub");
  await until("the deletion in force", () => rewriteOf(store, "nginx:1.27") === undefined, 1000);
  assert.equal(store.current.optOuts, undefined);
  assert.equal(rewriteOf(store, "quay.io/a/b:1"), "quay-cache.example.com/a/b:1");

  await settled("requests", () => f.api.requests.length);
  // One status write, for the real ClusterImageRewrite; nothing written for the RegistryRewriteRule or its translation.
  assert.deepEqual(f.api.requests.filter(isWrite).map((r) => `${r.method} ${r.plural}/${r.name}/${r.subresource}`), [
    "PUT clusterimagerewrites/hub/status",
  ]);
  assert.equal(f.api.count((r) => r.name === "flemzord-hub"), 0);
});

Deno.test("a broken RegistryRewriteRule (invalid Go regexp) is not used, is logged, and does not affect the others", async () => {
  await using f = fixture(FakeKubeApi.start({ registryRewriteRules: "served" }));
  f.api.create(registryRewriteRule("hub", FLEMZORD_HUB));
  f.api.create(registryRewriteRule("broken", [
    { match: "^quay\\.io/(.*)$", replace: "quay-cache.example.com/$1" },
    { match: "^gcr\\.io/(unclosed", replace: "gcr-cache.example.com/$1" },
  ]));
  const logged = records.length;
  const { store, source, metrics } = f.replica();
  await source.synced;

  assert.equal(rewriteOf(store, "nginx:1.27"), "harbor.example.com/dockerhub/library/nginx:1.27");
  assert.equal(rewriteOf(store, "quay.io/a/b:1"), undefined, "no rule of a broken RegistryRewriteRule is used");
  assert.deepEqual(store.current.optOuts, [{ kind: "annotation", key: "rewrite-disabled", value: "true" }]);
  const verdict = source.verdicts.get("RegistryRewriteRule//broken");
  assert.equal(verdict?.reason, "InvalidRule");
  assert.match(verdict?.message ?? "", /rule 1\b/);
  assert.equal(source.verdicts.get("RegistryRewriteRule//hub")?.reason, "Valid");
  assert.ok(await reloads(metrics, "error") >= 1);
  const problems = records.slice(logged).filter((record) =>
    record.properties["object"] === 'RegistryRewriteRule "broken"' && record.properties["code"] === "invalid-regex"
  );
  assert.equal(problems.length, 1, "the error is logged once");

  f.api.modify("RegistryRewriteRule", "broken", undefined, (object) => {
    ((object["spec"] as Json)["rules"] as Json[])[1] = {
      match: "^gcr\\.io/(.*)$",
      replace: "gcr-cache.example.com/$1",
    };
  });
  await until("the fixed RegistryRewriteRule in force", () => rewriteOf(store, "quay.io/a/b:1") !== undefined, 1000);
  assert.equal(rewriteOf(store, "quay.io/a/b:1"), "quay-cache.example.com/a/b:1");
  assert.equal(rewriteOf(store, "gcr.io/a/b:1"), "gcr-cache.example.com/a/b:1");
  assert.equal(rewriteOf(store, "nginx:1.27"), "harbor.example.com/dockerhub/library/nginx:1.27");
  assert.equal(f.api.count(isWrite), 0, "no status writes");
});
