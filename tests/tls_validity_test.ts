// Certificates outside their validity period (made with openssl) are never served; /readyz reports the refused one.

import assert from "node:assert/strict";
import { type CertificateChain, mintCertificates } from "../lib/server/certs.ts";
import { type RunningServer, startServer, StartupError } from "../lib/server/app.ts";
import { KubeMount } from "./support/kube_mount.ts";
import {
  certFingerprint,
  HARBOR_RULES,
  memoryLogger,
  metricValue,
  presentedFingerprint,
  readyz,
  scrapeMetrics,
  tempDir,
  testConfig,
  waitFor,
} from "./support/webhook.ts";

const RELOADS = "mirrorhook_certificate_reloads_total";

async function run(args: string[], cwd: string): Promise<void> {
  const output = await new Deno.Command("openssl", { args, cwd, stdout: "piped", stderr: "piped" }).output();
  if (!output.success) throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(output.stderr)}`);
}

/** A serving pair for 127.0.0.1 signed by `ca`, valid from `start` to `end` (YYYYMMDDHHMMSSZ), made by openssl ca. */
async function opensslPair(
  dir: string,
  ca: CertificateChain,
  start: string,
  end: string,
): Promise<{ cert: string; key: string }> {
  const work = await Deno.makeTempDir({ dir, prefix: "ca-" });
  await Deno.writeTextFile(`${work}/ca.crt`, ca.caCert);
  await Deno.writeTextFile(`${work}/ca.key`, ca.caKey);
  await Deno.writeTextFile(`${work}/index.txt`, "");
  await Deno.writeTextFile(`${work}/serial`, "1000\n");
  await Deno.writeTextFile(
    `${work}/ca.cnf`,
    `[ca]\ndefault_ca = d\n[d]\ndir = ${work}\ndatabase = ${work}/index.txt\nnew_certs_dir = ${work}\n` +
      `serial = ${work}/serial\ndefault_md = sha256\npolicy = p\ncopy_extensions = copy\nunique_subject = no\n` +
      `[p]\ncommonName = supplied\n`,
  );
  await run([
    "req",
    "-new",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    "tls.key",
    "-subj",
    "/CN=localhost",
    "-addext",
    "subjectAltName=IP:127.0.0.1,DNS:localhost",
    "-out",
    "tls.csr",
  ], work);
  await run([
    "ca",
    "-batch",
    "-config",
    "ca.cnf",
    "-cert",
    "ca.crt",
    "-keyfile",
    "ca.key",
    "-in",
    "tls.csr",
    "-out",
    "tls.crt",
    "-notext",
    "-startdate",
    start,
    "-enddate",
    end,
  ], work);
  return { cert: await Deno.readTextFile(`${work}/tls.crt`), key: await Deno.readTextFile(`${work}/tls.key`) };
}

function secret(ca: CertificateChain, pair: { cert: string; key: string }): Record<string, string> {
  return { "ca.crt": ca.caCert, "tls.crt": pair.cert, "tls.key": pair.key };
}

async function start(dir: string, ca: CertificateChain, pair: { cert: string; key: string }) {
  await Deno.writeTextFile(`${dir}/rules.yaml`, HARBOR_RULES);
  const mount = await KubeMount.create(`${dir}/tls`, secret(ca, pair));
  const log = memoryLogger();
  const server: RunningServer = await startServer(
    testConfig({ rules: [`${dir}/rules.yaml`], tlsDir: mount.dir, certPollMs: 200 }),
    { logger: log.logger },
  );
  return { server, mount, log };
}

Deno.test("tls validity: an expired or not-yet-valid pair is refused at reload, logged, counted and reported", async (t) => {
  await using dir = await tempDir("mirrorhook-tls-validity-");
  const a = await mintCertificates({ validDays: 7 });
  const expired = await opensslPair(dir.path, a, "20200101000000Z", "20200201000000Z");
  const future = await opensslPair(dir.path, a, "20990101000000Z", "20991231000000Z");
  const good = await opensslPair(dir.path, a, "20240101000000Z", "20980101000000Z");
  const { server, mount, log } = await start(dir.path, a, a);
  const fingerprintA = await certFingerprint(a.cert);
  try {
    const rows = [
      { name: "a 2020 pair (expired)", pair: expired, field: "notAfter", value: "2020-02-01T00:00:00.000Z" },
      { name: "a 2099 pair (not yet valid)", pair: future, field: "notBefore", value: "2099-01-01T00:00:00.000Z" },
    ] as const;
    for (const [index, row] of rows.entries()) {
      await t.step(row.name, async () => {
        await mount.update(secret(a, row.pair));
        const counted = await waitFor(
          async () =>
            metricValue(await scrapeMetrics(server.probePort), RELOADS, { result: "rejected" }) === index + 1
              ? true
              : undefined,
          { timeoutMs: 5000 },
        );
        assert.ok(counted !== undefined, `${RELOADS}{result="rejected"} did not reach ${index + 1}`);
        assert.equal(await presentedFingerprint(server.webhookPort), fingerprintA, "the refused pair is served");
        const ready = await readyz(server.probePort);
        assert.equal(ready.status, 200);
        const certificate = (ready.body as { certificate: Record<string, unknown> }).certificate;
        assert.equal(certificate["notAfter"], a.notAfter.toISOString());
        const rejected = certificate["rejected"] as Record<string, string>;
        assert.equal(rejected[row.field], row.value);
        assert.match(rejected["reason"] ?? "", row.field === "notAfter" ? /expired/ : /not valid before/);
        assert.ok(
          log.messages().some((message) =>
            message.startsWith("Refused the new certificate") && message.includes(row.value)
          ),
          "no log line for the refused pair",
        );
        // Polled again and again: still one count and one log line for this pair.
        await new Promise((resolve) => setTimeout(resolve, 600));
        assert.equal(
          metricValue(await scrapeMetrics(server.probePort), RELOADS, { result: "rejected" }),
          index + 1,
        );
      });
    }
    await t.step("a valid pair afterwards goes into service and clears the report", async () => {
      await mount.update(secret(a, good));
      const fingerprintGood = await certFingerprint(good.cert);
      const served = await waitFor(
        async () => await presentedFingerprint(server.webhookPort) === fingerprintGood ? true : undefined,
        { timeoutMs: 5000, intervalMs: 100 },
      );
      assert.ok(served !== undefined, "the valid pair was not served");
      const ready = await readyz(server.probePort);
      const certificate = (ready.body as { certificate: Record<string, unknown> }).certificate;
      assert.equal(certificate["notAfter"], "2098-01-01T00:00:00.000Z");
      assert.equal(certificate["rejected"], undefined);
    });
  } finally {
    await server.shutdown("test");
  }
});

Deno.test("tls validity: serve refuses to start on an expired pair, saying why", async () => {
  await using dir = await tempDir("mirrorhook-tls-validity-");
  const a = await mintCertificates({ validDays: 7 });
  const expired = await opensslPair(dir.path, a, "20200101000000Z", "20200201000000Z");
  await assert.rejects(
    () => start(dir.path, a, expired),
    (error: unknown) => error instanceof StartupError && /expired at 2020-02-01T00:00:00.000Z/.test(error.message),
  );
});
