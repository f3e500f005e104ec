// Runs image copies for a process: one copy per target reference at a time, bounded concurrency, events.

import { formatReference, type ImageReference } from "../image/reference.ts";
import type { BlobProgress } from "./blob.ts";
import { copyImage, type CopyOptions, type CopyResult } from "./copy.ts";
import type { Platform } from "./manifest.ts";
import { MirrorError, type MirrorFailure, type SessionOptions, SessionPool } from "./session.ts";

/** Default number of images copied at once. */
const DEFAULT_MAX_CONCURRENT_COPIES = 2;
/** Bound on a failure reason in events: logs and metrics stay small whatever a registry says. */
const MAX_REASON_LENGTH = 300;

/** What happened to a copy, for metrics and logs. */
export type MirrorEvent =
  | { readonly type: "queued"; readonly source: string; readonly target: string }
  | {
    readonly type: "started";
    readonly source: string;
    readonly target: string;
    /** True when the copy was queued first. */
    readonly waited: boolean;
  }
  | {
    readonly type: "finished";
    readonly source: string;
    readonly target: string;
    readonly result: CopyResult;
    readonly bytes: number;
    readonly seconds: number;
  }
  | {
    readonly type: "failed";
    readonly source: string;
    readonly target: string;
    readonly reason: MirrorFailure | "internal";
    /** The error message, at most {@linkcode MAX_REASON_LENGTH} characters. */
    readonly message: string;
    readonly seconds: number;
    /** False when the copy failed before it started (the mirrorer was closed while it was queued). */
    readonly started: boolean;
    readonly waited: boolean;
  };

/** Options of {@linkcode Mirrorer}. */
export interface MirrorerOptions extends SessionOptions {
  readonly maxConcurrentCopies?: number;
  readonly maxBytes?: number;
  readonly platforms?: readonly Platform[];
  readonly blobConcurrency?: number;
  readonly chunkBytes?: number;
  /** A source blob stream that sends nothing for this long is abandoned (and retried). */
  readonly idleTimeoutMs?: number;
  readonly onEvent?: (event: MirrorEvent) => void;
  /** Monotonic clock in ms, for durations. */
  readonly now?: () => number;
}

/** Per-call options of {@linkcode Mirrorer.mirror}. */
export interface MirrorCallOptions {
  /** Overrides the mirrorer's platforms for this copy. */
  readonly platforms?: readonly Platform[];
  /** Progress of this copy's blobs; only the caller that started a copy receives it. */
  readonly onProgress?: (progress: BlobProgress) => void;
}

/** Shortens a message to `max` characters for events. */
function boundReason(message: string, max = MAX_REASON_LENGTH): string {
  const flat = message.replace(/\s+/g, " ").trim();
  return flat.length <= max ? flat : `${flat.slice(0, max - 1)}\u2026`;
}

/**
 * Copies images on demand. Requests for a target reference already being copied join that copy's promise;
 * at most `maxConcurrentCopies` run at once, the others wait in order. `close` aborts running copies.
 */
export class Mirrorer {
  readonly #pool: SessionPool;
  readonly #options: MirrorerOptions;
  readonly #running = new Map<string, Promise<CopyResult>>();
  readonly #waiters: (() => void)[] = [];
  readonly #abort = new AbortController();
  readonly #now: () => number;
  #active = 0;

  constructor(options: MirrorerOptions = {}) {
    this.#options = options;
    this.#pool = new SessionPool(options);
    this.#now = options.now ?? (() => performance.now());
  }

  /** Copies being run or waiting for a slot. */
  get pending(): number {
    return this.#running.size;
  }

  /** Copies running now. */
  get active(): number {
    return this.#active;
  }

  /** True when a copy to `target` is queued or running. */
  isCopying(target: ImageReference): boolean {
    return this.#running.has(formatReference(target));
  }

  /**
   * Copies `source` to `target`, or joins the copy to `target` already under way. Rejects with a
   * {@linkcode MirrorError} (or the unexpected error) when the copy fails.
   */
  mirror(source: ImageReference, target: ImageReference, options: MirrorCallOptions = {}): Promise<CopyResult> {
    const key = formatReference(target);
    const existing = this.#running.get(key);
    if (existing !== undefined) return existing;
    const promise = this.#run(source, target, options).finally(() => this.#running.delete(key));
    this.#running.set(key, promise);
    return promise;
  }

  async #run(source: ImageReference, target: ImageReference, options: MirrorCallOptions): Promise<CopyResult> {
    const names = { source: formatReference(source), target: formatReference(target) };
    const limit = Math.max(1, this.#options.maxConcurrentCopies ?? DEFAULT_MAX_CONCURRENT_COPIES);
    const queuedAt = this.#now();
    let waited = false;
    let started = false;
    let startedAt: number | undefined;
    try {
      if (this.#abort.signal.aborted) throw new MirrorError("aborted", "the mirrorer was closed");
      if (this.#active >= limit) {
        waited = true;
        this.#emit({ type: "queued", ...names });
        await new Promise<void>((resolve) => this.#waiters.push(resolve));
        if (this.#abort.signal.aborted) throw new MirrorError("aborted", "the mirrorer was closed");
      }
      this.#active++;
      started = true;
      this.#emit({ type: "started", ...names, waited });
      startedAt = this.#now();
      const platforms = options.platforms ?? this.#options.platforms;
      const copyOptions: CopyOptions = {
        pool: this.#pool,
        signal: this.#abort.signal,
        ...(platforms === undefined ? {} : { platforms }),
        ...(this.#options.maxBytes === undefined ? {} : { maxBytes: this.#options.maxBytes }),
        ...(this.#options.blobConcurrency === undefined ? {} : { blobConcurrency: this.#options.blobConcurrency }),
        ...(this.#options.chunkBytes === undefined ? {} : { chunkBytes: this.#options.chunkBytes }),
        ...(this.#options.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: this.#options.idleTimeoutMs }),
        ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
      };
      const result = await copyImage(source, target, copyOptions);
      this.#emit({
        type: "finished",
        ...names,
        result,
        bytes: result.copiedBytes,
        seconds: (this.#now() - startedAt) / 1000,
      });
      return result;
    } catch (error) {
      const aborted = this.#abort.signal.aborted && !(error instanceof MirrorError && error.reason !== "aborted");
      const failure = aborted && !(error instanceof MirrorError)
        ? new MirrorError("aborted", "the mirrorer was closed", { cause: error })
        : error;
      this.#emit({
        type: "failed",
        ...names,
        reason: failure instanceof MirrorError ? failure.reason : "internal",
        message: boundReason(failure instanceof Error ? failure.message : String(failure)),
        seconds: (this.#now() - (startedAt ?? queuedAt)) / 1000,
        started,
        waited,
      });
      throw failure;
    } finally {
      if (started) {
        this.#active--;
        this.#waiters.shift()?.();
      }
    }
  }

  #emit(event: MirrorEvent): void {
    try {
      this.#options.onEvent?.(event);
    } catch {
      // A broken listener must not break a copy.
    }
  }

  /** Aborts running copies (they fail with `aborted`); their targets keep no manifest that was not complete. */
  close(): void {
    this.#abort.abort(new MirrorError("aborted", "the mirrorer was closed"));
    for (const wake of this.#waiters.splice(0)) wake();
  }
}
