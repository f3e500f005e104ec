// Picks the target of a verified rewrite: the first of the rule's targets whose registry has the image, and why not the others.

import type { CompiledRule } from "../rules/compile.ts";
import { withPlatforms } from "../rules/platforms.ts";
import type { TargetStatus, VerifyAnswer } from "./pod.ts";

/** What the registries said about a verified rule's targets, in order. */
export interface TargetChoice {
  /** The first present target, or undefined when none is. */
  readonly chosen?: string;
  /** Its position in the rule's targets (0 for `replace` or the first of `to`). */
  readonly position: number;
  /** The first target's status when it is not present (`error` when it is). */
  readonly status: Exclude<TargetStatus, "present">;
  /** Why each target before the chosen one (all of them when none is present) was skipped. */
  readonly skipped: readonly string[];
  /** Verification keys asked (with required platforms), and those without an answer yet. */
  readonly keys: readonly string[];
  readonly pending: readonly string[];
}

/** Why one target does not count: missing (or lacking platforms), or not checked. */
function whyNot(target: string, answer: VerifyAnswer | undefined): string {
  const status = answer?.status ?? "error";
  if (status === "missing") {
    return `${target} ${
      answer?.detail?.startsWith("lacks platform") === true ? answer.detail : "is not in the registry"
    }`;
  }
  return `${target} could not be checked (${status}${answer?.detail === undefined ? "" : `: ${answer.detail}`})`;
}

/**
 * Asks `verified` about each target in order, stopping at the first present one. A target without an answer counts
 * as `error` here and is listed in `pending`: the caller asks the registries and decides again.
 */
export function chooseTarget(
  targets: readonly string[],
  rule: CompiledRule,
  verified: (target: string, scope: "namespaced" | "cluster") => VerifyAnswer | undefined,
): TargetChoice {
  const scope = rule.object.kind === "ImageRewrite" ? "namespaced" : "cluster";
  const keys: string[] = [];
  const pending: string[] = [];
  const skipped: string[] = [];
  let first: Exclude<TargetStatus, "present"> | undefined;
  for (const [position, target] of targets.entries()) {
    // With required platforms the key carries them (lib/rules/platforms.ts), so answers differ per set.
    const key = withPlatforms(target, rule.platforms);
    keys.push(key);
    const answer = verified(key, scope);
    if (answer === undefined) pending.push(key);
    const status = answer?.status ?? "error";
    if (status === "present") return { chosen: target, position, status: first ?? "error", skipped, keys, pending };
    first ??= status;
    skipped.push(whyNot(target, answer));
  }
  return { position: 0, status: first ?? "error", skipped, keys, pending };
}
