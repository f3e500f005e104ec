// Checks a rule object about to be admitted against the objects in force: what POST /validate adds to the object's own checks.

import type { CompiledObject, CompiledRule, RuleSet } from "./compile.ts";
import { compileRuleSet } from "./compile.ts";
import { findOverlaps } from "./overlap.ts";
import type { Problem } from "./problem.ts";
import type { RewriteObject } from "./schema.ts";

/** The compiled rules of each object of a rule set, in written order. */
function rulesByObject(ruleSet: RuleSet): Map<CompiledObject, CompiledRule[]> {
  const byObject = new Map<CompiledObject, CompiledRule[]>(ruleSet.objects.map((object) => [object, []]));
  const add = (rule: CompiledRule) => byObject.get(rule.object)?.push(rule);
  for (const level of ruleSet.levels) {
    for (const list of level.exact.values()) list.forEach(add);
    const nodes = [level.prefixes];
    for (let node = nodes.pop(); node !== undefined; node = nodes.pop()) {
      node.rules.forEach(add);
      nodes.push(...node.children.values());
    }
    level.match.forEach(add);
  }
  for (const rules of byObject.values()) rules.sort((a, b) => a.index - b.index);
  return byObject;
}

/**
 * Problems between `candidate` (a valid object, compiled on its own without errors) and the objects in
 * force, as if it were added last: a conflict is an error (the objects in force win, so the candidate would
 * not be used), an override or a rule that never decides a warning. The object's earlier version, which the
 * candidate replaces, is left out. Problems the candidate causes on objects in force come back as warnings.
 */
export function checkCandidate(ruleSet: RuleSet, candidate: RewriteObject): Problem[] {
  const alone = compileRuleSet([candidate]);
  const compiled = alone.ruleSet.objects[0];
  if (compiled === undefined) return [];
  const same = (object: CompiledObject) =>
    object.kind === candidate.kind && object.name === candidate.metadata.name &&
    (object.namespace ?? "") === (candidate.metadata.namespace ?? "");
  const listed = [...rulesByObject(ruleSet)]
    .filter(([object]) => !same(object))
    .map(([object, rules]) => ({ object, rules }));
  listed.push({ object: compiled, rules: rulesByObject(alone.ruleSet).get(compiled) ?? [] });
  const problems: Problem[] = [];
  for (const { object, related, problem } of findOverlaps(listed).findings) {
    if (object === compiled) problems.push(problem);
    else if (related === compiled) problems.push({ ...problem, severity: "warning" });
  }
  return problems;
}
