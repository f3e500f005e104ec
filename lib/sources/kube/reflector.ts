// The list-and-watch loop (reflector) that mirrors one API resource: bookmarks, 410 relist, reconnect with backoff.
//
// Why not @kubernetes/client-node 2.0.1's informer (ListWatch + Watch; only its KubeConfig is used here)? Run under
// Deno 2.9 against tests/support/fake_kube_api.ts: a watch connection broken as by an API-server restart stopped it
// silently for good (no error event, no reconnect in 16 s); a 429 made it emit "Too Many Requests" and stop for good
// (nothing read after the API was ready). Reading its code: a refused watch becomes `Error(statusText)` with the
// code alone (no Status reason, message, `details.retryAfterSeconds`, no Retry-After header); it never asks for
// `allowWatchBookmarks` or a server `timeoutSeconds`; LIST paging is left to the caller; its reconnect delay (1 s
// doubling to 30 s, no jitter) applies only between clean closes. So it can neither keep the last rules through a
// transient 403, nor treat 429/503/connection refused as "not ready yet" honouring Retry-After, nor resume after a
// dropped connection, all of which this loop does.

import type { Logger } from "@logtape/logtape";
import { errorMessage, isConnectionRefused, KubeApiError, type KubeHttp, parseJson } from "./http.ts";
import {
  collectionPath,
  itemKey,
  metadataOf,
  type Resource,
  resourceName,
  resourceVersionOf,
  stringField,
} from "./resources.ts";
import { isRecord, type Json } from "../../util/json.ts";

/** Reconnect delays: doubling from `initialMs` up to `maxMs`, jittered. */
export interface Backoff {
  readonly initialMs: number;
  readonly maxMs: number;
  /**
   * Wait after "not ready yet" (connection refused, 429, 503 without Retry-After): short and fixed, so that rules
   * changed during an outage are read as soon as the API server serves again.
   */
  readonly notReadyMs: number;
}

/** Exponential, capped, with "equal jitter": half the step fixed, half random, so replicas spread out. */
function backoffDelay(failures: number, backoff: Backoff): number {
  const step = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.min(failures - 1, 30));
  return step / 2 + Math.random() * (step / 2);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/**
 * The wait after an answer that means "the API server is starting, not ready yet": nothing listening (connection
 * refused), 429 ("storage is (re)initializing") or 503. Retry-After is honoured (capped at `maxMs`); these are not
 * failures and do not lengthen the backoff. Undefined for any other error.
 */
function notReadyDelay(error: unknown, backoff: Backoff): number | undefined {
  let ms: number;
  if (error instanceof KubeApiError && (error.code === 429 || error.code === 503)) {
    ms = error.retryAfterSeconds === undefined
      ? backoff.notReadyMs
      : Math.min(backoff.maxMs, Math.max(error.retryAfterSeconds * 1000, 1));
  } else if (isConnectionRefused(error)) ms = backoff.notReadyMs;
  else return undefined;
  // Never earlier than asked; up to a fifth later, so that replicas do not return in step.
  return ms * (1 + Math.random() / 5);
}

/** A watch that lived this long was healthy even if it carried no event (quiet resource, no bookmarks). */
const HEALTHY_WATCH_MS = 10_000;

/** Settings of {@linkcode Reflector}. */
export interface ReflectorOptions {
  readonly http: KubeHttp;
  readonly resource: Resource;
  readonly logger: Logger;
  readonly backoff: Backoff;
  readonly pageSize: number;
  readonly watchTimeoutSeconds: number;
  /** What to keep of each object (e.g. only a namespace's labels). */
  readonly keep: (object: Json) => Json;
  /** After a list replaced the items, or an event changed one. */
  readonly onChange: () => void;
  /** After a failed list or watch request (not after an ordinary disconnect of an open watch). */
  readonly onError: (message: string) => void;
  /** After a watch opened again following a failed request. */
  readonly onRecover: () => void;
  /**
   * For a resource whose CRD may not be installed: a 404 (not installed) or 403 (not granted) from LIST or
   * WATCH means "no objects", which counts as synced, and the resource is looked for again after `recheckMs`.
   */
  readonly optional?: { readonly recheckMs: number };
  /**
   * How long 403 Forbidden is taken for a restarting API server warming its RBAC caches, once the resource was
   * listed: the last objects stay and requests are retried with the backoff. After that, 403 means the role does
   * not grant the resource.
   */
  readonly forbiddenGraceMs: number;
}

/** Mirrors one resource type into `items`, like client-go's Reflector. */
export class Reflector {
  /** Objects by `namespace/name`. */
  items = new Map<string, Json>();
  /** True once a complete list has been received. */
  synced = false;
  #options: ReflectorOptions;
  /** Where the next watch starts; undefined means list first. */
  #resourceVersion: string | undefined;
  /** The current watch is open: errors from here on are disconnects, not failed requests. */
  #streaming = false;
  #failed = false;
  /** The status (404 or 403) an optional resource was last missing with; undefined while it is served. */
  #missing: number | undefined;
  /** A list succeeded since the resource was last missing: a 403 now is first taken as transient. */
  #served = false;
  /** When the current run of 403 answers began (performance.now()), for a resource that was served. */
  #forbiddenSince: number | undefined;
  /** In a run of "not ready yet" answers: reported once, then retried quietly. */
  #notReady = false;
  /** Keys read outside the watch (see {@linkcode expect}): true once a list or an event has touched the key since. */
  #expected = new Map<string, boolean>();

  constructor(options: ReflectorOptions) {
    this.#options = options;
  }

  /**
   * For an object read outside the watch (a GET of one object the watch has not delivered yet): call before the
   * request; the returned function stores the object read unless a list or a watch event touched its key since, as
   * the watch stays the source of truth (a later event replaces it, a DELETED removes it). Call it with undefined
   * when nothing was read. One expectation per key at a time.
   */
  expect(key: string): (object: Json | undefined) => void {
    this.#expected.set(key, false);
    return (object) => {
      const touched = this.#expected.get(key);
      this.#expected.delete(key);
      if (object === undefined || touched !== false) return;
      this.items.set(key, this.#options.keep({ ...object, ...this.#typeOf() }));
    };
  }

  #typeOf(): { apiVersion: string; kind: string } {
    return { apiVersion: this.#options.resource.apiVersion, kind: this.#options.resource.kind };
  }

  /** A list replaced the items, or an event changed `key`: an object read outside the watch is older. */
  #touch(key?: string): void {
    if (this.#expected.size === 0) return;
    if (key === undefined) { for (const expected of this.#expected.keys()) this.#expected.set(expected, true); }
    else if (this.#expected.has(key)) this.#expected.set(key, true);
  }

  async run(signal: AbortSignal): Promise<void> {
    const { logger, resource, backoff } = this.#options;
    const name = resourceName(resource);
    let failures = 0;
    while (!signal.aborted) {
      let healthy = false;
      this.#streaming = false;
      try {
        const listed = this.#resourceVersion === undefined;
        if (listed) await this.#list(signal);
        const started = performance.now();
        const { expired, events } = await this.#watch(signal);
        healthy = events > 0 || performance.now() - started >= HEALTHY_WATCH_MS;
        if (expired) {
          logger.info("Watch of {resource} expired (410 Gone); listing again", { resource: name });
          this.#resourceVersion = undefined;
          // A watch that expires right after a fresh list would loop: back off then.
          healthy = !listed || events > 0;
        } else if (!healthy) {
          logger.debug("Watch of {resource} closed without events; reconnecting", { resource: name });
        }
      } catch (error) {
        if (signal.aborted) break;
        if (error instanceof KubeApiError && error.code === 410) {
          logger.info("Watch of {resource} expired (410 Gone); listing again", { resource: name });
          this.#resourceVersion = undefined;
          healthy = failures === 0;
        } else if (!this.#transientForbidden(error) && this.#optionalMissing(error)) {
          failures = 0;
          await sleep(this.#options.optional?.recheckMs ?? 0, signal);
          continue;
        } else {
          const message = errorMessage(error);
          const details = { resource: name, message, failures: failures + 1 };
          const wait = notReadyDelay(error, backoff);
          if (wait !== undefined) {
            this.#reportNotReady(error, details);
            await sleep(wait, signal);
            continue;
          }
          if (error instanceof KubeApiError && error.code === 403 && this.#forbiddenSince !== undefined) {
            logger.warn(
              "{resource} is forbidden (403) although it was read before: keeping the last objects and retrying after backoff, as a restarting API server's authorizer may not be ready yet: {message}",
              details,
            );
            this.#failed = true;
            this.#options.onError(`Cannot list and watch ${name}: ${message}`);
          } else if (this.#streaming) {
            // An open watch broke (API server restart, load balancer): resume from the last resourceVersion.
            logger.info("Watch of {resource} disconnected; resuming: {message}", details);
          } else {
            logger.warn("Cannot list and watch {resource}; retrying after backoff: {message}", details);
            this.#failed = true;
            this.#options.onError(`Cannot list and watch ${name}: ${message}`);
          }
        }
      }
      failures = healthy ? 0 : failures + 1;
      if (failures > 0 && !signal.aborted) await sleep(backoffDelay(failures, backoff), signal);
    }
  }

  async #list(signal: AbortSignal): Promise<void> {
    const { http, resource, pageSize, keep } = this.#options;
    const action = `list ${resourceName(resource)}`;
    const items = new Map<string, Json>();
    let token: string | undefined;
    let resourceVersion: string | undefined;
    do {
      const query: Record<string, string> = { limit: String(pageSize) };
      if (token !== undefined) query["continue"] = token;
      const answer = await http.request("GET", collectionPath(resource), { query, signal });
      if (answer.status !== 200) throw new KubeApiError(action, answer);
      const body = answer.body;
      if (!isRecord(body) || !Array.isArray(body["items"])) throw new Error(`Cannot ${action}: not a list`);
      const metadata = metadataOf(body);
      resourceVersion = stringField(metadata, "resourceVersion");
      if (resourceVersion === undefined) throw new Error(`Cannot ${action}: the list has no resourceVersion`);
      for (const item of body["items"]) {
        // List items of built-in types carry no kind/apiVersion; watch events do.
        if (isRecord(item)) {
          items.set(itemKey(item), keep({ ...item, apiVersion: resource.apiVersion, kind: resource.kind }));
        }
      }
      token = stringField(metadata, "continue") || undefined;
    } while (token !== undefined);
    this.items = items;
    this.#touch();
    this.#resourceVersion = resourceVersion;
    this.synced = true;
    this.#answered();
    if (this.#missing !== undefined) {
      this.#missing = undefined;
      this.#options.logger.info("{resource} is served now; reading it", { resource: resourceName(resource) });
    }
    this.#options.onChange();
  }

  /** The API server answered a list or opened a watch: it is ready, and the role grants the resource. */
  #answered(): void {
    this.#served = true;
    this.#forbiddenSince = undefined;
    if (this.#notReady) {
      this.#notReady = false;
      this.#options.logger.info("The API server serves {resource} again", {
        resource: resourceName(this.#options.resource),
      });
    }
  }

  /**
   * True for a 403 within the grace after the resource was served: a restarting API server answers 403 until its
   * RBAC caches are warm, and dropping the objects for that would remove rules that are still granted.
   */
  #transientForbidden(error: unknown): boolean {
    if (!(error instanceof KubeApiError) || error.code !== 403 || !this.#served) return false;
    const now = performance.now();
    this.#forbiddenSince ??= now;
    if (now - this.#forbiddenSince < this.#options.forbiddenGraceMs) return true;
    this.#forbiddenSince = undefined;
    return false;
  }

  /** Logs the first "not ready yet" answer of a run as a warning and the next ones at debug level; fails once. */
  #reportNotReady(error: unknown, details: { resource: string; message: string }): void {
    const retryAfter = error instanceof KubeApiError ? error.retryAfterSeconds : undefined;
    const fields = { ...details, retryAfter: retryAfter ?? this.#options.backoff.notReadyMs / 1000 };
    if (this.#notReady) {
      this.#options.logger.debug("{resource}: the API server is not ready yet; retrying: {message}", fields);
      return;
    }
    this.#notReady = true;
    this.#options.logger.warn(
      "Cannot list and watch {resource}: the API server is not ready yet; keeping the last objects and retrying every {retryAfter} s: {message}",
      fields,
    );
    this.#failed = true;
    this.#options.onError(`Cannot list and watch ${details.resource}: ${details.message}`);
  }

  /** An optional resource that is not installed or not granted: no objects, and synced. False for other errors. */
  #optionalMissing(error: unknown): boolean {
    const { optional, logger, resource } = this.#options;
    if (optional === undefined || !(error instanceof KubeApiError) || (error.code !== 404 && error.code !== 403)) {
      return false;
    }
    if (this.#missing !== error.code) {
      const details = { resource: resourceName(resource), seconds: optional.recheckMs / 1000, message: error.message };
      // Logged once per state, not at every look.
      if (error.code === 404) {
        logger.info(
          "{resource} is not served (its CRD is not installed): none read; looking again every {seconds} s",
          details,
        );
      } else {
        logger.warn(
          "Cannot read {resource}, the role does not grant it: none read; grant get, list and watch to use them; looking again every {seconds} s: {message}",
          details,
        );
      }
      this.#missing = error.code;
    }
    this.#resourceVersion = undefined;
    this.#served = false;
    this.#forbiddenSince = undefined;
    const changed = !this.synced || this.items.size > 0;
    this.items = new Map();
    this.#touch();
    this.synced = true;
    if (this.#failed) {
      this.#failed = false;
      this.#options.onRecover();
    }
    if (changed) this.#options.onChange();
    return true;
  }

  async #watch(signal: AbortSignal): Promise<{ expired: boolean; events: number }> {
    const { http, resource, watchTimeoutSeconds, keep } = this.#options;
    const action = `watch ${resourceName(resource)}`;
    const timeoutSeconds = Math.round(watchTimeoutSeconds * (1 + Math.random()));
    // The server ends the watch after timeoutSeconds; a connection silent past that is dead (half-open TCP).
    const controller = new AbortController();
    const timer = setTimeout(
      () => controller.abort(new Error("watch outlived its timeout")),
      (timeoutSeconds + 30) * 1000,
    );
    let events = 0;
    try {
      const opened = await http.stream(
        collectionPath(resource),
        {
          watch: "1",
          resourceVersion: this.#resourceVersion ?? "",
          allowWatchBookmarks: "true",
          timeoutSeconds: String(timeoutSeconds),
        },
        AbortSignal.any([signal, controller.signal]),
      );
      if (opened.lines === undefined) throw new KubeApiError(action, opened.answer ?? { status: 0, body: "" });
      this.#streaming = true;
      this.#answered();
      if (this.#failed) {
        this.#failed = false;
        this.#options.onRecover();
      }
      for await (const line of opened.lines) {
        const event = parseJson(line);
        if (!isRecord(event) || typeof event["type"] !== "string" || !isRecord(event["object"])) {
          throw new Error(`Cannot ${action}: malformed event`);
        }
        const object = event["object"];
        if (event["type"] === "ERROR") {
          if (object["code"] === 410) return { expired: true, events };
          throw new KubeApiError(action, {
            status: typeof object["code"] === "number" ? object["code"] : 500,
            body: object,
          });
        }
        const resourceVersion = resourceVersionOf(object);
        if (resourceVersion === undefined) throw new Error(`Cannot ${action}: event without resourceVersion`);
        events++;
        if (event["type"] !== "BOOKMARK") this.#touch(itemKey(object));
        switch (event["type"]) {
          case "ADDED":
          case "MODIFIED":
            this.items.set(itemKey(object), keep({ ...object, apiVersion: resource.apiVersion, kind: resource.kind }));
            break;
          case "DELETED":
            this.items.delete(itemKey(object));
            break;
          case "BOOKMARK":
            break;
          default:
            this.#options.logger.debug("Ignored watch event of type {type}", { type: event["type"] });
        }
        this.#resourceVersion = resourceVersion;
        if (event["type"] !== "BOOKMARK") this.#options.onChange();
      }
      return { expired: false, events };
    } finally {
      clearTimeout(timer);
    }
  }
}
