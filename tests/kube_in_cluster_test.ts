// The in-cluster service account access against a fake API server over real TLS: CA, token, rotation, errors.

import assert from "node:assert/strict";
import { mintCertificates } from "../lib/server/certs.ts";
import { FakeKubeApi } from "./support/fake_kube_api.ts";
import { KubeHttp } from "../lib/sources/kube/http.ts";
import { InClusterAccess } from "../lib/sources/kube/in_cluster.ts";

const PATH = "/apis/mirrorhook.dev/v1alpha1/clusterimagerewrites";

Deno.test("in a cluster: the mounted CA and token reach the API server, and a rotated token is read again", async () => {
  const chain = await mintCertificates({ ipAddresses: ["127.0.0.1"], dnsNames: ["localhost"] });
  const dir = await Deno.makeTempDir({ prefix: "mirrorhook-sa-" });
  const api = FakeKubeApi.start({ tls: { cert: chain.cert, key: chain.key }, caCert: chain.caCert });
  try {
    await Deno.writeTextFile(`${dir}/ca.crt`, chain.caCert);
    await Deno.writeTextFile(`${dir}/token`, `${api.token}\n`);
    const port = new URL(api.url).port;
    const env = (name: string) => ({ KUBERNETES_SERVICE_HOST: "127.0.0.1", KUBERNETES_SERVICE_PORT: port })[name];
    const access = new InClusterAccess({ dir, env, tokenMaxAgeMs: 0 });
    assert.equal(access.getCurrentCluster().server, api.url);
    const http = new KubeHttp(access, 5000);
    const signal = new AbortController().signal;
    assert.equal((await http.request("GET", PATH, { signal })).status, 200);

    await Deno.writeTextFile(`${dir}/token`, "revoked");
    assert.equal((await http.request("GET", PATH, { signal })).status, 401, "the new token is used");

    await Deno.writeTextFile(`${dir}/token`, api.token);
    const other = await mintCertificates({ ipAddresses: ["127.0.0.1"] });
    await Deno.writeTextFile(`${dir}/ca.crt`, other.caCert);
    await assert.rejects(http.request("GET", PATH, { signal }), "a CA that did not sign the server is refused");
  } finally {
    await api.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("in a cluster: an IPv6 service host is bracketed; no service host is a clear error", () => {
  const env = (name: string) => ({ KUBERNETES_SERVICE_HOST: "fd00::1", KUBERNETES_SERVICE_PORT: "443" })[name];
  assert.equal(new InClusterAccess({ env }).getCurrentCluster().server, "https://[fd00::1]:443");
  assert.throws(() => new InClusterAccess({ env: () => undefined }), /not running in a cluster/);
});
