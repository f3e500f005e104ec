// Test support for end-to-end suites: AdmissionReviews, HTTPS load with failure accounting, metrics, certificates.

import { configureSync, getLogger, type Logger, type LogRecord } from "@logtape/logtape";
import { DEFAULT_BYPASS_PREFIX } from "../../lib/rules/engine.ts";
import { type RunningServer, type ServeConfig, startServer } from "../../lib/server/app.ts";
import { admissionReview } from "./admission_review.ts";
import { DEFAULT_MAX_BODY_BYTES } from "../../lib/server/handler.ts";

/** Repository root, for running `main.ts` as a subprocess. */
export const REPO_ROOT: string = decodeURIComponent(new URL("../../", import.meta.url).pathname).replace(/\/$/, "");

/** Rules used by the suites: Docker Hub through a Harbor cache. */
export const HARBOR_RULES = `apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: dockerhub-harbor
spec:
  rules:
    - prefix: docker.io
      replace: harbor.example.com/dockerhub
`;

/** Where {@linkcode HARBOR_RULES} sends `nginx:1.27`. */
export const HARBOR_NGINX = "harbor.example.com/dockerhub/library/nginx:1.27";

/** An AdmissionReview for a Pod with one container `nginx:1.27`, CREATE in namespace default. */
export function podReview(uid: string = crypto.randomUUID()): Record<string, unknown> {
  return admissionReview({
    uid,
    namespace: "default",
    userInfo: { username: "system:serviceaccount:kube-system:replicaset-controller" },
    object: {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { generateName: "web-", namespace: "default", labels: { app: "web" } },
      spec: { containers: [{ name: "web", image: "nginx:1.27" }] },
    },
    asApiServer: true,
  });
}

/** The JSON Patch of a response, decoded; undefined when there is none. */
export function decodePatch(response: Record<string, unknown>): unknown[] | undefined {
  const patch = response["patch"];
  if (typeof patch !== "string") return undefined;
  const decoded: unknown = JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(patch), (c) => c.charCodeAt(0))));
  if (!Array.isArray(decoded)) throw new Error("patch is not a JSON array");
  return decoded;
}

/** The image the patch gives container 0, if it sets one. */
export function patchedImage(response: Record<string, unknown>): string | undefined {
  for (const op of decodePatch(response) ?? []) {
    const { path, value } = op as { path?: unknown; value?: unknown };
    if (path === "/spec/containers/0/image" && typeof value === "string") return value;
  }
  return undefined;
}

/** Checks a complete answer to {@linkcode podReview}; returns what is wrong, or undefined. */
export function checkAnswer(status: number, text: string, uid: string, image?: string): string | undefined {
  if (status !== 200) return `status ${status}: ${text.slice(0, 200)}`;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return `not JSON (${text.length} bytes): ${text.slice(0, 200)}`;
  }
  const review = body as { kind?: unknown; response?: Record<string, unknown> };
  if (review.kind !== "AdmissionReview" || review.response === undefined) return `not an AdmissionReview: ${text}`;
  if (review.response["uid"] !== uid) return `uid ${JSON.stringify(review.response["uid"])}, sent ${uid}`;
  if (review.response["allowed"] !== true) return `not allowed: ${text}`;
  if (image !== undefined) {
    let got: string | undefined;
    try {
      got = patchedImage(review.response);
    } catch (error) {
      return `bad patch: ${String(error)}`;
    }
    if (got !== image) return `image ${JSON.stringify(got)}, expected ${JSON.stringify(image)}`;
  }
  return undefined;
}

/** Posts one {@linkcode podReview} to `/mutate` over HTTPS and returns the answer's text. */
export async function postReview(
  client: Deno.HttpClient,
  port: number,
  options: { uid?: string; timeoutMs?: number; host?: string } = {},
): Promise<{ status: number; text: string; uid: string }> {
  const uid = options.uid ?? crypto.randomUUID();
  const response = await fetch(`https://${options.host ?? "127.0.0.1"}:${port}/mutate`, {
    method: "POST",
    client,
    headers: { "content-type": "application/json" },
    body: JSON.stringify(podReview(uid)),
    signal: AbortSignal.timeout(options.timeoutMs ?? 5000),
  });
  return { status: response.status, text: await response.text(), uid };
}

/** How a request ended. */
export type Outcome =
  /** A complete, valid answer. */
  | "ok"
  /** The TCP connection was refused: nobody was listening, so nothing was accepted. */
  | "refused"
  /** The connection failed while being set up (TCP or TLS handshake, e.g. reset): no request was sent. */
  | "not-connected"
  /** Anything else: an error status, a wrong body, a reset or close after the request was sent, a time-out. */
  | "failed";

/** One failed (or refused) request, for the report. */
export interface RequestFailure {
  readonly worker: number;
  readonly shared: boolean;
  /** Milliseconds since the load started. */
  readonly atMs: number;
  readonly outcome: Outcome;
  readonly detail: string;
}

/** Counts of a load run. */
export interface LoadResult {
  readonly sent: number;
  readonly ok: number;
  readonly refused: number;
  readonly notConnected: number;
  /** Every request that did not end "ok" (refused and not-connected included). */
  readonly failures: readonly RequestFailure[];
  /** performance.now() when the load started; the `…Ms` times count from here. */
  readonly startedAt: number;
  /** When the last ok answer arrived (for "served until" checks). */
  readonly lastOkMs: number;
}

/** The whole error chain as text: Deno puts the useful part (refused, reset, closed) in `cause`. */
export function describeError(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && current !== null && depth < 6; depth++) {
    if (current instanceof Error) {
      parts.push(`${current.name}: ${current.message}`);
      current = current.cause;
    } else {
      parts.push(String(current));
      break;
    }
  }
  return parts.join(" <- ");
}

/** True when the error says the connection was refused (no listener): nothing was accepted. */
export function isRefused(detail: string): boolean {
  return /connection refused|os error 111|ECONNREFUSED/i.test(detail);
}

/** Classifies a fetch error: Deno's client reports TCP and TLS set-up failures as `client error (Connect)`. */
export function classifyError(detail: string): Exclude<Outcome, "ok"> {
  if (isRefused(detail)) return "refused";
  if (/client error \(Connect\)/.test(detail)) return "not-connected";
  return "failed";
}

/** Settings of {@linkcode runLoad}. */
export interface LoadOptions {
  readonly port: number;
  readonly caCert: string;
  /** Total workers; the first half share one keep-alive client, the rest open a new client per request. */
  readonly workers?: number;
  readonly maxRequests?: number;
  readonly maxMs?: number;
  /** Expected image in the patch (omit to skip the check). */
  readonly image?: string;
  /** Resolves (or is already true) when the load should stop early. */
  readonly stop?: () => boolean;
  /** Pause after a refused or failed connection, so a closed port is not hammered. */
  readonly refusedPauseMs?: number;
}

/** Runs concurrent requests until maxRequests, maxMs or stop(); every request is accounted for. */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const workers = options.workers ?? 8;
  const maxRequests = options.maxRequests ?? 2000;
  const maxMs = options.maxMs ?? 3000;
  const started = performance.now();
  const shared = Deno.createHttpClient({ caCerts: [options.caCert] });
  let sent = 0;
  let ok = 0;
  let refused = 0;
  let notConnected = 0;
  let lastOkMs = 0;
  const failures: RequestFailure[] = [];
  const more = () => sent < maxRequests && performance.now() - started < maxMs && !(options.stop?.() ?? false);

  const worker = async (index: number) => {
    const reuse = index < workers / 2;
    while (more()) {
      sent++;
      const client = reuse ? shared : Deno.createHttpClient({ caCerts: [options.caCert] });
      let outcome: Outcome;
      let detail = "";
      try {
        const answer = await postReview(client, options.port);
        const problem = checkAnswer(answer.status, answer.text, answer.uid, options.image);
        outcome = problem === undefined ? "ok" : "failed";
        detail = problem ?? "";
      } catch (error) {
        detail = describeError(error);
        outcome = classifyError(detail);
      } finally {
        if (!reuse) client.close();
      }
      const atMs = performance.now() - started;
      if (outcome === "ok") {
        ok++;
        lastOkMs = Math.max(lastOkMs, atMs);
      } else {
        if (outcome === "refused") refused++;
        if (outcome === "not-connected") notConnected++;
        failures.push({ worker: index, shared: reuse, atMs: Math.round(atMs), outcome, detail });
        if (outcome !== "failed") await sleep(options.refusedPauseMs ?? 20);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: workers }, (_, i) => worker(i)));
  } finally {
    shared.close();
  }
  return { sent, ok, refused, notConnected, failures, startedAt: started, lastOkMs };
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `probe` every `intervalMs` until it returns a value other than undefined; undefined on time-out. */
export async function waitFor<T>(
  probe: () => T | undefined | Promise<T | undefined>,
  options: { timeoutMs: number; intervalMs?: number },
): Promise<{ value: T; elapsedMs: number } | undefined> {
  const started = performance.now();
  for (;;) {
    const value = await probe();
    const elapsedMs = performance.now() - started;
    if (value !== undefined) return { value, elapsedMs };
    if (elapsedMs >= options.timeoutMs) return undefined;
    await sleep(options.intervalMs ?? 50);
  }
}

/** A free TCP port on 127.0.0.1 (listen on port 0, then close). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Text of GET http://127.0.0.1:PORT/metrics. */
export async function scrapeMetrics(probePort: number): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${probePort}/metrics`, { signal: AbortSignal.timeout(5000) });
  return await response.text();
}

/** One sample of a Prometheus text exposition (labels must match exactly, in any order); 0 when absent. */
export function metricValue(text: string, name: string, labels: Readonly<Record<string, string>> = {}): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).sort().join(",");
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const match = /^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null || match[1] !== name) continue;
    const got = (match[2] ?? "").split(",").filter((part) => part !== "").sort().join(",");
    if (got === wanted) return Number(match[3]);
  }
  return 0;
}

/** GET /readyz: status and the parsed body. */
export async function readyz(
  probePort: number,
): Promise<{ status: number; body: { ready?: boolean; rulesHash?: string; reasons?: string[] } }> {
  const response = await fetch(`http://127.0.0.1:${probePort}/readyz`, { signal: AbortSignal.timeout(2000) });
  return { status: response.status, body: await response.json() };
}

async function openssl(args: string[], stdin?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command("openssl", {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(stdin));
    await writer.close();
  }
  const killer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // already exited
    }
  }, 5000);
  const output = await child.output();
  clearTimeout(killer);
  const decoder = new TextDecoder();
  return { code: output.code, stdout: decoder.decode(output.stdout), stderr: decoder.decode(output.stderr) };
}

/** SHA-256 fingerprint of the first certificate in a PEM, as `openssl x509 -fingerprint` prints it. */
export async function certFingerprint(pem: string): Promise<string> {
  const result = await openssl(["x509", "-noout", "-fingerprint", "-sha256"], pem);
  const match = /Fingerprint=([0-9A-F:]+)/i.exec(result.stdout);
  if (match?.[1] === undefined) throw new Error(`openssl x509 failed: ${result.stderr}`);
  return match[1];
}

/** Fingerprint of the certificate a fresh TLS connection to 127.0.0.1:port is shown (openssl s_client). */
export async function presentedFingerprint(port: number): Promise<string> {
  const result = await openssl(["s_client", "-connect", `127.0.0.1:${port}`, "-servername", "localhost"]);
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(result.stdout)?.[0];
  if (pem === undefined) throw new Error(`openssl s_client got no certificate: ${result.stderr.slice(0, 500)}`);
  return await certFingerprint(pem);
}

/**
 * A logger whose records are kept in memory (LogTape is configured for this test module only), for `category` and
 * the loggers below it.
 */
export function memoryLogger(
  category = "mirrorhook-test",
): { logger: Logger; records: LogRecord[]; messages: () => string[] } {
  const records: LogRecord[] = [];
  configureSync({
    reset: true,
    sinks: { memory: (record: LogRecord) => void records.push(record) },
    loggers: [
      { category: [category], lowestLevel: "debug", sinks: ["memory"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["memory"] },
    ],
  });
  const messages = () =>
    records.map((record) =>
      record.message.map((part) => typeof part === "string" ? part : JSON.stringify(part)).join("")
    );
  return { logger: getLogger([category]), records, messages };
}

/** A temporary directory removed by the returned disposer. */
export async function tempDir(prefix: string): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix });
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }).catch(() => {}),
  };
}

/** A `serve` configuration for in-process tests: 127.0.0.1, ephemeral ports, no shutdown delay. */
export function testConfig(overrides: Partial<ServeConfig> & Pick<ServeConfig, "rules">): ServeConfig {
  return {
    host: "127.0.0.1",
    port: 0,
    probePort: 0,
    dryRun: false,
    onError: "allow",
    bypassPrefix: DEFAULT_BYPASS_PREFIX,
    excludeNamespaces: ["kube-system"],
    maxBodyBytes: DEFAULT_MAX_BODY_BYTES,
    dev: false,
    shutdownDelayMs: 0,
    shutdownTimeoutMs: 5000,
    ...overrides,
  };
}

/**
 * A `--dev` server on HARBOR_RULES (written to `dir`) with body and header deadlines of `timeoutMs`, for tests that
 * talk to the HTTPS port on raw TLS sockets; `ca` verifies its certificate, disposing shuts it down.
 */
export async function startDevServer(
  dir: string,
  timeoutMs: number,
  overrides: Partial<ServeConfig> = {},
): Promise<{ server: RunningServer; ca: string } & AsyncDisposable> {
  await Deno.writeTextFile(`${dir}/rules.yaml`, HARBOR_RULES);
  const { logger } = memoryLogger();
  const server = await startServer(
    testConfig({
      rules: [`${dir}/rules.yaml`],
      dev: true,
      limits: { bodyTimeoutMs: timeoutMs, headersTimeoutMs: timeoutMs },
      ...overrides,
    }),
    { logger },
  );
  return { server, ca: server.devCertificates!.caCert, [Symbol.asyncDispose]: () => server.shutdown("test") };
}

/** The `response.uid` of an AdmissionReview answer's text. */
export function answerUid(body: string): unknown {
  return (JSON.parse(body) as { response?: { uid?: unknown } }).response?.uid;
}
