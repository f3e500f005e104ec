// Verified rules against hostile registries: a tenant cannot make the webhook call hosts the platform did not name.

import assert from "node:assert/strict";
import { loadRuleTexts } from "../lib/compat/load.ts";
import { createWebhookHandler } from "../lib/server/handler.ts";
import { createMetrics } from "../lib/server/metrics.ts";
import { VerifyPolicy } from "../lib/verify/policy.ts";
import { Verifier } from "../lib/verify/verifier.ts";
import { freePort, pushImage, registryInstalled, startRegistry } from "./support/registry.ts";
import { startTokenRegistry } from "./support/token_registry.ts";
import { memoryLogger, tempDir } from "./support/webhook.ts";
import { admissionReview } from "./support/admission_review.ts";

const ignore = Deno.env.get("MIRRORHOOK_SKIP_REGISTRY") === "1" && !registryInstalled();

const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";

/** Where a rule sends `docker.io/<prefix>/…`, and who wrote it. */
interface Route {
  readonly prefix: string;
  readonly target: string;
  readonly namespace?: string;
}

function ruleText(routes: readonly Route[]): string {
  return routes.map((route, index) =>
    `apiVersion: mirrorhook.dev/v1alpha1
kind: ${route.namespace === undefined ? "ClusterImageRewrite" : "ImageRewrite"}
metadata:
  name: r${index}${route.namespace === undefined ? "" : `\n  namespace: ${route.namespace}`}
spec:
  verify: true
  onMissing: keep
  rules:
    - prefix: docker.io/${route.prefix}
      replace: ${route.target}
`
  ).join("---\n");
}

/** A plain-HTTP server recording every request; `answer` decides each response. */
function recordingServer(answer: (url: URL, request: Request) => Response): {
  host: string;
  seen: string[];
  close: () => Promise<void>;
} {
  const seen: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const url = new URL(request.url);
    seen.push(`${request.method} ${url.pathname}${request.headers.has("authorization") ? " +auth" : ""}`);
    return answer(url, request);
  });
  return { host: `127.0.0.1:${server.addr.port}`, seen, close: () => server.shutdown() };
}

/** A TCP server that answers every connection with bytes that are not HTTP. */
function garbageServer(): { host: string; close: () => Promise<void> } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const loop = (async () => {
    try {
      for await (const conn of listener) {
        await conn.write(new TextEncoder().encode("\x16\x03\x01 not http at all\r\n\r\n")).catch(() => {});
        conn.close();
      }
    } catch {
      // Listener closed.
    }
  })();
  return {
    host: `127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    close: async () => {
      listener.close();
      await loop;
    },
  };
}

function review(namespace: string, images: readonly string[]): Record<string, unknown> {
  return admissionReview({
    namespace,
    object: {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "p", namespace },
      spec: { containers: images.map((image, i) => ({ name: `c${i}`, image })) },
    },
  });
}

/** The webhook core as `serve` builds it: the verifier with a policy, bounded by the admission deadline. */
async function webhook(
  routes: readonly Route[],
  setup: { registries: string[]; insecure: string[]; clusterRules: "listed" | "any"; deadlineMs?: number },
) {
  const loaded = loadRuleTexts([{ name: "rules.yaml", text: ruleText(routes) }]);
  assert.deepEqual(loaded.problems.filter((problem) => problem.severity === "error"), []);
  const deadlineMs = setup.deadlineMs ?? 2_000;
  const verifier = await Verifier.create({
    policy: VerifyPolicy.create({ registries: setup.registries, clusterRules: setup.clusterRules }),
    insecureRegistries: setup.insecure,
    deadlineMs,
  });
  const handle = createWebhookHandler({
    rules: () => loaded.ruleSet,
    metrics: createMetrics({ defaultMetrics: false }),
    logger: memoryLogger().logger,
    verifier,
    verifyDeadlineMs: deadlineMs,
  });
  const admit = async (namespace: string, image: string): Promise<{ image: string; warnings: string[] }> => {
    const response = await handle(
      new Request("https://webhook/mutate", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(review(namespace, [image])),
      }),
    );
    const { response: answer } = await response.json();
    const patch: { path: string; value: unknown }[] = typeof answer.patch === "string"
      ? JSON.parse(atob(answer.patch))
      : [];
    const replaced = patch.find((op) => op.path === "/spec/containers/0/image")?.value;
    return { image: typeof replaced === "string" ? replaced : image, warnings: answer.warnings ?? [] };
  };
  return { admit, close: () => verifier.close() };
}

/** The one warning about verification, with the image names in it. */
function verifyWarning(warnings: readonly string[]): string {
  const found = warnings.find((warning) => /verified|not in the registry|could not be checked/.test(warning));
  assert.ok(found !== undefined, `no verification warning in ${JSON.stringify(warnings)}`);
  return found;
}

const NETWORK_DETAIL = /refused|corrupt|reset|connect|tcp|dns|http:\/\/|127\.0\.0\.1:\d+\/|os error|metadata/i;

Deno.test({
  name: "a tenant's verified rule reaches only the registries the platform listed",
  ignore,
  fn: async (t) => {
    await using registry = await startRegistry();
    await pushImage(registry.url, "team/app", "v1");
    const hostile = recordingServer(() =>
      new Response(null, { status: 200, headers: { "content-type": OCI_MANIFEST } })
    );
    const routes: Route[] = [
      { prefix: "listed", target: `${registry.host}/team`, namespace: "team-a" },
      { prefix: "evil", target: `${hostile.host}/x`, namespace: "team-a" },
      { prefix: "platform", target: `${hostile.host}/y` },
    ];
    const listedOnly = await webhook(routes, { registries: [], insecure: [registry.host], clusterRules: "listed" });
    const clusterAny = await webhook(routes, { registries: [], insecure: [registry.host], clusterRules: "any" });
    try {
      await t.step("a listed registry: verified, for the tenant too", async () => {
        const result = await listedOnly.admit("team-a", "docker.io/listed/app:v1");
        assert.equal(result.image, `${registry.host}/team/app:v1`);
        assert.match(verifyWarning(result.warnings), /verified in the registry/);
      });
      await t.step("the tenant's unlisted registry: not contacted, 'registry not allowed'", async () => {
        for (const webhook of [listedOnly, clusterAny]) {
          const result = await webhook.admit("team-a", "docker.io/evil/app:v1");
          assert.equal(result.image, "docker.io/evil/app:v1");
          assert.match(verifyWarning(result.warnings), /could not be checked \(error: registry not allowed\)/);
        }
        assert.deepEqual(hostile.seen, []);
      });
      await t.step("a cluster-wide rule's unlisted registry: refused under listed", async () => {
        const result = await listedOnly.admit("default", "docker.io/platform/app:v1");
        assert.match(verifyWarning(result.warnings), /registry not allowed/);
        assert.deepEqual(hostile.seen, []);
      });
      await t.step("under any, a loopback address not listed is still refused, with no detail", async () => {
        const result = await clusterAny.admit("default", "docker.io/platform/app:v1");
        assert.equal(result.image, "docker.io/platform/app:v1");
        const warning = verifyWarning(result.warnings);
        assert.match(warning, /could not be checked \(error\)/);
        assert.doesNotMatch(warning.replaceAll(hostile.host, "HOST"), NETWORK_DETAIL);
        assert.deepEqual(hostile.seen, []);
      });
    } finally {
      await listedOnly.close();
      await clusterAny.close();
      await hostile.close();
    }
  },
});

Deno.test({
  name: "a listed registry cannot redirect or send the token request to a host that is not listed",
  ignore,
  fn: async (t) => {
    // The "metadata service": must never be reached.
    const metadata = recordingServer((url) =>
      url.pathname.startsWith("/token")
        ? Response.json({ token: "metadata-token" })
        : new Response(null, { status: 200, headers: { "content-type": OCI_MANIFEST } })
    );
    const hostile = recordingServer((url, request) => {
      if (url.pathname.startsWith("/v2/redirect/")) {
        return new Response(null, {
          status: 302,
          headers: { location: `http://${metadata.host}/latest/meta-data/iam/security-credentials/` },
        });
      }
      if (url.pathname.startsWith("/v2/samehost/")) {
        return new Response(null, { status: 307, headers: { location: url.pathname.replace("samehost", "moved") } });
      }
      if (url.pathname.startsWith("/v2/moved/")) {
        return new Response(null, { status: 200, headers: { "content-type": OCI_MANIFEST } });
      }
      if (url.pathname.startsWith("/v2/realm/")) {
        if (request.headers.get("authorization") === "Bearer metadata-token") {
          return new Response(null, { status: 200, headers: { "content-type": OCI_MANIFEST } });
        }
        return new Response(null, {
          status: 401,
          headers: { "www-authenticate": `Bearer realm="http://${metadata.host}/token",service="x"` },
        });
      }
      return new Response(null, { status: 404 });
    });
    const routes: Route[] = [
      { prefix: "redirect", target: `${hostile.host}/redirect`, namespace: "team-a" },
      { prefix: "samehost", target: `${hostile.host}/samehost`, namespace: "team-a" },
      { prefix: "realm", target: `${hostile.host}/realm`, namespace: "team-a" },
    ];
    // The platform listed the hostile registry (say, a registry a tenant runs), not the metadata host.
    const { admit, close } = await webhook(routes, {
      registries: [hostile.host],
      insecure: [hostile.host],
      clusterRules: "listed",
    });
    try {
      await t.step("302 to plain HTTP on another host: not followed, not verified", async () => {
        const result = await admit("team-a", "docker.io/redirect/app:v1");
        assert.equal(result.image, "docker.io/redirect/app:v1");
        assert.match(verifyWarning(result.warnings), /could not be checked \(error\)/);
      });
      await t.step("a redirect on the same host is followed", async () => {
        const result = await admit("team-a", "docker.io/samehost/app:v1");
        assert.equal(result.image, `${hostile.host}/samehost/app:v1`);
        assert.deepEqual(hostile.seen.slice(-2), [
          "HEAD /v2/samehost/app/manifests/v1",
          "HEAD /v2/moved/app/manifests/v1",
        ]);
      });
      await t.step("a plain-HTTP token realm on another host: never asked, so its token never comes back", async () => {
        const result = await admit("team-a", "docker.io/realm/app:v1");
        assert.equal(result.image, "docker.io/realm/app:v1");
        assert.match(verifyWarning(result.warnings), /could not be checked \(error\)/);
        assert.ok(!hostile.seen.some((line) => line.endsWith("+auth")), hostile.seen.join("\n"));
      });
      assert.deepEqual(metadata.seen, []);
    } finally {
      await close();
      await hostile.close();
      await metadata.close();
    }
  },
});

Deno.test({
  name: "warnings do not tell a closed port from an open one",
  ignore,
  fn: async () => {
    const garbage = garbageServer();
    const closedHost = `127.0.0.1:${freePort()}`;
    const routes: Route[] = [
      { prefix: "closed", target: `${closedHost}/x` },
      { prefix: "garbage", target: `${garbage.host}/x` },
    ];
    // Listed (as insecure), so they are asked: the registries exist as far as the policy is concerned.
    const { admit, close } = await webhook(routes, {
      registries: [],
      insecure: [closedHost, garbage.host],
      clusterRules: "listed",
    });
    try {
      const closed = verifyWarning((await admit("team-a", "docker.io/closed/app:v1")).warnings);
      const open = verifyWarning((await admit("team-a", "docker.io/garbage/app:v1")).warnings);
      const neutral = (warning: string, host: string, prefix: string) =>
        warning.replaceAll(host, "HOST").replaceAll(prefix, "X").replace(/ImageRewrite r\d+/, "ImageRewrite R");
      assert.equal(neutral(closed, closedHost, "closed"), neutral(open, garbage.host, "garbage"));
      assert.match(closed, /could not be checked \(error\)/);
      assert.doesNotMatch(closed.replaceAll(closedHost, "HOST"), NETWORK_DETAIL);
    } finally {
      await close();
      await garbage.close();
    }
  },
});

Deno.test({
  name: "a real token-auth registry: its token server is asked only when listed, with credentials only then",
  ignore,
  fn: async (t) => {
    const user = { username: "mirror", password: "mirror-pass" };
    await using secured = await startTokenRegistry(user);
    await using dir = await tempDir("mirrorhook-verify-");
    const config = `${dir.path}/config.json`;
    await Deno.writeTextFile(config, JSON.stringify({ auths: { [secured.host]: user } }));
    const image = `${secured.host}/team/app:v1`;
    await t.step(
      "the token server (another port, plain HTTP) not listed: not asked, could not be checked",
      async () => {
        const verifier = await Verifier.create({
          policy: VerifyPolicy.create({ registries: [secured.host] }),
          insecureRegistries: [secured.host],
          dockerConfigs: [config],
        });
        try {
          const result = await verifier.check(image);
          assert.deepEqual([result.status, result.detail], ["error", undefined]);
          assert.match(result.cause ?? "", /refusing the plain-HTTP token realm/);
          assert.equal(secured.tokenRequests.length, 0);
        } finally {
          await verifier.close();
        }
      },
    );
    await t.step("listed: the token is fetched with the credentials, and the registry answers", async () => {
      const verifier = await Verifier.create({
        policy: VerifyPolicy.create({ registries: [secured.host] }),
        insecureRegistries: [secured.host, secured.tokenHost],
        dockerConfigs: [config],
      });
      try {
        const result = await verifier.check(image);
        assert.equal(result.status, "missing", result.cause ?? result.detail ?? "");
        assert.ok(secured.tokenRequests.length > 0);
        assert.ok(secured.tokenRequests.every((request) => request.account === user.username));
      } finally {
        await verifier.close();
      }
    });
  },
});
