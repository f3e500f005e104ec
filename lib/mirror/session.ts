// Authenticated, retried HTTP requests to one registry's distribution API, for pulling and pushing.

import type { CredentialStore, RegistryCredential } from "../verify/auth.ts";
import { LruMap } from "../verify/cache.ts";
import { parseChallenges } from "../verify/registry.ts";
import { apiHost, Transport } from "../verify/transport.ts";
import { readStreamLimited } from "../util/body.ts";

/** Why a copy failed: a stable, bounded code for metrics and logs. */
export type MirrorFailure =
  | "auth"
  | "not-found"
  | "unreachable"
  | "registry-error"
  | "too-large"
  | "digest-mismatch"
  | "invalid-manifest"
  | "platform-missing"
  | "aborted";

/** A copy that cannot be done: what failed, where, and a {@linkcode MirrorFailure} code. */
export class MirrorError extends Error {
  override name = "MirrorError";
  readonly reason: MirrorFailure;
  /** HTTP status when a registry answered. */
  readonly httpStatus?: number;
  constructor(reason: MirrorFailure, message: string, options: { httpStatus?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.reason = reason;
    if (options.httpStatus !== undefined) this.httpStatus = options.httpStatus;
  }
}

/** How often and how patiently to retry 5xx answers and connection errors. */
export interface RetryPolicy {
  /** Attempts in all, at least 1. */
  readonly attempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
}

/** Defaults: four attempts over about three seconds, enough for a registry restart or a proxy hiccup. */
const DEFAULT_RETRY: RetryPolicy = { attempts: 4, baseDelayMs: 250, maxDelayMs: 2_000 };
/** Default bound on waiting for a registry's response headers. */
const DEFAULT_HEADER_TIMEOUT_MS = 30_000;
const MAX_TOKEN_RESPONSE_BYTES = 1 << 20;
const DEFAULT_TOKEN_SECONDS = 60;
const TOKEN_SKEW_MS = 5_000;

/** Options shared by every session of a {@linkcode SessionPool}. */
export interface SessionOptions {
  readonly fetch?: typeof fetch;
  readonly credentials?: CredentialStore;
  readonly transport?: Transport;
  readonly userAgent?: string;
  /** Bound on waiting for response headers (bodies stream for as long as they move). */
  readonly headerTimeoutMs?: number;
  readonly retry?: RetryPolicy;
  /** Waits between retries; injected by tests. */
  readonly sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** One request of {@linkcode RegistrySession.send}. */
export interface SendRequest {
  readonly method: "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE";
  /** Path below the registry (`/v2/...`) or an absolute URL (an upload Location). */
  readonly url: string;
  /** Token scope, e.g. `repository:team/app:pull,push` (several separated by spaces). */
  readonly scope: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** Bytes are resent on retries; a stream is sent once. */
  readonly body?: Uint8Array | ReadableStream<Uint8Array>;
  /** What the request is, for error messages: `GET manifest team/app:1`. */
  readonly what: string;
  readonly signal?: AbortSignal;
}

/** Waits `ms`, or rejects when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Full-jitter exponential backoff for attempt `n` (0-based). */
function backoffMs(policy: RetryPolicy, attempt: number): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
  return Math.round(ceiling / 2 + Math.random() * ceiling / 2);
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const cause = error.cause instanceof Error ? `: ${error.cause.message}` : "";
    return `${error.message}${cause}`;
  }
  return String(error);
}

function basicHeader(username: string, password: string): string {
  const bytes = new TextEncoder().encode(`${username}:${password}`);
  return `Basic ${btoa(String.fromCharCode(...bytes))}`;
}

/** A status worth retrying: the registry or something in front of it is briefly unwell. */
function isRetriableStatus(status: number): boolean {
  return status === 429 || status === 500 || status === 502 || status === 503 || status === 504;
}

/** One session per registry, so tokens and Basic hosts are shared by every copy. */
export class SessionPool {
  readonly #options: SessionOptions;
  readonly #sessions = new Map<string, RegistrySession>();

  constructor(options: SessionOptions = {}) {
    this.#options = options;
  }

  /** The session for `registry` (as in a normalized reference). */
  get(registry: string): RegistrySession {
    let session = this.#sessions.get(registry);
    if (session === undefined) {
      session = new RegistrySession(registry, this.#options);
      this.#sessions.set(registry, session);
    }
    return session;
  }

  get retry(): RetryPolicy {
    return this.#options.retry ?? DEFAULT_RETRY;
  }

  /** Waits between retries, as configured. */
  wait(ms: number, signal?: AbortSignal): Promise<void> {
    return (this.#options.sleep ?? sleep)(ms, signal);
  }
}

/** Requests to one registry: Basic or Bearer authentication per scope, retries with backoff. */
export class RegistrySession {
  /** Registry name as in references, e.g. `127.0.0.1:5000`. */
  readonly registry: string;
  /** `https://host` of the API. */
  readonly baseUrl: string;
  readonly #host: string;
  readonly #fetch: typeof fetch;
  readonly #credentials: CredentialStore | undefined;
  readonly #transport: Transport;
  readonly #userAgent: string;
  readonly #timeoutMs: number;
  readonly #retry: RetryPolicy;
  readonly #sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  readonly #tokens = new LruMap<string, string>({ maxEntries: 1_000 });
  #basic = false;

  constructor(registry: string, options: SessionOptions = {}) {
    this.registry = registry;
    this.#transport = options.transport ?? Transport.default();
    this.baseUrl = this.#transport.baseUrl(registry);
    this.#host = apiHost(registry);
    this.#fetch = options.fetch ?? globalThis.fetch;
    this.#credentials = options.credentials;
    this.#userAgent = options.userAgent ?? "mirrorhook";
    this.#timeoutMs = options.headerTimeoutMs ?? DEFAULT_HEADER_TIMEOUT_MS;
    this.#retry = options.retry ?? DEFAULT_RETRY;
    this.#sleep = options.sleep ?? sleep;
  }

  /** An absolute URL for a `/v2/...` path or a Location header (relative or absolute). */
  resolve(url: string): URL {
    return new URL(url, `${this.baseUrl}/`);
  }

  /**
   * Sends a request, authenticating when challenged and retrying 5xx answers and connection errors (bodies that
   * are streams are sent once). Returns every other answer, whatever its status; throws {@linkcode MirrorError}
   * for `auth`, `unreachable` and `aborted`.
   */
  async send(request: SendRequest): Promise<Response> {
    const replayable = !(request.body instanceof ReadableStream);
    const attempts = replayable ? Math.max(1, this.#retry.attempts) : 1;
    let authenticated = false;
    for (let attempt = 0;; attempt++) {
      let response: Response;
      try {
        response = await this.#once(request);
      } catch (error) {
        if (error instanceof MirrorError || attempt + 1 >= attempts) {
          throw error instanceof MirrorError
            ? error
            : new MirrorError("unreachable", `Cannot ${request.what}: ${this.#host} unreachable: ${describe(error)}`, {
              cause: error,
            });
        }
        await this.#sleep(backoffMs(this.#retry, attempt), request.signal);
        continue;
      }
      if (response.status === 401 && !authenticated && replayable) {
        const header = response.headers.get("www-authenticate") ?? "";
        await response.body?.cancel();
        await this.#authenticate(header, request);
        authenticated = true;
        attempt--;
        continue;
      }
      if (response.status === 401 || response.status === 403) {
        await response.body?.cancel();
        const credential = this.#credential(request.scope);
        throw new MirrorError(
          "auth",
          `Cannot ${request.what}: HTTP ${response.status} from ${this.#host}${
            response.status === 403
              ? ": access denied"
              : credential === undefined
              ? ": authentication required and no credentials for this registry"
              : ": credentials rejected"
          }`,
          { httpStatus: response.status },
        );
      }
      if (isRetriableStatus(response.status) && attempt + 1 < attempts) {
        await response.body?.cancel();
        await this.#sleep(backoffMs(this.#retry, attempt), request.signal);
        continue;
      }
      return response;
    }
  }

  /** The repository named first in a scope: credentials are looked up for it. */
  #credential(scope: string): RegistryCredential | undefined {
    const repository = /^repository:([^:]+):/.exec(scope)?.[1] ?? "";
    return this.#credentials?.find(this.registry, repository);
  }

  #authorization(scope: string): string | undefined {
    const credential = this.#credential(scope);
    if (credential?.kind === "registry-token") return `Bearer ${credential.token}`;
    const token = this.#tokens.get(scope);
    if (token !== undefined) return `Bearer ${token}`;
    if (this.#basic && credential?.kind === "basic") return basicHeader(credential.username, credential.password);
    return undefined;
  }

  async #once(request: SendRequest): Promise<Response> {
    const url = this.resolve(request.url);
    const headers = new Headers({ "user-agent": this.#userAgent, ...request.headers });
    const authorization = this.#authorization(request.scope);
    // Credentials go only to the registry itself, never to another origin an upload Location may name.
    if (authorization !== undefined && url.origin === new URL(this.baseUrl).origin) {
      headers.set("authorization", authorization);
    }
    const controller = new AbortController();
    const onAbort = () => controller.abort(request.signal?.reason);
    request.signal?.addEventListener("abort", onAbort, { once: true });
    if (request.signal?.aborted === true) controller.abort(request.signal.reason);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort(new DOMException("timeout", "TimeoutError"));
    }, this.#timeoutMs);
    try {
      const client = this.#transport.client(this.#host);
      return await this.#fetch(url, {
        method: request.method,
        headers,
        ...(request.body === undefined ? {} : { body: request.body as BodyInit }),
        signal: controller.signal,
        ...(client === undefined ? {} : { client }),
      } as RequestInit);
    } catch (error) {
      if (request.signal?.aborted === true) {
        throw new MirrorError("aborted", `Cannot ${request.what}: aborted`, { cause: error });
      }
      if (timedOut) throw new Error(`no answer within ${this.#timeoutMs} ms`);
      throw error;
    } finally {
      clearTimeout(timer);
      request.signal?.removeEventListener("abort", onAbort);
    }
  }

  /** Answers a 401 challenge: remembers Basic for this registry, or fetches a Bearer token for the scope. */
  async #authenticate(header: string, request: SendRequest): Promise<void> {
    const credential = this.#credential(request.scope);
    const challenges = parseChallenges(header);
    const bearer = challenges.find((challenge) => challenge.scheme === "bearer");
    const fail = (detail: string) =>
      new MirrorError("auth", `Cannot ${request.what}: HTTP 401 from ${this.#host}: ${detail}`, { httpStatus: 401 });
    if (bearer !== undefined) {
      await this.#token(bearer.params, request, credential, fail);
      return;
    }
    if (challenges.some((challenge) => challenge.scheme === "basic")) {
      if (credential === undefined) throw fail("Basic authentication required and no credentials for this registry");
      if (credential.kind !== "basic") {
        throw fail("Basic authentication required and the Docker config holds a token, not a password");
      }
      this.#basic = true;
      return;
    }
    throw fail(`no usable WWW-Authenticate challenge (${JSON.stringify(header.slice(0, 200))})`);
  }

  /** Fetches a token (distribution token spec; OAuth2 refresh for identity tokens) and caches it by scope. */
  async #token(
    params: Readonly<Record<string, string>>,
    request: SendRequest,
    credential: RegistryCredential | undefined,
    fail: (detail: string) => MirrorError,
  ): Promise<string> {
    const realm = params["realm"] ?? "";
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw fail(`Bearer challenge without a valid realm (${JSON.stringify(realm)})`);
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") {
      throw fail(`token realm ${JSON.stringify(realm)} is not an HTTP URL`);
    }
    if (credential !== undefined && credential.kind !== "registry-token" && !this.#transport.allowsCredentials(url)) {
      throw fail(`refusing to send credentials to the plain-HTTP token realm ${url.origin}`);
    }
    const service = params["service"];
    const scopes = request.scope.split(" ").filter((scope) => scope !== "");
    const headers = new Headers({ "user-agent": this.#userAgent, accept: "application/json" });
    let init: RequestInit;
    if (credential?.kind === "identity-token") {
      const form = new URLSearchParams({
        grant_type: "refresh_token",
        refresh_token: credential.token,
        client_id: this.#userAgent,
        scope: scopes.join(" "),
        ...(service === undefined ? {} : { service }),
      });
      headers.set("content-type", "application/x-www-form-urlencoded");
      init = { method: "POST", headers, body: form.toString() };
    } else {
      if (service !== undefined) url.searchParams.set("service", service);
      for (const scope of scopes) url.searchParams.append("scope", scope);
      if (credential?.kind === "basic") {
        headers.set("authorization", basicHeader(credential.username, credential.password));
        url.searchParams.set("account", credential.username);
      }
      init = { method: "GET", headers };
    }
    let response: Response;
    try {
      const client = this.#transport.client(url.host);
      response = await this.#fetch(url, {
        ...init,
        signal: AbortSignal.timeout(this.#timeoutMs),
        ...(client === undefined ? {} : { client }),
      } as RequestInit);
    } catch (error) {
      throw new MirrorError("unreachable", `Cannot ${request.what}: token server ${url.origin}: ${describe(error)}`);
    }
    const bytes = await readStreamLimited(response.body, undefined, MAX_TOKEN_RESPONSE_BYTES);
    if (response.status !== 200) {
      throw fail(
        `token request to ${url.origin} failed with HTTP ${response.status}${
          response.status === 401 ? (credential === undefined ? " (no credentials)" : " (credentials rejected)") : ""
        }`,
      );
    }
    let body: unknown;
    try {
      body = JSON.parse(new TextDecoder().decode(bytes ?? new Uint8Array()));
    } catch {
      throw fail(`token response from ${url.origin} is not JSON`);
    }
    const record = typeof body === "object" && body !== null ? body as Record<string, unknown> : {};
    const token = typeof record["token"] === "string" && record["token"] !== ""
      ? record["token"]
      : typeof record["access_token"] === "string"
      ? record["access_token"]
      : "";
    if (token === "") throw fail(`token response from ${url.origin} holds no token`);
    const expiresIn = typeof record["expires_in"] === "number" && record["expires_in"] > 0
      ? record["expires_in"]
      : DEFAULT_TOKEN_SECONDS;
    this.#tokens.set(request.scope, token, expiresIn * 1000 - TOKEN_SKEW_MS);
    return token;
  }
}
