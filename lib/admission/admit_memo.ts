// A bounded memo of admissions: the Pods of one Deployment or Job arrive with the same containers, labels and
// annotations, and get the same answer but for its uid.

import { readPod } from "../mutate/pod.ts";
import { isRecord } from "../util/json.ts";
import type { AdmitOptions, AdmitOutcome } from "./admit.ts";
import { type AdmissionRequest, answerWithUid } from "./review.ts";

/** Settings that must stay the same object for a remembered outcome to be used (a new rule set forgets all). */
type Fixed = {
  readonly [K in "ruleSet" | "bypassPrefix" | "excludedNamespaces" | "dryRun" | "isOwnPod"]: AdmitOptions[K];
};

/**
 * Remembers {@linkcode admit}'s outcomes by everything they depend on but the request's uid: the request's operation,
 * subresource and namespace, the namespace's labels, and the parts of the Pod (and of the old Pod on UPDATE) that
 * `mutatePod` reads: its namespace, name, generateName, labels, annotations, image slots, `spec.imagePullSecrets`,
 * and which of metadata, labels and annotations it has. Everything else `admit` depends on (`Fixed`) is compared by
 * identity: a new rule set, or other settings, forget what was remembered. `isOwnPod` must be a function of the Pod's
 * parts above (the server's is: namespace and one label).
 *
 * Only outcomes that asked no registry (no rule with `verify` decided an image) are remembered: registry answers
 * change with time. At most `maxEntries` keys and `maxChars` characters of keys; when either is full, everything is
 * forgotten at once.
 */
export class AdmitMemo {
  readonly #maxEntries: number;
  readonly #maxChars: number;
  readonly #outcomes = new Map<string, AdmitOutcome>();
  #chars = 0;
  #fixed: Fixed | undefined;

  constructor({ maxEntries = 128, maxChars = 512 * 1024 }: { maxEntries?: number; maxChars?: number } = {}) {
    this.#maxEntries = maxEntries;
    this.#maxChars = maxChars;
  }

  /** Outcomes remembered now. */
  get size(): number {
    return this.#outcomes.size;
  }

  /**
   * The key of `request` under `options`, or undefined when it is not one to remember (not a Pod CREATE or UPDATE,
   * or too large a Pod).
   */
  key(request: AdmissionRequest, options: AdmitOptions): string | undefined {
    if (request.resource.resource !== "pods" || request.resource.group !== "" || request.kind.kind !== "Pod") {
      return undefined;
    }
    if (request.operation !== "CREATE" && request.operation !== "UPDATE") return undefined;
    const object = request.object;
    const pod = readPod(object);
    if (pod === undefined || !isRecord(object)) return undefined;
    const spec = object["spec"];
    const old = request.operation === "UPDATE" && request.oldObject !== undefined
      ? readPod(request.oldObject)?.slots ?? false
      : null;
    let key: string;
    try {
      // Absent values become null, which no present value is (strings, records, booleans).
      key = JSON.stringify([
        request.operation,
        request.subResource,
        request.namespace,
        options.namespaceLabels,
        pod.namespace,
        pod.name,
        pod.generateName,
        pod.hasMetadata,
        pod.hasLabels,
        pod.hasAnnotations,
        pod.labels,
        pod.annotations,
        pod.slots,
        isRecord(spec),
        isRecord(spec) ? spec["imagePullSecrets"] : null,
        old,
      ]);
    } catch {
      return undefined;
    }
    return key.length > this.#maxChars / 16 ? undefined : key;
  }

  /** The outcome remembered for `key` under `options`, answering `uid`; undefined when there is none. */
  get(key: string, options: AdmitOptions, uid: string): AdmitOutcome | undefined {
    if (!this.#sameFixed(options)) return undefined;
    const known = this.#outcomes.get(key);
    if (known === undefined) return undefined;
    return { ...known, review: answerWithUid(known.review, uid) };
  }

  /** Remembers `outcome` for `key`, when no registry answer went into it. */
  set(key: string, options: AdmitOptions, outcome: AdmitOutcome): void {
    if (outcome.verifyTargets.length > 0 || outcome.pendingTargets.length > 0 || outcome.kept.length > 0) return;
    if (!this.#sameFixed(options)) {
      this.#clear();
      this.#fixed = {
        ruleSet: options.ruleSet,
        bypassPrefix: options.bypassPrefix,
        excludedNamespaces: options.excludedNamespaces,
        dryRun: options.dryRun,
        isOwnPod: options.isOwnPod,
      };
    }
    if (this.#outcomes.size >= this.#maxEntries || this.#chars + key.length > this.#maxChars) this.#clear();
    if (this.#outcomes.has(key)) return;
    this.#outcomes.set(key, outcome);
    this.#chars += key.length;
  }

  #sameFixed(options: AdmitOptions): boolean {
    const fixed = this.#fixed;
    return fixed !== undefined && fixed.ruleSet === options.ruleSet && fixed.bypassPrefix === options.bypassPrefix &&
      fixed.excludedNamespaces === options.excludedNamespaces && fixed.dryRun === options.dryRun &&
      fixed.isOwnPod === options.isOwnPod;
  }

  #clear(): void {
    this.#outcomes.clear();
    this.#chars = 0;
  }
}
