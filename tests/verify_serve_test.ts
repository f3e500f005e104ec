// `serve` wires the verification policy: --verify-registry and --verify-cluster-rules decide, over real HTTPS.

import assert from "node:assert/strict";
import { mintCertificates } from "../lib/server/certs.ts";
import { startServer, StartupError } from "../lib/server/app.ts";
import { KubeMount } from "./support/kube_mount.ts";
import { pushImage, registryInstalled, startRegistry, startSilentServer } from "./support/registry.ts";
import { memoryLogger, metricValue, postReview, tempDir, testConfig } from "./support/webhook.ts";

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

async function serveWith(
  rules: string,
  verify: { registries: string[]; insecure: string[]; deadlineMs?: number },
) {
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
        deadlineMs: verify.deadlineMs ?? 2_000,
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
    metricsText: () => server.metrics.registry.metrics(),
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

Deno.test("serve: a listed registry that never answers costs the first admission its deadline, the next 20 nothing", async () => {
  await using silent = startSilentServer();
  const deadlineMs = 500;
  await using server = await serveWith(tenantRule(`${silent.host}/library`), {
    registries: [silent.host],
    insecure: [silent.host],
    deadlineMs,
  });
  const started = performance.now();
  const first = await server.admit();
  const firstMs = performance.now() - started;
  assert.equal(first.patched, false);
  assert.ok(firstMs >= deadlineMs - 50, `the first admission answered in ${firstMs} ms, before the deadline`);
  assert.ok(first.warnings.some((warning) => /could not be checked/.test(warning)), first.warnings.join("\n"));
  const batchStarted = performance.now();
  const later = await Promise.all(Array.from({ length: 20 }, () => server.admit()));
  const batchMs = performance.now() - batchStarted;
  assert.ok(batchMs < deadlineMs, `20 concurrent admissions took ${batchMs} ms: they waited for the registry`);
  for (const answer of later) {
    assert.equal(answer.patched, false);
    assert.ok(answer.warnings.some((warning) => /could not be checked/.test(warning)), answer.warnings.join("\n"));
  }
  // One connection, one lookup: the others were answered from the cached failure or as overdue.
  assert.equal(silent.accepted(), 1);
  const text = await server.metricsText();
  const fallbacks = ["hit", "overdue"].reduce(
    (sum, cache) =>
      sum + ["error", "timeout"].reduce(
        (inner, result) => inner + metricValue(text, "mirrorhook_verify_checks_total", { result, cache }),
        0,
      ),
    0,
  );
  assert.equal(fallbacks, 20, text);
});
