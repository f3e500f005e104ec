// The admission decision of /mutate: the rules in force and the options in, an outcome out, with the registry two-pass.

import { admit, type AdmitOptions, type AdmitOutcome } from "../admission/admit.ts";
import { AdmitMemo } from "../admission/admit_memo.ts";
import { type AdmissionRequest, type AdmissionReviewAnswer, allowResponse, denyResponse } from "../admission/review.ts";
import type { PodLike, VerifyAnswer } from "../mutate/pod.ts";
import type { RuleSet } from "../rules/compile.ts";
import type { Labels } from "../rules/selector.ts";
import { isEmptySelector } from "../rules/selector.ts";
import type { NamespaceLookup } from "../sources/kube/source.ts";
import { truncate } from "../util/truncate.ts";

/** Registry answers for the outputs of rules with `verify` (lib/verify's Verifier). */
export interface DecisionVerifier {
  /** From its cache, synchronously. */
  peek(target: string): VerifyAnswer | undefined;
  /**
   * The answer when a rule of `scope` may not verify against the target's registry (lib/verify/policy.ts: a
   * tenant's rule and an unlisted registry), so the registry is never asked; undefined when it may.
   */
  refusal(target: string, scope: "namespaced" | "cluster"): VerifyAnswer | undefined;
  /** From the registries, resolving by the deadline. */
  checkAll(targets: readonly string[], deadlineMs: number): Promise<ReadonlyMap<string, VerifyAnswer>>;
}

/** What a decision needs besides the request. */
export interface DecisionDeps {
  readonly rules: () => RuleSet;
  /** `--dry-run`: compute, warn and count, never patch. */
  readonly dryRun?: boolean;
  readonly bypassPrefix?: string;
  readonly excludedNamespaces?: ReadonlySet<string>;
  readonly isOwnPod?: (pod: PodLike) => boolean;
  /** Labels of a namespace when known (from the API), for namespaceSelector and namespace opt-out. */
  readonly namespaceLabels?: (namespace: string) => Labels | undefined;
  /**
   * Reads a namespace `namespaceLabels` does not know (new: its watch event not in yet), within a short deadline.
   * Asked only when a rule in force has a non-empty namespaceSelector; absent: unknown labels stay unknown.
   */
  readonly lookupNamespace?: (namespace: string) => Promise<NamespaceLookup>;
  /** Absent: rules with `verify` rewrite like any other. */
  readonly verifier?: DecisionVerifier;
  /** Deadline for all registry checks of one admission (default 2 s, well inside the webhook's timeout). */
  readonly verifyDeadlineMs?: number;
  /**
   * On-demand mirroring (lib/mirror/on_demand.ts): for rules with `mirror: true`, a target the registry says lacks
   * the image gets it copied from the source in the background. Never waited for; never for dryRun requests.
   */
  readonly mirror?: {
    request(source: string, target: string, options: { readonly dryRun: boolean }): unknown;
  };
}

/**
 * Decides one Pod admission: at once when no registry must be asked, else a promise. A throw or a rejection is a bug
 * in rule evaluation, for {@linkcode failureAnswer}.
 */
export type Decide = (review: AdmissionRequest) => AdmitOutcome | Promise<AdmitOutcome>;

/**
 * Creates the production decision: `admit` under the rules in force, asking the registries at most once. The Pods of
 * one template are decided once while the rules stand (lib/admission/admit_memo.ts), unless a registry was asked.
 */
export function createDecider(deps: DecisionDeps): Decide {
  const memo = new AdmitMemo();
  const decideWith = (review: AdmissionRequest, namespaceLabels: Labels | undefined, warning?: string) => {
    const options: { -readonly [K in keyof AdmitOptions]: AdmitOptions[K] } = {
      ruleSet: deps.rules(),
      dryRun: deps.dryRun === true,
    };
    if (namespaceLabels !== undefined) options.namespaceLabels = namespaceLabels;
    if (deps.bypassPrefix !== undefined) options.bypassPrefix = deps.bypassPrefix;
    if (deps.excludedNamespaces !== undefined) options.excludedNamespaces = deps.excludedNamespaces;
    if (deps.isOwnPod !== undefined) options.isOwnPod = deps.isOwnPod;
    if (warning !== undefined) options.warnings = [warning];
    // An answer with a lookup's warning is not one to remember: the next Pod's lookup may succeed.
    const key = warning === undefined ? memo.key(review, options) : undefined;
    if (key !== undefined) {
      const known = memo.get(key, options, review.uid);
      if (known !== undefined) return known;
    }
    const verifier = deps.verifier;
    if (verifier === undefined) {
      const outcome = admit(review, options);
      if (key !== undefined) memo.set(key, options, outcome);
      return outcome;
    }
    // A warm cache decides in this one pass. Otherwise admission stays pure with a second pass: ask the
    // registries for what the cache lacked, all at once and within the deadline, then decide again.
    // Made on the first rule with `verify` (none for most Pods).
    let answers: Map<string, VerifyAnswer> | undefined;
    // Each target asked once per scope in this pass, however many containers share it.
    let asked: Map<string, VerifyAnswer | undefined> | undefined;
    /** Whether any rule asked for a registry answer (the outcome then depends on more than the request). */
    let asking = false;
    const lookup = (target: string, scope: "namespaced" | "cluster") => {
      asking = true;
      answers ??= new Map();
      asked ??= new Map();
      const key = scope === "cluster" ? target : `\u0000${target}`;
      if (asked.has(key)) return asked.get(key);
      let answer = verifier.refusal(target, scope);
      if (answer === undefined) {
        answer = answers.get(target);
        if (answer === undefined) {
          answer = verifier.peek(target);
          if (answer !== undefined) answers.set(target, answer);
        }
      }
      asked.set(key, answer);
      return answer;
    };
    options.verified = lookup;
    const outcome = admit(review, options);
    if (key !== undefined && !asking) memo.set(key, options, outcome);
    if (outcome.pendingTargets.length === 0) return requestCopies(outcome, review, deps);
    const known = answers ?? new Map<string, VerifyAnswer>();
    return verifier.checkAll(outcome.pendingTargets, deps.verifyDeadlineMs ?? 2000).then((fetched) => {
      for (const [target, answer] of fetched) known.set(target, answer);
      options.verified = (target, scope) => verifier.refusal(target, scope) ?? known.get(target);
      return requestCopies(admit(review, options), review, deps);
    });
  };
  const lookupNamespace = deps.lookupNamespace;
  return (review) => {
    const namespace = review.namespace;
    const namespaceLabels = namespace === undefined ? undefined : deps.namespaceLabels?.(namespace);
    // Only a namespace the cache lacks, and only when its labels can change the outcome, costs a wait.
    if (
      namespaceLabels === undefined && namespace !== undefined && lookupNamespace !== undefined &&
      needsNamespaceLabels(review, namespace, deps)
    ) {
      return lookupNamespace(namespace).then((found) => {
        switch (found.result) {
          case "found":
            return decideWith(review, found.labels);
          case "not-found":
            // No such namespace (deleted since, or a request no API server sent: it admits Pods only into namespaces
            // that exist, or a name no namespace can have): decided as one without labels, and said, since a 404 a
            // caller of /mutate planted (remembered for a few seconds) must not decide a real Pod without a word.
            return decideWith(
              review,
              {},
              `mirrorhook: rules with a namespaceSelector were decided as for a namespace without labels: namespace ${
                truncate(namespace, 80)
              } was not found`,
            );
          default:
            return decideWith(
              review,
              undefined,
              `mirrorhook: rules with a namespaceSelector were not applied: the labels of namespace ${namespace} could not be read (${
                truncate(found.message, 120)
              })`,
            );
        }
      });
    }
    return decideWith(review, namespaceLabels);
  };
}

/** Whether some object of the rule set has a non-empty namespaceSelector, by rule set (each is immutable). */
const selectsNamespaces = new WeakMap<RuleSet, boolean>();

/**
 * Whether the labels of a namespace the cache lacks can change this admission: a Pod CREATE or UPDATE outside the
 * excluded namespaces, under rules of which one has a non-empty namespaceSelector.
 */
function needsNamespaceLabels(review: AdmissionRequest, namespace: string, deps: DecisionDeps): boolean {
  if (review.resource.resource !== "pods" || review.resource.group !== "" || review.kind.kind !== "Pod") return false;
  if (review.operation !== "CREATE" && review.operation !== "UPDATE") return false;
  if (review.subResource !== undefined && review.subResource !== "ephemeralcontainers") return false;
  if (deps.excludedNamespaces?.has(namespace) === true) return false;
  const ruleSet = deps.rules();
  let selects = selectsNamespaces.get(ruleSet);
  if (selects === undefined) {
    selects = ruleSet.objects.some((object) => {
      const selector = object.source.spec.namespaceSelector;
      return selector !== undefined && !isEmptySelector(selector);
    });
    selectsNamespaces.set(ruleSet, selects);
  }
  return selects;
}

/**
 * Starts a background copy into the first target for each image of a `mirror: true` rule that no target has
 * (the admission applied `onMissing` already); the copy is never waited for, and a dryRun request starts none.
 */
function requestCopies(outcome: AdmitOutcome, review: AdmissionRequest, deps: DecisionDeps): AdmitOutcome {
  const mirror = deps.mirror;
  if (mirror === undefined || (outcome.kept.length === 0 && outcome.verifyTargets.length === 0)) return outcome;
  const wanted = [
    ...outcome.kept.filter((kept) => kept.status === "missing").map((kept) => kept.decision),
    ...outcome.changes.filter((change) => change.verified === "missing").map((change) => change.decision),
  ];
  for (const decision of wanted) {
    if (decision.action !== "rewrite" || !decision.rule.mirror) continue;
    mirror.request(decision.input, decision.output, { dryRun: review.dryRun });
  }
  return outcome;
}

/** What `--on-error` asks for when rule evaluation fails. */
export type OnError = "allow" | "deny";

/** The answer when rule evaluation failed: admitted unchanged with a warning (allow), or denied (deny). */
export function failureAnswer(review: AdmissionRequest, error: unknown, onError: OnError): AdmissionReviewAnswer {
  const message = truncate(error instanceof Error ? error.message : String(error));
  if (onError === "deny") {
    return denyResponse(review.uid, {
      code: 500,
      message: `mirrorhook: rule evaluation failed: ${message}`,
    });
  }
  return allowResponse(review.uid, {
    warnings: [`mirrorhook: rule evaluation failed, Pod admitted unchanged: ${message}`],
  });
}
