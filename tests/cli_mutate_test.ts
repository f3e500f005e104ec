// `mirrorhook mutate` run as a subprocess on workloads, Lists and multi-document streams (helm template output).

import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { ROOT, runCli } from "./support/cli.ts";

const HELM_TEMPLATE = `${ROOT}tests/fixtures/cli/helm-template.yaml`;
const HARBOR = "harbor.example.com/dockerhub";

const RULES = `apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: hub
spec:
  rules:
    - prefix: docker.io
      replace: ${HARBOR}
---
apiVersion: mirrorhook.dev/v1alpha1
kind: ImageRewrite
metadata:
  name: canary-migration
  namespace: canary
spec:
  priority: 10
  rules:
    - prefix: old-registry.company.com
      replace: new-registry.company.com
`;

// Parsed manifests are walked freely in assertions.
// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

function documents(text: string): Json[] {
  return parseAllDocuments(text).map((doc) => doc.toJS() as Json);
}

async function withRules<T>(body: (rules: string) => Promise<T>): Promise<T> {
  const rules = await Deno.makeTempFile({ prefix: "mirrorhook-mutate-", suffix: ".yaml" });
  try {
    await Deno.writeTextFile(rules, RULES);
    return await body(rules);
  } finally {
    await Deno.remove(rules);
  }
}

function deployment(name: string, namespace: string | undefined, image: string, labels: Json = {}): Json {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name, ...(namespace === undefined ? {} : { namespace }) },
    spec: {
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name, ...labels } }, spec: { containers: [{ name: "app", image }] } },
    },
  };
}

Deno.test("mutate -f - rewrites every Pod template of a helm template stream and keeps other documents", async () => {
  const input = await Deno.readTextFile(HELM_TEMPLATE);
  await withRules(async (rules) => {
    const result = await runCli(["mutate", "-f", "-", "--rules", rules], { stdin: input });
    assert.equal(result.code, 0, result.stderr);
    const before = documents(input);
    const after = documents(result.stdout);
    assert.deepEqual(after.map((doc) => doc.kind), before.map((doc) => doc.kind));
    for (const [index, doc] of before.entries()) {
      if (["ServiceAccount", "ConfigMap", "Service"].includes(doc.kind)) assert.deepEqual(after[index], doc);
    }
    // Untouched documents keep their comments and quoting.
    assert.ok(result.stdout.includes("  # image references in data are not Pod images: never rewritten\n"));
    assert.ok(result.stdout.includes('  sidecar-image: "busybox:1.36"\n'));
    assert.ok(result.stdout.includes("# Source: web/templates/deployment.yaml\n"));

    const byKind = (kind: string) => after.find((doc) => doc.kind === kind)!;
    const web = byKind("Deployment").spec.template;
    assert.equal(web.spec.containers[0].image, `${HARBOR}/library/nginx:1.27.0`);
    assert.equal(web.spec.containers[1].image, "quay.io/nginx/nginx-prometheus-exporter:1.3.0");
    assert.equal(web.spec.initContainers[0].image, `${HARBOR}/library/busybox:1.36`);
    assert.deepEqual(JSON.parse(web.metadata.annotations["mirrorhook.dev/original-images"]), {
      "wait-for-cache": "busybox:1.36",
      web: "nginx:1.27.0",
    });
    assert.equal(
      web.metadata.annotations["checksum/config"],
      before[3]!.spec.template.metadata.annotations["checksum/config"],
    );
    assert.equal(
      byKind("StatefulSet").spec.template.spec.containers[0].image,
      `${HARBOR}/bitnami/redis:7.4.1-debian-12-r0`,
    );
    assert.equal(
      byKind("CronJob").spec.jobTemplate.spec.template.spec.containers[0].image,
      `${HARBOR}/bitnami/kubectl:1.31`,
    );
    assert.equal(byKind("Pod").spec.containers[0].image, `${HARBOR}/library/busybox:latest`);
    assert.match(result.stderr, /^Deployment web\/my-release-web: mirrorhook: rewrote nginx:1\.27\.0 to /m);

    // Its own output, mutated again, changes nothing.
    const again = await runCli(["mutate", "-f", "-", "--rules", rules], { stdin: result.stdout });
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(documents(again.stdout), after);
  });
});

Deno.test("mutate --summary lists object, container, from → to and rule", async () => {
  await withRules(async (rules) => {
    const result = await runCli(["mutate", "-f", HELM_TEMPLATE, "--rules", rules, "--summary"]);
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.trimEnd().split("\n");
    assert.match(lines[0]!, /^OBJECT\s+CONTAINER\s+FROM → TO\s+RULE$/);
    assert.ok(
      lines.some((line) =>
        /^CronJob web\/my-release-web-backup\s+backup\s+bitnami\/kubectl:1\.31 → harbor\.example\.com\/dockerhub\/bitnami\/kubectl:1\.31\s+ClusterImageRewrite hub, rule 0$/
          .test(line)
      ),
      result.stdout,
    );
    assert.equal(lines.filter((line) => line.startsWith("Deployment web/my-release-web ")).length, 2);
    assert.equal(lines.at(-1), "4 Pod(s) or Pod template(s), 5 image(s) rewritten");
    assert.doesNotMatch(result.stderr, /rewrote/);
  });
});

Deno.test("mutate rewrites a List (kubectl get -A -o json) with each object's namespace", async () => {
  const list = {
    apiVersion: "v1",
    kind: "List",
    items: [
      deployment("api", "canary", "old-registry.company.com/team/api:2"),
      deployment("api", "prod", "old-registry.company.com/team/api:2"),
      deployment("quiet", "canary", "nginx:1.27", { "mirrorhook.dev/rewrite": "disabled" }),
      deployment("loose", undefined, "old-registry.company.com/team/api:2"),
      { apiVersion: "v1", kind: "Service", metadata: { name: "api", namespace: "canary" }, spec: { ports: [] } },
    ],
  };
  await withRules(async (rules) => {
    const result = await runCli(["mutate", "-f", "-", "-r", rules, "-n", "canary", "-o", "json"], {
      stdin: JSON.stringify(list),
    });
    assert.equal(result.code, 0, result.stderr);
    const out = JSON.parse(result.stdout);
    assert.equal(out.kind, "List");
    const image = (index: number) => out.items[index].spec.template.spec.containers[0].image;
    assert.equal(image(0), "new-registry.company.com/team/api:2");
    assert.equal(image(1), "old-registry.company.com/team/api:2", "the canary rule must not reach prod");
    assert.equal(image(2), "nginx:1.27", "an opted-out template stays");
    assert.equal(image(3), "new-registry.company.com/team/api:2", "--namespace applies to objects that name none");
    assert.deepEqual(out.items[4], list.items[4]);
    assert.match(result.stderr, /Deployment canary\/quiet left alone: opted-out/);
  });
});
