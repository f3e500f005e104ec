// Which of our rule objects in the cluster are used, and why the others are not: pure, one verdict per object.

import { joinProblems, limitMessage, type Problem } from "../../rules/problem.ts";
import { compileRuleSet } from "../../rules/compile.ts";
import { describeObject, type RewriteObject, validateObject } from "../../rules/schema.ts";
import { generationOf, isRecord, type Json, labelOf, objectKey } from "./resources.ts";

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
}

interface ObjectCheck {
  readonly object?: RewriteObject;
  readonly errors: readonly Problem[];
  readonly warnings: readonly Problem[];
  /** `priority\0reference` of each `exact` rule: the only rules that can conflict across objects. */
  readonly exactKeys: readonly string[];
}

/** Checks are kept per object version: the watch hands out a new object for every change. */
const checks = new WeakMap<object, ObjectCheck>();

function checkObject(raw: Json): ObjectCheck {
  const cached = checks.get(raw);
  if (cached !== undefined) return cached;
  const validated = validateObject(raw);
  let problems: readonly Problem[] = validated.problems;
  let exactKeys: string[] = [];
  if (validated.object !== undefined) {
    const compiled = compileRuleSet([validated.object]);
    problems = [...problems, ...compiled.problems];
    exactKeys = compiled.ruleSet.levels.flatMap((level) =>
      [...level.exact.keys()].map((key) => `${level.priority}\u0000${key}`)
    );
  } else if (validated.draft !== undefined) {
    problems = [...problems, ...compileRuleSet([], { drafts: [validated.draft] }).problems];
  }
  const errors = problems.filter((problem) => problem.severity === "error");
  const warnings = problems.filter((problem) => problem.severity === "warning");
  const check: ObjectCheck = errors.length === 0 && validated.object !== undefined
    ? { object: validated.object, errors, warnings, exactKeys }
    : { errors, warnings, exactKeys: [] };
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

/**
 * Decides which API objects are used. Each object is validated and compiled on its own; an object with
 * errors is not used. Then objects are added oldest first, and an object whose `exact` rules conflict with
 * an object already added is not used: the older object wins and stays in force.
 */
export function evaluateObjects(raws: readonly unknown[]): Evaluation {
  const verdicts = new Map<string, ObjectVerdict>();
  const valid: { object: RewriteObject; check: ObjectCheck; key: string; generation?: number }[] = [];
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
    } else valid.push({ object: check.object, check, key, ...(generation === undefined ? {} : { generation }) });
  }
  valid.sort((a, b) => compareAge(a.object, b.object));

  const used: RewriteObject[] = [];
  const byExactKey = new Map<string, RewriteObject[]>();
  for (const { object, check, key, generation } of valid) {
    const label = describeObject(object);
    // Conflicts are pairwise: compile the object with each older object that decides one of its references.
    const peers = [...new Set(check.exactKeys.flatMap((exact) => byExactKey.get(exact) ?? []))];
    const older: string[] = [];
    const conflicts: Problem[] = [];
    for (const peer of peers) {
      const found = compileRuleSet([peer, object]).problems.filter((problem) =>
        problem.code === "conflict" && problem.object === label
      );
      if (found.length === 0) continue;
      older.push(describeObject(peer));
      conflicts.push(...found);
    }
    const base = { key, label, ...(generation === undefined ? {} : { generation }) };
    if (conflicts.length > 0) {
      verdicts.set(key, {
        ...base,
        reason: "Conflict",
        message: limitMessage(
          `Not used: conflicts with the older ${older.join(", ")}, which stays in force: ${joinProblems(conflicts)}`,
        ),
        rules: 0,
      });
      continue;
    }
    used.push(object);
    for (const exact of check.exactKeys) {
      const list = byExactKey.get(exact) ?? [];
      list.push(object);
      byExactKey.set(exact, list);
    }
    const count = object.spec.rules.length;
    const warnings = check.warnings.length === 0 ? "" : `; warnings: ${joinProblems(check.warnings)}`;
    verdicts.set(key, {
      ...base,
      reason: "Valid",
      message: limitMessage(`${count} rule(s) in force${warnings}`),
      rules: count,
      object,
    });
  }
  return { used, verdicts };
}
