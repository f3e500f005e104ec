// The HTTPS request handler: routes, body limits, decode, admit, and the single point where errors become responses.

import type { Logger } from "@logtape/logtape";
import { admit, type AdmitOptions, type AdmitOutcome } from "../admission/admit.ts";
import { type AdmissionRequest, allowResponse, decodeReview, denyResponse, ReviewError } from "../admission/review.ts";
import { validateRewriteReview } from "../admission/validate.ts";
import type { PodLike, VerifyAnswer } from "../mutate/pod.ts";
import { describeRule } from "../rules/engine.ts";
import { parseReference } from "../image/reference.ts";
import type { RuleSet } from "../rules/compile.ts";
import { matchPatterns } from "../rules/load.ts";
import type { Labels } from "../rules/selector.ts";
import { readStreamLimited } from "../util/body.ts";
import type { Metrics } from "./metrics.ts";

/** Default limit on request bodies: an AdmissionReview carries object and oldObject (each up to ~1.5 MiB in etcd). */
export const DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024;

/** What the handler needs; everything is injected so tests call it with `new Request(...)`. */
export interface HandlerDeps {
  readonly rules: () => RuleSet;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly maxBodyBytes?: number;
  readonly onError?: "allow" | "deny";
  readonly dryRun?: boolean;
  readonly bypassPrefix?: string;
  readonly excludedNamespaces?: ReadonlySet<string>;
  readonly isOwnPod?: (pod: PodLike) => boolean;
  /** Labels of a namespace when known (from the API), for namespaceSelector and namespace opt-out. */
  readonly namespaceLabels?: (namespace: string) => Labels | undefined;
  /** Milliseconds, for durations; defaults to performance.now. */
  readonly now?: () => number;
  /**
   * Answers for the outputs of rules with `verify` (lib/verify's Verifier): `peek` from its cache, synchronously;
   * `checkAll` from the registries, resolving by the deadline. Absent: such rules rewrite like any other.
   */
  readonly verifier?: {
    peek(target: string): VerifyAnswer | undefined;
    checkAll(targets: readonly string[], deadlineMs: number): Promise<ReadonlyMap<string, VerifyAnswer>>;
  };
  /** Deadline for all registry checks of one admission (default 2 s, well inside the webhook's timeout). */
  readonly verifyDeadlineMs?: number;
  /** Counts what verification decided: result (verified, missing, error, timeout) × action (rewrite, keep). */
  readonly verifyDecisions?: { inc(labels: { result: string; action: string }): void };
  /**
   * Screens `/validate`'s patterns off this thread (lib/util/pattern_screener.ts), rejecting when it cannot in
   * time; `/validate` then refuses (code 503). Absent: patterns are screened here, synchronously.
   */
  readonly screenPatterns?: (sources: readonly string[]) => Promise<unknown>;
  /** Test hook: replaces `admit` (to simulate a bug in rule evaluation). */
  readonly admit?: (request: AdmissionRequest, options: AdmitOptions) => AdmitOutcome;
}

/** A request as the webhook core sees it, whatever the transport. */
export interface WebhookRequest {
  readonly method: string;
  readonly path: string;
  readonly contentType: string | undefined;
  /** Reads the body, at most `limit` bytes; resolves undefined when it is larger. */
  readBody(limit: number): Promise<Uint8Array | undefined>;
}

/** What the core answers; adapters turn it into a Response or a node response. */
export interface WebhookResponse {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
  readonly headers?: Readonly<Record<string, string>>;
}

function json(body: unknown, status = 200): WebhookResponse {
  return { status, contentType: "application/json", body: JSON.stringify(body) };
}

function text(body: string, status: number, headers?: Record<string, string>): WebhookResponse {
  return { status, contentType: "text/plain; charset=utf-8", body, ...(headers === undefined ? {} : { headers }) };
}

function podName(request: AdmissionRequest): string | undefined {
  if (request.name !== undefined) return request.name;
  const object = request.object as { metadata?: { name?: unknown; generateName?: unknown } } | undefined;
  const name = object?.metadata?.name ?? object?.metadata?.generateName;
  return typeof name === "string" ? name : undefined;
}

/** The fetch-API form of the webhook (tests call it with `new Request(...)`). */
export function createWebhookHandler(deps: HandlerDeps): (request: Request) => Promise<Response> {
  const core = createWebhookCore(deps);
  return async (request) => {
    const declared = request.headers.get("content-length");
    const answer = await core({
      method: request.method,
      path: new URL(request.url).pathname,
      contentType: request.headers.get("content-type") ?? undefined,
      readBody: (limit) => readStreamLimited(request.body, declared === null ? undefined : Number(declared), limit),
    });
    return new Response(answer.body, {
      status: answer.status,
      headers: { "content-type": answer.contentType, ...answer.headers },
    });
  };
}

/** Paths served on the webhook port. */
const WEBHOOK_PATHS = new Set(["/mutate", "/validate"]);

/** The `match` patterns of a rule object's `spec.rules`, whatever else it holds. */
function rulePatterns(object: unknown): string[] {
  const spec = typeof object === "object" && object !== null ? (object as { spec?: unknown }).spec : undefined;
  const rules = typeof spec === "object" && spec !== null ? (spec as { rules?: unknown }).rules : undefined;
  return Array.isArray(rules) ? matchPatterns(rules) : [];
}

/**
 * Creates the webhook core: `POST /mutate` (Pods) and `POST /validate` (mirrorhook's own rule objects), with every
 * error turned into a response here and only here.
 */
export function createWebhookCore(deps: HandlerDeps): (request: WebhookRequest) => Promise<WebhookResponse> {
  const { metrics, logger } = deps;
  const limit = deps.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const now = deps.now ?? (() => performance.now());
  const decideAdmission = deps.admit ?? admit;

  return async (request) => {
    if (!WEBHOOK_PATHS.has(request.path)) return text(`not found: ${request.path}\n`, 404);
    if (request.method !== "POST") return text("method not allowed: use POST\n", 405, { allow: "POST" });
    const started = now();
    metrics.inFlight.inc();
    let operation = "unknown";
    let uid: string | undefined;
    try {
      const contentType = request.contentType ?? "";
      if (!/^application\/json\b/i.test(contentType)) {
        throw new ReviewError(
          415,
          `Cannot decode AdmissionReview: content type ${JSON.stringify(contentType)}, expected application/json`,
        );
      }
      const body = await request.readBody(limit);
      if (body === undefined) {
        throw new ReviewError(413, `Cannot decode AdmissionReview: the body is over the ${limit}-byte limit`);
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(new TextDecoder().decode(body));
      } catch (error) {
        throw new ReviewError(
          400,
          `Cannot decode AdmissionReview: invalid JSON: ${error instanceof Error ? error.message : String(error)}`,
        );
      }
      const review = decodeReview(parsed);
      uid = review.uid;
      operation = review.operation;
      if (request.path === "/validate") return await validated(review);
      let outcome: AdmitOutcome;
      try {
        const namespaceLabels = review.namespace === undefined ? undefined : deps.namespaceLabels?.(review.namespace);
        const options: AdmitOptions = {
          ruleSet: deps.rules(),
          ...(namespaceLabels === undefined ? {} : { namespaceLabels }),
          ...(deps.bypassPrefix === undefined ? {} : { bypassPrefix: deps.bypassPrefix }),
          ...(deps.excludedNamespaces === undefined ? {} : { excludedNamespaces: deps.excludedNamespaces }),
          ...(deps.isOwnPod === undefined ? {} : { isOwnPod: deps.isOwnPod }),
          dryRun: deps.dryRun === true,
        };
        const verifier = deps.verifier;
        // A warm cache decides in this one pass. Otherwise admission stays pure with a second pass: ask the
        // registries for what the cache lacked, all at once and within the deadline, then decide again.
        const answers = new Map<string, VerifyAnswer>();
        const lookup = (target: string) => {
          if (verifier === undefined) return undefined;
          let answer = answers.get(target);
          if (answer === undefined) {
            answer = verifier.peek(target);
            if (answer !== undefined) answers.set(target, answer);
          }
          return answer;
        };
        outcome = decideAdmission(review, verifier === undefined ? options : { ...options, verified: lookup });
        if (verifier !== undefined && outcome.pendingTargets.length > 0) {
          const fetched = await verifier.checkAll(outcome.pendingTargets, deps.verifyDeadlineMs ?? 2000);
          for (const [target, answer] of fetched) answers.set(target, answer);
          outcome = decideAdmission(review, { ...options, verified: (target) => answers.get(target) });
        }
      } catch (error) {
        return failed(review, error);
      }
      record(review, outcome, started);
      return json(outcome.review);
    } catch (error) {
      if (error instanceof ReviewError) {
        metrics.requests.inc({ operation, result: "invalid", dry_run: "false" });
        logger.warn("Rejected a request: {message}", {
          uid: error.uid ?? uid,
          status: error.status,
          message: error.message,
        });
        return json(denyResponse(error.uid ?? uid, error.status, error.message), error.status);
      }
      metrics.errors.inc({ stage: "request" });
      metrics.requests.inc({ operation, result: "error", dry_run: "false" });
      logger.error("Unexpected error handling a request: {message}", {
        uid,
        message: error instanceof Error ? (error.stack ?? error.message) : String(error),
      });
      return json(denyResponse(uid, 500, "mirrorhook: internal error"), 500);
    } finally {
      metrics.inFlight.dec();
      metrics.duration.observe({ operation }, (now() - started) / 1000);
    }
  };

  /** `/validate`: denials are answers (HTTP 200), not failures; no fail-open, as no rule set is read. */
  async function validated(review: AdmissionRequest): Promise<WebhookResponse> {
    try {
      await deps.screenPatterns?.(rulePatterns(review.object));
    } catch (error) {
      const message = `mirrorhook: cannot check the regular expressions now (${
        error instanceof Error ? error.message : String(error)
      }); try again`;
      metrics.validations.inc({ operation: review.operation, result: "refused" });
      logger.warn("Refused to validate a rule object: {message}", { uid: review.uid, message });
      return json(denyResponse(review.uid, 503, message));
    }
    const outcome = validateRewriteReview(review);
    const result = outcome.skipped !== undefined ? "skipped" : outcome.allowed ? "valid" : "invalid";
    metrics.validations.inc({ operation: review.operation, result });
    if (!outcome.allowed || outcome.ratcheted === true) {
      logger.info(
        outcome.allowed ? "Allowed an unchanged invalid rule object (spec untouched)" : "Rejected a rule object",
        {
          uid: review.uid,
          namespace: review.namespace,
          name: review.name,
          resource: review.resource.resource,
          operation: review.operation,
          problems: outcome.problems.filter((p) => p.severity === "error").map((p) => ({ code: p.code, path: p.path })),
        },
      );
    }
    return json(outcome.review);
  }

  /** A bug in rule evaluation: fail open (default) or deny, as configured; always warn and count. */
  function failed(review: AdmissionRequest, error: unknown): WebhookResponse {
    const message = error instanceof Error ? error.message : String(error);
    metrics.errors.inc({ stage: "rules" });
    metrics.requests.inc({ operation: review.operation, result: "error", dry_run: String(review.dryRun) });
    logger.error("Rule evaluation failed; {action}: {message}", {
      uid: review.uid,
      namespace: review.namespace,
      pod: podName(review),
      operation: review.operation,
      action: deps.onError === "deny" ? "denied" : "admitted unchanged",
      message: error instanceof Error ? (error.stack ?? message) : message,
    });
    if (deps.onError === "deny") {
      return json(denyResponse(review.uid, 500, `mirrorhook: rule evaluation failed: ${message}`));
    }
    return json(
      allowResponse(review.uid, {
        warnings: [`mirrorhook: rule evaluation failed, Pod admitted unchanged: ${message}`],
      }),
    );
  }

  function record(review: AdmissionRequest, outcome: AdmitOutcome, started: number): void {
    const dryRun = String(review.dryRun);
    metrics.requests.inc({ operation: review.operation, result: outcome.result, dry_run: dryRun });
    if (outcome.skipped !== undefined) metrics.skips.inc({ reason: outcome.skipped });
    for (const change of outcome.changes) {
      const decision = change.decision;
      const target = parseReference(change.to);
      metrics.rewrites.inc({
        kind: decision.action === "rewrite" ? decision.rule.object.kind : "bypass",
        object: decision.action === "rewrite"
          ? (decision.rule.object.namespace === undefined
            ? decision.rule.object.name
            : `${decision.rule.object.namespace}/${decision.rule.object.name}`)
          : "bypass",
        registry: target.ok ? target.reference.registry : "invalid",
      });
    }
    for (const problem of outcome.problems) metrics.invalidImages.inc({ reason: problem.decision.action });
    for (const change of outcome.changes) {
      if (change.verified === undefined) continue;
      deps.verifyDecisions?.inc({
        result: change.verified === "present" ? "verified" : change.verified,
        action: "rewrite",
      });
    }
    for (const kept of outcome.kept) deps.verifyDecisions?.inc({ result: kept.status, action: "keep" });
    const fields = {
      uid: review.uid,
      namespace: review.namespace,
      pod: podName(review),
      operation: review.operation,
      ...(review.subResource === undefined ? {} : { subResource: review.subResource }),
      dryRun: review.dryRun,
      durationMs: Math.round((now() - started) * 1000) / 1000,
    };
    if (outcome.changes.length > 0 || outcome.problems.length > 0 || outcome.kept.length > 0) {
      const message = outcome.patched
        ? "Rewrote {count} image(s)"
        : outcome.changes.length > 0
        ? "Would rewrite {count} image(s) (dry-run)"
        : outcome.kept.length > 0
        ? "Kept {keptCount} image(s): target not confirmed by the registry"
        : "Left {invalidCount} invalid image(s) unchanged";
      logger.info(message, {
        ...fields,
        count: outcome.changes.length,
        invalidCount: outcome.problems.length,
        keptCount: outcome.kept.length,
        rewrites: outcome.changes.map((change) => ({
          container: change.slot.key,
          from: change.from,
          to: change.to,
          rule: change.decision.action === "rewrite" ? describeRule(change.decision.rule) : "bypass",
          ...(change.verified === undefined ? {} : { verified: change.verified }),
        })),
        kept: outcome.kept.map((kept) => ({
          container: kept.slot.key,
          image: kept.slot.image,
          target: kept.decision.output,
          status: kept.status,
        })),
        invalid: outcome.problems.map((problem) => ({
          container: problem.slot.key,
          image: problem.slot.image,
          reason: problem.decision.action,
        })),
      });
    } else if (outcome.skipped !== undefined && outcome.skipped !== "not-a-pod") {
      logger.info("Skipped: {reason}", { ...fields, reason: outcome.skipped });
    } else {
      logger.debug("Nothing to rewrite", fields);
    }
  }
}
