// The record of each webhook request: one log line and the metrics, built from what the decision holds.

import type { Logger } from "@logtape/logtape";
import type { AdmitOutcome } from "../admission/admit.ts";
import type { AdmissionRequest } from "../admission/review.ts";
import type { ValidateOutcome } from "../admission/validate.ts";
import type { ImageChange } from "../mutate/pod.ts";
import type { CompiledObject } from "../rules/compile.ts";
import { describeRule } from "../rules/engine.ts";
import { truncate } from "../util/truncate.ts";
import { type LogData, logInfo } from "./log.ts";
import type { Metrics } from "./metrics.ts";

/** What the recorder writes to. */
export interface RecordDeps {
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Counts what verification decided: result (verified, missing, error, timeout) x action (rewrite, keep). */
  readonly verifyDecisions?: { inc(labels: { result: string; action: string }, count?: number): void };
  /** Verified rewrites by the position of the chosen target among the rule's targets. */
  readonly verifyChosen?: { inc(labels: { position: string }, count?: number): void };
  /** Milliseconds, for durations; defaults to performance.now. */
  readonly now?: () => number;
}

/** One request being handled: counted in flight until `end`. */
export interface RequestTimer {
  /** Milliseconds since the request was received. */
  elapsedMs(): number;
  /** Observes the duration under `operation` (bounded) and leaves the in-flight count. */
  end(operation: string): void;
}

/** Writes the log line and the metrics of each kind of answer. */
export interface Recorder {
  begin(): RequestTimer;
  /** A Pod admission decided (rewritten, unchanged, skipped, or would-rewrite in dry-run mode). */
  admitted(review: AdmissionRequest, outcome: AdmitOutcome, options: { dryRun: boolean; durationMs: number }): void;
  /** Rule evaluation failed; `action` says what the answer did. */
  failed(review: AdmissionRequest, error: unknown, action: "denied" | "admitted unchanged"): void;
  /** The body is not an AdmissionReview we can answer (4xx). */
  rejected(details: { uid: string | undefined; operation: string; status: number; message: string }): void;
  /** A bug outside rule evaluation (500). */
  unexpected(details: { uid: string | undefined; operation: string; error: unknown }): void;
  /** A `/validate` answer. */
  validated(review: AdmissionRequest, outcome: ValidateOutcome): void;
}

/** Operations of AdmissionReview; any other value is counted as `other`, so a client cannot mint label values. */
const OPERATIONS = new Set(["CREATE", "UPDATE", "DELETE", "CONNECT"]);

/** The `operation` label: a known operation, `unknown` before decoding, else `other`. */
export function operationLabel(operation: string): string {
  return operation === "unknown" || OPERATIONS.has(operation) ? operation : "other";
}

/**
 * The `registry` label of a rewrite: the registry the rule's own text names, never one taken from the Pod. The bypass
 * prefix (`direct.to/<registry>`) is `bypass`; a `match` rule whose template puts a capture in the registry is
 * `templated`.
 */
export function registryLabel(change: ImageChange): string {
  const decision = change.decision;
  if (decision.action === "bypass") return "bypass";
  const rule = decision.rule;
  if (rule.type === "match" && (rule.replace ?? "").split("/")[0]?.includes("$") !== false) return "templated";
  // The decision's output is normalized (registry first), so no second parse is needed.
  const slash = change.to.indexOf("/");
  return slash < 0 ? change.to : change.to.slice(0, slash);
}

/** The `object` label of each rule object (`namespace/name` or `name`), built once. */
const objectLabels = new WeakMap<CompiledObject, string>();

function objectLabel(object: CompiledObject): string {
  let label = objectLabels.get(object);
  if (label === undefined) {
    label = object.namespace === undefined ? object.name : `${object.namespace}/${object.name}`;
    objectLabels.set(object, label);
  }
  return label;
}

/** The labels of `mirrorhook_rewrites_total`. */
type RewriteLabels = { readonly kind: string; readonly object: string; readonly registry: string };

/** Label sets by rule object and registry label, built once (the bypass prefix's by registry label alone). */
const rewriteLabelSets = new WeakMap<CompiledObject, Map<string, RewriteLabels>>();
const bypassLabelSets = new Map<string, RewriteLabels>();

/** The label set of one rewrite, the same object each time for the same rule object and registry. */
function rewriteLabels(change: ImageChange): RewriteLabels {
  const decision = change.decision;
  const registry = registryLabel(change);
  let byRegistry: Map<string, RewriteLabels> | undefined;
  if (decision.action === "rewrite") {
    byRegistry = rewriteLabelSets.get(decision.rule.object);
    if (byRegistry === undefined) {
      byRegistry = new Map();
      rewriteLabelSets.set(decision.rule.object, byRegistry);
    }
  } else byRegistry = bypassLabelSets;
  let labels = byRegistry.get(registry);
  if (labels === undefined) {
    labels = decision.action === "rewrite"
      ? { kind: decision.rule.object.kind, object: objectLabel(decision.rule.object), registry }
      : { kind: "bypass", object: "bypass", registry };
    // Registry labels come from the rules' own text (or `templated`), so the sets stay few; bounded all the same.
    if (byRegistry.size < 1024) byRegistry.set(registry, labels);
  }
  return labels;
}

/** One request's timer: counted in flight from its creation until `end`. */
class Timer implements RequestTimer {
  readonly #metrics: Metrics;
  readonly #now: () => number;
  readonly #started: number;
  #ended = false;

  constructor(metrics: Metrics, now: () => number) {
    this.#metrics = metrics;
    this.#now = now;
    this.#started = now();
  }

  elapsedMs(): number {
    return this.#now() - this.#started;
  }

  end(operation: string): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#metrics.inFlight.dec();
    this.#metrics.duration.observe(
      OPERATION_LABELS.get(operation) ?? { operation: operationLabel(operation) },
      (this.#now() - this.#started) / 1000,
    );
  }
}

/** The `operation` label objects of the known operations, made once. */
const OPERATION_LABELS = new Map(
  ["CREATE", "UPDATE", "DELETE", "CONNECT", "unknown"].map((operation) => [operation, { operation }]),
);

function podName(request: AdmissionRequest): string | undefined {
  if (request.name !== undefined) return request.name;
  const object = request.object as { metadata?: { name?: unknown; generateName?: unknown } } | undefined;
  const name = object?.metadata?.name ?? object?.metadata?.generateName;
  return typeof name === "string" ? truncate(name) : undefined;
}

/** Creates the recorder of one server. */
export function createRecorder(deps: RecordDeps): Recorder {
  const { metrics, logger } = deps;
  const now = deps.now ?? (() => performance.now());
  const echo = (value: string | undefined) => value === undefined ? undefined : truncate(value);
  return {
    begin() {
      metrics.inFlight.inc();
      return new Timer(metrics, now);
    },

    admitted(review, outcome, { dryRun, durationMs }) {
      const result = dryRun && outcome.result === "rewritten" ? "would-rewrite" : outcome.result;
      metrics.requests.inc({ operation: operationLabel(review.operation), result, dry_run: String(review.dryRun) });
      if (outcome.skipped !== undefined) metrics.skips.inc({ reason: outcome.skipped });
      // One increment per label set (a Pod's images mostly share a rule and registry), by the count; each label set
      // is one object for the life of its rule object, so they are told apart by identity.
      let labelSets: RewriteLabels[] | undefined;
      let counts: number[] | undefined;
      for (const change of outcome.changes) {
        const labels = rewriteLabels(change);
        labelSets ??= [];
        counts ??= [];
        const index = labelSets.indexOf(labels);
        if (index < 0) {
          labelSets.push(labels);
          counts.push(1);
        } else counts[index]!++;
      }
      if (labelSets !== undefined && counts !== undefined) {
        for (let i = 0; i < labelSets.length; i++) metrics.rewrites.inc(labelSets[i]!, counts[i]!);
      }
      for (const problem of outcome.problems) metrics.invalidImages.inc({ reason: problem.decision.action });
      if (outcome.verifyTargets.length > 0 || outcome.kept.length > 0) {
        // One increment per label set, by the count, as for rewrites.
        const decisions = new Map<string, number>();
        const chosen = new Map<number, number>();
        for (const change of outcome.changes) {
          if (change.verified === undefined) continue;
          const result = change.verified === "present" ? "verified" : change.verified;
          decisions.set(`${result}\u0000rewrite`, (decisions.get(`${result}\u0000rewrite`) ?? 0) + 1);
          if (change.position !== undefined) chosen.set(change.position, (chosen.get(change.position) ?? 0) + 1);
        }
        for (const kept of outcome.kept) {
          decisions.set(`${kept.status}\u0000keep`, (decisions.get(`${kept.status}\u0000keep`) ?? 0) + 1);
        }
        for (const [key, count] of decisions) {
          const [result = "", action = ""] = key.split("\u0000");
          deps.verifyDecisions?.inc({ result, action }, count);
        }
        for (const [position, count] of chosen) deps.verifyChosen?.inc({ position: String(position) }, count);
      }
      // One record, its keys in the order operators know; no spread of partial records.
      const fields: Record<string, LogData> = {
        uid: echo(review.uid),
        namespace: echo(review.namespace),
        pod: podName(review),
        operation: echo(review.operation),
      };
      if (review.subResource !== undefined) fields["subResource"] = echo(review.subResource);
      fields["dryRun"] = dryRun;
      if (review.dryRun) fields["requestDryRun"] = true;
      fields["durationMs"] = Math.round(durationMs * 1000) / 1000;
      if (outcome.changes.length > 0 || outcome.problems.length > 0 || outcome.kept.length > 0) {
        const message = outcome.patched
          ? "Rewrote {count} image(s)"
          : outcome.changes.length > 0
          ? "Would rewrite {count} image(s) (dry-run)"
          : outcome.kept.length > 0
          ? "Kept {keptCount} image(s): target not confirmed by the registry"
          : "Left {invalidCount} invalid image(s) unchanged";
        fields["count"] = outcome.changes.length;
        fields["invalidCount"] = outcome.problems.length;
        fields["keptCount"] = outcome.kept.length;
        const rewrites: Record<string, LogData>[] = [];
        for (const change of outcome.changes) {
          const entry: Record<string, LogData> = {
            container: echo(change.slot.key),
            from: echo(change.from),
            to: echo(change.to),
            rule: change.decision.action === "rewrite" ? describeRule(change.decision.rule) : "bypass",
          };
          if (change.verified !== undefined) entry["verified"] = change.verified;
          if (change.position !== undefined) entry["targetPosition"] = change.position;
          if (change.skipped !== undefined && change.skipped.length > 0) {
            entry["skipped"] = change.skipped.map((why) => echo(why));
          }
          rewrites.push(entry);
        }
        fields["rewrites"] = rewrites;
        fields["kept"] = outcome.kept.map((kept) => ({
          container: echo(kept.slot.key),
          image: echo(kept.slot.image),
          target: echo(kept.decision.output),
          status: kept.status,
        }));
        fields["invalid"] = outcome.problems.map((problem) => ({
          container: echo(problem.slot.key),
          image: echo(problem.slot.image),
          reason: problem.decision.action,
        }));
        logInfo(logger, message, fields);
      } else if (outcome.skipped !== undefined && outcome.skipped !== "not-a-pod") {
        fields["reason"] = outcome.skipped;
        logInfo(logger, "Skipped: {reason}", fields);
      } else {
        logger.debug("Nothing to rewrite", fields);
      }
    },

    failed(review, error, action) {
      const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
      metrics.errors.inc({ stage: "rules" });
      metrics.requests.inc({
        operation: operationLabel(review.operation),
        result: "error",
        dry_run: String(review.dryRun),
      });
      logger.error("Rule evaluation failed; {action}: {message}", {
        uid: echo(review.uid),
        namespace: echo(review.namespace),
        pod: podName(review),
        operation: echo(review.operation),
        action,
        message: truncate(message, 4096),
      });
    },

    rejected({ uid, operation, status, message }) {
      metrics.requests.inc({ operation: operationLabel(operation), result: "invalid", dry_run: "false" });
      logger.warn("Rejected a request: {message}", { uid: echo(uid), status, message: truncate(message, 1024) });
    },

    unexpected({ uid, operation, error }) {
      metrics.errors.inc({ stage: "request" });
      metrics.requests.inc({ operation: operationLabel(operation), result: "error", dry_run: "false" });
      logger.error("Unexpected error handling a request: {message}", {
        uid: echo(uid),
        message: truncate(error instanceof Error ? (error.stack ?? error.message) : String(error), 4096),
      });
    },

    validated(review, outcome) {
      const result = outcome.skipped !== undefined ? "skipped" : outcome.allowed ? "valid" : "invalid";
      metrics.validations.inc({ operation: operationLabel(review.operation), result });
      if (!outcome.allowed || outcome.ratcheted === true) {
        logger.info(
          outcome.allowed ? "Allowed an unchanged invalid rule object (spec untouched)" : "Rejected a rule object",
          {
            uid: echo(review.uid),
            namespace: echo(review.namespace),
            name: echo(review.name),
            resource: echo(review.resource.resource),
            operation: echo(review.operation),
            problems: outcome.problems.filter((p) => p.severity === "error").map((p) => ({
              code: p.code,
              path: p.path,
            })),
          },
        );
      }
    },
  };
}
