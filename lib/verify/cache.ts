// Bounded LRU caches with expiry: answers of registry lookups (separate TTLs per outcome) with in-flight coalescing.

/** What a registry said about one reference. */
export interface LookupAnswer {
  readonly status: "present" | "missing" | "error";
  /** Why, for logs and the command line: an HTTP status, a network error, a media type. */
  readonly detail?: string;
  /**
   * Why, for admission warnings, which tenants read: only reasons they may know (the policy's), never network
   * detail that would let them map hosts and ports. Absent: the warning just says "could not be checked".
   */
  readonly reason?: string;
}

/** How long each kind of answer is trusted. */
export interface CacheTtls {
  readonly presentMs: number;
  readonly missingMs: number;
  readonly errorMs: number;
}

/**
 * Defaults: images rarely disappear, so a present answer lasts longest; a missing one is short so a push or a
 * pull-through cache filling up is seen soon; an error is retried quickly but not on every Pod of a rollout.
 */
const DEFAULT_TTLS: CacheTtls = { presentMs: 10 * 60_000, missingMs: 30_000, errorMs: 10_000 };
/** Default bound on cached answers. */
const DEFAULT_MAX_ENTRIES = 10_000;

/** A map that forgets its least recently used entries beyond `maxEntries` and entries past their expiry. */
export class LruMap<K, V> {
  readonly #entries = new Map<K, { value: V; expires: number }>();
  readonly #maxEntries: number;
  readonly #now: () => number;

  constructor(options: { maxEntries: number; now?: () => number }) {
    if (!(options.maxEntries >= 1)) throw new RangeError(`Cannot create a cache: maxEntries must be at least 1`);
    this.#maxEntries = options.maxEntries;
    this.#now = options.now ?? Date.now;
  }

  /** The value when present and not expired; marks it most recently used. */
  get(key: K): V | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    this.#entries.delete(key);
    if (entry.expires <= this.#now()) return undefined;
    this.#entries.set(key, entry);
    return entry.value;
  }

  /** Stores `value` for `ttlMs`; evicts the least recently used entry when full. */
  set(key: K, value: V, ttlMs: number): void {
    this.#entries.delete(key);
    if (!(ttlMs > 0)) return;
    this.#entries.set(key, { value, expires: this.#now() + ttlMs });
    while (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next();
      if (oldest.done === true) break;
      this.#entries.delete(oldest.value);
    }
  }

  delete(key: K): void {
    this.#entries.delete(key);
  }

  clear(): void {
    this.#entries.clear();
  }

  /** Entries held, expired ones included until they are touched or evicted. */
  get size(): number {
    return this.#entries.size;
  }
}

/** Where an answer came from: the cache, a lookup already under way, or a new lookup. */
export type AnswerSource = "hit" | "coalesced" | "miss";

/** Options of {@linkcode LookupCache}. */
export interface LookupCacheOptions {
  readonly maxEntries?: number;
  readonly ttls?: Partial<CacheTtls>;
  readonly now?: () => number;
}

/** Cached registry answers by reference, with concurrent lookups of one reference sharing one promise. */
export class LookupCache {
  readonly #answers: LruMap<string, LookupAnswer>;
  readonly #inFlight = new Map<string, Promise<LookupAnswer>>();
  readonly #ttls: CacheTtls;

  constructor(options: LookupCacheOptions = {}) {
    this.#answers = new LruMap({
      maxEntries: options.maxEntries ?? DEFAULT_MAX_ENTRIES,
      ...(options.now === undefined ? {} : { now: options.now }),
    });
    this.#ttls = { ...DEFAULT_TTLS, ...options.ttls };
  }

  /** A fresh cached answer, if any. */
  peek(key: string): LookupAnswer | undefined {
    return this.#answers.get(key);
  }

  /**
   * The cached answer, or the lookup already under way for `key`, or a new one started with `load`. The answer is
   * cached with the TTL of its status when it settles; `load` must not reject (a rejection is cached as an error).
   */
  lookup(key: string, load: () => Promise<LookupAnswer>): { answer: Promise<LookupAnswer>; source: AnswerSource } {
    const cached = this.#answers.get(key);
    if (cached !== undefined) return { answer: Promise.resolve(cached), source: "hit" };
    const running = this.#inFlight.get(key);
    if (running !== undefined) return { answer: running, source: "coalesced" };
    const answer = load()
      .catch((error: unknown): LookupAnswer => ({
        status: "error",
        detail: error instanceof Error ? error.message : String(error),
      }))
      .then((settled) => {
        this.#answers.set(key, settled, this.#ttl(settled.status));
        return settled;
      })
      .finally(() => this.#inFlight.delete(key));
    this.#inFlight.set(key, answer);
    return { answer, source: "miss" };
  }

  /** True while a lookup of `key` is under way. */
  isInFlight(key: string): boolean {
    return this.#inFlight.has(key);
  }

  /** Forgets every answer (lookups under way still complete and are cached). */
  /** Forgets the answer for `key` (a copy just put the image there). */
  forget(key: string): void {
    this.#answers.delete(key);
  }

  clear(): void {
    this.#answers.clear();
  }

  /** Answers held. */
  get size(): number {
    return this.#answers.size;
  }

  /** Lookups under way. */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  #ttl(status: LookupAnswer["status"]): number {
    switch (status) {
      case "present":
        return this.#ttls.presentMs;
      case "missing":
        return this.#ttls.missingMs;
      case "error":
        return this.#ttls.errorMs;
    }
  }
}
