// Test support: an in-process Kubernetes API server for mirrorhook's resources, speaking the real JSON wire protocol.
//
// Serves imagerewrites and clusterimagerewrites (mirrorhook.dev/v1alpha1, with a status subresource), namespaces
// (v1) and, optionally, registryrewriterules (dev.flemzord.fr/v1alpha1, mutating-registry-webhook's CRD: by default
// not installed, so 404; or 403 as when RBAC does not grant it): LIST with limit/continue, WATCH with resourceVersion, bookmarks, timeoutSeconds and 410 Expired, GET, and
// PUT/PATCH of /status with resourceVersion preconditions. One global resourceVersion counter, as etcd's revision.
// Test controls create, change and delete objects, drop or expire watches, compact history and count requests, hold
// back watch events (the object is in the API, not yet in the watches), fail or hold GETs of single objects, and
// play an API-server restart: nothing listening (connection refused), then 429 "storage is (re)initializing", 503 or
// RBAC's 403 while its caches warm, answered with the Status bodies and Retry-After headers the API server sends.

import { KubeConfig } from "@kubernetes/client-node";

type Json = Record<string, unknown>;

interface ResourceDef {
  readonly plural: string;
  readonly kind: string;
  readonly apiVersion: string;
  readonly namespaced: boolean;
  /** `/apis/mirrorhook.dev/v1alpha1` or `/api/v1`. */
  readonly base: string;
  /** Built-in types: list items carry no kind/apiVersion, objects have no generation. */
  readonly builtin: boolean;
  /** Served only while its CRD is installed (see {@linkcode FakeKubeApi.setRegistryRewriteRules}). */
  readonly optional?: boolean;
}

const GROUP_VERSION = "mirrorhook.dev/v1alpha1";
const FLEMZORD_GROUP_VERSION = "dev.flemzord.fr/v1alpha1";
/** mutating-registry-webhook's RegistryRewriteRule: its CRD may or may not be installed. */
const REGISTRY_REWRITE_RULES = "registryrewriterules";
const RESOURCES: readonly ResourceDef[] = [
  {
    plural: "imagerewrites",
    kind: "ImageRewrite",
    apiVersion: GROUP_VERSION,
    namespaced: true,
    base: `/apis/${GROUP_VERSION}`,
    builtin: false,
  },
  {
    plural: "clusterimagerewrites",
    kind: "ClusterImageRewrite",
    apiVersion: GROUP_VERSION,
    namespaced: false,
    base: `/apis/${GROUP_VERSION}`,
    builtin: false,
  },
  { plural: "namespaces", kind: "Namespace", apiVersion: "v1", namespaced: false, base: "/api/v1", builtin: true },
  {
    plural: REGISTRY_REWRITE_RULES,
    kind: "RegistryRewriteRule",
    apiVersion: FLEMZORD_GROUP_VERSION,
    namespaced: false,
    base: `/apis/${FLEMZORD_GROUP_VERSION}`,
    builtin: false,
    optional: true,
  },
];

/**
 * How the API answers for RegistryRewriteRules: served (CRD installed), 404 as when the CRD is not installed, or
 * 403 as when the CRD is installed but the service account's role does not grant it.
 */
export type OptionalResourceState = "served" | "absent" | "forbidden";

/** One request as the fake saw it. */
export interface RecordedRequest {
  readonly method: string;
  /** Resource plural, e.g. `clusterimagerewrites`; empty when the path matched nothing. */
  readonly plural: string;
  readonly namespace?: string;
  readonly name?: string;
  readonly subresource?: string;
  readonly watch: boolean;
  readonly query: URLSearchParams;
  readonly status: number;
  /** When it was answered (performance.now()). */
  readonly at: number;
}

interface HistoryEvent {
  readonly resourceVersion: number;
  readonly plural: string;
  readonly type: "ADDED" | "MODIFIED" | "DELETED";
  readonly object: Json;
}

interface Watcher {
  readonly plural: string;
  readonly namespace: string | undefined;
  readonly bookmarks: boolean;
  send(event: Json): void;
  /** Ends the response: cleanly (final chunk), or abruptly as a broken connection. */
  end(abrupt: boolean): void;
}

/** Options of {@linkcode FakeKubeApi.start}. */
export interface FakeKubeApiOptions {
  /** Serve HTTPS with this certificate (PEM); plain HTTP otherwise. */
  readonly tls?: { readonly cert: string; readonly key: string };
  readonly token?: string;
  /** How a watch from a compacted resourceVersion is refused: an ERROR event in a 200 stream, or an HTTP 410. */
  readonly expiredWatch?: "event" | "http";
  /** CA certificate (PEM) that signed `tls.cert`, written into the kubeconfig. */
  readonly caCert?: string;
  /** RegistryRewriteRules: served, or answered as when the CRD is not installed (the default) or not granted. */
  readonly registryRewriteRules?: OptionalResourceState;
}

function isRecord(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function clone<T>(value: T): T {
  return structuredClone(value);
}

/** Keys sorted, as the API server's Go encoder writes unstructured objects. */
function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (isRecord(value)) {
    return Object.fromEntries(Object.keys(value).sort().map((key) => [key, sortKeys(value[key])]));
  }
  return value;
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(sortKeys(a)) === JSON.stringify(sortKeys(b));
}

/** RFC 7386 JSON merge patch. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isRecord(patch)) return clone(patch);
  const out: Json = isRecord(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key], value);
  }
  return out;
}

/** A metav1.Status failure. */
function statusBody(code: number, reason: string, message: string, details?: Json): Json {
  return {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason,
    ...(details === undefined ? {} : { details }),
    code,
  };
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(sortKeys(body)), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/**
 * How every request is answered while an API server starts (see {@linkcode FakeKubeApi.failRequests}):
 * - `initializing`: 429 TooManyRequests "storage is (re)initializing", Retry-After 1 (the watch cache is not ready);
 * - `unavailable`: 503 ServiceUnavailable, with Retry-After when `retryAfterSeconds` is given;
 * - `forbidden`: 403 as RBAC answers before its caches hold the service account's ClusterRole.
 */
export type StartingState = "initializing" | "unavailable" | "forbidden";

function metadataOf(object: Json): Json {
  if (!isRecord(object["metadata"])) object["metadata"] = {};
  return object["metadata"] as Json;
}

/** A fake kube-apiserver on 127.0.0.1 for one test. */
export class FakeKubeApi implements AsyncDisposable {
  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  readonly token: string;
  readonly caCert: string | undefined;
  /** Every request, in order. */
  readonly requests: RecordedRequest[] = [];
  /** How a watch from a compacted resourceVersion is refused. */
  expiredWatch: "event" | "http";
  /**
   * Called before a status write is applied, with the object's plural, namespace and name: a test can change the
   * object here (as another writer would) so that the write meets a stale resourceVersion.
   */
  beforeStatusWrite: ((plural: string, namespace: string | undefined, name: string) => void) | undefined;

  #server: Deno.HttpServer<Deno.NetAddr>;
  #objects = new Map<string, Map<string, Json>>(RESOURCES.map((resource) => [resource.plural, new Map()]));
  #history: HistoryEvent[] = [];
  #resourceVersion = 1;
  #compacted = 0;
  #watchers = new Set<Watcher>();
  #continues = new Map<string, { items: Json[]; resourceVersion: number; offset: number }>();
  #held = new Map<string, PromiseWithResolvers<void>>();
  /** Events not sent to watches yet, by resource plural (see {@linkcode holdWatchEvents}). */
  #heldEvents = new Map<string, HistoryEvent[]>();
  /** GETs of single objects answered with an error status, or held, by resource plural. */
  #getFailures = new Map<string, number>();
  #heldGets = new Map<string, PromiseWithResolvers<void>>();
  #clock = Date.parse("2026-01-01T00:00:00Z");
  #registryRewriteRules: OptionalResourceState;
  #options: FakeKubeApiOptions;
  #handler: FakeHandler;
  #listening = true;
  #starting: { state: StartingState; retryAfterSeconds: number | undefined } | undefined;

  private constructor(server: Deno.HttpServer<Deno.NetAddr>, options: FakeKubeApiOptions, handler: FakeHandler) {
    this.#server = server;
    this.#options = options;
    this.#handler = handler;
    this.url = `${options.tls === undefined ? "http" : "https"}://127.0.0.1:${server.addr.port}`;
    this.token = options.token ?? "fake-token";
    this.caCert = options.caCert;
    this.expiredWatch = options.expiredWatch ?? "event";
    this.#registryRewriteRules = options.registryRewriteRules ?? "absent";
    handler.api = this;
  }

  /** Starts a fake API server on an ephemeral port. */
  static start(options: FakeKubeApiOptions = {}): FakeKubeApi {
    const handler = new FakeHandler();
    return new FakeKubeApi(listen(0, options, handler), options, handler);
  }

  /**
   * Stops listening, as an API server going down: open watches break, and connecting is refused until
   * {@linkcode listenAgain}. Objects, history and resourceVersions are kept, as etcd keeps them.
   */
  async stopListening(): Promise<void> {
    if (!this.#listening) return;
    this.#listening = false;
    this.dropWatches();
    await this.#server.shutdown();
  }

  /** Listens again on the same port after {@linkcode stopListening}. */
  listenAgain(): void {
    if (this.#listening) return;
    this.#server = listen(this.#server.addr.port, this.#options, this.#handler);
    this.#listening = true;
  }

  /**
   * Answers every request (after authentication) as a starting API server does in `state`, until called with
   * undefined. Open watches are not touched: use {@linkcode dropWatches} or {@linkcode stopListening} first.
   */
  failRequests(state: StartingState | undefined, options: { readonly retryAfterSeconds?: number } = {}): void {
    this.#starting = state === undefined ? undefined : {
      state,
      retryAfterSeconds: options.retryAfterSeconds ?? (state === "initializing" ? 1 : undefined),
    };
  }

  /** A KubeConfig with a bearer token for this server (trusting `caCert` over HTTPS). */
  kubeConfig(): KubeConfig {
    const config = new KubeConfig();
    config.loadFromString(this.kubeConfigYaml());
    return config;
  }

  /** The same as kubeconfig file text (YAML is a superset of JSON). */
  kubeConfigYaml(): string {
    const https = this.url.startsWith("https:");
    return JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{
        name: "fake",
        cluster: {
          server: this.url,
          ...(https && this.caCert !== undefined
            ? { "certificate-authority-data": btoa(this.caCert) }
            // The client library refuses plain http unless TLS verification is explicitly off.
            : { "insecure-skip-tls-verify": true }),
        },
      }],
      users: [{ name: "fake", user: { token: this.token } }],
      contexts: [{ name: "fake", context: { cluster: "fake", user: "fake" } }],
      "current-context": "fake",
    });
  }

  /** How RegistryRewriteRule requests are answered now. */
  get registryRewriteRules(): OptionalResourceState {
    return this.#registryRewriteRules;
  }

  /**
   * Installs or removes the RegistryRewriteRule CRD, or grants or revokes access to it. Leaving "served" ends open
   * watches of it; removing the CRD also deletes its objects (with DELETED events), as the API server does.
   */
  setRegistryRewriteRules(state: OptionalResourceState): void {
    const before = this.#registryRewriteRules;
    this.#registryRewriteRules = state;
    if (before !== "served" || state === "served") return;
    if (state === "absent") {
      const objects = this.#objects.get(REGISTRY_REWRITE_RULES);
      for (const object of [...objects?.values() ?? []]) {
        const metadata = metadataOf(object);
        this.delete("RegistryRewriteRule", String(metadata["name"]));
      }
    }
    for (const watcher of [...this.#watchers]) if (watcher.plural === REGISTRY_REWRITE_RULES) watcher.end(false);
  }

  /** The current (global) resourceVersion. */
  get resourceVersion(): number {
    return this.#resourceVersion;
  }

  /** Creates an object (resource chosen by `kind`); returns it as stored. */
  create(object: Json): Json {
    const resource = this.#resourceOfKind(object["kind"]);
    if (resource.optional === true && this.#registryRewriteRules === "absent") {
      throw new Error(`create: the ${resource.kind} CRD is not installed`);
    }
    const stored = clone(object);
    stored["apiVersion"] = resource.apiVersion;
    const metadata = metadataOf(stored);
    const name = metadata["name"];
    if (typeof name !== "string") throw new Error("create: metadata.name is required");
    const namespace = resource.namespaced ? metadata["namespace"] : undefined;
    if (resource.namespaced && typeof namespace !== "string") throw new Error("create: metadata.namespace is required");
    if (!resource.namespaced) delete metadata["namespace"];
    const key = `${namespace ?? ""}/${name}`;
    const objects = this.#objects.get(resource.plural);
    if (objects === undefined || objects.has(key)) throw new Error(`create: ${resource.kind} ${key} exists`);
    this.#clock += 1000;
    metadata["uid"] = crypto.randomUUID();
    metadata["creationTimestamp"] = new Date(this.#clock).toISOString().replace(/\.\d+Z$/, "Z");
    if (resource.builtin) {
      metadata["labels"] = {
        ...(isRecord(metadata["labels"]) ? metadata["labels"] : {}),
        "kubernetes.io/metadata.name": name,
      };
      stored["spec"] = { finalizers: ["kubernetes"] };
      stored["status"] = { phase: "Active" };
    } else {
      metadata["generation"] = 1;
      delete stored["status"];
    }
    metadata["resourceVersion"] = String(++this.#resourceVersion);
    objects.set(key, stored);
    this.#record(resource, "ADDED", stored);
    return clone(stored);
  }

  /** Changes an object with `mutate` (spec, labels, annotations; status only through the API); returns it. */
  modify(kind: string, name: string, namespace: string | undefined, mutate: (object: Json) => void): Json {
    const resource = this.#resourceOfKind(kind);
    const current = this.#get(resource, namespace, name);
    if (current === undefined) throw new Error(`modify: ${kind} ${namespace ?? ""}/${name} not found`);
    const next = clone(current);
    mutate(next);
    next["status"] = clone(current["status"]);
    const meta = metadataOf(next);
    const old = metadataOf(current);
    for (const field of ["name", "namespace", "uid", "creationTimestamp", "resourceVersion", "generation"]) {
      if (old[field] === undefined) delete meta[field];
      else meta[field] = old[field];
    }
    if (same(next, current)) return clone(current);
    if (!resource.builtin && !same(next["spec"], current["spec"])) meta["generation"] = Number(old["generation"]) + 1;
    return this.#replace(resource, next);
  }

  /** Deletes an object; returns its last state. */
  delete(kind: string, name: string, namespace?: string): Json {
    const resource = this.#resourceOfKind(kind);
    const key = `${resource.namespaced ? namespace ?? "" : ""}/${name}`;
    const objects = this.#objects.get(resource.plural);
    const current = objects?.get(key);
    if (objects === undefined || current === undefined) throw new Error(`delete: ${kind} ${key} not found`);
    objects.delete(key);
    const last = clone(current);
    // As etcd: the deletion has its own revision, and the DELETED event carries it.
    metadataOf(last)["resourceVersion"] = String(++this.#resourceVersion);
    this.#record(resource, "DELETED", last);
    return clone(last);
  }

  /** An object as stored, or undefined. */
  get(kind: string, name: string, namespace?: string): Json | undefined {
    const resource = this.#resourceOfKind(kind);
    const found = this.#get(resource, namespace, name);
    return found === undefined ? undefined : clone(found);
  }

  /** Number of open watch connections (of one resource). */
  openWatches(plural?: string): number {
    return [...this.#watchers].filter((watcher) => plural === undefined || watcher.plural === plural).length;
  }

  /** Breaks every watch connection, as a restarting API server or a load balancer would; returns how many. */
  dropWatches(): number {
    const watchers = [...this.#watchers];
    for (const watcher of watchers) watcher.end(true);
    return watchers.length;
  }

  /** Ends every watch cleanly, as the API server does at timeoutSeconds; everything sent before arrives. */
  closeWatches(): number {
    const watchers = [...this.#watchers];
    for (const watcher of watchers) watcher.end(false);
    return watchers.length;
  }

  /** Forgets history up to now, as etcd compaction does: watches from older resourceVersions get 410. */
  compact(): void {
    this.#compacted = this.#resourceVersion;
    this.#history = this.#history.filter((event) => event.resourceVersion > this.#compacted);
    this.#continues.clear();
  }

  /** Sends a BOOKMARK with the current resourceVersion to every watch that allowed bookmarks. */
  bookmark(): void {
    for (const watcher of this.#watchers) {
      if (!watcher.bookmarks) continue;
      const resource = this.#resourceOfPlural(watcher.plural);
      watcher.send({
        type: "BOOKMARK",
        object: {
          kind: resource.kind,
          apiVersion: resource.apiVersion,
          metadata: { resourceVersion: String(this.#resourceVersion), creationTimestamp: null },
        },
      });
    }
  }

  /** Ends every open watch with an ERROR event 410 Expired, as when a watcher falls behind a compaction. */
  expireWatches(): void {
    for (const watcher of [...this.#watchers]) {
      watcher.send({ type: "ERROR", object: this.#expired(this.#compacted) });
      watcher.end(false);
    }
  }

  /** Makes LIST requests for `plural` wait until the returned function is called. */
  holdLists(plural: string): () => void {
    const gate = Promise.withResolvers<void>();
    this.#held.set(plural, gate);
    return () => {
      this.#held.delete(plural);
      gate.resolve();
    };
  }

  /**
   * Holds back watch events of `plural` (a watch opened meanwhile does not replay them either) until the returned
   * function is called, which sends them in order: the API has the object (GET and LIST see it), the watches not yet,
   * as when a watch event comes after an admission that needs it.
   */
  holdWatchEvents(plural: string): () => void {
    const held: HistoryEvent[] = [];
    this.#heldEvents.set(plural, held);
    return () => {
      if (this.#heldEvents.get(plural) !== held) return;
      this.#heldEvents.delete(plural);
      for (const event of held) {
        for (const watcher of this.#watchers) {
          if (this.#matches(watcher, event)) watcher.send({ type: event.type, object: event.object });
        }
      }
    };
  }

  /** Answers GET of single objects of `plural` with `code` (a Status body), until called with undefined. */
  failGets(plural: string, code: number | undefined): void {
    if (code === undefined) this.#getFailures.delete(plural);
    else this.#getFailures.set(plural, code);
  }

  /** Makes GET of single objects of `plural` wait until the returned function is called (or the server closes). */
  holdGets(plural: string): () => void {
    const gate = Promise.withResolvers<void>();
    this.#heldGets.set(plural, gate);
    return () => {
      if (this.#heldGets.get(plural) === gate) this.#heldGets.delete(plural);
      gate.resolve();
    };
  }

  /** Requests matching `filter`. */
  count(filter: (request: RecordedRequest) => boolean): number {
    return this.requests.filter(filter).length;
  }

  /** Ends every watch and stops the server. */
  async close(): Promise<void> {
    for (const watcher of [...this.#watchers]) watcher.end(false);
    for (const gate of this.#held.values()) gate.resolve();
    for (const gate of this.#heldGets.values()) gate.resolve();
    if (this.#listening) await this.#server.shutdown();
    this.#listening = false;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // -------------------------------------------------------------------------------------------------------------

  #resourceOfKind(kind: unknown): ResourceDef {
    const resource = RESOURCES.find((candidate) => candidate.kind === kind);
    if (resource === undefined) throw new Error(`unknown kind ${JSON.stringify(kind)}`);
    return resource;
  }

  #resourceOfPlural(plural: string): ResourceDef {
    const resource = RESOURCES.find((candidate) => candidate.plural === plural);
    if (resource === undefined) throw new Error(`unknown resource ${plural}`);
    return resource;
  }

  #get(resource: ResourceDef, namespace: string | undefined, name: string): Json | undefined {
    return this.#objects.get(resource.plural)?.get(`${resource.namespaced ? namespace ?? "" : ""}/${name}`);
  }

  #replace(resource: ResourceDef, next: Json): Json {
    const meta = metadataOf(next);
    meta["resourceVersion"] = String(++this.#resourceVersion);
    this.#objects.get(resource.plural)?.set(`${meta["namespace"] ?? ""}/${meta["name"]}`, next);
    this.#record(resource, "MODIFIED", next);
    return clone(next);
  }

  #record(resource: ResourceDef, type: HistoryEvent["type"], object: Json): void {
    const event: HistoryEvent = {
      resourceVersion: this.#resourceVersion,
      plural: resource.plural,
      type,
      object: clone(object),
    };
    this.#history.push(event);
    const held = this.#heldEvents.get(resource.plural);
    if (held !== undefined) {
      held.push(event);
      return;
    }
    for (const watcher of this.#watchers) {
      if (this.#matches(watcher, event)) watcher.send({ type, object: event.object });
    }
  }

  #matches(watcher: { plural: string; namespace: string | undefined }, event: HistoryEvent): boolean {
    return event.plural === watcher.plural &&
      (watcher.namespace === undefined || metadataOf(event.object)["namespace"] === watcher.namespace);
  }

  #expired(requested: number): Json {
    return statusBody(410, "Expired", `too old resource version: ${requested} (${this.#compacted})`);
  }

  // -------------------------------------------------------------------------------------------------------------
  // Request handling, called by FakeHandler.

  async serve(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const route = parseRoute(url.pathname);
    const watch = url.searchParams.get("watch") === "1" || url.searchParams.get("watch") === "true";
    const record = (status: number) =>
      this.requests.push({
        method: request.method,
        plural: route?.resource.plural ?? "",
        ...(route?.namespace === undefined ? {} : { namespace: route.namespace }),
        ...(route?.name === undefined ? {} : { name: route.name }),
        ...(route?.subresource === undefined ? {} : { subresource: route.subresource }),
        watch,
        query: url.searchParams,
        status,
        at: performance.now(),
      });
    const respond = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      record(status);
      return json(status, body, headers);
    };
    if (request.headers.get("authorization") !== `Bearer ${this.token}`) {
      return respond(401, statusBody(401, "Unauthorized", "Unauthorized"));
    }
    if (route === undefined) {
      return respond(404, statusBody(404, "NotFound", "the server could not find the requested resource"));
    }
    const { resource, namespace, name, subresource } = route;
    if (this.#starting !== undefined) {
      const { state, retryAfterSeconds } = this.#starting;
      const retryAfter = retryAfterSeconds === undefined ? {} : { "Retry-After": String(retryAfterSeconds) };
      const details = retryAfterSeconds === undefined ? undefined : { retryAfterSeconds };
      if (state === "initializing") {
        return respond(429, statusBody(429, "TooManyRequests", "storage is (re)initializing", details), retryAfter);
      }
      if (state === "unavailable") {
        return respond(
          503,
          statusBody(503, "ServiceUnavailable", "the server is currently unable to handle the request", details),
          retryAfter,
        );
      }
      return respond(
        403,
        forbidden(
          resource,
          verbOf(request.method, name, watch),
          ' at the cluster scope: RBAC: clusterrole.rbac.authorization.k8s.io "mirrorhook" not found',
        ),
      );
    }
    if (resource.optional === true && this.#registryRewriteRules === "absent") {
      return respond(404, statusBody(404, "NotFound", "the server could not find the requested resource"));
    }
    if (resource.optional === true && this.#registryRewriteRules === "forbidden") {
      return respond(403, forbidden(resource, verbOf(request.method, name, watch), " at the cluster scope"));
    }
    const notFound = () =>
      respond(
        404,
        statusBody(404, "NotFound", `${resource.plural}${groupSuffix(resource)} "${name}" not found`, {
          name,
          group: groupOf(resource),
          kind: resource.plural,
        }),
      );

    if (name === undefined) {
      if (request.method !== "GET") return respond(405, statusBody(405, "MethodNotAllowed", "method not allowed"));
      if (watch) return this.#watch(resource, namespace, url.searchParams, record, respond);
      await this.#held.get(resource.plural)?.promise;
      return this.#list(resource, namespace, url.searchParams, respond);
    }

    if (subresource === undefined && request.method === "GET") {
      await this.#heldGets.get(resource.plural)?.promise;
      const failure = this.#getFailures.get(resource.plural);
      if (failure !== undefined) {
        return respond(failure, statusBody(failure, "InternalError", `the fake API server fails GET of ${name}`));
      }
      const current = this.#get(resource, namespace, name);
      return current === undefined ? notFound() : respond(200, current);
    }
    if (subresource !== "status" || resource.builtin || (request.method !== "PUT" && request.method !== "PATCH")) {
      return respond(405, statusBody(405, "MethodNotAllowed", "this fake serves GET and status writes only"));
    }
    let body: unknown;
    try {
      body = await request.json();
    } catch {
      return respond(400, statusBody(400, "BadRequest", "the request body is not JSON"));
    }
    if (request.method === "PATCH" && request.headers.get("content-type") !== "application/merge-patch+json") {
      return respond(415, statusBody(415, "UnsupportedMediaType", "this fake takes application/merge-patch+json only"));
    }
    this.beforeStatusWrite?.(resource.plural, namespace, name);
    const fresh = this.#get(resource, namespace, name);
    if (fresh === undefined) return notFound();
    if (!isRecord(body)) return respond(400, statusBody(400, "BadRequest", "the request body is not an object"));
    const precondition = isRecord(body["metadata"]) ? body["metadata"]["resourceVersion"] : undefined;
    if (precondition !== undefined && precondition !== metadataOf(fresh)["resourceVersion"]) {
      return respond(
        409,
        statusBody(
          409,
          "Conflict",
          `Operation cannot be fulfilled on ${resource.plural}${
            groupSuffix(resource)
          } "${name}": the object has been modified; please apply your changes to the latest version and try again`,
          { name, group: groupOf(resource), kind: resource.plural },
        ),
      );
    }
    const status = request.method === "PUT" ? body["status"] : mergePatch(fresh["status"], body["status"]);
    // As the API server: an update that changes nothing is not written and makes no event.
    if (same(status ?? null, fresh["status"] ?? null)) return respond(200, fresh);
    const next = clone(fresh);
    if (status === undefined || status === null) delete next["status"];
    else next["status"] = clone(status);
    return respond(200, this.#replace(resource, next));
  }

  #list(
    resource: ResourceDef,
    namespace: string | undefined,
    query: URLSearchParams,
    respond: (status: number, body: unknown) => Response,
  ): Response {
    const limit = Number(query.get("limit") ?? "0");
    const token = query.get("continue");
    let page: { items: Json[]; resourceVersion: number; offset: number };
    if (token !== null && token !== "") {
      const found = this.#continues.get(token);
      if (found === undefined) {
        return respond(
          410,
          statusBody(
            410,
            "Expired",
            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
          ),
        );
      }
      page = found;
    } else {
      const items = [...(this.#objects.get(resource.plural)?.values() ?? [])]
        .filter((item) => namespace === undefined || metadataOf(item)["namespace"] === namespace)
        .sort((a, b) => {
          const ka = `${metadataOf(a)["namespace"] ?? ""}/${metadataOf(a)["name"]}`;
          const kb = `${metadataOf(b)["namespace"] ?? ""}/${metadataOf(b)["name"]}`;
          return ka < kb ? -1 : ka > kb ? 1 : 0;
        })
        .map(clone);
      page = { items, resourceVersion: this.#resourceVersion, offset: 0 };
    }
    const end = limit > 0 ? page.offset + limit : page.items.length;
    const items = page.items.slice(page.offset, end).map((item) => {
      if (!resource.builtin) return item;
      // Built-in list items are served without kind and apiVersion.
      const { kind: _kind, apiVersion: _apiVersion, ...rest } = item;
      return rest;
    });
    let next: string | undefined;
    if (end < page.items.length) {
      next = btoa(crypto.randomUUID());
      this.#continues.set(next, { ...page, offset: end });
    }
    return respond(200, {
      kind: `${resource.kind}List`,
      apiVersion: resource.apiVersion,
      metadata: { resourceVersion: String(page.resourceVersion), ...(next === undefined ? {} : { continue: next }) },
      items,
    });
  }

  #watch(
    resource: ResourceDef,
    namespace: string | undefined,
    query: URLSearchParams,
    record: (status: number) => void,
    respond: (status: number, body: unknown) => Response,
  ): Response {
    const requested = query.get("resourceVersion") ?? "";
    const bookmarks = query.get("allowWatchBookmarks") === "true";
    const timeoutSeconds = Number(query.get("timeoutSeconds") ?? "0");
    const from = requested === "" || requested === "0" ? undefined : Number(requested);
    if (from !== undefined && !Number.isInteger(from)) {
      return respond(400, statusBody(400, "BadRequest", `invalid resourceVersion ${JSON.stringify(requested)}`));
    }
    const expired = from !== undefined && from < this.#compacted;
    if (expired && this.expiredWatch === "http") return respond(410, this.#expired(from));
    record(200);

    const encoder = new TextEncoder();
    const watchers = this.#watchers;
    let watcher: Watcher | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        let open = true;
        watcher = {
          plural: resource.plural,
          namespace,
          bookmarks,
          send(event) {
            if (open) controller.enqueue(encoder.encode(`${JSON.stringify(sortKeys(event))}\n`));
          },
          end(abrupt) {
            if (!open) return;
            open = false;
            watchers.delete(this);
            if (timer !== undefined) clearTimeout(timer);
            if (abrupt) controller.error(new DOMException("connection dropped by the fake API server", "AbortError"));
            else controller.close();
          },
        };
        if (expired) {
          watcher.send({ type: "ERROR", object: this.#expired(from ?? 0) });
          open = false;
          controller.close();
          return;
        }
        if (from === undefined) {
          // resourceVersion "" or "0": synthetic ADDED events for the current state, then changes.
          for (const object of this.#objects.get(resource.plural)?.values() ?? []) {
            if (namespace === undefined || metadataOf(object)["namespace"] === namespace) {
              watcher.send({ type: "ADDED", object });
            }
          }
        } else {
          const held = new Set(this.#heldEvents.get(resource.plural));
          for (const event of this.#history) {
            if (event.resourceVersion > from && this.#matches(watcher, event) && !held.has(event)) {
              watcher.send({ type: event.type, object: event.object });
            }
          }
        }
        watchers.add(watcher);
        if (timeoutSeconds > 0) timer = setTimeout(() => watcher?.end(false), timeoutSeconds * 1000);
      },
      cancel: () => {
        // The client went away.
        if (watcher !== undefined) watchers.delete(watcher);
        if (timer !== undefined) clearTimeout(timer);
      },
    });
    return new Response(body, { status: 200, headers: { "content-type": "application/json" } });
  }
}

/** Holds the API until the server is constructed (Deno.serve needs the handler first). */
class FakeHandler {
  api: FakeKubeApi | undefined;
  handle(request: Request): Promise<Response> | Response {
    return this.api?.serve(request) ?? new Response("starting", { status: 503 });
  }
}

function listen(port: number, options: FakeKubeApiOptions, handler: FakeHandler): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({
    hostname: "127.0.0.1",
    port,
    onListen() {},
    // Also called for a watch body ended on purpose by dropWatches: nothing to report.
    onError: () => json(500, statusBody(500, "InternalError", "the fake API server failed")),
    ...(options.tls === undefined ? {} : { cert: options.tls.cert, key: options.tls.key }),
  }, (request) => handler.handle(request));
}

/** The RBAC verb of a request. */
function verbOf(method: string, name: string | undefined, watch: boolean): string {
  if (method === "PUT") return "update";
  if (method === "PATCH") return "patch";
  return name !== undefined ? "get" : watch ? "watch" : "list";
}

/** RBAC's 403 for the webhook's service account; `scope` ends the message (` at the cluster scope…`). */
function forbidden(resource: ResourceDef, verb: string, scope: string): Json {
  return statusBody(
    403,
    "Forbidden",
    `${resource.plural}${
      groupSuffix(resource)
    } is forbidden: User "system:serviceaccount:mirrorhook:mirrorhook" cannot ${verb} resource "${resource.plural}" in API group "${
      groupOf(resource)
    }"${scope}`,
    { group: groupOf(resource), kind: resource.plural },
  );
}

/** `mirrorhook.dev`, or "" for the core group. */
function groupOf(resource: ResourceDef): string {
  return resource.base.startsWith("/apis/") ? resource.base.split("/")[2] ?? "" : "";
}

function groupSuffix(resource: ResourceDef): string {
  const group = groupOf(resource);
  return group === "" ? "" : `.${group}`;
}

/** `/apis/mirrorhook.dev/v1alpha1/namespaces/NS/imagerewrites/NAME/status` and the like. */
function parseRoute(
  path: string,
): { resource: ResourceDef; namespace?: string; name?: string; subresource?: string } | undefined {
  const segments = path.split("/").filter((segment) => segment !== "").map(decodeURIComponent);
  let base: string;
  let rest: string[];
  if (segments[0] === "api" && segments[1] === "v1") {
    base = "/api/v1";
    rest = segments.slice(2);
  } else if (segments[0] === "apis" && RESOURCES.some((r) => r.base === `/apis/${segments[1]}/${segments[2]}`)) {
    base = `/apis/${segments[1]}/${segments[2]}`;
    rest = segments.slice(3);
  } else return undefined;
  const inGroup = (plural: string | undefined) =>
    RESOURCES.find((resource) => resource.base === base && resource.plural === plural);
  let namespace: string | undefined;
  if (rest[0] === "namespaces" && rest.length >= 3 && inGroup(rest[2])?.namespaced === true) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const resource = inGroup(rest[0]);
  if (resource === undefined || rest.length > 3) return undefined;
  if (namespace !== undefined && !resource.namespaced) return undefined;
  if (resource.namespaced && namespace === undefined && rest.length > 1) return undefined;
  return {
    resource,
    ...(namespace === undefined ? {} : { namespace }),
    ...(rest[1] === undefined ? {} : { name: rest[1] }),
    ...(rest[2] === undefined ? {} : { subresource: rest[2] }),
  };
}
