// Which of our rule objects in the cluster are used, and why the others are not: pure, one verdict per object.

import { joinProblems, limitMessage, type Problem } from "../../rules/problem.ts";
import { type CompileResult, compileRuleSet } from "../../rules/compile.ts";
import { describeObject, type RewriteObject, validateObject } from "../../rules/schema.ts";
import { generationOf, labelOf, objectKey } from "./resources.ts";
import { isRecord, type Json } from "../../util/json.ts";

/** The Ready condition's reason: in use, rejected for its own errors, or rejected for a conflict with an older object. */
export type ReadyReason = "Valid" | "InvalidRule" | "Conflict";

/** What was decided about one object as the API holds it. */
export interface ObjectVerdict {
  /** `Kind/namespace/name` (namespace empty for cluster-scoped objects). */
  readonly key: string;
  /** `ImageRewrite "team/hub"`. */
  readonly label: string;
  readonly generation?: number;
  readonly reason: ReadyReason;
  readonly message: string;
  /** Rules this object contributes to the rules in force (0 when it is not used). */
  readonly rules: number;
  /** The validated object, when it is used. */
  readonly object?: RewriteObject;
}

/** Result of {@linkcode evaluateObjects}. */
export interface Evaluation {
  /** Objects to put in force, oldest first. */
  readonly used: readonly RewriteObject[];
  readonly verdicts: ReadonlyMap<string, ObjectVerdict>;
  /** The compilation of exactly `used`, in that order (when every valid object is in force), for the store to reuse. */
  readonly compiled?: CompileResult;
}

interface ObjectCheck {
  readonly object?: RewriteObject;
  readonly errors: readonly Problem[];
}

/** Checks are kept per object version: the watch hands out a new object for every change. */
const checks = new WeakMap<object, ObjectCheck>();

function checkObject(raw: Json): ObjectCheck {
  const cached = checks.get(raw);
  if (cached !== undefined) return cached;
  const validated = validateObject(raw);
  let problems: readonly Problem[] = validated.problems;
  if (validated.object !== undefined) {
    problems = [...problems, ...compileRuleSet([validated.object]).problems];
  } else if (validated.draft !== undefined) {
    problems = [...problems, ...compileRuleSet([], { drafts: [validated.draft] }).problems];
  }
  const errors = problems.filter((problem) => problem.severity === "error");
  const check: ObjectCheck = errors.length === 0 && validated.object !== undefined
    ? { object: validated.object, errors }
    : { errors };
  checks.set(raw, check);
  return check;
}

/** Older first: creationTimestamp, then namespace/name, then kind; objects without a timestamp count as newest. */
function compareAge(a: RewriteObject, b: RewriteObject): number {
  const time = (object: RewriteObject) => {
    const parsed = Date.parse(object.metadata.creationTimestamp ?? "");
    return Number.isNaN(parsed) ? Number.POSITIVE_INFINITY : parsed;
  };
  const ta = time(a);
  const tb = time(b);
  if (ta !== tb) return ta < tb ? -1 : 1;
  const na = `${a.metadata.namespace ?? ""}/${a.metadata.name}`;
  const nb = `${b.metadata.namespace ?? ""}/${b.metadata.name}`;
  if (na !== nb) return na < nb ? -1 : 1;
  return a.kind < b.kind ? -1 : a.kind > b.kind ? 1 : 0;
}

/** The message of a Ready=True verdict: rules in force, and warnings (its own, an override, a rule that never decides). */
export function validMessage(rules: number, problems: readonly Problem[]): string {
  const warnings = problems.filter((problem) => problem.severity === "warning");
  return limitMessage(
    `${rules} rule(s) in force${warnings.length === 0 ? "" : `; warnings: ${joinProblems(warnings)}`}`,
  );
}

/** The message of a Ready=False Conflict verdict, from the object's errors (each names the object that wins). */
export function conflictMessage(problems: readonly Problem[]): string {
  const errors = problems.filter((problem) => problem.severity === "error");
  return limitMessage(
    `Not used: ${errors.length === 0 ? "conflicts with rules from another source" : joinProblems(errors)}`,
  );
}

/**
 * Decides which API objects are used. Each object is validated and compiled on its own; an object with
 * errors is not used. Then the others are compiled together, oldest first, so that of two conflicting
 * objects the older wins and stays in force (a namespaced object that decides what a cluster-wide one does
 * is no conflict: it overrides it in its own namespace, with a warning).
 */
export function evaluateObjects(raws: readonly unknown[]): Evaluation {
  const verdicts = new Map<string, ObjectVerdict>();
  const valid: { object: RewriteObject; key: string; generation?: number }[] = [];
  for (const raw of raws) {
    if (!isRecord(raw)) continue;
    const kind = typeof raw["kind"] === "string" ? raw["kind"] : "object";
    const key = objectKey(kind, raw);
    const generation = generationOf(raw);
    const check = checkObject(raw);
    if (check.object === undefined) {
      verdicts.set(key, {
        key,
        label: labelOf(raw),
        ...(generation === undefined ? {} : { generation }),
        reason: "InvalidRule",
        message: limitMessage(`Not used: ${joinProblems(check.errors)}`),
        rules: 0,
      });
    } else valid.push({ object: check.object, key, ...(generation === undefined ? {} : { generation }) });
  }
  valid.sort((a, b) => compareAge(a.object, b.object));

  const compiled = compileRuleSet(valid.map((entry) => entry.object));
  const used: RewriteObject[] = [];
  for (const { object, key, generation } of valid) {
    const problems = compiled.problemsByObject.get(object) ?? [];
    const base = { key, label: describeObject(object), ...(generation === undefined ? {} : { generation }) };
    if (!compiled.inForce.has(object)) {
      verdicts.set(key, { ...base, reason: "Conflict", message: conflictMessage(problems), rules: 0 });
      continue;
    }
    used.push(object);
    const count = object.spec.rules.length;
    verdicts.set(key, { ...base, reason: "Valid", message: validMessage(count, problems), rules: count, object });
  }
  // With no conflict the set compiled here is `used` itself: the store need not compile it again.
  return used.length === valid.length ? { used, verdicts, compiled } : { used, verdicts };
}
