// Asks a registry whether a manifest exists (OCI distribution HEAD), with Bearer token and Basic authentication.

import type { ImageReference } from "../image/reference.ts";
import { readStreamLimited } from "../util/body.ts";
import type { CredentialStore, RegistryCredential } from "./auth.ts";
import { type LookupAnswer, LruMap } from "./cache.ts";
import { guardedFetch } from "./http.ts";
import { normalizeRegistryHost, NOT_ALLOWED_DETAIL, VerifyPolicy } from "./policy.ts";
import { apiHost, Transport } from "./transport.ts";
import { configPlatform, manifestPlatforms, missingPlatforms } from "./platforms.ts";

/** Manifest media types a runtime can pull: OCI and Docker, single-platform and multi-platform, and v1 signed. */
export const MANIFEST_MEDIA_TYPES: readonly string[] = [
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.docker.distribution.manifest.v1+prettyjws",
  "application/vnd.docker.distribution.manifest.v1+json",
];

const ACCEPT = MANIFEST_MEDIA_TYPES.join(", ");
/** Token lifetime when the token server gives none (distribution token spec). */
const DEFAULT_TOKEN_SECONDS = 60;
/** Renew tokens this early, so one does not expire between the cache check and the registry. */
const TOKEN_SKEW_MS = 5_000;
const MAX_TOKEN_RESPONSE_BYTES = 1 << 20;
/** Bound on a manifest or config read for a platform check. */
const MAX_PLATFORM_READ_BYTES = 4 << 20;
/** Redirects followed per request (each one checked against the policy). */
const MAX_REDIRECTS = 5;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
/** Default bound on one HTTP request. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 5_000;

/** The answer of {@linkcode RegistryClient.check}, with what the registry said. */
export interface ManifestCheck extends LookupAnswer {
  /** HTTP status of the last manifest request, when there was one. */
  readonly httpStatus?: number;
  /** `Docker-Content-Digest` of a present manifest. */
  readonly digest?: string;
  /** Content-Type of a present manifest. */
  readonly mediaType?: string;
}

/** One HTTP exchange, for metrics. */
export interface RequestEvent {
  /** API host, e.g. `registry-1.docker.io`. */
  readonly host: string;
  readonly kind: "manifest" | "token" | "config";
  /** HTTP status, or `network-error`, `timeout`, `aborted`. */
  readonly code: string;
  readonly seconds: number;
}

/** Options of {@linkcode RegistryClient}. */
export interface RegistryClientOptions {
  /**
   * Injected for tests; defaults to {@linkcode guardedFetch} (node:https, resolved addresses checked). Called
   * with `redirect: "manual"`: redirects are followed here, after the policy allowed them.
   */
  readonly fetch?: typeof fetch;
  /**
   * Which registries may be asked and which hosts are listed (redirects, token realms, private addresses);
   * default: every registry may be asked, only the transport's insecure and CA-file hosts are listed.
   */
  readonly policy?: VerifyPolicy;
  readonly credentials?: CredentialStore;
  readonly transport?: Transport;
  /** Clock for token expiry. */
  readonly now?: () => number;
  /** Bound on one HTTP request, default {@linkcode DEFAULT_REQUEST_TIMEOUT_MS}. */
  readonly requestTimeoutMs?: number;
  readonly userAgent?: string;
  /** Bound on cached tokens (one per host and repository). */
  readonly maxTokens?: number;
  /** Called after every HTTP exchange. */
  readonly onRequest?: (event: RequestEvent) => void;
}

/** One challenge of a `WWW-Authenticate` header. */
export interface Challenge {
  /** Lowercase scheme, e.g. `bearer`, `basic`. */
  readonly scheme: string;
  readonly params: Readonly<Record<string, string>>;
}

/** Parses `WWW-Authenticate` (RFC 7235): several challenges, quoted or token parameter values. */
export function parseChallenges(header: string): Challenge[] {
  const challenges: { scheme: string; params: Record<string, string> }[] = [];
  let i = 0;
  const skip = (pattern: RegExp) => {
    while (i < header.length && pattern.test(header[i] ?? "")) i++;
  };
  const token = (): string => {
    const start = i;
    while (i < header.length && /[!#$%&'*+\-.^_`|~0-9A-Za-z]/.test(header[i] ?? "")) i++;
    return header.slice(start, i);
  };
  while (i < header.length) {
    skip(/[\s,]/);
    const name = token();
    if (name === "") {
      i++;
      continue;
    }
    skip(/\s/);
    if (header[i] === "=" && challenges.length > 0) {
      i++;
      skip(/\s/);
      let value = "";
      if (header[i] === '"') {
        i++;
        while (i < header.length && header[i] !== '"') {
          if (header[i] === "\\") i++;
          value += header[i] ?? "";
          i++;
        }
        i++;
      } else {
        // token68 or a bare token: up to the next comma.
        const start = i;
        while (i < header.length && header[i] !== ",") i++;
        value = header.slice(start, i).trim();
      }
      const current = challenges.at(-1);
      if (current !== undefined) current.params[name.toLowerCase()] = value;
    } else {
      challenges.push({ scheme: name.toLowerCase(), params: Object.create(null) });
    }
  }
  return challenges;
}

function basicHeader(username: string, password: string): string {
  const bytes = new TextEncoder().encode(`${username}:${password}`);
  return `Basic ${btoa(String.fromCharCode(...bytes))}`;
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const cause = error.cause instanceof Error ? `: ${error.cause.message}` : "";
    return `${error.message}${cause}`;
  }
  return String(error);
}

/** Registry API client for manifest existence checks; one per process, shared by all lookups. */
export class RegistryClient {
  readonly #fetch: typeof fetch;
  readonly #policy: VerifyPolicy;
  readonly #credentials: CredentialStore | undefined;
  readonly #transport: Transport;
  readonly #now: () => number;
  readonly #timeoutMs: number;
  readonly #userAgent: string;
  readonly #onRequest: ((event: RequestEvent) => void) | undefined;
  /** Bearer tokens by `host \0 scope`. */
  readonly #tokens: LruMap<string, string>;
  /** Hosts that answered with a Basic challenge: later requests send credentials up front. */
  readonly #basicHosts = new Set<string>();

  constructor(options: RegistryClientOptions = {}) {
    this.#credentials = options.credentials;
    this.#transport = options.transport ?? Transport.default();
    this.#policy = options.policy ?? VerifyPolicy.open(this.#transport.namedHosts);
    const transport = this.#transport;
    const policy = this.#policy;
    this.#fetch = options.fetch ??
      guardedFetch({ isListed: (host) => policy.isListed(host), ca: (host) => transport.ca(host) });
    this.#now = options.now ?? Date.now;
    this.#timeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.#userAgent = options.userAgent ?? "mirrorhook";
    this.#onRequest = options.onRequest;
    this.#tokens = new LruMap({ maxEntries: options.maxTokens ?? 1_000, now: this.#now });
  }

  /** The manifest URL for `reference`: by digest when it has one (that is what the runtime pulls), else by tag. */
  manifestUrl(reference: ImageReference): string {
    return `${this.#transport.baseUrl(reference.registry)}/v2/${reference.path}/manifests/${
      reference.digest ?? reference.tag ?? "latest"
    }`;
  }

  /**
   * HEAD the manifest: 200 present, 404 missing, anything else (after authenticating once when challenged) an
   * error carrying the status. Never throws; `signal` aborts the lookup.
   */
  async check(
    reference: ImageReference,
    options: { signal?: AbortSignal; platforms?: readonly string[] } = {},
  ): Promise<ManifestCheck> {
    const url = this.manifestUrl(reference);
    const host = apiHost(reference.registry);
    const scope = `repository:${reference.path}:pull`;
    if (!this.#policy.allowsAny(reference.registry)) {
      return { status: "error", detail: `${host}: ${NOT_ALLOWED_DETAIL}`, reason: NOT_ALLOWED_DETAIL };
    }
    // Credentials only for registries the platform listed: a rule's target must not pick them.
    const credential = this.#policy.holdsCredentials(reference.registry)
      ? this.#credentials?.find(reference.registry, reference.path)
      : undefined;
    const signal = options.signal;
    try {
      let authorization = this.#knownAuthorization(host, scope, credential);
      let response = await this.#head(url, host, authorization, signal);
      if (response.status === 401) {
        const header = response.headers.get("www-authenticate") ?? "";
        const authorized = await this.#authorize(
          header,
          { host, scope, credential, registry: reference.registry },
          signal,
        );
        if (typeof authorized !== "string") return authorized;
        authorization = authorized;
        response = await this.#head(url, host, authorization, signal);
      }
      const answer = this.#answer(response, host, credential);
      const platforms = options.platforms ?? [];
      if (answer.status !== "present" || platforms.length === 0) return answer;
      return await this.#checkPlatforms({ reference, url, host, authorization, platforms, answer }, signal);
    } catch (error) {
      return { status: "error", detail: `cannot reach ${host}: ${describe(error)}` };
    }
  }

  #knownAuthorization(host: string, scope: string, credential: RegistryCredential | undefined): string | undefined {
    if (credential?.kind === "registry-token") return `Bearer ${credential.token}`;
    const token = this.#tokens.get(`${host}\u0000${scope}`);
    if (token !== undefined) return `Bearer ${token}`;
    if (credential?.kind === "basic" && this.#basicHosts.has(host)) {
      return basicHeader(credential.username, credential.password);
    }
    return undefined;
  }

  #answer(response: Response, host: string, credential: RegistryCredential | undefined): ManifestCheck {
    const status = response.status;
    if (status === 200) {
      const mediaType = (response.headers.get("content-type") ?? "").split(";")[0]?.trim() ?? "";
      // A login page or a proxy's error page is not a manifest.
      if (mediaType.startsWith("text/html")) {
        return { status: "error", httpStatus: status, detail: `${host} answered with an HTML page, not a manifest` };
      }
      const digest = response.headers.get("docker-content-digest");
      return {
        status: "present",
        httpStatus: status,
        ...(mediaType === "" ? {} : { mediaType, detail: mediaType }),
        ...(digest === null ? {} : { digest }),
      };
    }
    if (status === 404) return { status: "missing", httpStatus: status, detail: `HTTP 404 from ${host}` };
    const why = status === 401
      ? credential === undefined
        ? ": authentication required and no credentials for this registry"
        : ": credentials rejected"
      : status === 403
      ? ": access denied"
      : status === 429
      ? ": rate limited"
      : "";
    return { status: "error", httpStatus: status, detail: `HTTP ${status} from ${host}${why}` };
  }

  /**
   * A present manifest that must serve `platforms`: an index must list each; a single image's config (fetched,
   * and cached with the answer like any other) must be one of them. Missing platforms make the answer `missing`.
   */
  async #checkPlatforms(
    request: {
      reference: ImageReference;
      url: string;
      host: string;
      authorization: string | undefined;
      platforms: readonly string[];
      answer: ManifestCheck;
    },
    signal?: AbortSignal,
  ): Promise<ManifestCheck> {
    const { reference, url, host, authorization, platforms, answer } = request;
    const read = async (kind: RequestEvent["kind"], target: string, what: string) => {
      const headers = new Headers({ accept: kind === "manifest" ? ACCEPT : "*/*", "user-agent": this.#userAgent });
      if (authorization !== undefined) headers.set("authorization", authorization);
      const response = await this.#send(kind, target, { method: "GET", headers }, host, signal);
      const text = await readLimited(response, MAX_PLATFORM_READ_BYTES);
      if (response.status !== 200) throw new Error(`HTTP ${response.status} from ${host} for the ${what}`);
      if (text === undefined) {
        throw new Error(`the ${what} from ${host} is larger than ${MAX_PLATFORM_READ_BYTES} bytes`);
      }
      return text;
    };
    let found: Parameters<typeof missingPlatforms>[0];
    try {
      const manifest = manifestPlatforms(await read("manifest", url, "manifest"));
      if (manifest.kind === "unreadable") throw new Error(`${host}: ${manifest.detail}`);
      if (manifest.kind === "index") found = manifest;
      else {
        const blobUrl = `${
          this.#transport.baseUrl(reference.registry)
        }/v2/${reference.path}/blobs/${manifest.configDigest}`;
        found = { kind: "image", platform: configPlatform(await read("config", blobUrl, "image config")) };
      }
    } catch (error) {
      return {
        status: "error",
        detail: `cannot check the platforms of ${host}/${reference.path}: ${describe(error)}`,
        reason: "its platforms could not be read",
      };
    }
    const missing = missingPlatforms(found, platforms);
    if (missing === undefined) return answer;
    return { status: "missing", httpStatus: 200, detail: missing, reason: missing };
  }

  async #head(url: string, host: string, authorization: string | undefined, signal?: AbortSignal): Promise<Response> {
    const headers = new Headers({ accept: ACCEPT, "user-agent": this.#userAgent });
    if (authorization !== undefined) headers.set("authorization", authorization);
    const response = await this.#send("manifest", url, { method: "HEAD", headers }, host, signal);
    await response.body?.cancel();
    return response;
  }

  /** The Authorization header to retry with, or an error answer. */
  async #authorize(
    header: string,
    request: { host: string; scope: string; credential: RegistryCredential | undefined; registry: string },
    signal?: AbortSignal,
  ): Promise<string | ManifestCheck> {
    const { host, credential } = request;
    const challenges = parseChallenges(header);
    const bearer = challenges.find((challenge) => challenge.scheme === "bearer");
    const basic = challenges.find((challenge) => challenge.scheme === "basic");
    if (bearer !== undefined) return await this.#fetchToken(bearer, request, signal);
    if (basic !== undefined) {
      if (credential?.kind !== "basic") {
        return {
          status: "error",
          httpStatus: 401,
          detail: credential === undefined
            ? `HTTP 401 from ${host}: Basic authentication required and no credentials for this registry`
            : `HTTP 401 from ${host}: Basic authentication required and the Docker config holds a token, not a password`,
        };
      }
      this.#basicHosts.add(host);
      return basicHeader(credential.username, credential.password);
    }
    return {
      status: "error",
      httpStatus: 401,
      detail: `HTTP 401 from ${host} without a usable WWW-Authenticate challenge (${JSON.stringify(header)})`,
    };
  }

  async #fetchToken(
    challenge: Challenge,
    request: { host: string; scope: string; credential: RegistryCredential | undefined },
    signal?: AbortSignal,
  ): Promise<string | ManifestCheck> {
    const { host, credential } = request;
    const fail = (detail: string): ManifestCheck => ({ status: "error", httpStatus: 401, detail });
    const realm = challenge.params["realm"];
    let url: URL;
    try {
      url = new URL(realm ?? "");
    } catch {
      return fail(`HTTP 401 from ${host}: Bearer challenge without a valid realm (${JSON.stringify(realm ?? "")})`);
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") {
      return fail(`HTTP 401 from ${host}: token realm ${JSON.stringify(realm)} is not an HTTP URL`);
    }
    // A token server elsewhere would receive the scope, credentials and our trust in its token: only the
    // registry's own host or a listed one, and plain HTTP only to a host listed as insecure.
    if (this.#transport.refusesScheme(url)) {
      return fail(`HTTP 401 from ${host}: refusing the plain-HTTP token realm ${url.origin}`);
    }
    if (normalizeRegistryHost(url.host) !== normalizeRegistryHost(host) && !this.#policy.allowsElsewhere(url.host)) {
      return fail(`HTTP 401 from ${host}: refusing the token realm ${url.origin} on a host that is not listed`);
    }
    const scope = challenge.params["scope"] ?? request.scope;
    const service = challenge.params["service"];
    const headers = new Headers({ "user-agent": this.#userAgent, accept: "application/json" });
    let init: RequestInit;
    if (credential?.kind === "identity-token") {
      // An identity token is an OAuth2 refresh token (docker login with a registry's OAuth flow).
      const form = new URLSearchParams({
        grant_type: "refresh_token",
        refresh_token: credential.token,
        client_id: this.#userAgent,
        scope,
        ...(service === undefined ? {} : { service }),
      });
      headers.set("content-type", "application/x-www-form-urlencoded");
      init = { method: "POST", headers, body: form.toString() };
    } else {
      if (service !== undefined) url.searchParams.set("service", service);
      url.searchParams.set("scope", scope);
      if (credential?.kind === "basic") {
        headers.set("authorization", basicHeader(credential.username, credential.password));
        url.searchParams.set("account", credential.username);
      }
      init = { method: "GET", headers };
    }
    const response = await this.#send("token", url.href, init, url.host, signal);
    const text = await readLimited(response, MAX_TOKEN_RESPONSE_BYTES);
    if (response.status !== 200) {
      return fail(
        `HTTP 401 from ${host}: token request to ${url.origin} failed with HTTP ${response.status}${
          response.status === 401 ? (credential === undefined ? " (no credentials)" : " (credentials rejected)") : ""
        }`,
      );
    }
    let body: unknown;
    try {
      body = JSON.parse(text ?? "");
    } catch {
      return fail(`HTTP 401 from ${host}: token response from ${url.origin} is not JSON`);
    }
    const record = typeof body === "object" && body !== null ? body as Record<string, unknown> : {};
    const token = typeof record["token"] === "string" && record["token"] !== ""
      ? record["token"]
      : typeof record["access_token"] === "string"
      ? record["access_token"]
      : undefined;
    if (token === undefined || token === "") {
      return fail(`HTTP 401 from ${host}: token response from ${url.origin} holds no token`);
    }
    const expiresIn = typeof record["expires_in"] === "number" && record["expires_in"] > 0
      ? record["expires_in"]
      : DEFAULT_TOKEN_SECONDS;
    this.#tokens.set(`${host}\u0000${request.scope}`, token, expiresIn * 1000 - TOKEN_SKEW_MS);
    return `Bearer ${token}`;
  }

  async #send(
    kind: RequestEvent["kind"],
    url: string,
    init: RequestInit,
    host: string,
    signal?: AbortSignal,
  ): Promise<Response> {
    const controller = new AbortController();
    const onAbort = () => controller.abort(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    if (signal?.aborted === true) controller.abort(signal.reason);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort(new DOMException(`no answer within ${this.#timeoutMs} ms`, "TimeoutError"));
    }, this.#timeoutMs);
    const started = performance.now();
    let code = "network-error";
    try {
      let current = new URL(url);
      let headers = new Headers(init.headers);
      for (let redirects = 0;; redirects++) {
        const client = this.#transport.client(current.host);
        const response = await this.#fetch(current.href, {
          ...init,
          headers,
          redirect: "manual",
          signal: controller.signal,
          ...(client === undefined ? {} : { client }),
        } as RequestInit);
        code = String(response.status);
        const location = response.headers.get("location");
        if (!REDIRECT_STATUSES.has(response.status) || location === null) return response;
        await response.body?.cancel();
        const next = this.#redirectTarget(current, location);
        if (redirects >= MAX_REDIRECTS) throw new Error(`more than ${MAX_REDIRECTS} redirects`);
        // Credentials stay with the host they were meant for.
        if (next.host !== current.host) {
          headers = new Headers(headers);
          headers.delete("authorization");
        }
        current = next;
      }
    } catch (error) {
      if (timedOut) {
        code = "timeout";
        throw new Error(`no answer within ${this.#timeoutMs} ms`);
      }
      if (controller.signal.aborted) {
        code = "aborted";
        throw new Error("lookup aborted");
      }
      if (error instanceof RefusedError) code = "refused";
      throw error;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      this.#onRequest?.({ host, kind, code, seconds: (performance.now() - started) / 1000 });
    }
  }

  /** Where a redirect leads, when it stays on the same host or goes to a listed one, never down to plain HTTP. */
  #redirectTarget(from: URL, location: string): URL {
    let to: URL;
    try {
      to = new URL(location, from);
    } catch {
      throw new RefusedError(`redirect from ${from.host} to an invalid location`);
    }
    if (this.#transport.refusesScheme(to)) {
      throw new RefusedError(`redirect from ${from.host} to ${to.protocol}//${to.host} refused: not HTTPS`);
    }
    if (normalizeRegistryHost(to.host) !== normalizeRegistryHost(from.host) && !this.#policy.allowsElsewhere(to.host)) {
      throw new RefusedError(`redirect from ${from.host} to ${to.host} refused: the host is not listed`);
    }
    return to;
  }
}

/** A request the policy did not let through (a redirect elsewhere). */
class RefusedError extends Error {
  override name = "RefusedError";
}

/** The body as text, or undefined when it is larger than `limit` bytes (then it is discarded). */
async function readLimited(response: Response, limit: number): Promise<string | undefined> {
  const bytes = await readStreamLimited(response.body, undefined, limit);
  return bytes === undefined ? undefined : new TextDecoder().decode(bytes);
}
