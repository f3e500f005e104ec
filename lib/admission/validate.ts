// The pure heart of /validate: admission of mirrorhook's own rule objects (ImageRewrite, ClusterImageRewrite).

import { checkCandidate } from "../rules/candidate.ts";
import { compileRuleSet, type RuleSet } from "../rules/compile.ts";
import { hasErrors, type Problem } from "../rules/problem.ts";
import { API_GROUP, validateObject } from "../rules/schema.ts";
import { type AdmissionRequest, allowResponse, denyResponse, type StatusCause } from "./review.ts";
import { isRecord, sameJson } from "../util/json.ts";

/** The resources `/validate` checks; the ValidatingWebhookConfiguration should send only these. */
export const RULE_RESOURCES: ReadonlySet<string> = new Set(["imagerewrites", "clusterimagerewrites"]);

/** A denial lists at most this many errors (message and causes); the rest are counted. */
export const MAX_LISTED_ERRORS = 100;

/** Why a request was allowed without looking at the object. */
export type ValidateSkip = "not-a-rule-object" | "subresource" | "operation";

/** What the handler logs and counts. */
export interface ValidateOutcome {
  readonly review: Record<string, unknown>;
  readonly allowed: boolean;
  /** Every problem found (errors and warnings), as `mirrorhook validate` reports them. */
  readonly problems: readonly Problem[];
  readonly skipped?: ValidateSkip;
  /**
   * An UPDATE that left `spec` as it was: errors were sent as warnings and the update allowed, so that an
   * object that predates a stricter check can still get its labels or finalizers edited and be deleted.
   */
  readonly ratcheted?: boolean;
}

/**
 * Validates a CREATE or UPDATE of a rule object: the structural checks and the compile checks of the
 * object on its own, then, when `inForce` is given, its overlaps with the objects in force (a conflict
 * with one of them is an error: that object would stay in force and this one would not be used; a tenant
 * override or a rule that never decides is a warning). Errors deny with 422 and every error listed;
 * warnings come back as admission warnings. Anything else is allowed.
 */
export function validateRewriteReview(request: AdmissionRequest, inForce?: RuleSet): ValidateOutcome {
  const skip = (skipped: ValidateSkip): ValidateOutcome => ({
    review: allowResponse(request.uid),
    allowed: true,
    problems: [],
    skipped,
  });
  if (request.resource.group !== API_GROUP || !RULE_RESOURCES.has(request.resource.resource)) {
    return skip("not-a-rule-object");
  }
  if (request.subResource !== undefined) return skip("subresource");
  if (request.operation !== "CREATE" && request.operation !== "UPDATE") return skip("operation");
  const subject = describeRequest(request);
  if (request.object === undefined) {
    return {
      review: denyResponse(request.uid, {
        code: 400,
        message: `Cannot validate ${subject}: request.object is missing`,
      }),
      allowed: false,
      problems: [],
    };
  }

  const problems = checkObject(inRequestNamespace(request), inForce);
  const errors = problems.filter((problem) => problem.severity === "error");
  const warnings = problems.filter((problem) => problem.severity === "warning").map((problem) => problem.message);
  if (!hasErrors(problems)) {
    return { review: allowResponse(request.uid, { warnings }), allowed: true, problems };
  }
  if (request.operation === "UPDATE" && sameSpec(request.object, request.oldObject)) {
    const unchanged = errors.map((problem) => `spec unchanged, so allowed, but not in force: ${problem.message}`);
    return {
      review: allowResponse(request.uid, { warnings: [...unchanged, ...warnings] }),
      allowed: true,
      problems,
      ratcheted: true,
    };
  }
  const listed = errors.slice(0, MAX_LISTED_ERRORS);
  const more = errors.length - listed.length;
  const message = `Cannot accept ${subject}: ${errors.length} error(s): ${listed.map((p) => p.message).join("; ")}${
    more > 0 ? `; and ${more} more error(s) (run mirrorhook validate on the object for the full list)` : ""
  }`;
  const name = nameOf(request);
  const causes: StatusCause[] = listed.map((problem) => ({
    reason: problem.code === "required" ? "FieldValueRequired" : "FieldValueInvalid",
    message: problem.message,
    ...(problem.path === "" ? {} : { field: problem.path }),
  }));
  return {
    review: denyResponse(request.uid, {
      code: 422,
      message,
      warnings,
      details: {
        ...(name === undefined ? {} : { name }),
        group: API_GROUP,
        kind: request.resource.resource,
        causes,
      },
    }),
    allowed: false,
    problems,
  };
}

/**
 * Structural validation, then compilation of the object alone (its sound rules, when it has errors), then
 * its overlaps with the objects in force.
 */
function checkObject(object: unknown, inForce: RuleSet | undefined): Problem[] {
  const validated = validateObject(object);
  const problems = [...validated.problems];
  if (validated.object !== undefined) {
    problems.push(...compileRuleSet([validated.object]).problems);
    if (inForce !== undefined && !hasErrors(problems)) problems.push(...checkCandidate(inForce, validated.object));
  } else if (validated.draft !== undefined) {
    problems.push(...compileRuleSet([], { drafts: [validated.draft] }).problems);
  }
  return problems;
}

/**
 * The object as it will be stored: a namespaced object that names no namespace gets the request's, as the API server
 * gives it (kubectl may send an ImageRewrite without `metadata.namespace` to the namespace of its context).
 */
function inRequestNamespace(request: AdmissionRequest): unknown {
  const object = request.object;
  if (request.namespace === undefined || !isRecord(object) || !isRecord(object["metadata"])) return object;
  const metadata = object["metadata"];
  if (metadata["namespace"] !== undefined && metadata["namespace"] !== "") return object;
  return { ...object, metadata: { ...metadata, namespace: request.namespace } };
}

/** The object's name: `request.name` is empty on a CREATE with generateName, the object's is set by then. */
function nameOf(request: AdmissionRequest): string | undefined {
  if (request.name !== undefined) return request.name;
  const metadata = isRecord(request.object) ? request.object["metadata"] : undefined;
  const name = isRecord(metadata) ? metadata["name"] : undefined;
  return typeof name === "string" && name !== "" ? name : undefined;
}

/** `ClusterImageRewrite "hub"` or `ImageRewrite "team/hub"`, from the request. */
function describeRequest(request: AdmissionRequest): string {
  const name = nameOf(request) ?? "(unnamed)";
  return `${request.kind.kind} ${
    JSON.stringify(request.namespace === undefined ? name : `${request.namespace}/${name}`)
  }`;
}

function sameSpec(object: unknown, oldObject: unknown): boolean {
  if (!isRecord(object) || !isRecord(oldObject)) return false;
  return "spec" in oldObject && sameJson(object["spec"], oldObject["spec"]);
}
