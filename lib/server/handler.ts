// Routing of the webhook port: POST /mutate and POST /validate, decoding, and the one place errors become answers.

import type { AdmitOutcome } from "../admission/admit.ts";
import { type AdmissionRequest, answerText, decodeReview, denyResponse, ReviewError } from "../admission/review.ts";
import { type ValidateOutcome, validateRewriteReview } from "../admission/validate.ts";
import { matchPatterns } from "../compat/load.ts";
import { createDecider, type Decide, type DecisionDeps, failureAnswer, type OnError } from "./decision.ts";
import { createRecorder, type RecordDeps, type Recorder } from "./record.ts";
import { toFetchHandler } from "./transport.ts";
import { jsonErrorPlace } from "../util/json_error.ts";

/** Default limit on request bodies: an AdmissionReview carries object and oldObject (each up to ~1.5 MiB in etcd). */
export const DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024;

/** A request as the webhook core sees it, whatever the transport. */
export interface WebhookRequest {
  readonly method: string;
  readonly path: string;
  readonly contentType: string | undefined;
  /** Reads the body, at most `limit` bytes; resolves undefined when it is larger. Rejects with a ReviewError. */
  readBody(limit: number): Promise<Uint8Array | undefined>;
}

/** What the core answers; adapters turn it into a Response or a node response. */
export interface WebhookResponse {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
  readonly headers?: Readonly<Record<string, string>>;
}

/** The parts the webhook is built from; tests give their own `decide`. */
export interface WebhookParts {
  readonly decide: Decide;
  readonly record: Recorder;
  /** `/validate`; defaults to the compiler's verdict. */
  readonly validate?: (review: AdmissionRequest) => ValidateOutcome | Promise<ValidateOutcome>;
  readonly onError?: OnError;
  /** `--dry-run`, for the record (the decision already knows). */
  readonly dryRun?: boolean;
  readonly maxBodyBytes?: number;
}

/** Everything the production webhook needs (see {@linkcode createWebhookCore}). */
export interface HandlerDeps extends DecisionDeps, RecordDeps {
  readonly maxBodyBytes?: number;
  readonly onError?: OnError;
  /**
   * Screens `/validate`'s patterns off this thread (lib/server/pattern_screener.ts), rejecting when it cannot in
   * time; `/validate` then denies with code 503. Absent: patterns are screened while validating, here.
   */
  readonly screenPatterns?: (sources: readonly string[]) => Promise<unknown>;
}

function json(body: unknown, status = 200): WebhookResponse {
  return { status, contentType: "application/json", body: JSON.stringify(body) };
}

function text(body: string, status: number, headers?: Record<string, string>): WebhookResponse {
  return { status, contentType: "text/plain; charset=utf-8", body, ...(headers === undefined ? {} : { headers }) };
}

/** Paths served on the webhook port. */
const WEBHOOK_PATHS = new Set(["/mutate", "/validate"]);

/** The production webhook: the decision and the record built from `deps`. */
export function createWebhookCore(deps: HandlerDeps): (request: WebhookRequest) => Promise<WebhookResponse> {
  return createWebhook({
    decide: createDecider(deps),
    record: createRecorder(deps),
    // A rule object is checked against the objects in force too: a conflict with one of them is refused.
    validate: (review) => validateRewriteReview(review, deps.rules()),
    ...(deps.onError === undefined ? {} : { onError: deps.onError }),
    dryRun: deps.dryRun === true,
    ...(deps.maxBodyBytes === undefined ? {} : { maxBodyBytes: deps.maxBodyBytes }),
    ...(deps.screenPatterns === undefined ? {} : { validate: screenedValidate(deps.screenPatterns, deps.rules) }),
  });
}

/**
 * `/validate` with the object's patterns screened first, elsewhere; when that is refused, a denial with code 503.
 * Then, as without screening, the object is checked against the rules in force too.
 */
function screenedValidate(
  screen: (sources: readonly string[]) => Promise<unknown>,
  rules: HandlerDeps["rules"],
): (review: AdmissionRequest) => Promise<ValidateOutcome> {
  return async (review) => {
    try {
      await screen(rulePatterns(review.object));
    } catch (error) {
      const message = `mirrorhook: cannot check the regular expressions now (${
        error instanceof Error ? error.message : String(error)
      }); try again`;
      const problem = {
        severity: "error",
        code: "unscreened-pattern",
        message,
        path: "spec.rules",
        fieldPath: ["spec", "rules"],
      } as const;
      return { review: denyResponse(review.uid, { code: 503, message }), allowed: false, problems: [problem] };
    }
    return validateRewriteReview(review, rules());
  };
}

/** The `match` patterns of a rule object's `spec.rules`, whatever else it holds. */
function rulePatterns(object: unknown): string[] {
  const spec = typeof object === "object" && object !== null ? (object as { spec?: unknown }).spec : undefined;
  const rules = typeof spec === "object" && spec !== null ? (spec as { rules?: unknown }).rules : undefined;
  return Array.isArray(rules) ? matchPatterns(rules) : [];
}

/** The fetch-API form of the production webhook (tests call it with `new Request(...)`). */
export function createWebhookHandler(deps: HandlerDeps): (request: Request) => Promise<Response> {
  return toFetchHandler(createWebhookCore(deps));
}

/**
 * Creates the webhook: `POST /mutate` (Pods) and `POST /validate` (mirrorhook's own rule objects), with every
 * error turned into an answer here and only here.
 */
export function createWebhook(parts: WebhookParts): (request: WebhookRequest) => Promise<WebhookResponse> {
  const { decide, record } = parts;
  const limit = parts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const validate = parts.validate ?? validateRewriteReview;
  const onError = parts.onError ?? "allow";
  const dryRun = parts.dryRun === true;

  return async (request) => {
    if (!WEBHOOK_PATHS.has(request.path)) return text(`not found: ${request.path}\n`, 404);
    if (request.method !== "POST") return text("method not allowed: use POST\n", 405, { allow: "POST" });
    const timer = record.begin();
    let operation = "unknown";
    let uid: string | undefined;
    try {
      const review = await readReview(request, limit);
      uid = review.uid;
      operation = review.operation;
      if (request.path === "/validate") {
        const outcome = await validate(review);
        record.validated(review, outcome);
        return json(outcome.review);
      }
      let outcome: AdmitOutcome;
      try {
        // Most admissions are decided at once (no registry to ask): no promise to wait a turn for.
        const decided = decide(review);
        outcome = decided instanceof Promise ? await decided : decided;
      } catch (error) {
        record.failed(review, error, onError === "deny" ? "denied" : "admitted unchanged");
        return json(failureAnswer(review, error, onError));
      }
      record.admitted(review, outcome, { dryRun, durationMs: timer.elapsedMs() });
      return { status: 200, contentType: "application/json", body: answerText(outcome.review) };
    } catch (error) {
      if (error instanceof ReviewError) {
        record.rejected({ uid: error.uid ?? uid, operation, status: error.status, message: error.message });
        return json(denyResponse(error.uid ?? uid, { code: error.status, message: error.message }), error.status);
      }
      record.unexpected({ uid, operation, error });
      return json(denyResponse(uid, { code: 500, message: "mirrorhook: internal error" }), 500);
    } finally {
      timer.end(operation);
    }
  };
}

const decoder = new TextDecoder();
const JSON_CONTENT_TYPE = /^application\/json\b/i;

/** Content type, size, JSON and shape: an AdmissionRequest, or a ReviewError naming what is wrong. */
async function readReview(request: WebhookRequest, limit: number): Promise<AdmissionRequest> {
  const contentType = request.contentType ?? "";
  if (!JSON_CONTENT_TYPE.test(contentType)) {
    throw new ReviewError(
      415,
      `Cannot decode AdmissionReview: content type ${
        JSON.stringify(contentType.slice(0, 100))
      }, expected application/json`,
    );
  }
  const body = await request.readBody(limit);
  if (body === undefined) {
    throw new ReviewError(413, `Cannot decode AdmissionReview: the body is over the ${limit}-byte limit`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(body));
  } catch (error) {
    // Never the parser's message: it quotes the body around the error (a password, a token).
    throw new ReviewError(400, `Cannot decode AdmissionReview: invalid JSON (${jsonErrorPlace(error)})`);
  }
  return decodeReview(parsed);
}
