// Explains a decision's losers: every other rule that matched the image, and why the deciding rule came first.

import { formatName, formatReference, parseReference } from "../image/reference.ts";
import { type CompiledRule, type ImageContext, matchesPattern, type RuleSet } from "./compile.ts";
import { type Decision, describeRule } from "./engine.ts";
import { compareDecisionOrder } from "./overlap.ts";

const TYPE_ORDER = { exact: 0, prefix: 1, match: 2 } as const;

/** Every rule of the set, in no particular order. */
function allRules(ruleSet: RuleSet): CompiledRule[] {
  const rules: CompiledRule[] = [];
  for (const level of ruleSet.levels) {
    for (const list of level.exact.values()) rules.push(...list);
    const nodes = [level.prefixes];
    for (let node = nodes.pop(); node !== undefined; node = nodes.pop()) {
      rules.push(...node.rules);
      nodes.push(...node.children.values());
    }
    rules.push(...level.match);
  }
  return rules;
}

/** Why `loser` comes after `winner` in the decision order (both matched and apply). */
function whyLost(loser: CompiledRule, winner: CompiledRule): string {
  const l = loser.object;
  const w = winner.object;
  if (w.enforced !== l.enforced) return `${w.label} is enforced and decides first`;
  if (w.priority !== l.priority) return `lower priority (${l.priority} < ${w.priority})`;
  if (loser.type !== winner.type) return `${winner.type} rules come before ${loser.type} rules at one priority`;
  if (loser.type === "prefix" && loser.key.length !== winner.key.length) {
    return `shorter prefix (${JSON.stringify(loser.key)} is shorter than ${JSON.stringify(winner.key)})`;
  }
  if (l !== w) {
    if (l.kind !== w.kind) return `namespaced objects come before cluster-wide ones at one priority`;
    return `objects of one priority go by name (${w.label} before ${l.label})`;
  }
  return `written later (rule ${loser.index} after rule ${winner.index})`;
}

/**
 * Lines for `--explain` after the deciding rule: each other rule that matched the image and applies where it
 * is admitted, with why it lost. Rules that matched but were out of scope are in the decision's notes already.
 */
export function explainLosers(
  ruleSet: RuleSet,
  decision: Decision,
  options: { readonly context: ImageContext },
): string[] {
  // A decision without a rule (bypass, nothing matched, an invalid image) has no losers.
  if (!("rule" in decision) || decision.rule === undefined) return [];
  const winner = decision.rule;
  const parsed = parseReference(decision.input);
  if (!parsed.ok) return [];
  const normalized = formatReference(parsed.reference);
  const name = formatName(parsed.reference);
  const matches = (rule: CompiledRule): boolean => {
    switch (rule.type) {
      case "exact":
        return rule.key === normalized;
      case "prefix":
        return name === rule.key || name.startsWith(`${rule.key}/`);
      case "match":
        return matchesPattern(rule, rule.on === "original" ? decision.input : normalized);
    }
  };
  const losers = allRules(ruleSet)
    .filter((rule) => rule !== winner && matches(rule) && rule.object.outOfScope(options.context) === undefined);
  // The engine's order: level (enforced, priority), kind of rule, longer prefix, object, rule as written.
  losers.sort((a, b) =>
    Number(b.object.enforced) - Number(a.object.enforced) || b.object.priority - a.object.priority ||
    TYPE_ORDER[a.type] - TYPE_ORDER[b.type] || (a.type === "prefix" ? b.key.length - a.key.length : 0) ||
    compareDecisionOrder(a.object.source, b.object.source) || a.index - b.index
  );
  return losers.map((rule) => `also matched: ${describeRule(rule)}, which lost: ${whyLost(rule, winner)}`);
}
