// End-to-end: `mirrorhook serve` as a process; SIGTERM under load drops no accepted request and exits 0.

import { V8_FLAGS_ARGUMENT } from "../lib/rules/pattern.ts";
import assert from "node:assert/strict";
import { mintCertificates } from "../lib/server/certs.ts";
import { KubeMount } from "./support/kube_mount.ts";
import {
  freePort,
  HARBOR_NGINX,
  HARBOR_RULES,
  type LoadResult,
  readyz,
  REPO_ROOT,
  runLoad,
  sleep,
  tempDir,
  waitFor,
} from "./support/webhook.ts";

const SHUTDOWN_DELAY_S = 1;
const SHUTDOWN_TIMEOUT_S = 10;

/** Collects a byte stream as text in the background. */
function collect(stream: ReadableStream<Uint8Array>): { text: () => string; done: Promise<void> } {
  let text = "";
  const decoder = new TextDecoder();
  const done = stream.pipeTo(
    new WritableStream({ write: (chunk) => void (text += decoder.decode(chunk, { stream: true })) }),
  ).catch(() => {});
  return { text: () => text, done };
}

/** Resolves with the promise's value, or undefined after `ms`. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<undefined>((resolve) => timer = setTimeout(() => resolve(undefined), ms));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function describeLoad(load: LoadResult): string {
  return `${load.sent} sent, ${load.ok} ok, ${load.refused} refused, ${load.notConnected} not connected, ${
    load.failures.filter((f) => f.outcome === "failed").length
  } failed`;
}

Deno.test("shutdown: SIGTERM under load: not ready, in-flight requests answered, exit 0", async (t) => {
  await using dir = await tempDir("mirrorhook-shutdown-");
  const chain = await mintCertificates();
  const tls = await KubeMount.create(`${dir.path}/tls`, {
    "ca.crt": chain.caCert,
    "tls.crt": chain.cert,
    "tls.key": chain.key,
  });
  const rules = `${dir.path}/rules.yaml`;
  await Deno.writeTextFile(rules, HARBOR_RULES);
  const port = freePort();
  let probePort = freePort();
  while (probePort === port) probePort = freePort();

  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-P=mirrorhook",
      V8_FLAGS_ARGUMENT,
      "main.ts",
      "serve",
      "--rules",
      rules,
      "--tls-dir",
      tls.dir,
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
      "--probe-port",
      String(probePort),
      "--shutdown-delay",
      String(SHUTDOWN_DELAY_S),
      "--shutdown-timeout",
      String(SHUTDOWN_TIMEOUT_S),
    ],
    cwd: REPO_ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const stdout = collect(child.stdout);
  const stderr = collect(child.stderr);
  let exited = false;
  const status = child.status.finally(() => exited = true);
  const logs = () => {
    const lines = stderr.text().split("\n").filter((line) => !line.includes('"Rewrote '));
    return `\n--- mirrorhook stderr, without "Rewrote" lines ---\n${lines.join("\n").slice(-4000)}`;
  };

  try {
    const ready = await waitFor(
      () => readyz(probePort).then((r) => r.status === 200 ? true : undefined, () => undefined),
      { timeoutMs: 15_000, intervalMs: 100 },
    );
    assert.ok(ready !== undefined, `/readyz never became 200${logs()}`);

    const loading = runLoad({
      port,
      caCert: chain.caCert,
      workers: 8,
      maxRequests: 20_000,
      maxMs: 12_000,
      image: HARBOR_NGINX,
      stop: () => exited,
      refusedPauseMs: 20,
    });
    await sleep(500);
    const sigtermAt = performance.now();
    child.kill("SIGTERM");
    const probes: { atMs: number; status: number }[] = [];
    const polling = (async () => {
      while (!exited && performance.now() - sigtermAt < 15_000) {
        const atMs = Math.round(performance.now() - sigtermAt);
        const seen = await readyz(probePort).then((r) => r.status, () => 0);
        probes.push({ atMs, status: seen });
        await sleep(50);
      }
    })();
    const exit = await within(status, (SHUTDOWN_DELAY_S + SHUTDOWN_TIMEOUT_S + 3) * 1000);
    const exitMs = Math.round(performance.now() - sigtermAt);
    const load = await loading;
    await polling;
    const lastOkAfterSigtermMs = Math.round(load.startedAt + load.lastOkMs - sigtermAt);

    await t.step("the process exits 0 within the shutdown bound", () => {
      assert.ok(exit !== undefined, `still running ${exitMs} ms after SIGTERM${logs()}`);
      assert.equal(exit.code, 0, `exit code ${exit.code}, signal ${exit.signal}, ${exitMs} ms after SIGTERM${logs()}`);
      assert.ok(exitMs < (SHUTDOWN_DELAY_S + SHUTDOWN_TIMEOUT_S) * 1000, `exited ${exitMs} ms after SIGTERM`);
    });
    await t.step("/readyz turns 503 during the shutdown delay and stays so", () => {
      const first503 = probes.find((probe) => probe.status === 503);
      assert.ok(first503 !== undefined, `no 503 from /readyz: ${JSON.stringify(probes)}`);
      assert.ok(first503.atMs < SHUTDOWN_DELAY_S * 1000, `first 503 at ${first503.atMs} ms`);
      const later = probes.filter((probe) => probe.atMs >= first503.atMs);
      assert.deepEqual(later.filter((probe) => probe.status === 200), [], "ready again after SIGTERM");
    });
    await t.step("requests are still answered during the shutdown delay", () => {
      assert.ok(
        lastOkAfterSigtermMs >= SHUTDOWN_DELAY_S * 1000 * 0.9,
        `last answer ${lastOkAfterSigtermMs} ms after SIGTERM (${describeLoad(load)})`,
      );
    });
    await t.step("every request that got an answer got a complete AdmissionReview; none accepted was dropped", () => {
      const failed = load.failures.filter((failure) => failure.outcome === "failed");
      const at = (ms: number) => Math.round(load.startedAt + ms - sigtermAt);
      assert.deepEqual(
        failed.map((f) => `t=${at(f.atMs)}ms after SIGTERM, worker ${f.worker} shared=${f.shared}: ${f.detail}`),
        [],
        describeLoad(load),
      );
      assert.ok(load.ok >= 100, describeLoad(load));
      // Refused (nothing listening) and not-connected (no request sent) are allowed after the listener closed,
      // and only then.
      for (const failure of load.failures) {
        assert.ok(
          at(failure.atMs) >= SHUTDOWN_DELAY_S * 1000 * 0.9,
          `t=${at(failure.atMs)}ms after SIGTERM, during the delay: ${failure.detail}`,
        );
      }
    });
    await t.step("the logs say it stopped", () => {
      assert.ok(/"message":"Shutting down/.test(stderr.text()), logs());
      assert.ok(/"message":"Stopped"/.test(stderr.text()), logs());
      // Lines are batched: still every one whole, and "Stopped" the last, written at exit.
      const records = stderr.text().split("\n").filter((line) => line.startsWith("{")).map((line) => JSON.parse(line));
      assert.equal(records.at(-1)?.message, "Stopped", logs());
    });
  } finally {
    if (!exited) child.kill("SIGKILL");
    await status;
    await stdout.done;
    await stderr.done;
  }
});

Deno.test("shutdown: SIGHUP shuts down gracefully and says so (exit 0, not 129)", async () => {
  await using dir = await tempDir("mirrorhook-sighup-");
  const rules = `${dir.path}/rules.yaml`;
  await Deno.writeTextFile(rules, HARBOR_RULES);
  const probePort = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-P=mirrorhook",
      V8_FLAGS_ARGUMENT,
      "main.ts",
      "serve",
      "--dev",
      "--rules",
      rules,
      "--host",
      "127.0.0.1",
    ]
      .concat(["--port", "0", "--probe-port", String(probePort), "--shutdown-delay", "0"]),
    cwd: REPO_ROOT,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const stderr = collect(child.stderr);
  try {
    const ready = await waitFor(
      () => readyz(probePort).then((r) => r.status === 200 ? true : undefined, () => undefined),
      { timeoutMs: 15_000, intervalMs: 100 },
    );
    assert.ok(ready !== undefined, `/readyz never became 200: ${stderr.text()}`);
    child.kill("SIGHUP");
    const exit = await within(child.status, 10_000);
    assert.ok(exit !== undefined, "still running 10 s after SIGHUP");
    assert.equal(exit.code, 0, `exit code ${exit.code}, signal ${exit.signal}`);
    await stderr.done;
    assert.match(stderr.text(), /"message":"Shutting down[^\n]*"properties":{"reason":"SIGHUP"}/);
    assert.match(stderr.text(), /"Stopped"/);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // already exited
    }
    await child.status;
  }
});
