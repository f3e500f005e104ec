// Finds every image in a Pod, decides each under the rules, and builds the RFC 6902 patch and warnings.

import type { ImageContext, RuleSet } from "../rules/compile.ts";
import {
  type Decision,
  decisionCache,
  decisionTargets,
  DEFAULT_BYPASS_PREFIX,
  describeRule,
  RuleScope,
} from "../rules/engine.ts";
import { chooseTarget } from "./targets.ts";
import { withPlatforms } from "../rules/platforms.ts";
import { pullSecretsPatch } from "./pull_secrets.ts";
import type { Labels } from "../rules/selector.ts";
import { truncate } from "../util/truncate.ts";
import { isRecord, setEntry } from "../util/json.ts";

/** Annotation holding `{ "<container>": "<original reference>" }` as JSON. */
export const ORIGINAL_IMAGES_ANNOTATION = "mirrorhook.dev/original-images";
/** Label set to "true" on every Pod mirrorhook changed. */
export const REWRITTEN_LABEL = "mirrorhook.dev/rewritten";
/** Label (on a Pod or Namespace) that opts out when set to "disabled". */
export const OPT_OUT_LABEL = "mirrorhook.dev/rewrite";
/** Annotation the kubelet puts on mirror (static) Pods. */
export const MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror";
/** Namespaces left alone unless configured otherwise. */
export const DEFAULT_EXCLUDED_NAMESPACES: readonly string[] = ["kube-system"];

/** One RFC 6902 operation as mirrorhook emits them. */
export interface PatchOperation {
  readonly op: "add" | "replace";
  readonly path: string;
  readonly value: unknown;
}

/** Why a whole Pod was left alone. */
export type SkipReason = "not-a-pod" | "opted-out" | "excluded-namespace" | "mirror-pod" | "own-pod";

/** Where an image lives in the Pod. */
export interface ImageSlot {
  /** Key in the original-images annotation: the container name, or `volume:<name>` for image volumes. */
  readonly key: string;
  /** JSON Pointer of the image field. */
  readonly pointer: string;
  readonly image: string;
  readonly field: "containers" | "initContainers" | "ephemeralContainers" | "volumes";
}

/** One image that changed. */
export interface ImageChange {
  readonly slot: ImageSlot;
  readonly from: string;
  readonly to: string;
  readonly decision: Decision & { action: "rewrite" | "bypass" };
  /** For rules with `verify`, what the registry said about `to` (absent when verification is off). */
  readonly verified?: TargetStatus;
  /** For rules with `verify`, which of the rule's targets `to` is (0: `replace` or the first of its `to` list). */
  readonly position?: number;
  /** Why the targets before it were skipped (rules with `to`). */
  readonly skipped?: readonly string[];
}

/** What the target registry said about a rewrite's output (see lib/verify). */
export type TargetStatus = "present" | "missing" | "error" | "timeout";

/** One registry answer. */
export interface VerifyAnswer {
  readonly status: TargetStatus;
  readonly detail?: string;
}

/** An image left as written because its verified rule's target was not confirmed (`onMissing: keep`). */
export interface KeptImage {
  readonly slot: ImageSlot;
  readonly decision: Decision & { action: "rewrite" };
  readonly status: Exclude<TargetStatus, "present">;
}

/** A problem with one image that left it unchanged. */
export interface ImageProblem {
  readonly slot: ImageSlot;
  readonly decision: Decision & { action: "invalid-input" | "invalid-output" };
}

/** Options beyond the Pod itself. */
export interface MutateOptions {
  readonly ruleSet: RuleSet;
  /** The request's namespace; falls back to the Pod's metadata.namespace. */
  readonly namespace?: string;
  readonly namespaceLabels?: Labels;
  /** On UPDATE: the Pod before the change; images equal to it are not candidates. */
  readonly oldPod?: unknown;
  readonly bypassPrefix?: string;
  readonly excludedNamespaces?: ReadonlySet<string>;
  /** True for the webhook's own Pods, which are never changed. */
  readonly isOwnPod?: (pod: PodLike) => boolean;
  /**
   * Registry answers for the outputs of rules with `verify`, by output reference. Absent: verification is off and
   * such rules rewrite like any other. Given: an output it has no answer for is listed in `pendingTargets` and
   * counts as `error` (so `onMissing` decides) in this result. `scope` says who wrote the rule: `namespaced` for a
   * namespaced ImageRewrite (a tenant's), `cluster` for cluster-wide objects, which may verify against more
   * registries (lib/verify/policy.ts).
   */
  readonly verified?: (target: string, scope: "namespaced" | "cluster") => VerifyAnswer | undefined;
  /** `--dry-run`: nothing is patched, so the warnings say what would have been rewritten. */
  readonly dryRun?: boolean;
  /** The admission's operation; rules' `imagePullSecrets` are added only on CREATE (immutable afterwards). */
  readonly operation?: "CREATE" | "UPDATE";
}

/** The result: the patch to send, what changed, warnings for kubectl, and per-image decisions. */
export interface MutateResult {
  readonly patch: readonly PatchOperation[];
  readonly changes: readonly ImageChange[];
  readonly problems: readonly ImageProblem[];
  readonly warnings: readonly string[];
  readonly skipped?: SkipReason;
  /** Every image looked at, with its decision (unchanged ones too). */
  readonly decisions: readonly { slot: ImageSlot; decision: Decision }[];
  /** Outputs of rules with `verify`. */
  readonly verifyTargets: readonly string[];
  /** Those `verified` had no answer for: ask the registries and decide again before this result is final. */
  readonly pendingTargets: readonly string[];
  /** Images kept as written because their target was not confirmed. */
  readonly kept: readonly KeptImage[];
}

/** The parts of a Pod mirrorhook reads, narrowed from unknown. */
export interface PodLike {
  readonly namespace?: string;
  readonly name?: string;
  readonly generateName?: string;
  readonly labels: Labels;
  readonly annotations: Readonly<Record<string, string>>;
  readonly hasMetadata: boolean;
  readonly hasLabels: boolean;
  readonly hasAnnotations: boolean;
  readonly slots: readonly ImageSlot[];
}

const DEFAULT_EXCLUDED: ReadonlySet<string> = new Set(DEFAULT_EXCLUDED_NAMESPACES);

/** Null-prototype, so keys such as `constructor` or `__proto__` (container names, label keys) are plain data. */
function stringMap(value: unknown): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  if (!isRecord(value)) return out;
  for (const key in value) {
    const item = value[key];
    if (typeof item === "string") out[key] = item;
  }
  return out;
}

/** RFC 6901: `~` -> `~0`, `/` -> `~1`. */
function escapePointer(segment: string): string {
  return segment.replaceAll("~", "~0").replaceAll("/", "~1");
}

const CONTAINER_FIELDS = ["containers", "initContainers", "ephemeralContainers"] as const;

/** JSON Pointers of the annotation and the label every patch sets, escaped once. */
const ORIGINALS_POINTER = `/metadata/annotations/${escapePointer(ORIGINAL_IMAGES_ANNOTATION)}`;
const REWRITTEN_POINTER = `/metadata/labels/${escapePointer(REWRITTEN_LABEL)}`;

/** Reads the parts of a Pod mirrorhook needs; undefined when `value` is not a Pod-shaped object. */
export function readPod(value: unknown): PodLike | undefined {
  if (!isRecord(value)) return undefined;
  if (value["kind"] !== undefined && value["kind"] !== "Pod") return undefined;
  const metadata = isRecord(value["metadata"]) ? value["metadata"] : undefined;
  const spec = isRecord(value["spec"]) ? value["spec"] : {};
  const slots: ImageSlot[] = [];
  for (const field of CONTAINER_FIELDS) {
    const list = spec[field];
    if (!Array.isArray(list)) continue;
    for (let index = 0; index < list.length; index++) {
      const container: unknown = list[index];
      if (!isRecord(container)) continue;
      const image = container["image"];
      if (typeof image !== "string") continue;
      const name = typeof container["name"] === "string" ? container["name"] : `${field}[${index}]`;
      slots.push({ key: name, pointer: `/spec/${field}/${index}/image`, image, field });
    }
  }
  const volumes = spec["volumes"];
  if (Array.isArray(volumes)) {
    for (let index = 0; index < volumes.length; index++) {
      const volume: unknown = volumes[index];
      if (!isRecord(volume) || !isRecord(volume["image"])) continue;
      const reference = volume["image"]["reference"];
      if (typeof reference !== "string") continue;
      const name = typeof volume["name"] === "string" ? volume["name"] : String(index);
      slots.push({
        key: `volume:${name}`,
        pointer: `/spec/volumes/${index}/image/reference`,
        image: reference,
        field: "volumes",
      });
    }
  }
  const str = (
    key: string,
  ) => (metadata !== undefined && typeof metadata[key] === "string" ? metadata[key] : undefined);
  const namespace = str("namespace");
  const name = str("name");
  const generateName = str("generateName");
  return {
    ...(namespace === undefined ? {} : { namespace }),
    ...(name === undefined ? {} : { name }),
    ...(generateName === undefined ? {} : { generateName }),
    labels: stringMap(metadata?.["labels"]),
    annotations: stringMap(metadata?.["annotations"]),
    hasMetadata: metadata !== undefined,
    hasLabels: isRecord(metadata?.["labels"]),
    hasAnnotations: isRecord(metadata?.["annotations"]),
    slots,
  };
}

/** Parses the original-images annotation; anything unreadable counts as empty. */
function readOriginals(annotations: Readonly<Record<string, string>>): Record<string, string> {
  const text = annotations[ORIGINAL_IMAGES_ANNOTATION];
  if (text === undefined) return stringMap(undefined);
  try {
    return stringMap(JSON.parse(text));
  } catch {
    return stringMap(undefined);
  }
}

/**
 * Computes the patch for one Pod. Pure and total: any input gives a result, never an exception.
 * Idempotent: admitting the patched Pod again yields no patch.
 */
export function mutatePod(pod: unknown, options: MutateOptions): MutateResult {
  const empty = {
    patch: [],
    changes: [],
    problems: [],
    warnings: [],
    decisions: [],
    verifyTargets: [],
    pendingTargets: [],
    kept: [],
  };
  const read = readPod(pod);
  if (read === undefined) return { ...empty, skipped: "not-a-pod" };
  // An empty request namespace means "not given", as in AdmissionRequest.
  const namespace = options.namespace || read.namespace;
  if (read.labels[OPT_OUT_LABEL] === "disabled") return { ...empty, skipped: "opted-out" };
  for (const optOut of options.ruleSet.optOuts ?? []) {
    const values = optOut.kind === "label" ? read.labels : read.annotations;
    if (Object.hasOwn(values, optOut.key) && values[optOut.key] === optOut.value) {
      return { ...empty, skipped: "opted-out" };
    }
  }
  if (read.annotations[MIRROR_POD_ANNOTATION] !== undefined) return { ...empty, skipped: "mirror-pod" };
  const excluded = options.excludedNamespaces ?? DEFAULT_EXCLUDED;
  if (namespace !== undefined && excluded.has(namespace)) return { ...empty, skipped: "excluded-namespace" };
  if (options.namespaceLabels?.[OPT_OUT_LABEL] === "disabled") return { ...empty, skipped: "opted-out" };
  // The namespace the Pod is admitted in: the request's, as for every check above (a Pod may name none itself).
  const own = namespace === read.namespace || namespace === undefined ? read : { ...read, namespace };
  if (options.isOwnPod?.(own) === true) return { ...empty, skipped: "own-pod" };

  const oldImages = new Map<string, string>();
  if (options.oldPod !== undefined) {
    for (const slot of readPod(options.oldPod)?.slots ?? []) {
      oldImages.set(`${slot.field}\u0000${slot.key}`, slot.image);
    }
  }
  const context: ImageContext = {
    ...(namespace === undefined ? {} : { namespace }),
    podLabels: read.labels,
    ...(options.namespaceLabels === undefined ? {} : { namespaceLabels: options.namespaceLabels }),
  };
  const originals = readOriginals(read.annotations);
  const recorded = new Map<string, string>(Object.entries(originals));
  const changes: ImageChange[] = [];
  const problems: ImageProblem[] = [];
  const decisions: { slot: ImageSlot; decision: Decision }[] = [];
  const warnings: string[] = [];
  const verifyTargets = new Set<string>();
  const pendingTargets = new Set<string>();
  const kept: KeptImage[] = [];
  // The verb of every rewrite warning: in dry-run mode nothing is patched, and the warning says so.
  const rewrote = options.dryRun === true ? "dry-run, would rewrite" : "rewrote";
  // Decisions come from the rule set's cache (each image parsed and matched once while the rules stand); the
  // rules' scope is checked for this Pod only.
  const cache = decisionCache(options.ruleSet, options.bypassPrefix ?? DEFAULT_BYPASS_PREFIX);
  const scope = new RuleScope(context);

  for (const slot of read.slots) {
    // On UPDATE, an image that did not change is never a candidate: a rules change must not restart containers.
    if (oldImages.size > 0 && oldImages.get(`${slot.field}\u0000${slot.key}`) === slot.image) continue;
    const original = originals[slot.key];
    if (original !== undefined && original !== slot.image) {
      const earlier = cache.decide(original, scope);
      const targets = decisionTargets(earlier);
      if (targets.length > 0) {
        // Targets are normalized: the image is normalized once (from the cache) to compare.
        const image = cache.normalized(slot.image) ?? slot.image;
        if (targets.some((target) => target === slot.image || target === image)) continue;
      }
    }
    const decision = cache.decide(slot.image, scope);
    decisions.push({ slot, decision });
    switch (decision.action) {
      case "rewrite":
      case "bypass": {
        // An image already on any target of its rule is left alone (idempotent whichever target was chosen).
        const targets = decisionTargets(decision);
        // Targets are normalized, and so is the engine's copy of the input: no parse of the image again.
        if (decision.action === "rewrite" && targets.includes(decision.normalizedInput)) break;
        if (decision.action === "rewrite" && decision.rule.verify) {
          if (options.verified !== undefined) {
            const choice = chooseTarget(targets, decision.rule, options.verified);
            choice.keys.forEach((key) => verifyTargets.add(key));
            choice.pending.forEach((key) => pendingTargets.add(key));
            const rule = describeRule(decision.rule);
            const skipped = choice.skipped.length === 0 ? "" : `; skipped ${choice.skipped.join("; ")}`;
            if (choice.chosen !== undefined) {
              const to = choice.chosen;
              changes.push({
                slot,
                from: slot.image,
                to,
                decision,
                verified: "present",
                position: choice.position,
                ...(choice.skipped.length === 0 ? {} : { skipped: choice.skipped }),
              });
              recorded.set(slot.key, slot.image);
              warnings.push(
                `mirrorhook: ${rewrote} ${slot.image} to ${to} (${rule}; verified in the registry${skipped})`,
              );
              break;
            }
            const status = choice.status;
            const why = choice.skipped.length === 1
              ? choice.skipped[0]
              : `no target has it: ${choice.skipped.join("; ")}`;
            if (decision.rule.onMissing === "keep") {
              kept.push({ slot, decision, status });
              warnings.push(`mirrorhook: kept ${slot.image}: ${why} (${rule})`);
              break;
            }
            changes.push({
              slot,
              from: slot.image,
              to: decision.output,
              decision,
              verified: status,
              position: 0,
              skipped: choice.skipped,
            });
            recorded.set(slot.key, slot.image);
            warnings.push(
              `mirrorhook: ${rewrote} ${slot.image} to ${decision.output} although ${why} (${rule}, onMissing: rewrite)`,
            );
            break;
          }
          // Registries are not asked here (verification off): only the first target counts, as for any rule.
          verifyTargets.add(withPlatforms(decision.output, decision.rule.platforms));
        }
        changes.push({ slot, from: slot.image, to: decision.output, decision });
        recorded.set(slot.key, slot.image);
        warnings.push(
          decision.action === "rewrite"
            ? `mirrorhook: ${rewrote} ${slot.image} to ${decision.output} (${describeRule(decision.rule)})`
            : `mirrorhook: ${rewrote} ${slot.image} to ${decision.output} (bypass prefix, no rule applied)`,
        );
        break;
      }
      case "invalid-input":
        problems.push({ slot, decision });
        warnings.push(
          `mirrorhook: left image ${JSON.stringify(truncate(slot.image))} of ${
            truncate(slot.key)
          } unchanged: ${decision.error.message}`,
        );
        break;
      case "invalid-output":
        problems.push({ slot, decision });
        warnings.push(
          `mirrorhook: left image ${JSON.stringify(truncate(slot.image))} of ${truncate(slot.key)} unchanged: ${
            decision.rule === undefined ? "the bypass prefix" : describeRule(decision.rule)
          } would produce an invalid reference: ${decision.error.message}`,
        );
        break;
      default:
        break;
    }
  }
  const verification = { verifyTargets: [...verifyTargets], pendingTargets: [...pendingTargets], kept };
  if (changes.length === 0) return { ...empty, problems, warnings, decisions, ...verification };

  const patch: PatchOperation[] = changes.map((change) => ({
    op: "replace",
    path: change.slot.pointer,
    value: change.to,
  }));
  // spec.imagePullSecrets is immutable once the Pod exists: only a CREATE gets the Secrets its targets need; an
  // UPDATE (an image changed, an ephemeral container added) that needs Secrets the Pod lacks says so.
  const secrets = changes.flatMap((change) =>
    change.decision.action === "rewrite" ? change.decision.rule.imagePullSecrets : []
  );
  if (options.operation === "UPDATE" || options.oldPod !== undefined) {
    const { added: missing } = pullSecretsPatch(pod, secrets);
    if (missing.length > 0) {
      const names = missing.map((name) => truncate(name)).join(", ");
      warnings.push(
        options.dryRun === true
          ? `mirrorhook: dry-run, would rewrite images whose rules name imagePullSecrets ${names}, which the Pod lacks and spec.imagePullSecrets cannot change after creation: the new images may fail to pull`
          : `mirrorhook: the Pod lacks imagePullSecrets ${names} that the rewritten images' rules name, and spec.imagePullSecrets cannot change after creation: the new images may fail to pull`,
      );
    }
  } else {
    const { patch: added, added: names } = pullSecretsPatch(pod, secrets);
    if (added.length > 0) {
      patch.push(...added);
      warnings.push(
        `mirrorhook: ${options.dryRun === true ? "dry-run, would add" : "added"} imagePullSecrets ${
          names.join(", ")
        } for the rewritten images`,
      );
    }
  }
  const sorted: Record<string, string> = {};
  for (const key of [...recorded.keys()].sort()) setEntry(sorted, key, recorded.get(key) as string);
  const sortedOriginals = JSON.stringify(sorted);
  if (!read.hasMetadata) {
    patch.push({
      op: "add",
      path: "/metadata",
      value: { annotations: { [ORIGINAL_IMAGES_ANNOTATION]: sortedOriginals }, labels: { [REWRITTEN_LABEL]: "true" } },
    });
  } else {
    patch.push(
      read.hasAnnotations
        ? {
          op: read.annotations[ORIGINAL_IMAGES_ANNOTATION] === undefined ? "add" : "replace",
          path: ORIGINALS_POINTER,
          value: sortedOriginals,
        }
        : { op: "add", path: "/metadata/annotations", value: { [ORIGINAL_IMAGES_ANNOTATION]: sortedOriginals } },
    );
    if (read.labels[REWRITTEN_LABEL] !== "true") {
      patch.push(
        read.hasLabels
          ? { op: "add", path: REWRITTEN_POINTER, value: "true" }
          : { op: "add", path: "/metadata/labels", value: { [REWRITTEN_LABEL]: "true" } },
      );
    }
  }
  return { patch, changes, problems, warnings, decisions, ...verification };
}
