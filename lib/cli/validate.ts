// `mirrorhook validate FILE...`: every problem in rule files, exit 1 on errors.

import { loadRuleTexts } from "../compat/load.ts";
import { formatProblem, hasErrors, type Problem } from "../rules/problem.ts";
import { readRulePaths } from "../sources/rule_files.ts";
import { type CliIo, EXIT } from "./io.ts";

/** Runs `validate` over files and directories together, so conflicts across files are found. */
export async function runValidate(paths: readonly string[], output: "text" | "json", io: CliIo): Promise<number> {
  const read = await readRulePaths(paths);
  const loaded = loadRuleTexts(read.texts);
  const problems: Problem[] = [...read.problems, ...loaded.problems];
  const errors = problems.filter((problem) => problem.severity === "error").length;
  const warnings = problems.length - errors;
  if (output === "json") {
    io.stdout(
      `${
        JSON.stringify(
          { objects: loaded.objects.length, rules: loaded.ruleSet.ruleCount, errors, warnings, problems },
          null,
          2,
        )
      }\n`,
    );
  } else {
    for (const problem of problems) io.stdout(`${formatProblem(problem)}\n`);
    io.stdout(
      `${read.texts.length} file(s), ${loaded.objects.length} object(s), ${loaded.ruleSet.ruleCount} rule(s): ${errors} error(s), ${warnings} warning(s)\n`,
    );
  }
  return hasErrors(problems) ? EXIT.failed : EXIT.ok;
}
