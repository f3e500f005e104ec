// Loads --rules paths for a subcommand and reports their problems on stderr.

import { loadRuleTexts } from "../compat/load.ts";
import type { RuleSet } from "../rules/compile.ts";
import { formatProblem, hasErrors, type Problem } from "../rules/problem.ts";
import { readRulePaths } from "../sources/rule_files.ts";
import type { CliIo } from "./io.ts";

/** Reads and compiles `paths`; undefined (after printing every problem) when any has errors. */
export async function loadRulesForCli(paths: readonly string[], io: CliIo): Promise<RuleSet | undefined> {
  const read = await readRulePaths(paths);
  const loaded = loadRuleTexts(read.texts);
  const problems: Problem[] = [...read.problems, ...loaded.problems];
  for (const problem of problems) io.stderr(`${formatProblem(problem)}\n`);
  if (hasErrors(problems)) {
    io.stderr(`mirrorhook: rules not loaded: ${problems.filter((p) => p.severity === "error").length} error(s)\n`);
    return undefined;
  }
  return loaded.ruleSet;
}
