// Rule objects through the fake API server, the store and the handler: tenancy (a namespaced object changes its own namespace only), conflicts, rules that never decide.

import assert from "node:assert/strict";
import { decide } from "../lib/rules/engine.ts";
import { loadRuleTexts } from "../lib/compat/load.ts";
import { createWebhookHandler } from "../lib/server/handler.ts";
import { createMetrics, type Metrics } from "../lib/server/metrics.ts";
import { reportRuleProblems } from "../lib/server/rule_problems.ts";
import { KubeRuleSource } from "../lib/sources/kube/source.ts";
import { RuleStore } from "../lib/sources/store.ts";
import { FakeKubeApi } from "./support/fake_kube_api.ts";
import { memoryLogger, patchedImage, podReview } from "./support/webhook.ts";
import { clusterRewrite, namespacedRewrite } from "./support/rule_objects.ts";
import { until } from "./support/wait.ts";
import { admissionReview } from "./support/admission_review.ts";

const { logger: root, records } = memoryLogger();
const logger = root.getChild("tenancy");

type Json = Record<string, unknown>;

const HARBOR = [{ prefix: "docker.io", replace: "harbor.example.com/dockerhub" }];
const ECR = [{ prefix: "docker.io", replace: "ecr.example.com/docker-hub" }];

function tenantRewrite(name: string, rules: unknown[]): Json {
  return namespacedRewrite("team-a", name, rules);
}

function rewriteOf(store: RuleStore, namespace: string): string | undefined {
  const decision = decide(store.current, "nginx", { context: { namespace } });
  return decision.action === "rewrite" ? decision.output : undefined;
}

function ready(api: FakeKubeApi, kind: string, name: string, namespace?: string): Json | undefined {
  const status = api.get(kind, name, namespace)?.["status"] as Json | undefined;
  return ((status?.["conditions"] ?? []) as Json[]).find((condition) => condition["type"] === "Ready");
}

const ON_HARBOR = "harbor.example.com/dockerhub/library/nginx:latest";
const ON_ECR = "ecr.example.com/docker-hub/library/nginx:latest";

async function replica(
  api: FakeKubeApi,
  store = new RuleStore(),
  metrics?: Metrics,
): Promise<{ store: RuleStore; source: KubeRuleSource }> {
  const source = new KubeRuleSource({
    kubeConfig: api.kubeConfig(),
    store,
    logger,
    ...(metrics === undefined ? {} : { metrics }),
    watchNamespaces: false,
    backoff: { initialMs: 20, maxMs: 200 },
  });
  source.start();
  await source.synced;
  return { store, source };
}

for (const order of ["tenant first", "platform first"] as const) {
  Deno.test(`a tenant's ImageRewrite overrides a ClusterImageRewrite in its namespace only (${order})`, async () => {
    const api = FakeKubeApi.start();
    const { source, store } = await (async () => {
      if (order === "tenant first") {
        api.create(tenantRewrite("squat", ECR));
        api.create(clusterRewrite("platform", HARBOR));
      } else {
        api.create(clusterRewrite("platform", HARBOR));
        api.create(tenantRewrite("squat", ECR));
      }
      return await replica(api);
    })();
    try {
      const tenant = await until("the tenant's status", () => ready(api, "ImageRewrite", "squat", "team-a"));
      const platform = await until("the platform's status", () => ready(api, "ClusterImageRewrite", "platform"));
      assert.equal(platform["status"], "True");
      assert.equal(platform["reason"], "Valid");
      assert.equal(tenant["status"], "True");
      assert.equal(tenant["reason"], "Valid");
      assert.match(
        String(tenant["message"]),
        /overrides rule 0 of ClusterImageRewrite "platform" in namespace "team-a" only/,
      );
      assert.equal(rewriteOf(store, "team-a"), ON_ECR);
      assert.equal(rewriteOf(store, "team-b"), ON_HARBOR);
    } finally {
      await source.stop();
      await api.close();
    }
  });
}

Deno.test("an enforced ClusterImageRewrite wins in the tenant's namespace too; the tenant is told", async () => {
  const api = FakeKubeApi.start();
  api.create(tenantRewrite("mine", ECR));
  api.create(clusterRewrite("platform", HARBOR, { enforced: true }));
  const { source, store } = await replica(api);
  try {
    const tenant = await until(
      "the tenant's warning",
      () =>
        ready(api, "ImageRewrite", "mine", "team-a")?.["message"] !== undefined &&
        ready(api, "ImageRewrite", "mine", "team-a"),
    );
    assert.equal(tenant["status"], "True");
    assert.match(String(tenant["message"]), /never decides: rule 0 of the enforced ClusterImageRewrite "platform"/);
    assert.equal(rewriteOf(store, "team-a"), ON_HARBOR);
    assert.equal(rewriteOf(store, "team-b"), ON_HARBOR);
  } finally {
    await source.stop();
    await api.close();
  }
});

const PLATFORM_FILE = `apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: platform-file
spec:
  rules:
    - prefix: docker.io
      replace: harbor.example.com/dockerhub
`;

Deno.test("a file's ClusterImageRewrite and cluster objects: the file wins conflicts, a tenant overrides it in its namespace, one log line each", async () => {
  const api = FakeKubeApi.start();
  api.create(clusterRewrite("older-cluster", ECR));
  api.create(tenantRewrite("mine", ECR));
  const store = new RuleStore();
  store.register("file");
  const metrics = createMetrics({ defaultMetrics: false });
  reportRuleProblems(store, { logger, registry: metrics.registry });
  const file = loadRuleTexts([{ name: "platform.yaml", text: PLATFORM_FILE }]);
  store.update("file", file.objects);
  records.length = 0;
  const { source } = await replica(api, store, metrics);
  try {
    const cluster = await until(
      "the cluster object's conflict",
      () =>
        ready(api, "ClusterImageRewrite", "older-cluster")?.["reason"] === "Conflict" &&
        ready(api, "ClusterImageRewrite", "older-cluster"),
    );
    assert.equal(cluster["status"], "False");
    assert.match(String(cluster["message"]), /ClusterImageRewrite "platform-file"/);
    const tenant = await until(
      "the tenant's override",
      () =>
        /override/.test(String(ready(api, "ImageRewrite", "mine", "team-a")?.["message"])) &&
        ready(api, "ImageRewrite", "mine", "team-a"),
    );
    assert.equal(tenant["status"], "True");
    assert.match(String(tenant["message"]), /ClusterImageRewrite "platform-file"/);
    assert.equal(rewriteOf(store, "team-a"), ON_ECR);
    assert.equal(rewriteOf(store, "team-b"), ON_HARBOR);
    // The object the file's beat is not counted as in use.
    const loaded = (await metrics.objectsLoaded.get()).values.find((v) => v.labels["source"] === "kube")?.value;
    assert.equal(loaded, 1);

    const lines = records.filter((record) => String(record.message.join("")).startsWith("Rule problem ("));
    assert.deepEqual(lines.map((record) => [record.level, record.properties["code"]]).sort(), [
      ["error", "conflict"],
      ["warning", "override"],
    ]);
    const counted = await metrics.registry.getSingleMetricAsString("mirrorhook_rule_problems_total");
    assert.match(counted, /mirrorhook_rule_problems_total\{source="kube",code="conflict"\} 1/);
    assert.match(counted, /mirrorhook_rule_problems_total\{source="kube",code="override"\} 1/);

    // POST /validate: a new cluster object deciding Docker Hub otherwise is refused; a tenant's is allowed, warned.
    const handle = createWebhookHandler({ rules: () => store.current, metrics, logger });
    const review = (object: Json) =>
      admissionReview({
        uid: "b2a4c0de-6393-11e8-b7cc-42010a800002",
        name: String((object["metadata"] as Json)["name"]),
        ...(object["kind"] === "ImageRewrite" ? { namespace: "team-a" } : {}),
        userInfo: { username: "alice" },
        object,
      });
    const post = async (object: Json) => {
      const res = await handle(
        new Request("https://x/validate", {
          method: "POST",
          body: JSON.stringify(review(object)),
          headers: { "content-type": "application/json" },
        }),
      );
      assert.equal(res.status, 200);
      return ((await res.json()) as Json)["response"] as Json;
    };
    // POST /mutate: the same Pod in the tenant's namespace and in another one.
    for (const [namespace, expected] of [["team-a", ON_ECR], ["team-b", ON_HARBOR]] as const) {
      const pod = podReview();
      const request = pod["request"] as Json;
      request["namespace"] = namespace;
      ((request["object"] as Json)["metadata"] as Json)["namespace"] = namespace;
      const res = await handle(
        new Request("https://x/mutate", {
          method: "POST",
          body: JSON.stringify(pod),
          headers: { "content-type": "application/json" },
        }),
      );
      const image = patchedImage(((await res.json()) as Json)["response"] as Json);
      assert.equal(image, expected.replace(":latest", ":1.27"), `a Pod in ${namespace}`);
    }

    const denied = await post(clusterRewrite("newcomer", ECR));
    assert.equal(denied["allowed"], false);
    assert.match(String((denied["status"] as Json)["message"]), /ClusterImageRewrite "platform-file"/);
    const warned = await post(tenantRewrite("another", ECR));
    assert.equal(warned["allowed"], true);
    assert.ok(
      ((warned["warnings"] ?? []) as string[]).some((w) => /overrides .*ClusterImageRewrite "platform-file"/.test(w)),
    );
  } finally {
    await source.stop();
    await api.close();
  }
});

Deno.test("between cluster objects: the same prefix or pattern is a conflict the older wins, the same outcome never decides", async (t) => {
  const QUAY = (replace: string) => [{ match: "^quay\\.io/(.*)$", replace }];
  const rows: { name: string; older: unknown[]; newer: unknown[]; status: string; reason: string; message: RegExp }[] =
    [
      {
        name: "the same prefix, another target",
        older: HARBOR,
        newer: [{ prefix: "docker.io/", replace: "ecr.example.com/docker-hub" }],
        status: "False",
        reason: "Conflict",
        message: /conflicts with rule 0 of ClusterImageRewrite "older"/,
      },
      {
        name: "the same pattern, another replacement",
        older: QUAY("a.example.com/quay/$1"),
        newer: QUAY("b.example.com/quay/$1"),
        status: "False",
        reason: "Conflict",
        message: /conflicts with rule 0 of ClusterImageRewrite "older"/,
      },
      {
        name: "the same pattern, the same replacement",
        older: QUAY("a.example.com/quay/$1"),
        newer: QUAY("a.example.com/quay/$1"),
        status: "True",
        reason: "Valid",
        message:
          /never decides: rule 0 of ClusterImageRewrite "newer"|never decides: rule 0 of ClusterImageRewrite "older"/,
      },
    ];
  for (const row of rows) {
    await t.step(row.name, async () => {
      const api = FakeKubeApi.start();
      api.create(clusterRewrite("older", row.older));
      api.create(clusterRewrite("newer", row.newer));
      const { source } = await replica(api);
      try {
        const older = await until("the older object's status", () => ready(api, "ClusterImageRewrite", "older"));
        assert.equal(older["reason"], "Valid");
        const both = await until("a status naming the other object", () => {
          const conditions = [ready(api, "ClusterImageRewrite", "older"), ready(api, "ClusterImageRewrite", "newer")];
          const found = conditions.find((c) => row.message.test(String(c?.["message"])));
          return found;
        });
        assert.equal(both["status"], row.status);
        assert.equal(both["reason"], row.reason);
      } finally {
        await source.stop();
        await api.close();
      }
    });
  }
});
