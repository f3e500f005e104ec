// The cluster rule source: list-and-watch of ImageRewrite, ClusterImageRewrite and Namespace objects (and RegistryRewriteRules when installed), the older of two conflicting objects wins, each of our objects gets a Ready status.

import type { Logger } from "@logtape/logtape";
import { evaluateRegistryRewriteRules, type ForeignEvaluation } from "../../compat/flemzord_objects.ts";
import type { CompileResult, PodOptOut } from "../../rules/compile.ts";
import { matchPatterns } from "../../compat/load.ts";
import type { RewriteObject } from "../../rules/schema.ts";
import type { Labels } from "../../rules/selector.ts";
import type { SourceMetrics } from "../metrics.ts";
import type { RuleStore, SourceStatus } from "../store.ts";
import { conflictMessage, evaluateObjects, type ObjectVerdict, validMessage } from "./evaluate.ts";
import { errorMessage, KubeApiError, KubeHttp } from "./http.ts";
import type { KubeAccess } from "./in_cluster.ts";
import { type Clock, isNamespaceName, NotFoundMemory, TokenBucket } from "./namespace_lookup.ts";
import { Reflector } from "./reflector.ts";
import {
  CLUSTER_IMAGE_REWRITES,
  IMAGE_REWRITES,
  metadataOf,
  NAMESPACES,
  objectKey,
  objectPath,
  REGISTRY_REWRITE_RULES,
  type Resource,
  resourceName,
  stringField,
} from "./resources.ts";
import { isRecord, type Json } from "../../util/json.ts";
import { StatusWriter } from "./status.ts";
import { canonical } from "../../util/json.ts";
import { type RuleSource, statusOf } from "../source.ts";
import type { Problem } from "../../rules/problem.ts";

/** Name of this source in the store, metrics and logs. */
export const KUBE_SOURCE = "kube";

/** Settings of {@linkcode KubeRuleSource}. */
export interface KubeSourceOptions {
  /** Where the API server is and how to authenticate: see {@linkcode loadKubeConfig}. */
  readonly kubeConfig: KubeAccess;
  readonly store: RuleStore;
  readonly logger: Logger;
  readonly metrics?: SourceMetrics;
  /** Watch namespaces for their labels (needed by `namespaceSelector`); readiness then waits for them too. Default true. */
  readonly watchNamespaces?: boolean;
  /** Write `status` on every rule object. Default true. */
  readonly writeStatus?: boolean;
  /**
   * Reconnect backoff after failures: doubles from `initialMs` up to `maxMs`, jittered. Defaults 500 ms and 30 s.
   * While the API server is not ready yet (connection refused, 429, 503) requests are retried after its Retry-After,
   * else after `notReadyMs` (default 1 s), without lengthening the backoff.
   */
  readonly backoff?: { readonly initialMs?: number; readonly maxMs?: number; readonly notReadyMs?: number };
  /**
   * How long 403 Forbidden for a resource that was read before is taken as a restarting API server's authorizer
   * warming up: the last objects stay in force meanwhile. Default 120 s.
   */
  readonly forbiddenGraceMs?: number;
  /** Server-side watch timeout; each watch asks for a random value between this and twice this. Default 300. */
  readonly watchTimeoutSeconds?: number;
  /** Items per LIST page. Default 500. */
  readonly pageSize?: number;
  /** Status writes attempted per object and change when they meet 409 Conflict. Default 5. */
  readonly statusAttempts?: number;
  /** Time limit of each non-watch request. Default 30 s. */
  readonly requestTimeoutMs?: number;
  /**
   * How often RegistryRewriteRules are looked for again while the API answers 404 (their CRD is not installed) or
   * 403 (the role does not grant them; once they were read, only after `forbiddenGraceMs`). Default 60 s.
   */
  readonly optionalRecheckMs?: number;
  /** Clock for `lastTransitionTime`. */
  readonly now?: () => Date;
  /** Screens the objects' patterns off this thread (a worker) before each evaluation; rejects when it cannot. */
  readonly screen?: (sources: readonly string[]) => Promise<unknown>;
  /**
   * Deadline of a GET of one namespace the watch has not delivered yet ({@linkcode KubeRuleSource.lookupNamespace}).
   * Default 1 s: well inside the webhook's timeoutSeconds (5), with the registry checks' 2 s.
   */
  readonly namespaceLookupTimeoutMs?: number;
  /** Monotonic milliseconds for the namespace lookups' rate limit and not-found memory; default performance.now. */
  readonly clock?: Clock;
}

/**
 * What a GET of one namespace found: its labels, that it does not exist (404, remembered a while; or a name no
 * namespace can have, not looked up), or why it could not be read ("skipped": no GET, over the bounds below).
 */
export type NamespaceLookup =
  | { readonly result: "found"; readonly labels: Labels }
  | { readonly result: "not-found" }
  | { readonly result: "error" | "timeout" | "skipped"; readonly message: string };

// /mutate has no client authentication: a caller can name any namespace, and each GET is made under our
// ServiceAccount. Distinct namespaces looked up at once, and GETs a second (a token bucket); more are skipped.
const MAX_NAMESPACE_LOOKUPS = 32;
const NAMESPACE_LOOKUPS_PER_SECOND = 20;
/** A 404 is remembered this long, for at most this many names (the oldest go first); the watch's event drops it. */
const NOT_FOUND_TTL_MS = 10_000;
const NOT_FOUND_CAPACITY = 1024;
/** At most one log line about skipped lookups this often; it says how many were skipped since the last. */
const SKIP_LOG_INTERVAL_MS = 10_000;

/**
 * Keeps the store's "kube" objects equal to the valid, non-conflicting rule objects in the cluster, and to the
 * translations of the valid RegistryRewriteRules (with mutating-registry-webhook's Pod opt-out) when their CRD
 * is installed.
 */
export class KubeRuleSource implements RuleSource {
  readonly name = KUBE_SOURCE;
  #options: KubeSourceOptions;
  #http: KubeHttp;
  #controller = new AbortController();
  #rewrites: Reflector;
  #clusterRewrites: Reflector;
  #namespaces: Reflector | undefined;
  #registryRewriteRules: Reflector;
  #runs: Promise<void>[] = [];
  #started = false;
  #stopped = false;
  #synced = Promise.withResolvers<void>();
  #loaded = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #updating = false;
  #unsubscribe: (() => void) | undefined;
  /** Everything this source put in the store: our objects, then translated ones. */
  #used: readonly RewriteObject[] = [];
  #optOuts: readonly PodOptOut[] = [];
  /** The RegistryRewriteRule (verdict key) each translated object in `#used` came from. */
  #owners: ReadonlyMap<RewriteObject, string> = new Map();
  #usedFingerprint: string | undefined;
  /** The last evaluation of RegistryRewriteRules, and what it was made from (object versions, names taken). */
  #foreign: { raws: readonly Json[]; taken: string; evaluation: ForeignEvaluation } | undefined;
  /** Per RegistryRewriteRule (and "" for all together): the problems last logged. */
  #foreignLogged = new Map<string, string>();
  #verdicts = new Map<string, ObjectVerdict>();
  #verdictFingerprint: string | undefined;
  #status: StatusWriter;
  /** GETs of namespaces under way, by name: concurrent admissions for one new namespace share one. */
  #lookups = new Map<string, Promise<NamespaceLookup>>();
  #clock: Clock;
  #notFound: NotFoundMemory;
  #lookupTokens: TokenBucket;
  /** When the last "skipped" line was logged, and how many were skipped since without one. */
  #skipLoggedAt: number | undefined;
  #skippedQuietly = 0;

  constructor(options: KubeSourceOptions) {
    this.#options = options;
    const clock = this.#clock = options.clock ?? (() => performance.now());
    this.#notFound = new NotFoundMemory({ ttlMs: NOT_FOUND_TTL_MS, capacity: NOT_FOUND_CAPACITY, clock });
    this.#lookupTokens = new TokenBucket({
      perSecond: NAMESPACE_LOOKUPS_PER_SECOND,
      burst: MAX_NAMESPACE_LOOKUPS,
      clock,
    });
    this.#http = new KubeHttp(options.kubeConfig, options.requestTimeoutMs ?? 30_000);
    this.#status = new StatusWriter({
      http: this.#http,
      logger: options.logger,
      signal: this.#controller.signal,
      attempts: options.statusAttempts ?? 5,
      now: () => options.now?.() ?? new Date(),
      verdicts: () => this.#verdicts,
      find: (key) => this.#rawObject(key),
    });
    options.store.register(KUBE_SOURCE);
    const common = {
      http: this.#http,
      logger: options.logger,
      backoff: {
        initialMs: options.backoff?.initialMs ?? 500,
        maxMs: options.backoff?.maxMs ?? 30_000,
        notReadyMs: options.backoff?.notReadyMs ?? 1000,
      },
      forbiddenGraceMs: options.forbiddenGraceMs ?? 120_000,
      pageSize: options.pageSize ?? 500,
      watchTimeoutSeconds: options.watchTimeoutSeconds ?? 300,
      onError: (message: string) => {
        options.store.fail(KUBE_SOURCE, message);
        options.metrics?.reloads.inc({ source: KUBE_SOURCE, result: "error" });
      },
      onRecover: () => {
        // The store keeps a source's last error until its next update: clear it with the objects in force.
        if (this.#loaded && !this.#stopped) this.#update(this.#used, this.#optOuts);
      },
    };
    const rules = { ...common, keep: (object: Json) => object, onChange: () => this.#schedule() };
    this.#rewrites = new Reflector({ ...rules, resource: IMAGE_REWRITES });
    this.#clusterRewrites = new Reflector({ ...rules, resource: CLUSTER_IMAGE_REWRITES });
    this.#registryRewriteRules = new Reflector({
      ...rules,
      resource: REGISTRY_REWRITE_RULES,
      optional: { recheckMs: options.optionalRecheckMs ?? 60_000 },
    });
    if (options.watchNamespaces !== false) {
      this.#namespaces = new Reflector({
        ...common,
        resource: NAMESPACES,
        keep: (object) => {
          const metadata = metadataOf(object);
          // It exists: a 404 remembered for it is over.
          if (typeof metadata["name"] === "string") this.#notFound.delete(metadata["name"]);
          return { metadata: { name: metadata["name"], labels: metadata["labels"] } };
        },
        // Labels are read at admission time; only readiness depends on this list.
        onChange: () => {
          if (!this.#loaded) this.#schedule();
        },
      });
    }
    this.#synced.promise.catch(() => {});
  }

  /** Resolves when the first complete lists are in the store; rejects if stopped before. */
  get synced(): Promise<void> {
    return this.#synced.promise;
  }

  /** Starts listing and watching in the background and resolves at once; readiness follows {@linkcode synced}. */
  start(): Promise<readonly Problem[]> {
    if (this.#started || this.#stopped) return Promise.resolve([]);
    this.#started = true;
    const signal = this.#controller.signal;
    for (const reflector of [this.#rewrites, this.#clusterRewrites, this.#namespaces, this.#registryRewriteRules]) {
      if (reflector !== undefined) this.#runs.push(reflector.run(signal));
    }
    this.#unsubscribe = this.#options.store.onChange(() => {
      // Another source changed the rules: our objects may now conflict with its objects.
      if (!this.#updating) this.#schedule();
    });
    return Promise.resolve([]);
  }

  /** This source's line of /readyz. */
  status(): SourceStatus {
    return statusOf(this.#options.store, KUBE_SOURCE);
  }

  /** Stops watching and writing; resolves when every connection is closed. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#controller.abort(new Error("stopped"));
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#unsubscribe?.();
    this.#synced.reject(new Error("The Kubernetes rule source stopped before its first load"));
    await Promise.allSettled([...this.#runs, this.#status.settled()]);
  }

  /** Labels of a namespace, or undefined when it is unknown (or namespaces are not watched). */
  namespaceLabels(name: string): Labels | undefined {
    const namespace = this.#namespaces?.items.get(`/${name}`);
    if (namespace === undefined) return undefined;
    const labels = metadataOf(namespace)["labels"];
    return isRecord(labels) ? labels as Labels : {};
  }

  /** Whether namespaces are watched: only then is a namespace missing from the cache one to look up. */
  get watchesNamespaces(): boolean {
    return this.#namespaces !== undefined;
  }

  /**
   * Reads one namespace the watch has not delivered yet (created with the Pod in one `kubectl apply`: its watch
   * event can come after the Pod's admission) with a GET bounded by `namespaceLookupTimeoutMs`, and puts it in the
   * cache unless the watch delivered it meanwhile (the watch stays the source of truth). Concurrent calls for one
   * name share one GET. Failures and timeouts are logged and counted here; the caller decides without the labels.
   * Any client can name any namespace, so: a name no namespace can have is not looked up (not-found); a 404 is
   * remembered for 10 s; and at most 32 lookups run at once and 20 start a second (burst 32), the others skipped.
   */
  lookupNamespace(name: string): Promise<NamespaceLookup> {
    const running = this.#lookups.get(name);
    if (running !== undefined) return running;
    const namespaces = this.#namespaces;
    if (namespaces === undefined || this.#stopped) {
      return Promise.resolve({ result: "error", message: "namespaces are not watched" });
    }
    if (!isNamespaceName(name)) {
      this.#options.metrics?.namespaceLookups?.inc({ result: "invalid" });
      return Promise.resolve({ result: "not-found" });
    }
    if (this.#notFound.has(name)) return Promise.resolve({ result: "not-found" });
    if (this.#lookups.size >= MAX_NAMESPACE_LOOKUPS) {
      return Promise.resolve(this.#skip(name, `${MAX_NAMESPACE_LOOKUPS} namespace lookups are under way already`));
    }
    if (!this.#lookupTokens.take()) {
      return Promise.resolve(
        this.#skip(name, `over ${NAMESPACE_LOOKUPS_PER_SECOND} namespace lookups a second`),
      );
    }
    const lookup = this.#lookupNamespace(namespaces, name).finally(() => this.#lookups.delete(name));
    this.#lookups.set(name, lookup);
    return lookup;
  }

  /** A lookup not made (over a bound): counted, and logged at most once per SKIP_LOG_INTERVAL_MS with a count. */
  #skip(name: string, reason: string): NamespaceLookup {
    const { logger, metrics } = this.#options;
    metrics?.namespaceLookups?.inc({ result: "skipped" });
    const message = `Cannot get namespace ${name}: ${reason}`;
    const now = this.#clock();
    if (this.#skipLoggedAt !== undefined && now - this.#skipLoggedAt < SKIP_LOG_INTERVAL_MS) {
      this.#skippedQuietly++;
    } else {
      logger.warn(
        "{message}: rules with a namespaceSelector do not apply to its Pods until its labels are known ({skipped} other lookups skipped without a log line since the last)",
        { namespace: name, result: "skipped", message, skipped: this.#skippedQuietly },
      );
      this.#skipLoggedAt = now;
      this.#skippedQuietly = 0;
    }
    return { result: "skipped", message };
  }

  async #lookupNamespace(namespaces: Reflector, name: string): Promise<NamespaceLookup> {
    const { logger, metrics } = this.#options;
    const timeoutMs = this.#options.namespaceLookupTimeoutMs ?? 1000;
    const store = namespaces.expect(`/${name}`);
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    let found: NamespaceLookup;
    let object: Json | undefined;
    try {
      const answer = await this.#http.request("GET", objectPath(NAMESPACES, "", name), {
        signal: AbortSignal.any([this.#controller.signal, deadline.signal]),
      });
      if (answer.status === 200 && isRecord(answer.body)) {
        object = answer.body;
        const labels = metadataOf(object)["labels"];
        found = { result: "found", labels: isRecord(labels) ? labels as Labels : {} };
      } else if (answer.status === 404) found = { result: "not-found" };
      else found = { result: "error", message: new KubeApiError(`get namespace ${name}`, answer).message };
    } catch (error) {
      found = deadline.signal.aborted
        ? { result: "timeout", message: `Cannot get namespace ${name}: timed out after ${timeoutMs} ms` }
        : { result: "error", message: `Cannot get namespace ${name}: ${errorMessage(error)}` };
    } finally {
      clearTimeout(timer);
      store(object);
    }
    metrics?.namespaceLookups?.inc({ result: found.result });
    // Unless the watch delivered it during the GET.
    if (found.result === "not-found" && !namespaces.items.has(`/${name}`)) this.#notFound.add(name);
    if (found.result === "error" || found.result === "timeout") {
      logger.warn(
        "{message}: rules with a namespaceSelector do not apply to its Pods until its labels are known",
        { namespace: name, result: found.result, message: found.message },
      );
    } else {
      logger.debug("Read namespace {namespace} before its watch event: {result}", {
        namespace: name,
        result: found.result,
      });
    }
    return found;
  }

  /** The last verdict on each rule object (RegistryRewriteRules included), by `Kind/namespace/name`. */
  get verdicts(): ReadonlyMap<string, ObjectVerdict> {
    return this.#verdicts;
  }

  #schedule(): void {
    if (this.#stopped || this.#timer !== undefined) return;
    // One evaluation per burst of events.
    this.#timer = setTimeout(async () => {
      this.#timer = undefined;
      try {
        const screen = this.#options.screen;
        if (screen !== undefined) {
          const raws = [...this.#rewrites.items.values(), ...this.#clusterRewrites.items.values()];
          await screen(raws.flatMap((raw) => matchPatterns(rulesOf(raw))));
        }
        this.#reconcile();
      } catch (error) {
        this.#options.logger.error("Cannot evaluate rule objects: {message}", { message: errorMessage(error) });
        // Screening refused (busy, slow) decides nothing: the rules in force stay, and evaluation is tried again.
        if (this.#options.screen !== undefined && !this.#stopped) setTimeout(() => this.#schedule(), 1000);
      }
    }, 0);
  }

  #reconcile(): void {
    const { store, metrics, logger } = this.#options;
    if (this.#stopped) return;
    if (
      !this.#rewrites.synced || !this.#clusterRewrites.synced || this.#namespaces?.synced === false ||
      !this.#registryRewriteRules.synced
    ) return;
    const raws = [...this.#rewrites.items.values(), ...this.#clusterRewrites.items.values()];
    const evaluation = evaluateObjects(raws);
    const foreign = this.#evaluateForeign();
    // Ours oldest first, then translations: in a conflict the store keeps the one listed first.
    const used = [...evaluation.used, ...foreign.used.map((entry) => entry.object)];

    const usedFingerprint = [
      ...used.map((object) =>
        canonical([object.kind, object.metadata.namespace ?? "", object.metadata.name, object.spec])
      ),
      ...foreign.optOuts.map((optOut) => canonical(["opt-out", optOut.kind, optOut.key, optOut.value])),
    ].sort().join("\n");
    if (usedFingerprint !== this.#usedFingerprint) {
      this.#usedFingerprint = usedFingerprint;
      this.#used = used;
      this.#optOuts = foreign.optOuts;
      this.#owners = new Map(foreign.used.map((entry) => [entry.object, entry.owner]));
      // Without translations `used` is what evaluateObjects compiled: one compilation per change, not two.
      this.#update(used, foreign.optOuts, foreign.used.length === 0 ? evaluation.compiled : undefined);
    }
    this.#logForeignProblems(foreign);

    const verdicts = this.#withStoreProblems(new Map([...evaluation.verdicts, ...foreign.verdicts]));
    const verdictFingerprint = [...verdicts.values()]
      .map((verdict) => canonical([verdict.key, verdict.generation ?? null, verdict.reason, verdict.message]))
      .sort().join("\n");
    const previous = this.#verdicts;
    this.#verdicts = verdicts;
    if (verdictFingerprint !== this.#verdictFingerprint) {
      this.#verdictFingerprint = verdictFingerprint;
      for (const verdict of verdicts.values()) {
        const before = previous.get(verdict.key);
        if (before?.reason === verdict.reason && before.message === verdict.message) continue;
        if (verdict.reason === "Valid") {
          logger.info("Using {object}: {message}", { object: verdict.label, message: verdict.message });
        } else {
          logger.warn("Not using {object} ({reason}): {message}", {
            object: verdict.label,
            reason: verdict.reason,
            message: verdict.message,
          });
        }
      }
      const rejected = [...verdicts.values()].filter((verdict) => verdict.reason !== "Valid").length;
      // In use: what the store kept, not what this source offered (a file's object can win a conflict).
      const inUse = this.#used.filter((object) => store.inForce(object));
      const rules = inUse.reduce((sum, object) => sum + object.spec.rules.length, 0);
      metrics?.reloads.inc({ source: KUBE_SOURCE, result: rejected === 0 ? "success" : "error" });
      metrics?.rulesLoaded.set({ source: KUBE_SOURCE }, rules);
      metrics?.objectsLoaded.set({ source: KUBE_SOURCE }, inUse.length);
      logger.info(
        "Loaded rule objects from the API: {objects} object(s) in use, {rules} rule(s), {rejected} rejected, hash {hash}",
        {
          objects: inUse.length,
          rules,
          rejected,
          hash: store.current.hash,
        },
      );
    }
    if (!this.#loaded) {
      this.#loaded = true;
      this.#synced.resolve();
    }
    if (this.#options.writeStatus !== false) this.#status.queue();
  }

  /** RegistryRewriteRules, translated and checked once per change of them or of the ClusterImageRewrite names. */
  #evaluateForeign(): ForeignEvaluation {
    const raws = [...this.#registryRewriteRules.items.values()];
    const taken = [...this.#clusterRewrites.items.values()]
      .map((raw) => stringField(metadataOf(raw), "name") ?? "").sort();
    const takenKey = taken.join("\n");
    const cached = this.#foreign;
    if (
      cached !== undefined && cached.taken === takenKey && cached.raws.length === raws.length &&
      cached.raws.every((raw, index) => raw === raws[index])
    ) return cached.evaluation;
    const evaluation = evaluateRegistryRewriteRules(raws, new Set(taken));
    this.#foreign = { raws, taken: takenKey, evaluation };
    return evaluation;
  }

  /** Every problem of a RegistryRewriteRule, once each time its problems change: they get no status to show them. */
  #logForeignProblems(foreign: ForeignEvaluation): void {
    const { logger } = this.#options;
    for (const key of this.#foreignLogged.keys()) {
      if (!foreign.problems.has(key)) this.#foreignLogged.delete(key);
    }
    for (const [key, problems] of foreign.problems) {
      const fingerprint = problems.map((problem) => problem.message).join("\n");
      if (this.#foreignLogged.get(key) === fingerprint) continue;
      this.#foreignLogged.set(key, fingerprint);
      const object = foreign.verdicts.get(key)?.label ?? resourceName(REGISTRY_REWRITE_RULES);
      for (const problem of problems) {
        logger.warn("{object}: {message}", {
          object,
          severity: problem.severity,
          code: problem.code,
          message: problem.message,
        });
      }
    }
  }

  /**
   * The store compiles every source together: an object this source uses can still be left out there for a
   * conflict with another source's object (a file's wins), and gets warnings only the whole set shows (a
   * namespaced object overriding a file's cluster-wide rule in its namespace). Verdicts say both.
   */
  #withStoreProblems(verdicts: ReadonlyMap<string, ObjectVerdict>): Map<string, ObjectVerdict> {
    const { store } = this.#options;
    // Verdict key -> its objects: a RegistryRewriteRule may have become several objects.
    const objectsOf = new Map<string, RewriteObject[]>();
    for (const object of this.#used) {
      const key = this.#owners.get(object) ?? objectKey(object.kind, object);
      objectsOf.set(key, [...(objectsOf.get(key) ?? []), object]);
    }
    const out = new Map<string, ObjectVerdict>();
    for (const [key, verdict] of verdicts) {
      const objects = objectsOf.get(key);
      if (verdict.reason !== "Valid" || objects === undefined) {
        out.set(key, verdict);
        continue;
      }
      const dropped = objects.filter((object) => !store.inForce(object));
      if (dropped.length > 0) {
        const { object: _object, ...rest } = verdict;
        out.set(key, {
          ...rest,
          reason: "Conflict",
          rules: 0,
          message: conflictMessage(dropped.flatMap((object) => store.problemsOf(object))),
        });
      } else if (verdict.object !== undefined) {
        // The store holds the objects of the last change in force (a status write alone makes new ones).
        out.set(key, { ...verdict, message: validMessage(verdict.rules, objects.flatMap((o) => store.problemsOf(o))) });
      } else out.set(key, verdict);
    }
    return out;
  }

  #update(objects: readonly RewriteObject[], optOuts: readonly PodOptOut[], compiled?: CompileResult): void {
    this.#updating = true;
    try {
      if (compiled === undefined) this.#options.store.update(KUBE_SOURCE, objects, optOuts);
      else this.#options.store.updateCompiled(KUBE_SOURCE, { objects, optOuts, compiled });
    } finally {
      this.#updating = false;
    }
  }

  /** Our object behind a verdict; undefined for a RegistryRewriteRule, which is not ours to write. */
  #rawObject(key: string): { raw: Json; resource: Resource } | undefined {
    const [kind] = key.split("/", 1);
    const resource = kind === IMAGE_REWRITES.kind
      ? IMAGE_REWRITES
      : kind === CLUSTER_IMAGE_REWRITES.kind
      ? CLUSTER_IMAGE_REWRITES
      : undefined;
    if (resource === undefined) return undefined;
    const reflector = resource === IMAGE_REWRITES ? this.#rewrites : this.#clusterRewrites;
    const raw = reflector.items.get(key.slice((kind ?? "").length + 1));
    return raw === undefined ? undefined : { raw, resource };
  }
}

/** `spec.rules` of a raw object, when it is a list. */
function rulesOf(raw: unknown): unknown[] {
  const spec = isRecord(raw) ? raw["spec"] : undefined;
  const rules = isRecord(spec) ? spec["rules"] : undefined;
  return Array.isArray(rules) ? rules : [];
}
