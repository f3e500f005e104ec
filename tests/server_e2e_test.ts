// End-to-end: the real server over real TLS, verified as an API server would, fed the AdmissionReviews in
// tests/fixtures/admission/ (the listing is the test list); every patch is applied with fast-json-patch and re-admitted.

import assert from "node:assert/strict";
import jsonpatch, { type Operation } from "fast-json-patch";
import { resetSync } from "@logtape/logtape";
import { type RunningServer, type ServeConfig, startServer } from "../lib/server/app.ts";
import { mintCertificates } from "../lib/server/certs.ts";
import { configureLogging, logger } from "../lib/server/log.ts";
import { createMetrics } from "../lib/server/metrics.ts";

const FIXTURES = decodeURIComponent(new URL("./fixtures/admission/", import.meta.url).pathname);
const MAX_BODY_BYTES = 128 * 1024;
const SERVICE_DNS = "mirrorhook.mirrorhook-system.svc";

/** The example object from DESIGN.md as written, and an unscoped frozen-registry rule (to show kube-system exclusion). */
const RULES = `apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite        # cluster-scoped; ImageRewrite is namespaced
metadata:
  name: docker-hub-cache
spec:
  priority: 0                    # higher first; ties: namespaced, then name
  namespaces: [canary, staging]  # optional scope (ClusterImageRewrite only)
  namespaceSelector: {}          # optional label selector (needs API access)
  podSelector: {}                # optional label selector on the Pod
  rules:
    - exact: ghcr.io/fantasy/coolstuff:v1.0          # whole reference
      replace: my-registry.com/patched-coolstuff:latest
    - prefix: docker.io/library                       # path-segment prefix
      replace: harbor.example.com/dockerhub/library
    - prefix: docker.io
      replace: harbor.example.com/dockerhub
    - match: '^(gcr\\.io|quay\\.io|ghcr\\.io)/(.*)$'     # regular expression
      replace: cache.internal.com/$1/$2
    - prefix: internal-registry.company.com           # keep: never rewrite
      keep: true
---
apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: frozen-k8s-gcr
spec:
  rules:
    - prefix: k8s.gcr.io
      replace: registry.k8s.io
`;

/** `field → name → image`, as a fixture's `expect.images` lists them. */
type Images = Record<string, Record<string, string>>;

/**
 * One file in tests/fixtures/admission/. The body is `review` as JSON (with `padBytes` more bytes in an
 * annotation, to go over the limit) or `bodyBase64` verbatim.
 */
interface Fixture {
  readonly description: string;
  readonly review?: { request: Record<string, unknown> } & Record<string, unknown>;
  readonly bodyBase64?: string;
  readonly padBytes?: number;
  readonly expect: {
    readonly status: number;
    readonly allowed: boolean;
    readonly patched?: boolean;
    readonly uid?: string;
    readonly images?: Images;
  };
}

async function readFixtures(): Promise<{ name: string; fixture: Fixture }[]> {
  const out: { name: string; fixture: Fixture }[] = [];
  for await (const entry of Deno.readDir(FIXTURES)) {
    if (!entry.isFile || !entry.name.endsWith(".json")) continue;
    out.push({
      name: entry.name.slice(0, -".json".length),
      fixture: JSON.parse(await Deno.readTextFile(FIXTURES + entry.name)),
    });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : 1));
}

function imagesOf(object: unknown): Images {
  const spec = (object as { spec?: Record<string, unknown> }).spec ?? {};
  const out: Images = {};
  for (const field of ["initContainers", "containers", "ephemeralContainers"]) {
    for (const container of (spec[field] ?? []) as { name: string; image: string }[]) {
      (out[field] ??= {})[container.name] = container.image;
    }
  }
  for (const volume of (spec["volumes"] ?? []) as { name: string; image?: { reference: string } }[]) {
    if (volume.image !== undefined) (out["volumes"] ??= {})[volume.name] = volume.image.reference;
  }
  return out;
}

function patchOf(response: Record<string, unknown>): Operation[] | undefined {
  if (response["patch"] === undefined) return undefined;
  assert.equal(response["patchType"], "JSONPatch");
  const bytes = Uint8Array.from(atob(response["patch"] as string), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

async function run(command: string, args: string[]): Promise<{ code: number; out: string }> {
  const { code, stdout, stderr } = await new Deno.Command(command, { args, stdin: "null" }).output();
  const decoder = new TextDecoder();
  return { code, out: decoder.decode(stdout) + decoder.decode(stderr) };
}

Deno.test("mirrorhook serve end to end over TLS", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "mirrorhook-e2e-" });
  const tlsDir = `${dir}/tls`;
  await Deno.mkdir(tlsDir);
  const chain = await mintCertificates({ dnsNames: [SERVICE_DNS, "localhost"], ipAddresses: ["127.0.0.1"] });
  await Deno.writeTextFile(`${tlsDir}/tls.crt`, chain.cert);
  await Deno.writeTextFile(`${tlsDir}/tls.key`, chain.key);
  await Deno.writeTextFile(`${tlsDir}/ca.crt`, chain.caCert);
  await Deno.writeTextFile(`${dir}/rules.yaml`, RULES);

  const logs: string[] = [];
  configureLogging("info", (line) => logs.push(line));
  const config: ServeConfig = {
    rules: [`${dir}/rules.yaml`],
    tlsDir,
    host: "127.0.0.1",
    port: 0,
    probePort: 0,
    dryRun: false,
    onError: "allow",
    bypassPrefix: "direct.to/",
    excludeNamespaces: ["kube-system"],
    maxBodyBytes: MAX_BODY_BYTES,
    dev: false,
    shutdownDelayMs: 0,
    shutdownTimeoutMs: 5000,
    rulesPollMs: 100,
    certPollMs: 100,
  };
  const client = Deno.createHttpClient({ caCerts: [chain.caCert] });
  let server: RunningServer | undefined;
  try {
    server = await startServer(config, { logger: logger("e2e"), metrics: createMetrics({ defaultMetrics: false }) });
    const webhook = `https://localhost:${server.webhookPort}/mutate`;
    const probes = `http://127.0.0.1:${server.probePort}`;

    const admit = async (body: BodyInit, url = webhook, http = client) => {
      const res = await fetch(url, {
        method: "POST",
        body,
        headers: { "content-type": "application/json" },
        client: http,
      });
      const text = await res.text();
      return { status: res.status, review: JSON.parse(text) as { response: Record<string, unknown> } };
    };

    await t.step("the certificate chain verifies with openssl, for the Service DNS name and 127.0.0.1", async () => {
      const verify = await run("openssl", [
        "verify",
        "-CAfile",
        `${tlsDir}/ca.crt`,
        "-purpose",
        "sslserver",
        "-verify_hostname",
        SERVICE_DNS,
        `${tlsDir}/tls.crt`,
      ]);
      assert.equal(verify.code, 0, verify.out);
      assert.match(verify.out, /: OK/);
      const byIp = await run("openssl", [
        "verify",
        "-CAfile",
        `${tlsDir}/ca.crt`,
        "-verify_ip",
        "127.0.0.1",
        `${tlsDir}/tls.crt`,
      ]);
      assert.equal(byIp.code, 0, byIp.out);
      const wrongName = await run("openssl", [
        "verify",
        "-CAfile",
        `${tlsDir}/ca.crt`,
        "-verify_hostname",
        "other.mirrorhook-system.svc",
        `${tlsDir}/tls.crt`,
      ]);
      assert.notEqual(wrongName.code, 0, wrongName.out);
      const selfSigned = await run("openssl", ["verify", "-CAfile", `${tlsDir}/tls.crt`, `${tlsDir}/tls.crt`]);
      assert.notEqual(selfSigned.code, 0, selfSigned.out);
    });

    await t.step("the certificate carries the SANs", async () => {
      const san = await run("openssl", ["x509", "-in", `${tlsDir}/tls.crt`, "-noout", "-ext", "subjectAltName"]);
      assert.equal(san.code, 0, san.out);
      assert.match(san.out, new RegExp(`DNS:${SERVICE_DNS.replaceAll(".", "\\.")}(,|\\s|$)`));
      assert.match(san.out, /DNS:localhost(,|\s|$)/);
      assert.match(san.out, /IP Address:127\.0\.0\.1(,|\s|$)/);
    });

    const good = (await readFixtures()).find((entry) => entry.name === "deployment-pod-create");
    assert.ok(good?.fixture.review !== undefined, "fixture deployment-pod-create is missing");
    const goodBody = JSON.stringify(good.fixture.review);

    await t.step("a client trusting the CA connects by DNS name (localhost) and by IP", async () => {
      for (const url of [webhook, `https://127.0.0.1:${server!.webhookPort}/mutate`]) {
        const { status, review } = await admit(goodBody, url);
        assert.equal(status, 200, url);
        assert.equal(review.response["allowed"], true);
      }
    });

    await t.step("a client without the CA, or trusting another CA, is refused", async () => {
      await assert.rejects(
        fetch(webhook, { method: "POST", body: goodBody, headers: { "content-type": "application/json" } }),
        TypeError,
      );
      const other = await mintCertificates();
      const stranger = Deno.createHttpClient({ caCerts: [other.caCert] });
      try {
        await assert.rejects(admit(goodBody, webhook, stranger), TypeError);
      } finally {
        stranger.close();
      }
    });

    // HTTP/2 is not offered: Deno 2.9's node:http2 aborts the process when clients close HTTP/2 connections
    // (denoland/deno#36788), and Deno.serve stalls ~40 ms on every patch-sized answer (Nagle). A client that offers
    // h2 and http/1.1, as kube-apiserver's does, must get HTTP/1.1 and a good answer.
    await t.step("a client offering h2 and http/1.1 by ALPN gets HTTP/1.1 and works", async () => {
      const both = Deno.createHttpClient({ caCerts: [chain.caCert], http2: true, http1: true });
      try {
        const { status, review } = await admit(goodBody, webhook, both);
        assert.equal(status, 200);
        assert.notEqual(patchOf(review.response), undefined);
      } finally {
        both.close();
      }
      const alpn = await run("openssl", [
        "s_client",
        "-connect",
        `127.0.0.1:${server!.webhookPort}`,
        "-servername",
        "localhost",
        "-alpn",
        "h2,http/1.1",
        "-CAfile",
        `${tlsDir}/ca.crt`,
        "-verify_return_error",
      ]);
      assert.doesNotMatch(alpn.out, /ALPN protocol: h2/);
      assert.match(alpn.out, /Verify return code: 0 \(ok\)/);
    });

    for (const { name, fixture } of await readFixtures()) {
      await t.step(name, async () => {
        const { expect } = fixture;
        let body: BodyInit;
        if (fixture.bodyBase64 !== undefined) {
          body = Uint8Array.from(atob(fixture.bodyBase64), (c) => c.charCodeAt(0));
        } else {
          assert.ok(fixture.review !== undefined, "a fixture needs review or bodyBase64");
          const review = structuredClone(fixture.review);
          if (fixture.padBytes !== undefined) {
            const metadata = (review.request["object"] as { metadata: { annotations?: Record<string, string> } })
              .metadata;
            metadata.annotations = { ...metadata.annotations, "example.com/padding": "x".repeat(fixture.padBytes) };
          }
          body = JSON.stringify(review);
        }
        const { status, review: answer } = await admit(body);
        assert.equal(status, expect.status);
        if (fixture.padBytes !== undefined) {
          // The same body again as a chunked stream, with no Content-Length to refuse it by.
          const chunked = await admit(new Blob([body]).stream());
          assert.equal(chunked.status, expect.status);
          assert.equal((chunked.review.response["status"] as { code: number }).code, expect.status);
        }
        const response = answer.response;
        assert.equal(response["allowed"], expect.allowed);
        const requestUid = fixture.review?.request["uid"];
        if (!expect.allowed) {
          assert.equal((response["status"] as { code: number }).code, expect.status);
          assert.equal(response["uid"], expect.uid ?? "");
          assert.equal(patchOf(response), undefined);
          return;
        }
        assert.equal(response["uid"], requestUid);
        const patch = patchOf(response);
        assert.equal(patch !== undefined, expect.patched === true);
        if (expect.images === undefined) return;

        const request = fixture.review!.request;
        const patched = jsonpatch.applyPatch(structuredClone(request["object"]), patch ?? [], true, false)
          .newDocument;
        assert.deepEqual(imagesOf(patched), expect.images);
        if (patch === undefined) return;

        // Admitting the result again changes nothing: as a CREATE, and for UPDATEs as an UPDATE from itself.
        const readmissions: Record<string, unknown>[] = [{
          ...request,
          uid: crypto.randomUUID(),
          operation: "CREATE",
          subResource: undefined,
          requestSubResource: undefined,
          name: (patched as { metadata: { name?: string } }).metadata.name,
          object: patched,
          oldObject: null,
          options: { kind: "CreateOptions", apiVersion: "meta.k8s.io/v1" },
        }];
        if (request["operation"] === "UPDATE") {
          readmissions.push({ ...request, uid: crypto.randomUUID(), object: patched, oldObject: patched });
        }
        for (const again of readmissions) {
          const second = await admit(JSON.stringify({ ...fixture.review, request: again }));
          assert.equal(second.status, 200);
          assert.equal(second.review.response["uid"], again["uid"]);
          assert.equal(second.review.response["allowed"], true);
          assert.equal(patchOf(second.review.response), undefined, `re-admitted as ${again["operation"]}`);
        }
      });
    }

    await t.step("/healthz, /readyz with the rules hash, /metrics", async () => {
      const health = await fetch(`${probes}/healthz`);
      await health.body?.cancel();
      assert.equal(health.status, 200);
      const ready = await fetch(`${probes}/readyz`);
      assert.equal(ready.status, 200);
      const readiness = await ready.json();
      assert.equal(readiness.ready, true);
      assert.match(readiness.rulesHash, /^[0-9a-f]{64}$/);
      assert.equal(readiness.rulesHash, server!.store.current.hash);
      assert.equal(readiness.objects, 2);
      assert.equal(readiness.rules, 6);
      const metrics = await fetch(`${probes}/metrics`);
      assert.equal(metrics.status, 200);
      const text = await metrics.text();
      assert.match(
        text,
        /^mirrorhook_admission_requests_total\{operation="CREATE",result="rewritten",dry_run="false"\} \d+$/m,
      );
      assert.match(
        text,
        /^mirrorhook_admission_requests_total\{operation="unknown",result="invalid",dry_run="false"\} \d+$/m,
      );
      assert.match(text, /^mirrorhook_skips_total\{reason="excluded-namespace"\} 1$/m);
      assert.match(text, /^mirrorhook_admission_in_flight 0$/m);
      assert.match(text, /^mirrorhook_certificate_expiry_timestamp_seconds \d+/m);
    });

    await t.step("no errors logged", () => {
      const errors = logs.map((line) => JSON.parse(line)).filter((log) => log.level === "ERROR");
      assert.deepEqual(errors, []);
    });
  } finally {
    client.close();
    await server?.shutdown("test");
    resetSync();
    await Deno.remove(dir, { recursive: true });
  }
});
