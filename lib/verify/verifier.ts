// Checks that rewritten references exist in their registries: all in parallel, cached, answered by a deadline.

import { formatName, type ImageReference, parseReference } from "../image/reference.ts";
import { type CredentialStore, readDockerConfigs } from "./auth.ts";
import { type AnswerSource, type LookupAnswer, LookupCache, type LookupCacheOptions } from "./cache.ts";
import type { VerifyMetrics } from "./metrics.ts";
import { NOT_ALLOWED_DETAIL, type RuleScope, VerifyPolicy } from "./policy.ts";
import { DEFAULT_REQUEST_TIMEOUT_MS, RegistryClient, type RequestEvent } from "./registry.ts";
import { Transport } from "./transport.ts";
import { splitPlatforms } from "../rules/platforms.ts";

/** Default time an admission waits for registry answers, well inside the webhook's timeoutSeconds. */
const DEFAULT_DEADLINE_MS = 2_000;
/** Default bound on one lookup, which may outlive its admission's deadline to warm the cache. */
const DEFAULT_LOOKUP_TIMEOUT_MS = 10_000;
/** Default bound on distinct lookups under way; beyond it new references are answered `error` at once. */
const DEFAULT_MAX_CONCURRENT_LOOKUPS = 256;

const MAX_PARSED = 10_000;

/** What verification found for one reference. `timeout`: no answer by the deadline. */
export type VerifyStatus = "present" | "missing" | "error" | "timeout";

/** The answer for one reference. */
export interface VerifyResult {
  readonly status: VerifyStatus;
  /** True when the answer came from the cache, without a registry request by this call. */
  readonly cached: boolean;
  /**
   * hit (cache), coalesced (joined a lookup under way), miss (new lookup), overdue (a lookup under way is already
   * past an admission deadline: answered `timeout` at once), invalid (not a reference), refused (not allowed).
   */
  readonly source: AnswerSource | "overdue" | "invalid" | "refused";
  /**
   * Why, as admission warnings may say it. With a policy (the server) it never carries network detail (hosts,
   * ports, errors); without one (the command line) it is the same as `cause`.
   */
  readonly detail?: string;
  /** Why, in full, for logs, when `detail` leaves it out (with a policy): the HTTP status or network error. */
  readonly cause?: string;
}

/** Detail of an answer given at once because a lookup for the same reference is already past a deadline. */
const OVERDUE_DETAIL = "an earlier lookup of this image is still unanswered past the deadline";

/** What the verifier needs from a registry client; {@linkcode RegistryClient} is the real one. */
export interface ManifestChecker {
  check(
    reference: ImageReference,
    options: { signal?: AbortSignal; platforms?: readonly string[] },
  ): Promise<LookupAnswer>;
}

/** Options of {@linkcode Verifier}. */
export interface VerifierOptions {
  /** The registry client; by default a {@linkcode RegistryClient} built from the options below. */
  readonly checker?: ManifestChecker;
  /** Injected for tests; defaults to the global fetch. */
  readonly fetch?: typeof fetch;
  readonly credentials?: CredentialStore;
  readonly transport?: Transport;
  /** Bound on one HTTP request (default 5 s). */
  readonly requestTimeoutMs?: number;
  readonly userAgent?: string;
  readonly cache?: LookupCacheOptions;
  /** Clock for cache and token expiry. */
  readonly now?: () => number;
  readonly metrics?: VerifyMetrics;
  /** Bound on one lookup, default {@linkcode DEFAULT_LOOKUP_TIMEOUT_MS}. */
  readonly lookupTimeoutMs?: number;
  /** Default {@linkcode DEFAULT_MAX_CONCURRENT_LOOKUPS}. */
  readonly maxConcurrentLookups?: number;
  /**
   * Which registries rules may verify against. Absent: every registry (the command line), with full details in
   * answers; present: details in answers are only those a tenant may read.
   */
  readonly policy?: VerifyPolicy;
  /**
   * The admission deadline: the default of {@linkcode Verifier.checkAll} and a bound on one registry request, so
   * a registry that never answers holds a lookup no longer than one admission waits.
   */
  readonly deadlineMs?: number;
  /** Called once per registry lookup that ends in an error, with the full detail (for the log). */
  readonly onLookupError?: (reference: string, detail: string) => void;
}

/** Options of {@linkcode Verifier.create}: files are read once, at start-up. */
export interface VerifierSetup extends Omit<VerifierOptions, "credentials" | "transport" | "checker"> {
  /** Docker config files or directories (a mounted `.dockerconfigjson` Secret). */
  readonly dockerConfigs?: readonly string[];
  /** Registry hosts spoken to over plain HTTP. */
  readonly insecureRegistries?: readonly string[];
  /** PEM CA file by registry host. */
  readonly caFiles?: Readonly<Record<string, string>>;
}

const REFUSED: LookupAnswer = { status: "error", detail: NOT_ALLOWED_DETAIL, reason: NOT_ALLOWED_DETAIL };

type Parsed = {
  readonly ok: true;
  readonly key: string;
  readonly reference: ImageReference;
  /** Platforms the manifest must serve (lib/rules/platforms.ts): part of the cache key. */
  readonly platforms: readonly string[];
} | {
  readonly ok: false;
  readonly detail: string;
};

/** One lookup key per manifest: `name@digest` when there is a digest (what is pulled), else `name:tag`. */
export function lookupKey(reference: ImageReference): string {
  return reference.digest === undefined
    ? `${formatName(reference)}:${reference.tag ?? "latest"}`
    : `${formatName(reference)}@${reference.digest}`;
}

/** Verifies references against their registries; one per process, shared by every admission. */
export class Verifier {
  readonly #checker: ManifestChecker;
  readonly #cache: LookupCache;
  readonly #parsed = new Map<string, Parsed>();
  readonly #metrics: VerifyMetrics | undefined;
  readonly #lookupTimeoutMs: number;
  readonly #maxLookups: number;
  readonly #closing = new AbortController();
  readonly #running = new Set<Promise<LookupAnswer>>();
  /** Keys of lookups under way that an admission already gave up waiting for (past its deadline). */
  readonly #overdue = new Set<string>();
  readonly #policy: VerifyPolicy;
  readonly #publicDetails: boolean;
  readonly #deadlineMs: number;
  readonly #onLookupError: ((reference: string, detail: string) => void) | undefined;
  #ownedTransport: Transport | undefined;

  constructor(options: VerifierOptions = {}) {
    this.#metrics = options.metrics;
    const metrics = options.metrics;
    this.#policy = options.policy ?? VerifyPolicy.open(options.transport?.namedHosts ?? []);
    this.#publicDetails = options.policy !== undefined;
    this.#deadlineMs = options.deadlineMs ?? DEFAULT_DEADLINE_MS;
    this.#onLookupError = options.onLookupError;
    const requestTimeoutMs = Math.min(
      options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
      options.deadlineMs ?? Number.POSITIVE_INFINITY,
    );
    this.#checker = options.checker ?? new RegistryClient({
      ...(options.fetch === undefined ? {} : { fetch: options.fetch }),
      ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
      ...(options.transport === undefined ? {} : { transport: options.transport }),
      ...(options.now === undefined ? {} : { now: options.now }),
      requestTimeoutMs,
      policy: this.#policy,
      ...(options.userAgent === undefined ? {} : { userAgent: options.userAgent }),
      ...(metrics === undefined ? {} : {
        onRequest: (event: RequestEvent) => {
          metrics.registryRequests.inc({ host: event.host, kind: event.kind, code: event.code });
          metrics.registryDuration.observe({ host: event.host, kind: event.kind }, event.seconds);
        },
      }),
    });
    this.#cache = new LookupCache({
      ...options.cache,
      ...(options.now === undefined || options.cache?.now !== undefined ? {} : { now: options.now }),
    });
    this.#lookupTimeoutMs = options.lookupTimeoutMs ?? DEFAULT_LOOKUP_TIMEOUT_MS;
    this.#maxLookups = options.maxConcurrentLookups ?? DEFAULT_MAX_CONCURRENT_LOOKUPS;
  }

  /**
   * Reads Docker configs and CA files, then builds a verifier that owns its transport (closed by
   * {@linkcode Verifier.close}). Throws `DockerConfigError` or `TransportError` with the file named.
   */
  static async create(setup: VerifierSetup = {}): Promise<Verifier> {
    const credentials = await readDockerConfigs(setup.dockerConfigs ?? []);
    const transport = await Transport.create({
      ...(setup.insecureRegistries === undefined ? {} : { insecure: setup.insecureRegistries }),
      ...(setup.caFiles === undefined ? {} : { caFiles: setup.caFiles }),
    });
    const { dockerConfigs: _configs, insecureRegistries: _insecure, caFiles: _ca, ...rest } = setup;
    // Hosts named as insecure or given a CA file were named by whoever configured this: they count as listed.
    const policy = setup.policy?.withListed(transport.namedHosts);
    const verifier = new Verifier({ ...rest, credentials, transport, ...(policy === undefined ? {} : { policy }) });
    verifier.#ownedTransport = transport;
    return verifier;
  }

  /**
   * Checks every reference in parallel. Resolves by `deadlineMs` (never rejects): references still unanswered
   * then are `timeout`; their lookups go on in the background (bounded by the lookup timeout) and fill the cache.
   * When every answer is cached it resolves without timers or network.
   */
  checkAll(
    references: readonly string[],
    deadlineMs: number = this.#deadlineMs,
  ): Promise<Map<string, VerifyResult>> {
    const results = new Map<string, VerifyResult>();
    const waiting: { input: string; key: string; answer: Promise<LookupAnswer>; source: AnswerSource }[] = [];
    const seen = new Set<string>();
    for (const input of references) {
      if (seen.has(input)) continue;
      seen.add(input);
      const parsed = this.#parse(input);
      if (!parsed.ok) {
        results.set(input, { status: "error", cached: false, source: "invalid", detail: parsed.detail });
        this.#count("error", "miss");
        continue;
      }
      if (!this.#policy.allowsAny(parsed.reference.registry)) {
        results.set(input, this.#result(REFUSED, false, "refused"));
        this.#count("error", "refused");
        continue;
      }
      const hit = this.#cache.peek(parsed.key);
      if (hit !== undefined) {
        results.set(input, this.#result(hit, true, "hit"));
        this.#count(hit.status, "hit");
        continue;
      }
      // A registry that has not answered an earlier admission in time will not answer this one in time either:
      // fall back at once rather than have every admission wait the whole deadline.
      if (this.#overdue.has(parsed.key)) {
        results.set(input, result("timeout", false, "overdue", OVERDUE_DETAIL));
        this.#count("timeout", "overdue");
        continue;
      }
      if (this.#cache.inFlight >= this.#maxLookups && !this.#cache.isInFlight(parsed.key)) {
        results.set(input, result("error", false, "miss", `more than ${this.#maxLookups} registry lookups under way`));
        this.#count("error", "miss");
        continue;
      }
      const { answer, source } = this.#cache.lookup(
        parsed.key,
        () => this.#load(parsed.key, parsed.reference, parsed.platforms),
      );
      waiting.push({ input, key: parsed.key, answer, source });
    }
    if (waiting.length === 0) return Promise.resolve(results);
    return new Promise((resolve) => {
      let remaining = waiting.length;
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        for (const { input, key, source } of waiting) {
          if (results.has(input)) continue;
          if (this.#cache.isInFlight(key)) this.#overdue.add(key);
          results.set(input, result("timeout", false, source, `no answer from the registry within ${deadlineMs} ms`));
          this.#count("timeout", source);
        }
        // In the order given, whatever order the answers came in.
        const ordered = new Map<string, VerifyResult>();
        for (const input of references) {
          const found = results.get(input);
          if (found !== undefined) ordered.set(input, found);
        }
        resolve(ordered);
      };
      const timer = setTimeout(finish, Math.max(0, deadlineMs));
      for (const { input, answer, source } of waiting) {
        void answer.then((found) => {
          this.#metrics?.cacheEntries.set(this.#cache.size);
          if (done) return;
          results.set(input, this.#result(found, false, source));
          this.#count(found.status, source);
          if (--remaining === 0) finish();
        });
      }
    });
  }

  /**
   * The cached answer for a reference, synchronously, or undefined when there is none (then use checkAll).
   * Lets a warm cache decide an admission in one pass, with no promise or timer.
   */
  peek(reference: string, scope: RuleScope = "cluster"): VerifyResult | undefined {
    const parsed = this.#parse(reference);
    if (!parsed.ok) return undefined;
    const refused = this.refusal(reference, scope);
    if (refused !== undefined) {
      this.#count("error", "refused");
      return refused;
    }
    const hit = this.#cache.peek(parsed.key);
    if (hit === undefined) return undefined;
    this.#count(hit.status, "hit");
    return this.#result(hit, true, "hit");
  }

  /**
   * The answer for a rule of `scope` whose target's registry the policy does not allow (never contacted), or
   * undefined when it may be checked.
   */
  refusal(reference: string, scope: RuleScope): VerifyResult | undefined {
    const parsed = this.#parse(reference);
    if (!parsed.ok || this.#policy.allows(parsed.reference.registry, scope)) return undefined;
    return this.#result(REFUSED, false, "refused");
  }

  /** Checks one reference; see {@linkcode Verifier.checkAll}. */
  async check(reference: string, deadlineMs: number = this.#deadlineMs): Promise<VerifyResult> {
    const results = await this.checkAll([reference], deadlineMs);
    return results.get(reference) ?? result("error", false, "invalid", "no result");
  }

  /** Forgets the cached answer for one reference or verification key (after a copy put the image there). */
  forget(reference: string): void {
    const parsed = this.#parse(reference);
    if (parsed.ok) this.#cache.forget(parsed.key);
  }

  /** Forgets every cached answer. */
  clearCache(): void {
    this.#cache.clear();
    this.#metrics?.cacheEntries.set(0);
  }

  /** Answers cached. */
  get cacheSize(): number {
    return this.#cache.size;
  }

  /** Which registries rules may verify against. */
  get policy(): VerifyPolicy {
    return this.#policy;
  }

  /** Lookups under way. */
  get inFlight(): number {
    return this.#running.size;
  }

  /** Aborts lookups under way and waits for them to settle; closes the transport when the verifier made it. */
  async close(): Promise<void> {
    this.#closing.abort(new Error("verifier closed"));
    await Promise.allSettled([...this.#running]);
    this.#ownedTransport?.close();
    this.#ownedTransport = undefined;
  }

  #parse(input: string): Parsed {
    let parsed = this.#parsed.get(input);
    if (parsed === undefined) {
      // A key may carry required platforms (`ref platforms=linux/amd64`): cached apart from the bare reference.
      const { reference, platforms } = splitPlatforms(input);
      const result = parseReference(reference);
      parsed = result.ok
        ? {
          ok: true,
          key: platforms.length === 0 ? lookupKey(result.reference) : `${lookupKey(result.reference)} ${platforms}`,
          reference: result.reference,
          platforms,
        }
        : { ok: false, detail: result.error.message };
      // Parsing is cheap to redo: a full memo is simply emptied, with no LRU upkeep on the hot path.
      if (this.#parsed.size >= MAX_PARSED) this.#parsed.clear();
      this.#parsed.set(input, parsed);
    }
    return parsed;
  }

  #count(status: VerifyStatus, cache: VerifyResult["source"]): void {
    this.#metrics?.countCheck(status, cache);
  }

  #load(key: string, reference: ImageReference, platforms: readonly string[]): Promise<LookupAnswer> {
    if (this.#closing.signal.aborted) return Promise.resolve({ status: "error", detail: "verifier closed" });
    const timeout = new AbortController();
    const timer = setTimeout(
      () => timeout.abort(new Error(`lookup took longer than ${this.#lookupTimeoutMs} ms`)),
      this.#lookupTimeoutMs,
    );
    const signal = AbortSignal.any([this.#closing.signal, timeout.signal]);
    this.#metrics?.lookupsInFlight.inc();
    const running = this.#checker.check(reference, { signal, ...(platforms.length === 0 ? {} : { platforms }) })
      .then((answer): LookupAnswer => {
        if (answer.status === "error") this.#onLookupError?.(key, answer.detail ?? "error");
        return answer;
      })
      .then((answer): LookupAnswer => ({
        status: answer.status,
        ...(answer.detail === undefined ? {} : { detail: answer.detail }),
        ...(answer.reason === undefined ? {} : { reason: answer.reason }),
      }))
      .finally(() => {
        clearTimeout(timer);
        this.#overdue.delete(key);
        this.#running.delete(running);
        this.#metrics?.lookupsInFlight.dec();
      });
    this.#running.add(running);
    return running;
  }

  /** A result from a registry answer: with a policy, the detail is only the answer's public reason. */
  #result(answer: LookupAnswer, cached: boolean, source: VerifyResult["source"]): VerifyResult {
    const detail = this.#publicDetails ? answer.reason : answer.detail;
    return {
      ...result(answer.status, cached, source, detail),
      ...(answer.detail === undefined || !this.#publicDetails ? {} : { cause: answer.detail }),
    };
  }
}

function result(status: VerifyStatus, cached: boolean, source: VerifyResult["source"], detail?: string): VerifyResult {
  return { status, cached, source, ...(detail === undefined ? {} : { detail }) };
}
