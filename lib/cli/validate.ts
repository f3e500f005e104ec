// `mirrorhook validate FILE...`: every problem in rule files, sorted by place and reported once, exit 1 on errors.

import { isMap, isPair, isScalar, LineCounter, parseAllDocuments, visit } from "yaml";
import { detectFormat } from "../compat/formats.ts";
import type { RuleText } from "../compat/load.ts";
import { formatProblem, hasErrors, type Problem } from "../rules/problem.ts";
import { readAndLoadRules } from "../sources/rule_files.ts";
import { type CliIo, EXIT } from "./io.ts";

/** Plain scalars YAML 1.1 reads as booleans (yaml.org/type/bool.html); as keys, kubectl turns them into true/false. */
const YAML11_BOOLEANS = /^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$/;
/** Of those, the keys YAML 1.2 (and mirrorhook) read as strings. */
const YAML12_STRINGS = /^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF)$/;

/**
 * Warns about unquoted keys such as `on:` that mirrorhook (YAML 1.2) reads as the string "on" but kubectl and other
 * YAML 1.1 readers read as the boolean `true`, so the object applied with kubectl loses the field.
 */
function booleanKeyProblems(input: RuleText): Problem[] {
  if (detectFormat(input.text) !== "objects") return [];
  const problems: Problem[] = [];
  const lineCounter = new LineCounter();
  let documents;
  try {
    documents = parseAllDocuments(input.text, { lineCounter, prettyErrors: false });
  } catch {
    return [];
  }
  for (const doc of Array.isArray(documents) ? documents : [documents]) {
    if (doc.errors.length > 0) continue;
    visit(doc, {
      Pair(_key, pair, path) {
        if (!isPair(pair) || !isScalar(pair.key) || pair.key.type !== "PLAIN") return;
        const source = pair.key.source;
        if (typeof source !== "string" || !YAML11_BOOLEANS.test(source) || !YAML12_STRINGS.test(source)) return;
        if (!isMap(path.at(-1))) return;
        const { line, col } = lineCounter.linePos(pair.key.range?.[0] ?? 0);
        problems.push({
          severity: "warning",
          code: "yaml-boolean-key",
          message: `key ${source} is unquoted: kubectl and other YAML 1.1 readers read it as the boolean ${
            /^(?:off|Off|OFF|n|N|no|No|NO)$/.test(source) ? "false" : "true"
          }, so the field is lost when the object is applied with kubectl; write "${source}":`,
          path: "",
          fieldPath: [],
          source: input.name,
          line,
          column: col,
        });
      },
    });
  }
  return problems;
}

/** The rule a problem is about, as `Kind "name"#index`, for pairing the two sides of a conflict. */
function ruleKey(object: string | undefined, rule: number | undefined): string | undefined {
  return object === undefined || rule === undefined ? undefined : `${object}#${rule}`;
}

/** The other side of a problem between two rules: its `related` field, else the rule its message names. */
function otherSide(problem: Problem): string | undefined {
  const related = (problem as { related?: { object?: string; rule?: number } }).related;
  if (related !== undefined) return ruleKey(related.object, related.rule);
  const named = /conflicts with rule (\d+) of (\S+ "[^"]*")/.exec(problem.message);
  return named === null ? undefined : ruleKey(named[2], Number(named[1]));
}

function compareProblems(a: Problem, b: Problem): number {
  const source = (a.source ?? "").localeCompare(b.source ?? "");
  if (source !== 0) return source;
  return (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0) ||
    a.message.localeCompare(b.message);
}

/**
 * Sorts problems by file, line and column, and keeps one of each: a problem between two rules reported from both
 * sides appears once, at the first place, and identical problems once.
 */
function arrangeProblems(problems: readonly Problem[]): Problem[] {
  const sorted = [...problems].sort(compareProblems);
  const kept = new Map<string, number>();
  const out: Problem[] = [];
  for (const problem of sorted) {
    const self = ruleKey(problem.object, problem.rule);
    const other = otherSide(problem);
    const pair = self !== undefined && other !== undefined;
    const key = pair ? `${problem.code}\u0000${[self, other].sort().join("\u0000")}` : formatProblem(problem);
    const at = kept.get(key);
    if (at === undefined) {
      kept.set(key, out.length);
      out.push(problem);
      continue;
    }
    if (!pair) continue;
    // The same problem seen from the other side: name that side's place on the one kept, unless it says it already.
    const first = out[at]!;
    const place = [problem.source, problem.line, problem.column].filter((part) => part !== undefined).join(":");
    if (!("related" in first) && place !== "" && !first.message.includes(place)) {
      out[at] = { ...first, message: `${first.message} (see ${place})` };
    }
  }
  return out;
}

/** Runs `validate` over files and directories together, so conflicts across files are found. */
export async function runValidate(paths: readonly string[], output: "text" | "json", io: CliIo): Promise<number> {
  const read = await readAndLoadRules(paths);
  const loaded = read.loaded;
  const problems = arrangeProblems([...read.problems, ...read.texts.flatMap(booleanKeyProblems)]);
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
