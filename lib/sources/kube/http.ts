// HTTP to the Kubernetes API server: node:http(s) with the options KubeConfig builds (TLS material, proxy agent, token).

import http from "node:http";
import https from "node:https";
import { InClusterAccess, type KubeAccess } from "./in_cluster.ts";
import { stringField } from "./resources.ts";
import { isRecord } from "../../util/json.ts";

/**
 * Access to the API server: from the kubeconfig at `path` (`--kubeconfig`), else the in-cluster service account.
 * Throws when neither is available. @kubernetes/client-node (~80 MB resident once loaded) is loaded only for a
 * kubeconfig file, whose users may need its authentication plugins (exec, OIDC); in a cluster it is not needed.
 */
export async function loadKubeConfig(options: { readonly path?: string } = {}): Promise<KubeAccess> {
  let config: KubeAccess;
  if (options.path === undefined) config = new InClusterAccess();
  else {
    const { KubeConfig } = await import("@kubernetes/client-node");
    const file = new KubeConfig();
    file.loadFromFile(options.path);
    config = file;
  }
  const cluster = config.getCurrentCluster();
  if (cluster === null) throw new Error("Cannot connect to the Kubernetes API: the kubeconfig has no current cluster");
  return config;
}

/** A non-success answer from the API server, with its Status `code`, `reason` and the wait it asked for. */
export class KubeApiError extends Error {
  override name = "KubeApiError";
  readonly code: number;
  readonly reason: string | undefined;
  /** Seconds to wait before retrying: the Retry-After header, else the Status's `details.retryAfterSeconds`. */
  readonly retryAfterSeconds: number | undefined;
  constructor(action: string, answer: Answer) {
    const { status: code, body } = answer;
    const reason = isRecord(body) ? stringField(body, "reason") : undefined;
    const detail = isRecord(body) ? stringField(body, "message") : typeof body === "string" ? body.slice(0, 200) : "";
    super(`Cannot ${action}: ${code}${reason === undefined ? "" : ` ${reason}`}${detail ? `: ${detail}` : ""}`);
    this.code = code;
    this.reason = reason;
    const details = isRecord(body) && isRecord(body["details"]) ? body["details"]["retryAfterSeconds"] : undefined;
    const retryAfter = answer.retryAfterSeconds ?? details;
    this.retryAfterSeconds = typeof retryAfter === "number" && Number.isFinite(retryAfter) && retryAfter >= 0
      ? retryAfter
      : undefined;
  }
}

/**
 * True when the API server could not be reached at all (nothing listens: it is starting or restarting), as opposed
 * to an answer, a TLS failure or a timeout.
 */
export function isConnectionRefused(error: unknown): boolean {
  for (let cause: unknown = error, depth = 0; cause instanceof Error && depth < 5; depth++) {
    if ((cause as { code?: unknown }).code === "ECONNREFUSED" || /connection refused/i.test(cause.message)) {
      return true;
    }
    cause = cause.cause;
  }
  return false;
}

/** Longest watch line accepted (one object); the API server's own request limit is 3 MiB. */
const MAX_LINE = 16 * 1024 * 1024;

/** A complete answer: its HTTP status and its body (parsed JSON, else the text). */
export interface Answer {
  readonly status: number;
  readonly body: unknown;
  /** The Retry-After header in seconds, when the answer has one (429 and 503 do). */
  readonly retryAfterSeconds?: number;
}

/** Requests to one API server, authenticated as the kubeconfig says. */
export class KubeHttp {
  readonly #config: KubeAccess;
  readonly #server: string;
  readonly #timeoutMs: number;

  constructor(config: KubeAccess, timeoutMs: number) {
    const cluster = config.getCurrentCluster();
    if (cluster === null) {
      throw new Error("Cannot connect to the Kubernetes API: the kubeconfig has no current cluster");
    }
    this.#config = config;
    this.#server = cluster.server.replace(/\/+$/, "");
    this.#timeoutMs = timeoutMs;
  }

  /** One request with a JSON answer, bounded in time. */
  async request(
    method: string,
    path: string,
    options: { query?: Record<string, string>; body?: unknown; signal: AbortSignal },
  ): Promise<Answer> {
    const controller = new AbortController();
    const timer = setTimeout(
      () => controller.abort(new Error(`timed out after ${this.#timeoutMs} ms`)),
      this.#timeoutMs,
    );
    const signal = AbortSignal.any([options.signal, controller.signal]);
    try {
      const response = await this.#open(method, path, options.query ?? {}, options.body, signal);
      const chunks: Uint8Array[] = [];
      for await (const chunk of response) chunks.push(chunk as Uint8Array);
      const text = new TextDecoder().decode(concat(chunks));
      return { status: response.statusCode ?? 0, body: parseJson(text), ...retryAfterOf(response) };
    } finally {
      clearTimeout(timer);
    }
  }

  /** A watch: the status and, on 200, the newline-delimited events as lines. */
  async stream(
    path: string,
    query: Record<string, string>,
    signal: AbortSignal,
  ): Promise<{ answer?: Answer; lines?: AsyncGenerator<string> }> {
    const response = await this.#open("GET", path, query, undefined, signal);
    if (response.statusCode !== 200) {
      const chunks: Uint8Array[] = [];
      for await (const chunk of response) chunks.push(chunk as Uint8Array);
      const body = parseJson(new TextDecoder().decode(concat(chunks)));
      return { answer: { status: response.statusCode ?? 0, body, ...retryAfterOf(response) } };
    }
    return { lines: readLines(response) };
  }

  async #open(
    method: string,
    path: string,
    query: Record<string, string>,
    body: unknown,
    signal: AbortSignal,
  ): Promise<http.IncomingMessage> {
    signal.throwIfAborted();
    // Per request, so that a rotated service account token (re-read by the access) is picked up.
    const options: https.RequestOptions = {};
    await this.#config.applyToHTTPSOptions(options);
    const url = new URL(this.#server + path);
    for (const [name, value] of Object.entries(query)) url.searchParams.set(name, value);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = {};
    if (isRecord(options.headers)) {
      for (const [name, value] of Object.entries(options.headers)) {
        if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(", ") : String(value);
      }
    }
    headers["Accept"] = "application/json";
    headers["User-Agent"] = "mirrorhook";
    if (payload !== undefined) headers["Content-Type"] = "application/json";
    signal.throwIfAborted();
    return await new Promise((resolve, reject) => {
      const request = (url.protocol === "https:" ? https : http).request(url, { ...options, method, headers });
      const abort = () => request.destroy(signal.reason instanceof Error ? signal.reason : new Error("aborted"));
      signal.addEventListener("abort", abort, { once: true });
      const release = () => signal.removeEventListener("abort", abort);
      request.on("response", (response) => {
        response.on("close", release);
        resolve(response);
      });
      request.on("error", (error) => {
        release();
        reject(error);
      });
      request.end(payload);
    });
  }
}

/** Retry-After in seconds (the API server sends seconds, never a date). */
function retryAfterOf(response: http.IncomingMessage): { retryAfterSeconds?: number } {
  const header = response.headers["retry-after"];
  const seconds = typeof header === "string" && /^\d+$/.test(header.trim()) ? Number(header.trim()) : undefined;
  return seconds === undefined ? {} : { retryAfterSeconds: seconds };
}

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/** JSON, or the text itself when it is not JSON (an error page from a proxy). */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

async function* readLines(response: http.IncomingMessage): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for await (const chunk of response) {
      buffer += decoder.decode(chunk as Uint8Array, { stream: true });
      let end: number;
      while ((end = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 1);
        if (line.trim() !== "") yield line;
      }
      if (buffer.length > MAX_LINE) throw new Error(`watch event longer than ${MAX_LINE} bytes`);
    }
    buffer += decoder.decode();
    if (buffer.trim() !== "") yield buffer;
  } finally {
    response.destroy();
  }
}

/** The message of anything thrown. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
