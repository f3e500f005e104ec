// Loads --rules paths for a subcommand and reports their problems on stderr.

import type { RuleSet } from "../rules/compile.ts";
import { formatProblem, hasErrors } from "../rules/problem.ts";
import { readAndLoadRules } from "../sources/rule_files.ts";
import type { CliIo } from "./io.ts";

/** Reads and compiles `paths`; undefined (after printing every problem) when any has errors. */
export async function loadRulesForCli(paths: readonly string[], io: CliIo): Promise<RuleSet | undefined> {
  const { loaded, problems } = await readAndLoadRules(paths);
  for (const problem of problems) io.stderr(`${formatProblem(problem)}\n`);
  if (hasErrors(problems)) {
    io.stderr(`mirrorhook: rules not loaded: ${problems.filter((p) => p.severity === "error").length} error(s)\n`);
    return undefined;
  }
  return loaded.ruleSet;
}
