// Rule sets for unit tests, compiled from rule-file text as the server loads it.

import assert from "node:assert/strict";
import { loadRuleTexts } from "../../lib/compat/load.ts";
import type { RuleSet } from "../../lib/rules/compile.ts";

/** Compiles `text` as one rule file named test.yaml; fails the test if it has any error. */
export function compileRules(text: string): RuleSet {
  const { ruleSet, problems } = loadRuleTexts([{ name: "test.yaml", text }]);
  assert.deepEqual(problems.filter((problem) => problem.severity === "error"), []);
  return ruleSet;
}
