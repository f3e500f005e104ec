// Validates what a rule or object asks of its targets beyond the rewrite: `platforms` and `imagePullSecrets`.

import type { FieldPath, ProblemCode } from "./problem.ts";
import { platformProblem } from "./platforms.ts";

/** `platforms` and `imagePullSecrets` of a spec or a rule, each only when given and valid. */
export interface TargetOptions {
  /** A verified target counts as present only when it serves these platforms (`os/architecture[/variant]`). */
  readonly platforms?: readonly string[];
  /** Secrets appended to `spec.imagePullSecrets` of a Pod that gets an image from the rule (on CREATE). */
  readonly imagePullSecrets?: readonly string[];
  /** With `verify`: copy an image its target lacks into the first target, in the background. */
  readonly mirror?: boolean;
}

type Report = (code: ProblemCode, path: FieldPath, message: string) => void;

const SECRET_NAME = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const MAX_ITEMS = 64;

function stringList(
  value: unknown,
  path: FieldPath,
  error: Report,
  check: (item: string) => string | undefined,
): string[] | undefined {
  if (!Array.isArray(value)) {
    error("type", path, `expected a list of strings, got ${value === null ? "null" : typeof value}`);
    return undefined;
  }
  if (value.length === 0) {
    error("invalid-value", path, "expected at least one entry (leave the field out instead)");
    return undefined;
  }
  if (value.length > MAX_ITEMS) {
    error("invalid-value", path, `expected at most ${MAX_ITEMS} entries, got ${value.length}`);
    return undefined;
  }
  const out: string[] = [];
  let ok = true;
  value.forEach((item, index) => {
    if (typeof item !== "string") {
      error("type", [...path, index], `expected a string, got ${item === null ? "null" : typeof item}`);
      ok = false;
      return;
    }
    const problem = check(item);
    if (problem !== undefined) {
      error("invalid-value", [...path, index], `${JSON.stringify(item)}: ${problem}`);
      ok = false;
    } else if (!out.includes(item)) out.push(item);
  });
  return ok ? out : undefined;
}

/** Bound on a rule's ordered alternatives (`to`). */
const MAX_TARGETS = 8;

/** Reads a rule's `to`: its targets in order of preference, each a non-empty replacement. */
export function validateTargets(value: unknown, path: FieldPath, error: Report): string[] | undefined {
  const list = stringList(value, path, error, (text) => text === "" ? "a target cannot be empty" : undefined);
  if (list !== undefined && list.length > MAX_TARGETS) {
    error("invalid-value", path, `expected at most ${MAX_TARGETS} targets, got ${list.length}`);
    return undefined;
  }
  return list;
}

/** Reads `platforms` and `imagePullSecrets` of `value` (a spec or a rule), reporting problems under `path`. */
export function validateTargetOptions(value: Readonly<Record<string, unknown>>, path: FieldPath, error: Report) {
  const out: { platforms?: readonly string[]; imagePullSecrets?: readonly string[]; mirror?: boolean } = {};
  if (value["mirror"] !== undefined) {
    if (typeof value["mirror"] !== "boolean") error("type", [...path, "mirror"], "expected true or false");
    else out.mirror = value["mirror"];
  }
  if (value["platforms"] !== undefined) {
    const platforms = stringList(value["platforms"], [...path, "platforms"], error, platformProblem);
    if (platforms !== undefined) out.platforms = platforms;
  }
  if (value["imagePullSecrets"] !== undefined) {
    const secrets = stringList(
      value["imagePullSecrets"],
      [...path, "imagePullSecrets"],
      error,
      (name) => SECRET_NAME.test(name) ? undefined : "expected a Secret name (a lowercase DNS subdomain)",
    );
    if (secrets !== undefined) out.imagePullSecrets = secrets;
  }
  return out as TargetOptions;
}
