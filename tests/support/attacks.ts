// Attacks on the HTTPS port, bounded in count and time, against `mirrorhook serve` run as its own process.

import { taskEnv, taskRunFlags } from "./cli.ts";
import { rawRequest, RawTlsConnection } from "./raw_tls.ts";
import {
  checkAnswer,
  freePort,
  HARBOR_NGINX,
  HARBOR_RULES,
  podReview,
  postReview,
  REPO_ROOT,
  sleep,
} from "./webhook.ts";

/** `mirrorhook serve --dev` as a child process with the permissions and V8 flags of `deno task mirrorhook`. */
export interface ServerProcess extends AsyncDisposable {
  readonly pid: number;
  readonly port: number;
  readonly probePort: number;
  readonly caCert: string;
  /** Standard error so far (JSON log lines). */
  stderr(): string;
}

/** Starts the server on 127.0.0.1 with HARBOR_RULES and the given extra flags; resolves once /readyz is 200. */
export async function startServerProcess(dir: string, flags: readonly string[] = []): Promise<ServerProcess> {
  await Deno.writeTextFile(`${dir}/rules.yaml`, HARBOR_RULES);
  const port = freePort();
  let probePort = freePort();
  while (probePort === port) probePort = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      // As `deno task mirrorhook` runs it (permissions, V8 flags, environment), so attack figures are a deployment's.
      ...taskRunFlags(),
      "main.ts",
      "serve",
      "--dev",
      "--rules",
      `${dir}/rules.yaml`,
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
      "--probe-port",
      String(probePort),
      "--shutdown-delay",
      "0",
      "--log-level",
      "warning",
      ...flags,
    ],
    cwd: REPO_ROOT,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    env: { ...taskEnv(), NO_COLOR: "1" },
  }).spawn();
  let errors = "";
  const decoder = new TextDecoder();
  const collecting = child.stderr.pipeTo(
    new WritableStream({ write: (chunk) => void (errors = (errors + decoder.decode(chunk)).slice(-200_000)) }),
  ).catch(() => {});
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // already exited
    }
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // already exited
      }
    }, 10_000);
    await child.status;
    clearTimeout(timer);
    await collecting;
  };
  const started = performance.now();
  let caCert: string | undefined;
  while (caCert === undefined && performance.now() - started < 30_000) {
    try {
      const ready = await fetch(`http://127.0.0.1:${probePort}/readyz`, { signal: AbortSignal.timeout(1000) });
      await ready.body?.cancel();
      if (ready.status === 200) {
        caCert = await (await fetch(`http://127.0.0.1:${probePort}/dev/ca.crt`)).text();
      }
    } catch {
      // not listening yet
    }
    if (caCert === undefined) await sleep(100);
  }
  if (caCert === undefined) {
    await stop();
    throw new Error(`mirrorhook serve did not become ready within 30 s:\n${errors.slice(-2000)}`);
  }
  return {
    pid: child.pid,
    port,
    probePort,
    caCert,
    stderr: () => errors,
    [Symbol.asyncDispose]: stop,
  };
}

/** Resident memory of a process now and at its peak (VmRSS, VmHWM), in bytes. */
export async function memoryOf(pid: number): Promise<{ rss: number; peak: number }> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? "0") * 1024;
  return { rss: kib("VmRSS"), peak: kib("VmHWM") };
}

/** What a probe of normal admissions saw while an attack ran. */
export interface ProbeResult {
  readonly sent: number;
  readonly ok: number;
  /** Admissions not answered with a correct AdmissionReview within the API server's 10 s webhook timeout. */
  readonly blocked: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly failures: readonly string[];
}

/** Sends normal admissions one after another (plus a short pause) until `stop()`; each is timed. */
export async function probeAdmissions(server: ServerProcess, stop: () => boolean): Promise<ProbeResult> {
  const client = Deno.createHttpClient({ caCerts: [server.caCert] });
  const latencies: number[] = [];
  const failures: string[] = [];
  let sent = 0;
  try {
    while (!stop()) {
      sent++;
      const started = performance.now();
      try {
        const answer = await postReview(client, server.port, { timeoutMs: 10_000 });
        const problem = checkAnswer(answer.status, answer.text, answer.uid, HARBOR_NGINX);
        if (problem === undefined) latencies.push(performance.now() - started);
        else failures.push(problem);
      } catch (error) {
        failures.push(error instanceof Error ? error.message : String(error));
      }
      await sleep(20);
    }
  } finally {
    client.close();
  }
  const sorted = [...latencies].sort((a, b) => a - b);
  const at = (q: number) =>
    sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return {
    sent,
    ok: latencies.length,
    blocked: failures.length,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    maxMs: sorted.at(-1) ?? NaN,
    failures: failures.slice(0, 5),
  };
}

/** Tracks the highest VmRSS seen (sampled every 50 ms) until stopped. */
export function trackMemory(pid: number): { stop(): Promise<number> } {
  let peak = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        peak = Math.max(peak, (await memoryOf(pid)).rss);
      } catch {
        return;
      }
      await sleep(50);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return peak;
    },
  };
}

/** Figures an attack reports besides memory and the probe. */
export type AttackDetail = Record<string, number | string>;

/** 40 connections each declare 8,388,000 bytes, send 8,000,000 and stop (issue 10, point 4). */
export async function slowBodies(
  server: ServerProcess,
  options: { connections?: number; declared?: number; sent?: number; holdMs?: number } = {},
): Promise<AttackDetail> {
  const connections = options.connections ?? 40;
  const declared = options.declared ?? 8_388_000;
  const sent = options.sent ?? 8_000_000;
  const holdMs = options.holdMs ?? 15_000;
  const chunk = new Uint8Array(64 * 1024).fill(0x61);
  const statuses: Record<string, number> = {};
  let bytes = 0;
  await Promise.all(Array.from({ length: connections }, async () => {
    let connection: RawTlsConnection | undefined;
    try {
      connection = await RawTlsConnection.open(server.port, server.caCert);
      const head = new TextDecoder().decode(rawRequest("POST", "/mutate", "", { "content-type": "application/json" }))
        .replace("content-length: 0", `content-length: ${declared}`);
      await connection.write(head);
      const answering = connection.response(holdMs);
      let written = 0;
      let stopped = false;
      void answering.then(() => stopped = true);
      while (written < sent && !stopped) {
        const size = Math.min(chunk.byteLength, sent - written);
        await connection.write(chunk.subarray(0, size));
        written += size;
      }
      bytes += written;
      const answer = await answering;
      const key = answer === undefined ? (connection.closed ? "closed" : "no answer") : String(answer.status);
      statuses[key] = (statuses[key] ?? 0) + 1;
    } catch {
      statuses["write failed"] = (statuses["write failed"] ?? 0) + 1;
    } finally {
      connection?.close();
    }
  }));
  return { sentMiB: Math.round(bytes / 1024 / 1024), answers: JSON.stringify(statuses) };
}

/** Admissions whose `operation` is a fresh 1 KiB string each time (would be one Prometheus series each). */
export async function labelFlood(
  server: ServerProcess,
  options: { requests?: number; workers?: number; maxMs?: number } = {},
): Promise<AttackDetail> {
  const requests = options.requests ?? 5000;
  const workers = options.workers ?? 8;
  const deadline = performance.now() + (options.maxMs ?? 20_000);
  const client = Deno.createHttpClient({ caCerts: [server.caCert] });
  let sent = 0;
  try {
    await Promise.all(Array.from({ length: workers }, async () => {
      while (sent < requests && performance.now() < deadline) {
        const n = sent++;
        const review = podReview(`flood-${n}`) as { request: Record<string, unknown> };
        review.request["operation"] = `OP-${n}-${crypto.randomUUID()}`.padEnd(1024, "x");
        review.request["object"] = {
          kind: "Pod",
          metadata: { name: "p" },
          spec: { containers: [{ name: "c", image: `direct.to/registry-${n}.example/x:1` }] },
        };
        const response = await fetch(`https://127.0.0.1:${server.port}/mutate`, {
          method: "POST",
          client,
          headers: { "content-type": "application/json" },
          body: JSON.stringify(review),
        }).catch(() => undefined);
        await response?.body?.cancel();
      }
    }));
  } finally {
    client.close();
  }
  const metrics = await (await fetch(`http://127.0.0.1:${server.probePort}/metrics`)).text();
  return {
    requests: sent,
    metricsBytes: metrics.length,
    operationSeries:
      metrics.split("\n").filter((line) => line.startsWith("mirrorhook_admission_requests_total{")).length,
  };
}

/** Connections that send a 1 MiB body to a wrong path, then a real admission on the same connection. */
export async function keepAliveWedge(
  server: ServerProcess,
  options: { connections?: number; bodyBytes?: number } = {},
): Promise<AttackDetail> {
  const connections = options.connections ?? 20;
  const body = "x".repeat(options.bodyBytes ?? 1024 * 1024);
  let answered = 0;
  await Promise.all(Array.from({ length: connections }, async (_, i) => {
    const connection = await RawTlsConnection.open(server.port, server.caCert);
    try {
      const second = rawRequest("POST", "/mutate", JSON.stringify(podReview(`w${i}`)), {
        "content-type": "application/json",
      });
      const writing = connection.write(new Uint8Array([...rawRequest("POST", "/nope", body), ...second])).catch(
        () => {},
      );
      const first = await connection.response(10_000);
      const next = first === undefined ? undefined : await connection.response(10_000);
      await writing;
      if (next?.status === 200) answered++;
    } finally {
      connection.close();
    }
  }));
  return { connections, secondAnswered: answered, wedged: connections - answered };
}

/** Connections that each pipeline 100 admissions (about 118 KB) in one write. */
export async function pipelining(
  server: ServerProcess,
  options: { connections?: number; depth?: number } = {},
): Promise<AttackDetail> {
  const connections = options.connections ?? 10;
  const depth = options.depth ?? 100;
  let answered = 0;
  await Promise.all(Array.from({ length: connections }, async (_, c) => {
    const connection = await RawTlsConnection.open(server.port, server.caCert);
    try {
      const parts = Array.from({ length: depth }, (_, i) => {
        const review = podReview(`c${c}-${i}`) as { request: { object: { metadata: Record<string, unknown> } } };
        review.request.object.metadata["annotations"] = { pad: "p".repeat(600) };
        return [...rawRequest("POST", "/mutate", JSON.stringify(review), { "content-type": "application/json" })];
      });
      const writing = connection.write(new Uint8Array(parts.flat())).catch(() => {});
      for (let i = 0; i < depth; i++) {
        const answer = await connection.response(10_000);
        if (answer?.status !== 200) break;
        answered++;
      }
      await writing;
    } finally {
      connection.close();
    }
  }));
  return { sent: connections * depth, answered, lost: connections * depth - answered };
}
