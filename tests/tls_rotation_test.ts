// End-to-end: the serving certificate rotates through a Kubernetes-style Secret mount under load, failing no request.

import assert from "node:assert/strict";
import { type CertificateChain, mintCertificates } from "../lib/server/certs.ts";
import { type RunningServer, startServer } from "../lib/server/app.ts";
import { KubeMount } from "./support/kube_mount.ts";
import {
  certFingerprint,
  HARBOR_NGINX,
  HARBOR_RULES,
  type LoadResult,
  memoryLogger,
  metricValue,
  presentedFingerprint,
  runLoad,
  scrapeMetrics,
  sleep,
  tempDir,
  testConfig,
  waitFor,
} from "./support/webhook.ts";

const EXPIRY = "mirrorhook_certificate_expiry_timestamp_seconds";
const RELOADS = "mirrorhook_certificate_reloads_total";

/** cert-manager's Secret keys. */
function secret(chain: CertificateChain, pair: { cert: string; key: string } = chain): Record<string, string> {
  return { "ca.crt": chain.caCert, "tls.crt": pair.cert, "tls.key": pair.key };
}

async function start(dir: string, chain: CertificateChain): Promise<{ server: RunningServer; mount: KubeMount }> {
  const rules = `${dir}/rules.yaml`;
  await Deno.writeTextFile(rules, HARBOR_RULES);
  const mount = await KubeMount.create(`${dir}/tls`, secret(chain));
  const { logger } = memoryLogger();
  const server = await startServer(testConfig({ rules: [rules], tlsDir: mount.dir }), { logger });
  return { server, mount };
}

/** Fails with every failed request listed, so a flaky rotation is diagnosable from the test output. */
function assertNoFailures(load: LoadResult, context = ""): void {
  assert.deepEqual(
    load.failures,
    [],
    `${load.failures.length} of ${load.sent} requests failed${context}:\n${
      load.failures.slice(0, 20).map((f) => `  t=${f.atMs}ms worker ${f.worker} shared=${f.shared}: ${f.detail}`)
        .join("\n")
    }`,
  );
  assert.equal(load.ok, load.sent);
}

/**
 * Waits until a fresh connection is shown `fingerprint`; returns the milliseconds it took. A probe connection
 * that fails (e.g. reset) is recorded in `probeErrors` and polling goes on, so the load's failures stay the report.
 */
async function waitForPresented(
  port: number,
  fingerprint: string,
  probeErrors: string[],
  timeoutMs = 2000,
): Promise<number> {
  let last = "";
  const seen = await waitFor(async () => {
    try {
      last = await presentedFingerprint(port);
    } catch (error) {
      probeErrors.push(error instanceof Error ? error.message : String(error));
      return undefined;
    }
    return last === fingerprint ? true : undefined;
  }, { timeoutMs, intervalMs: 50 });
  assert.ok(seen !== undefined, `still presenting ${last} after ${timeoutMs} ms, expected ${fingerprint}`);
  return seen.elapsedMs;
}

Deno.test("tls rotation: each new pair in the Secret mount is served within 2 s and no request fails", async (t) => {
  await using dir = await tempDir("mirrorhook-tls-");
  const a = await mintCertificates({ validDays: 7 });
  // Several rotations (B to G, each under the same CA, each with its own notAfter): every swap of the listener
  // is one more chance for a connection to be caught in the middle.
  const next: CertificateChain[] = [];
  for (const validDays of [30, 60, 90, 120, 150, 180]) {
    next.push(await mintCertificates({ ca: { cert: a.caCert, key: a.caKey }, validDays }));
  }
  const { server, mount } = await start(dir.path, a);
  const port = server.webhookPort;
  const probeErrors: string[] = [];
  let stop = false;
  const loadStarted = performance.now();
  const loading = runLoad({
    port,
    caCert: a.caCert,
    workers: 8,
    // Bounded, but long enough to outlast the rotations on a busy machine: `stop` ends the load after the last one.
    maxRequests: 200_000,
    maxMs: 60_000,
    image: HARBOR_NGINX,
    stop: () => stop,
  });
  const swapsAtMs: number[] = [];
  try {
    await t.step("certificate A is served first", async () => {
      assert.equal(await presentedFingerprint(port), await certFingerprint(a.cert));
      assert.equal(metricValue(await scrapeMetrics(server.probePort), EXPIRY), a.notAfter.getTime() / 1000);
    });
    for (const [i, chain] of next.entries()) {
      const name = String.fromCharCode("B".charCodeAt(0) + i);
      await t.step(`rotation to certificate ${name}`, async () => {
        await sleep(250);
        const fingerprint = await certFingerprint(chain.cert);
        swapsAtMs.push(Math.round(performance.now() - loadStarted));
        await mount.update(secret(chain));
        const tookMs = await waitForPresented(port, fingerprint, probeErrors);
        assert.ok(tookMs < 2000);
        const metrics = await scrapeMetrics(server.probePort);
        assert.equal(metricValue(metrics, EXPIRY), chain.notAfter.getTime() / 1000);
        assert.equal(metricValue(metrics, RELOADS, { result: "success" }), i + 1);
        assert.equal(metricValue(metrics, RELOADS, { result: "error" }), 0);
        assert.equal(server.tls.notAfter?.getTime(), chain.notAfter.getTime());
        assert.equal(server.readiness().certificate.notAfter, chain.notAfter.toISOString());
      });
    }
    await sleep(300);
  } finally {
    stop = true;
    const load = await loading;
    await server.shutdown("test");
    await t.step("no request failed", () => {
      assertNoFailures(load, ` (the Secret was swapped at t=${swapsAtMs.join(", ")} ms)`);
      assert.ok(load.ok >= 100, `only ${load.ok} requests in the run`);
      assert.ok(load.lastOkMs > (swapsAtMs.at(-1) ?? 0), "requests kept flowing after the last rotation");
      assert.deepEqual(probeErrors, [], "openssl s_client connections failed");
    });
  }
});

Deno.test("tls rotation: a broken pair keeps the old certificate, a later good pair is picked up", async (t) => {
  await using dir = await tempDir("mirrorhook-tls-");
  const a = await mintCertificates({ validDays: 7 });
  const b = await mintCertificates({ ca: { cert: a.caCert, key: a.caKey }, validDays: 30 });
  const c = await mintCertificates({ ca: { cert: a.caCert, key: a.caKey }, validDays: 60 });
  const fingerprintA = await certFingerprint(a.cert);
  const fingerprintC = await certFingerprint(c.cert);
  const { server, mount } = await start(dir.path, a);
  const port = server.webhookPort;
  const probeErrors: string[] = [];
  const swaps: string[] = [];
  let stop = false;
  const loadStarted = performance.now();
  const swap = async (name: string, files: Record<string, string>) => {
    swaps.push(`${name} at t=${Math.round(performance.now() - loadStarted)} ms`);
    await mount.update(files);
  };
  const loading = runLoad({
    port,
    caCert: a.caCert,
    workers: 8,
    maxRequests: 4000,
    maxMs: 12_000,
    image: HARBOR_NGINX,
    stop: () => stop,
  });
  try {
    const errors = async () => metricValue(await scrapeMetrics(server.probePort), RELOADS, { result: "error" });
    const broken: [string, { cert: string; key: string }][] = [
      ["a key that does not match the certificate", { cert: b.cert, key: a.key }],
      ["a garbage certificate", { cert: "garbage\n", key: b.key }],
      ["a garbage key", {
        cert: b.cert,
        key: "-----BEGIN PRIVATE KEY-----\nZ2FyYmFnZQ==\n-----END PRIVATE KEY-----\n",
      }],
      ["empty files", { cert: "", key: "" }],
    ];
    for (const [name, pair] of broken) {
      await t.step(name, async () => {
        const seen = await errors();
        await swap(name, secret(a, pair));
        const counted = await waitFor(async () => (await errors()) > seen ? true : undefined, { timeoutMs: 2000 });
        assert.ok(counted !== undefined, `${RELOADS}{result="error"} did not increase`);
        assert.equal(await presentedFingerprint(port), fingerprintA);
        const metrics = await scrapeMetrics(server.probePort);
        assert.equal(metricValue(metrics, EXPIRY), a.notAfter.getTime() / 1000);
        assert.equal(metricValue(metrics, RELOADS, { result: "success" }), 0);
      });
    }
    await t.step("a good pair after the broken ones", async () => {
      await swap("good pair C", secret(c));
      const tookMs = await waitForPresented(port, fingerprintC, probeErrors);
      assert.ok(tookMs < 2000);
      const metrics = await scrapeMetrics(server.probePort);
      assert.equal(metricValue(metrics, EXPIRY), c.notAfter.getTime() / 1000);
      assert.equal(metricValue(metrics, RELOADS, { result: "success" }), 1);
    });
    await sleep(300);
  } finally {
    stop = true;
    const load = await loading;
    await server.shutdown("test");
    await t.step("no request failed during the broken pairs and the rotation", () => {
      assertNoFailures(load, ` (Secret swaps: ${swaps.join("; ")})`);
      assert.ok(load.ok >= 100, `only ${load.ok} requests in the run`);
      assert.deepEqual(probeErrors, [], "openssl s_client connections failed");
    });
  }
});
