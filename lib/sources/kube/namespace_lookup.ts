// Bounds on the GETs of namespaces the watch has not delivered yet: /mutate has no client authentication, so any
// caller can name any namespace, and each GET is made under mirrorhook's ServiceAccount.

/** A namespace name: a DNS-1123 label (lowercase alphanumerics and '-', alphanumeric at both ends, at most 63). */
const NAMESPACE_NAME = /^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$/;

/** Whether `name` can be a namespace's name (an API server never sends another): only such a name is looked up. */
export function isNamespaceName(name: string): boolean {
  return name.length <= 63 && NAMESPACE_NAME.test(name);
}

/** Milliseconds on a clock that does not jump (performance.now by default). */
export type Clock = () => number;

/**
 * Names the API answered 404 for, remembered for `ttlMs` so that admissions naming made-up namespaces cost one GET
 * per name and `ttlMs`, at most `capacity` names (the oldest go first).
 */
export class NotFoundMemory {
  #until = new Map<string, number>();
  readonly #ttlMs: number;
  readonly #capacity: number;
  readonly #clock: Clock;

  constructor(options: { ttlMs: number; capacity: number; clock: Clock }) {
    this.#ttlMs = options.ttlMs;
    this.#capacity = options.capacity;
    this.#clock = options.clock;
  }

  /** Whether `name` was answered 404 less than `ttlMs` ago (an expired entry is dropped). */
  has(name: string): boolean {
    const until = this.#until.get(name);
    if (until === undefined) return false;
    if (this.#clock() < until) return true;
    this.#until.delete(name);
    return false;
  }

  add(name: string): void {
    this.#until.delete(name);
    // Insertion order is age order: the first key is the oldest.
    if (this.#until.size >= this.#capacity) this.#until.delete(this.#until.keys().next().value as string);
    this.#until.set(name, this.#clock() + this.#ttlMs);
  }

  /** The watch delivered `name`: it exists. */
  delete(name: string): void {
    if (this.#until.size > 0) this.#until.delete(name);
  }

  get size(): number {
    return this.#until.size;
  }
}

/** A token bucket: `burst` tokens, refilled at `perSecond`; each GET takes one. */
export class TokenBucket {
  readonly #perMs: number;
  readonly #burst: number;
  readonly #clock: Clock;
  #tokens: number;
  #at: number;

  constructor(options: { perSecond: number; burst: number; clock: Clock }) {
    this.#perMs = options.perSecond / 1000;
    this.#burst = options.burst;
    this.#clock = options.clock;
    this.#tokens = options.burst;
    this.#at = options.clock();
  }

  /** Takes a token if one is left; false when over the rate. */
  take(): boolean {
    const now = this.#clock();
    this.#tokens = Math.min(this.#burst, this.#tokens + Math.max(0, now - this.#at) * this.#perMs);
    this.#at = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}
