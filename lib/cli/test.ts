// `mirrorhook test [PATH]`: finds cases files and their rules, runs every case, prints a pass/fail table.

import { basename, dirname, join, relative, resolve } from "node:path";
import { formatProblem, hasErrors } from "../rules/problem.ts";
import { readAndLoadRules } from "../sources/rule_files.ts";
import { type CaseResult, parseCasesText, runCase } from "./cases.ts";
import { type CliIo, EXIT } from "./io.ts";

/** The file a directory may hold to name its rules and cases together. */
const TEST_FILE = "mirrorhook-test.yaml";
const CASES_DIR = "cases";
const YAML_SUFFIXES = [".yaml", ".yml"];

/** Options of `test`, as parsed. */
export interface TestOptions {
  /** Rules for every cases file, instead of the ones each names or sits next to. */
  readonly rules?: readonly string[];
  readonly output: "text" | "json";
  readonly bypassPrefix?: string;
}

/** The outcome of one suite. */
interface SuiteResult {
  readonly cases: string;
  readonly rules: readonly string[];
  /** Problems that stopped the suite (cases file or rules): it counts as failed. */
  readonly errors: readonly string[];
  /** Rule warnings, printed but not failing. */
  readonly warnings: readonly string[];
  readonly results: readonly CaseResult[];
}

async function stat(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.stat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

function isYaml(name: string): boolean {
  return YAML_SUFFIXES.some((suffix) => name.endsWith(suffix)) && !name.startsWith(".");
}

/** `dir/cases/name.yaml` -> `dir/name.yaml` (or `.yml`), when that file exists. */
async function conventionalRules(casesPath: string): Promise<string | undefined> {
  const dir = dirname(casesPath);
  if (basename(dir) !== CASES_DIR) return undefined;
  const stem = basename(casesPath).replace(/\.ya?ml$/, "");
  for (const suffix of YAML_SUFFIXES) {
    const candidate = join(dirname(dir), stem + suffix);
    if ((await stat(candidate))?.isFile === true) return candidate;
  }
  return undefined;
}

/** Cases files under `path`: the file itself, or a directory's mirrorhook-test.yaml and cases/*.yaml. */
async function findCasesFiles(path: string): Promise<string[] | string> {
  const info = await stat(path);
  if (info === undefined) return `Cannot read ${path}: no such file or directory`;
  if (info.isFile) return [path];
  if (!info.isDirectory) return `Cannot read ${path}: not a file or directory`;
  const found: string[] = [];
  if ((await stat(join(path, TEST_FILE)))?.isFile === true) found.push(join(path, TEST_FILE));
  const casesDir = basename(resolve(path)) === CASES_DIR ? path : join(path, CASES_DIR);
  if ((await stat(casesDir))?.isDirectory === true) {
    const names: string[] = [];
    for await (const entry of Deno.readDir(casesDir)) if (entry.isFile && isYaml(entry.name)) names.push(entry.name);
    found.push(...names.sort().map((name) => join(casesDir, name)));
  }
  if (found.length === 0) {
    return `No cases found in ${path}: expected ${CASES_DIR}/<name>.yaml next to <name>.yaml, or ${TEST_FILE}`;
  }
  return found;
}

function display(path: string): string {
  const shown = relative(Deno.cwd(), path);
  return shown === "" ? "." : shown.startsWith("..") ? path : shown;
}

async function runSuite(casesPath: string, options: TestOptions): Promise<SuiteResult> {
  const cases = display(casesPath);
  const failed = (rules: readonly string[], errors: string[]): SuiteResult => ({
    cases,
    rules,
    errors,
    warnings: [],
    results: [],
  });
  let text: string;
  try {
    text = await Deno.readTextFile(casesPath);
  } catch (error) {
    return failed([], [`Cannot read ${cases}: ${error instanceof Error ? error.message : String(error)}`]);
  }
  const parsed = parseCasesText(text, cases);
  if ("problems" in parsed) return failed([], parsed.problems.map((p) => `${p.source}:${p.line}: ${p.message}`));
  let rules: readonly string[];
  if (options.rules !== undefined && options.rules.length > 0) rules = options.rules;
  else if (parsed.rules !== undefined) rules = parsed.rules.map((path) => join(dirname(casesPath), path));
  else {
    const conventional = await conventionalRules(casesPath);
    if (conventional === undefined) {
      return failed([], [
        `No rules for ${cases}: name them with a rules: field, put the file in ${CASES_DIR}/ next to its rules file, or pass --rules`,
      ]);
    }
    rules = [conventional];
  }
  const shownRules = rules.map(display);
  const { loaded, problems } = await readAndLoadRules(rules);
  const warnings = problems.filter((p) => p.severity !== "error").map(formatProblem);
  if (hasErrors(problems)) {
    return { ...failed(shownRules, problems.filter((p) => p.severity === "error").map(formatProblem)), warnings };
  }
  const results = parsed.cases.map((row) =>
    runCase(row, {
      ruleSet: loaded.ruleSet,
      ...(options.bypassPrefix === undefined ? {} : { bypassPrefix: options.bypassPrefix }),
    })
  );
  return { cases, rules: shownRules, errors: [], warnings, results };
}

function pad(text: string, width: number): string {
  return text + " ".repeat(Math.max(0, width - text.length));
}

function formatTable(suite: SuiteResult): string {
  const lines = [`${suite.cases} (rules: ${suite.rules.length === 0 ? "none" : suite.rules.join(", ")})`];
  for (const error of suite.errors) lines.push(`  ERROR ${error}`);
  for (const warning of suite.warnings) lines.push(`  warning ${warning}`);
  if (suite.results.length > 0) {
    const rows = suite.results.map((result) => [
      result.passed ? "pass" : "FAIL",
      String(result.case.line),
      result.case.image,
      result.case.namespace ?? "-",
      result.actual,
    ]);
    const header = ["RESULT", "LINE", "IMAGE", "NAMESPACE", "RESULTING REFERENCE"];
    const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
    const format = (row: readonly string[]) =>
      `  ${row.map((cell, column) => column === row.length - 1 ? cell : pad(cell, widths[column]!)).join("  ")}`;
    lines.push(format(header));
    suite.results.forEach((result, index) => {
      lines.push(format(rows[index]!));
      if (result.passed) return;
      for (const failure of result.failures) lines.push(`        ${failure}`);
      lines.push(`        decided by ${result.decidedBy}`);
      for (const warning of result.warnings) lines.push(`        warning: ${warning}`);
    });
  }
  return `${lines.join("\n")}\n`;
}

function suitePassed(suite: SuiteResult): boolean {
  return suite.errors.length === 0 && suite.results.every((result) => result.passed);
}

/** Runs `test`: exit 0 when every case of every cases file passes, 1 otherwise. */
export async function runTest(paths: readonly string[], options: TestOptions, io: CliIo): Promise<number> {
  const suites: string[] = [];
  const errors: string[] = [];
  for (const path of paths.length === 0 ? ["."] : paths) {
    const found = await findCasesFiles(path);
    if (typeof found === "string") errors.push(found);
    else suites.push(...found);
  }
  const results: SuiteResult[] = [];
  for (const suite of suites) results.push(await runSuite(suite, options));
  const all = results.flatMap((suite) => suite.results);
  const passed = all.filter((result) => result.passed).length;
  const ok = errors.length === 0 && results.every(suitePassed);
  if (options.output === "json") {
    io.stdout(`${
      JSON.stringify(
        {
          passed: ok,
          errors,
          suites: results.map((suite) => ({
            cases: suite.cases,
            rules: suite.rules,
            errors: suite.errors,
            warnings: suite.warnings,
            results: suite.results.map((result) => ({
              line: result.case.line,
              image: result.case.image,
              ...(result.case.namespace === undefined ? {} : { namespace: result.case.namespace }),
              expected: result.case.expected,
              actual: result.actual,
              passed: result.passed,
              decidedBy: result.decidedBy,
              failures: result.failures,
              warnings: result.warnings,
            })),
          })),
        },
        null,
        2,
      )
    }\n`);
  } else {
    for (const error of errors) io.stdout(`ERROR ${error}\n`);
    for (const suite of results) io.stdout(`${formatTable(suite)}\n`);
    const broken = results.filter((suite) => suite.errors.length > 0).length;
    io.stdout(
      `${results.length} cases file(s), ${all.length} case(s): ${passed} passed, ${all.length - passed} failed${
        broken + errors.length === 0 ? "" : `, ${broken + errors.length} file(s) not run`
      }\n`,
    );
  }
  return ok ? EXIT.ok : EXIT.failed;
}
