// The server with --kube against an API server speaking the real list/watch protocol: objects and namespace labels
// from the API decide admissions over real TLS, and changes are in force within a second.

import assert from "node:assert/strict";
import { startServer } from "../lib/server/app.ts";
import { mintCertificates } from "../lib/server/certs.ts";
import { FakeKubeApi } from "./support/fake_kube_api.ts";
import { memoryLogger, patchedImage, postReview, readyz, tempDir, testConfig, waitFor } from "./support/webhook.ts";

const HARBOR = "harbor.example.com/dockerhub/library/nginx:1.27";
const QUAY = "quay-mirror.example.com/hub/library/nginx:1.27";

function hub(selector: Record<string, string>): Record<string, unknown> {
  return {
    apiVersion: "mirrorhook.dev/v1alpha1",
    kind: "ClusterImageRewrite",
    metadata: { name: "hub" },
    spec: {
      namespaceSelector: { matchLabels: selector },
      rules: [{ prefix: "docker.io", replace: "harbor.example.com/dockerhub" }],
    },
  };
}

Deno.test("serve --kube: rules and namespace labels from the API decide admissions", async (t) => {
  await using dir = await tempDir("mirrorhook-kube-e2e-");
  await using api = FakeKubeApi.start();
  const chain = await mintCertificates();
  await Deno.mkdir(`${dir.path}/tls`);
  await Deno.writeTextFile(`${dir.path}/tls/tls.crt`, chain.cert);
  await Deno.writeTextFile(`${dir.path}/tls/tls.key`, chain.key);
  await Deno.writeTextFile(`${dir.path}/kubeconfig`, api.kubeConfigYaml());
  api.create({ apiVersion: "v1", kind: "Namespace", metadata: { name: "default", labels: { env: "prod" } } });
  api.create(hub({ env: "prod" }));

  const server = await startServer(
    testConfig({ rules: [], tlsDir: `${dir.path}/tls`, kube: true, kubeconfig: `${dir.path}/kubeconfig` }),
    { logger: memoryLogger().logger },
  );
  const client = Deno.createHttpClient({ caCerts: [chain.caCert] });
  const admitted = async () => {
    const { status, text } = await postReview(client, server.webhookPort, { host: "localhost" });
    assert.equal(status, 200);
    return patchedImage(JSON.parse(text).response) ?? "nginx:1.27";
  };
  try {
    await t.step("ready after the first complete lists, with the API's rules in force", async () => {
      const ready = await waitFor(async () => (await readyz(server.probePort)).status === 200 ? true : undefined, {
        timeoutMs: 5000,
      });
      assert.ok(ready, "/readyz never turned 200");
      assert.equal(await admitted(), HARBOR);
    });

    await t.step("a namespace whose labels stop matching is no longer rewritten (within 1 s)", async () => {
      api.modify("Namespace", "default", undefined, (ns) => {
        (ns["metadata"] as Record<string, unknown>)["labels"] = { env: "dev" };
      });
      const changed = await waitFor(async () => (await admitted()) === "nginx:1.27" ? true : undefined, {
        timeoutMs: 1000,
      });
      assert.ok(changed, "namespace label change not in force within 1 s");
    });

    await t.step("a changed object is in force within 1 s", async () => {
      api.modify("ClusterImageRewrite", "hub", undefined, (object) => {
        object["spec"] = {
          namespaceSelector: { matchLabels: { env: "dev" } },
          rules: [{ prefix: "docker.io", replace: "quay-mirror.example.com/hub" }],
        };
      });
      const changed = await waitFor(async () => (await admitted()) === QUAY ? true : undefined, { timeoutMs: 1000 });
      assert.ok(changed, "object change not in force within 1 s");
    });

    await t.step("the object's status says Ready", async () => {
      const done = await waitFor(() => {
        const status = api.get("ClusterImageRewrite", "hub")?.["status"] as
          | { conditions?: { type: string; status: string }[] }
          | undefined;
        return status?.conditions?.find((c) => c.type === "Ready")?.status === "True" ? true : undefined;
      }, { timeoutMs: 2000 });
      assert.ok(done, "status not written");
    });

    await t.step("a deleted object stops rewriting within 1 s", async () => {
      api.delete("ClusterImageRewrite", "hub");
      const gone = await waitFor(async () => (await admitted()) === "nginx:1.27" ? true : undefined, {
        timeoutMs: 1000,
      });
      assert.ok(gone);
    });
  } finally {
    client.close();
    await server.shutdown("test");
  }
});
