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
 * change with time. At most `maxEntries` outcomes and `maxChars` characters, counting each key and its outcome's
 * patch, warnings and image names (a rule's `replace` can make an image longer than the one in the key); when either
 * is full, everything is forgotten at once.
 *
 * What is remembered hangs off the rule set it was decided under, in a WeakMap, so the memo never keeps a replaced
 * rule set alive: once the server lets go of it, it and its outcomes can be collected, before any other admission.
 */
export class AdmitMemo {
  readonly #maxEntries: number;
  readonly #maxChars: number;
  /** The outcomes remembered, under the rule set they were decided by; at most one entry (the last rule set's). */
  readonly #states = new WeakMap<AdmitOptions["ruleSet"], Remembered>();
  /** The rule set of the entry in `#states`, held weakly. */
  #ruleSet: WeakRef<AdmitOptions["ruleSet"]> | undefined;

  constructor({ maxEntries = 128, maxChars = 512 * 1024 }: { maxEntries?: number; maxChars?: number } = {}) {
    this.#maxEntries = maxEntries;
    this.#maxChars = maxChars;
  }

  /** Outcomes remembered now. */
  get size(): number {
    const ruleSet = this.#ruleSet?.deref();
    return ruleSet === undefined ? 0 : this.#states.get(ruleSet)?.outcomes.size ?? 0;
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
    const state = this.#state(options);
    const known = state?.outcomes.get(key);
    if (known === undefined) return undefined;
    return { ...known, review: answerWithUid(known.review, uid) };
  }

  /** Remembers `outcome` for `key`, when no registry answer went into it. */
  set(key: string, options: AdmitOptions, outcome: AdmitOutcome): void {
    if (outcome.verifyTargets.length > 0 || outcome.pendingTargets.length > 0 || outcome.kept.length > 0) return;
    let state = this.#state(options);
    if (state === undefined) {
      state = {
        bypassPrefix: options.bypassPrefix,
        excludedNamespaces: options.excludedNamespaces,
        dryRun: options.dryRun,
        isOwnPod: options.isOwnPod,
        outcomes: new Map(),
        chars: 0,
      };
      this.#states.set(options.ruleSet, state);
      this.#ruleSet = new WeakRef(options.ruleSet);
    }
    if (state.outcomes.has(key)) return;
    const chars = key.length + outcomeChars(outcome);
    if (chars > this.#maxChars / 8) return;
    if (state.outcomes.size >= this.#maxEntries || state.chars + chars > this.#maxChars) {
      state.outcomes.clear();
      state.chars = 0;
    }
    state.outcomes.set(key, outcome);
    state.chars += chars;
  }

  /**
   * What is remembered under `options`; undefined when nothing is. Settings other than the rule set's that differ,
   * or a rule set other than the last one's, forget everything.
   */
  #state(options: AdmitOptions): Remembered | undefined {
    const ruleSet = this.#ruleSet?.deref();
    if (ruleSet === undefined) return undefined;
    const state = this.#states.get(ruleSet);
    if (
      ruleSet === options.ruleSet && state !== undefined && state.bypassPrefix === options.bypassPrefix &&
      state.excludedNamespaces === options.excludedNamespaces && state.dryRun === options.dryRun &&
      state.isOwnPod === options.isOwnPod
    ) {
      return state;
    }
    this.#states.delete(ruleSet);
    this.#ruleSet = undefined;
    return undefined;
  }
}

/** Outcomes remembered under one rule set, with the other settings they were decided by. */
type Remembered = Omit<Fixed, "ruleSet"> & { readonly outcomes: Map<string, AdmitOutcome>; chars: number };

/** Characters an outcome holds beyond its key's: its patch, warnings and image names. */
function outcomeChars(outcome: AdmitOutcome): number {
  const response = outcome.review.response;
  let chars = response.patch?.length ?? 0;
  for (const warning of response.warnings ?? []) chars += warning.length;
  for (const change of outcome.changes) chars += change.from.length + change.to.length;
  return chars;
}
