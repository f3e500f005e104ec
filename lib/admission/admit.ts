// The pure heart of /mutate: an AdmissionRequest and a rule set in, an AdmissionReview response and an outcome out.

import {
  type ImageChange,
  type ImageProblem,
  type KeptImage,
  type MutateOptions,
  mutatePod,
  type PodLike,
  type SkipReason,
} from "../mutate/pod.ts";
import type { RuleSet } from "../rules/compile.ts";
import type { Labels } from "../rules/selector.ts";
import { setEntry } from "../util/json.ts";
import { TextMemo } from "../util/text_memo.ts";
import { truncate } from "../util/truncate.ts";
import { type AdmissionRequest, type AdmissionReviewAnswer, allowResponse } from "./review.ts";

/** Settings that shape every admission. */
export interface AdmitOptions {
  readonly ruleSet: RuleSet;
  readonly bypassPrefix?: string;
  readonly excludedNamespaces?: ReadonlySet<string>;
  /** Compute, warn and count, but never patch. */
  readonly dryRun?: boolean;
  readonly namespaceLabels?: Labels;
  readonly isOwnPod?: (pod: PodLike) => boolean;
  /** Registry answers for the outputs of rules with `verify` (see MutateOptions.verified). */
  readonly verified?: MutateOptions["verified"];
  /** Said first in the answer of a Pod whose images were looked at (e.g. namespace labels that could not be read). */
  readonly warnings?: readonly string[];
}

/** Why a request was answered without looking at images. */
export type AdmitSkip = SkipReason | "not-a-pod" | "subresource" | "operation";

/** What the handler logs and counts. */
export interface AdmitOutcome {
  readonly review: AdmissionReviewAnswer;
  /** rewritten: a patch was sent (or would have been, in dry-run mode); unchanged: nothing to do. */
  readonly result: "rewritten" | "unchanged" | "skipped";
  readonly skipped?: AdmitSkip;
  readonly changes: readonly ImageChange[];
  readonly problems: readonly ImageProblem[];
  readonly patched: boolean;
  /** Outputs of rules with `verify` (empty when no rule verifies). */
  readonly verifyTargets: readonly string[];
  /** Targets without an answer yet: ask the registries and admit again before this outcome is final. */
  readonly pendingTargets: readonly string[];
  /** Images kept because verification did not confirm their target. */
  readonly kept: readonly KeptImage[];
}

const POD_SUBRESOURCES = new Set([undefined, "ephemeralcontainers"]);

/** Decides one admission. Pure; exceptions are bugs, handled by the caller's onError policy. */
export function admit(request: AdmissionRequest, options: AdmitOptions): AdmitOutcome {
  const skip = (skipped: AdmitSkip): AdmitOutcome => ({
    review: allowResponse(request.uid),
    result: "skipped",
    skipped,
    changes: [],
    problems: [],
    patched: false,
    verifyTargets: [],
    pendingTargets: [],
    kept: [],
  });
  if (request.resource.resource !== "pods" || request.resource.group !== "" || request.kind.kind !== "Pod") {
    return skip("not-a-pod");
  }
  if (!POD_SUBRESOURCES.has(request.subResource)) return skip("subresource");
  if (request.operation !== "CREATE" && request.operation !== "UPDATE") return skip("operation");

  const mutateOptions: { -readonly [K in keyof MutateOptions]: MutateOptions[K] } = {
    ruleSet: options.ruleSet,
    dryRun: options.dryRun === true,
    operation: request.operation,
  };
  if (request.namespace !== undefined) mutateOptions.namespace = request.namespace;
  if (options.namespaceLabels !== undefined) mutateOptions.namespaceLabels = options.namespaceLabels;
  if (request.operation === "UPDATE" && request.oldObject !== undefined) mutateOptions.oldPod = request.oldObject;
  if (options.bypassPrefix !== undefined) mutateOptions.bypassPrefix = options.bypassPrefix;
  if (options.excludedNamespaces !== undefined) mutateOptions.excludedNamespaces = options.excludedNamespaces;
  if (options.isOwnPod !== undefined) mutateOptions.isOwnPod = options.isOwnPod;
  if (options.verified !== undefined) mutateOptions.verified = options.verified;
  const result = mutatePod(request.object, mutateOptions);
  if (result.skipped !== undefined) return skip(result.skipped);

  const dryRun = options.dryRun === true;
  const auditAnnotations: Record<string, string> = {};
  if (result.changes.length > 0) {
    auditEntry(
      auditAnnotations,
      dryRun ? "would-rewrite" : "rewritten-images",
      result.changes,
      (change) => change.slot.key,
      (change) => `${truncate(change.from)} -> ${truncate(change.to)}`,
    );
  }
  if (result.problems.length > 0) {
    auditEntry(
      auditAnnotations,
      "invalid-images",
      result.problems,
      (problem) => problem.slot.key,
      (problem) => truncate(problem.slot.image),
    );
  }
  const patched = !dryRun && result.patch.length > 0;
  return {
    review: allowResponse(request.uid, {
      ...(patched ? { patch: result.patch } : {}),
      warnings: options.warnings === undefined ? result.warnings : [...options.warnings, ...result.warnings],
      auditAnnotations,
    }),
    result: result.changes.length > 0 ? "rewritten" : "unchanged",
    changes: result.changes,
    problems: result.problems,
    patched,
    verifyTargets: result.verifyTargets,
    pendingTargets: result.pendingTargets,
    kept: result.kept,
  };
}

/**
 * Adds `<name>-<hash>` = `{slot: value}` as JSON. The API server keeps the first value of an audit annotation key and
 * refuses (and logs) a different one under the same key, which happens when a Pod is admitted again (reinvocation
 * after another webhook changed it): a key named by its content's hash never collides with an earlier answer.
 */
function auditEntry<T>(
  annotations: Record<string, string>,
  name: string,
  items: readonly T[],
  keyOf: (item: T) => string,
  textOf: (item: T) => string,
): void {
  const entries: Record<string, string> = {};
  for (const item of items) setEntry(entries, truncate(keyOf(item)), textOf(item));
  const value = JSON.stringify(entries);
  annotations[`${name}-${hashes.get(value)}`] = value;
}

/** The hashes of the audit values of the Pods admitted lately (one template's Pods share them). */
const hashes = new TextMemo(fnv1a, { maxEntries: 256, maxChars: 256 * 1024 });

/** FNV-1a, 32 bits, as 8 hex digits: short, stable across replicas and versions. */
function fnv1a(text: string): string {
  // In int32 throughout (the same bits as unsigned arithmetic), unsigned once at the end.
  let hash = 0x811c9dc5 | 0;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  return (hash >>> 0).toString(16).padStart(8, "0");
}
