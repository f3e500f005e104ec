// `serve` wires the verification policy: --verify-registry and --verify-cluster-rules decide, over real HTTPS.

import assert from "node:assert/strict";
import { mintCertificates } from "../lib/server/certs.ts";
import { startServer, StartupError } from "../lib/server/app.ts";
import { KubeMount } from "./support/kube_mount.ts";
import { pushImage, registryInstalled, startRegistry } from "./support/registry.ts";
import { memoryLogger, postReview, tempDir, testConfig } from "./support/webhook.ts";

const ignore = Deno.env.get("MIRRORHOOK_SKIP_REGISTRY") === "1" && !registryInstalled();

/** A tenant's verified rule for nginx (podReview's image, in namespace default) to `target`. */
function tenantRule(target: string): string {
  return `apiVersion: mirrorhook.dev/v1alpha1
kind: ImageRewrite
metadata:
  name: tenant-mirror
  namespace: default
spec:
  verify: true
  rules:
    - prefix: docker.io/library
      replace: ${target}
`;
}

async function serveWith(rules: string, verify: { registries: string[]; insecure: string[] }) {
  const dir = await tempDir("mirrorhook-verify-");
  const chain = await mintCertificates();
  const tls = await KubeMount.create(`${dir.path}/tls`, { "tls.crt": chain.cert, "tls.key": chain.key });
  const mount = await KubeMount.create(`${dir.path}/rules`, { "rules.yaml": rules });
  const log = memoryLogger();
  const server = await startServer(
    testConfig({
      rules: [mount.dir],
      tlsDir: tls.dir,
      verify: {
        deadlineMs: 2_000,
        dockerConfigs: [],
        insecureRegistries: verify.insecure,
        caFiles: {},
        registries: verify.registries,
        clusterRules: "listed",
      },
    }),
    { logger: log.logger },
  );
  const client = Deno.createHttpClient({ caCerts: [chain.caCert] });
  const admit = async () => {
    const answer = await postReview(client, server.webhookPort);
    const { response } = JSON.parse(answer.text);
    return { patched: typeof response.patch === "string", warnings: (response.warnings ?? []) as string[] };
  };
  return {
    admit,
    messages: log.messages,
    [Symbol.asyncDispose]: async () => {
      client.close();
      await server.shutdown("test");
      await dir[Symbol.asyncDispose]();
    },
  };
}

Deno.test({
  name: "serve: a tenant's verified rule asks only listed registries",
  ignore,
  fn: async (t) => {
    await using registry = await startRegistry();
    await pushImage(registry.url, "library/nginx", "1.27");
    await t.step("listed with --verify-registry: verified and rewritten", async () => {
      await using server = await serveWith(tenantRule(`${registry.host}/library`), {
        registries: [registry.host],
        insecure: [registry.host],
      });
      const answer = await server.admit();
      assert.ok(answer.patched, answer.warnings.join("\n"));
      assert.ok(
        answer.warnings.some((warning) => /verified in the registry/.test(warning)),
        answer.warnings.join("\n"),
      );
      assert.ok(server.messages().some((message) => message.includes(`may check ${registry.host}`)));
    });
    await t.step("not listed: never contacted, kept, and the warning says why", async () => {
      const hits: string[] = [];
      await using hostile = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
        hits.push(request.url);
        return new Response(null, { status: 200 });
      });
      await using server = await serveWith(tenantRule(`127.0.0.1:${hostile.addr.port}/library`), {
        registries: [registry.host],
        insecure: [],
      });
      const answer = await server.admit();
      assert.equal(answer.patched, false);
      assert.ok(
        answer.warnings.some((warning) => /could not be checked \(error: registry not allowed\)/.test(warning)),
        answer.warnings.join("\n"),
      );
      assert.deepEqual(hits, []);
      // And the log said so at start-up, naming the object and the registry.
      assert.ok(
        server.messages().some((message) =>
          message.includes(`verifies against 127.0.0.1:${hostile.addr.port}, which namespaced rules may not ask`)
        ),
        server.messages().join("\n"),
      );
    });
  },
});

Deno.test("serve: a --verify-registry value that is not HOST[:PORT] stops start-up, naming it", async () => {
  await using dir = await tempDir("mirrorhook-verify-");
  const chain = await mintCertificates();
  const tls = await KubeMount.create(`${dir.path}/tls`, { "tls.crt": chain.cert, "tls.key": chain.key });
  const rules = await KubeMount.create(`${dir.path}/rules`, { "rules.yaml": tenantRule("harbor.example.com/lib") });
  const error = await startServer(
    testConfig({
      rules: [rules.dir],
      tlsDir: tls.dir,
      verify: {
        deadlineMs: 2_000,
        dockerConfigs: [],
        insecureRegistries: [],
        caFiles: {},
        registries: ["harbor/team"],
      },
    }),
    { logger: memoryLogger().logger },
  ).then(async (server) => {
    await server.shutdown("test");
    return undefined;
  }, (error: unknown) => error);
  assert.ok(error instanceof StartupError, String(error));
  assert.match(error.message, /verify registry "harbor\/team": expected a registry HOST\[:PORT\]/);
});
