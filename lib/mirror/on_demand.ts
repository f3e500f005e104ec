// Starts background copies for admission: never waits, never throws, skips dry runs, reports when a copy lands.

import { formatReference, type ImageReference, parseReference } from "../image/reference.ts";
import type { CopyResult } from "./copy.ts";
import type { Platform } from "./manifest.ts";
import type { Mirrorer } from "./mirrorer.ts";

/** What {@linkcode OnDemandMirror.request} did. */
export type MirrorRequestOutcome =
  /** A new copy began (or waits for a slot). */
  | "started"
  /** A copy to the same target was already under way; this request shares it. */
  | "joined"
  /** `dryRun` requests never have side effects (the webhook declares `sideEffects: NoneOnDryRun`). */
  | "skipped-dry-run"
  /** A reference that cannot be parsed; nothing started. */
  | "invalid";

/** Options of {@linkcode OnDemandMirror}. */
export interface OnDemandOptions {
  /** Called once a copy has completed: refresh the verification cache for `target` here. */
  readonly onCopied?: (target: string, result: CopyResult) => void;
}

/**
 * The admission side of on-demand mirroring: `request` returns at once (the admission applies `onMissing` this
 * time); the copy runs in the background on the {@linkcode Mirrorer}, whose events carry metrics and logs.
 */
export class OnDemandMirror {
  readonly #mirrorer: Mirrorer;
  readonly #onCopied: OnDemandOptions["onCopied"];
  readonly #pending = new Set<Promise<void>>();

  constructor(mirrorer: Mirrorer, options: OnDemandOptions = {}) {
    this.#mirrorer = mirrorer;
    this.#onCopied = options.onCopied;
  }

  /** Starts (or joins) copying `source` to `target` unless `dryRun`; never throws and never waits. */
  request(
    source: string,
    target: string,
    options: { readonly dryRun: boolean; readonly platforms?: readonly Platform[] },
  ): MirrorRequestOutcome {
    if (options.dryRun) return "skipped-dry-run";
    const from = parseReference(source);
    const to = parseReference(target);
    if (!from.ok || !to.ok) return "invalid";
    if (this.#mirrorer.isCopying(to.reference)) {
      void this.#mirrorer.mirror(from.reference, to.reference).catch(() => {});
      return "joined";
    }
    this.#track(from.reference, to.reference, options.platforms);
    return "started";
  }

  #track(source: ImageReference, target: ImageReference, platforms: readonly Platform[] | undefined): void {
    const done = this.#mirrorer.mirror(source, target, platforms === undefined ? {} : { platforms }).then(
      (result) => {
        try {
          this.#onCopied?.(formatReference(target), result);
        } catch {
          // A failing listener must not turn a finished copy into an unhandled rejection.
        }
      },
      // Failures are reported by the Mirrorer's events (log line and metric); the next admission may try again.
      () => {},
    ).finally(() => this.#pending.delete(done));
    this.#pending.add(done);
  }

  /** Resolves once every copy started here has finished or failed (tests, graceful shutdown). */
  async idle(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all([...this.#pending]);
  }
}
