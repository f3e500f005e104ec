// Runs every fixture in tests/fixtures/compat/ (another tool's file, its cases, its expected problems) as the file and as its import.

import { deepStrictEqual, equal, fail, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { parse, stringify } from "yaml";
import { behaviourOf, FOREIGN_FORMATS, type ForeignFormat } from "../lib/compat/common.ts";
import { detectFormat } from "../lib/compat/formats.ts";
import type { CliIo } from "../lib/cli/io.ts";
import { run } from "../lib/cli/program.ts";
import { normalizeReference } from "../lib/image/reference.ts";
import type { ImageContext, RuleSet } from "../lib/rules/compile.ts";
import { decide } from "../lib/rules/engine.ts";
import { type LoadResult, loadRuleTexts } from "../lib/compat/load.ts";
import { formatProblem, type Problem } from "../lib/rules/problem.ts";
import type { Labels } from "../lib/rules/selector.ts";
import { readRulePaths } from "../lib/sources/rule_files.ts";

const FIXTURES = fileURLToPath(new URL("./fixtures/compat/", import.meta.url));
const CASE_FIELDS = new Set(["image", "namespace", "podLabels", "expected"]);
const UPDATE = Deno.env.get("UPDATE_GOLDEN") === "1";

/** One row of a cases table: an image as written, where it is admitted, and what mirrorhook must make of it. */
interface Case {
  readonly image: string;
  readonly namespace?: string;
  readonly podLabels?: Labels;
  readonly expected: string;
}

/** What a fixture's expect.yaml holds (regenerated with UPDATE_GOLDEN=1, never edited by hand). */
interface Expected {
  readonly detected: string;
  readonly problems: readonly ProblemSummary[];
  readonly optOuts: readonly { kind: string; key: string; value: string }[];
}

interface ProblemSummary {
  readonly severity: string;
  readonly code: string;
  readonly behaviour?: string;
  readonly line?: number;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function parseCases(text: string, source: string): Case[] {
  const value: unknown = parse(text);
  if (!Array.isArray(value) || value.length === 0) throw new TypeError(`Cannot read ${source}: expected cases`);
  return value.map((row: unknown, index) => {
    const where = `${source}[${index}]`;
    if (!isRecord(row)) throw new TypeError(`Cannot read ${where}: expected a case object`);
    const unknown = Object.keys(row).filter((key) => !CASE_FIELDS.has(key));
    if (unknown.length > 0) throw new TypeError(`Cannot read ${where}: unknown field(s) ${unknown.join(", ")}`);
    const { image, expected, namespace, podLabels } = row;
    if (typeof image !== "string" || typeof expected !== "string") {
      throw new TypeError(`Cannot read ${where}: image and expected are required strings`);
    }
    if (namespace !== undefined && typeof namespace !== "string") throw new TypeError(`${where}.namespace`);
    if (
      podLabels !== undefined && (!isRecord(podLabels) || !Object.values(podLabels).every((v) => typeof v === "string"))
    ) {
      throw new TypeError(`Cannot read ${where}.podLabels: expected string labels`);
    }
    return {
      image,
      expected,
      ...(namespace === undefined ? {} : { namespace }),
      ...(podLabels === undefined ? {} : { podLabels: podLabels as Labels }),
    };
  });
}

function contextOf(row: Case): ImageContext {
  return {
    ...(row.namespace === undefined ? {} : { namespace: row.namespace }),
    ...(row.podLabels === undefined ? {} : { podLabels: row.podLabels }),
  };
}

function stepName(row: Case): string {
  const labels = row.podLabels === undefined
    ? ""
    : ` [pod ${Object.entries(row.podLabels).map(([k, v]) => `${k}=${v}`).join(",")}]`;
  return `${row.image} @ ${row.namespace ?? "(no namespace)"}${labels}`;
}

function summary(problem: Problem): ProblemSummary {
  const behaviour = behaviourOf(problem);
  return {
    severity: problem.severity,
    code: problem.code,
    ...(behaviour === undefined ? {} : { behaviour }),
    ...(problem.line === undefined ? {} : { line: problem.line }),
  };
}

function sortSummaries(list: readonly ProblemSummary[]): ProblemSummary[] {
  return [...list].sort((a, b) =>
    (a.line ?? 0) - (b.line ?? 0) || `${a.behaviour ?? ""}${a.code}`.localeCompare(`${b.behaviour ?? ""}${b.code}`)
  );
}

/** Problems about the objects (validation and compilation), which the imported form must reproduce. */
function objectProblems(problems: readonly Problem[]): string[] {
  return problems.filter((problem) => problem.object !== undefined && behaviourOf(problem) === undefined)
    .map((problem) => `${problem.severity} ${problem.code} ${problem.object} ${problem.path}`).sort();
}

/** The format a fixture folder is for: its name, or its name's start before `-<variant>`. */
function formatOf(name: string): ForeignFormat | undefined {
  return [...FOREIGN_FORMATS].sort((a, b) => b.length - a.length)
    .find((format) => name === format || name.startsWith(`${format}-`));
}

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const io: CliIo = {
    stdout: (text) => void (out += text),
    stderr: (text) => void (err += text),
    readText: (path) => Deno.readTextFile(path),
  };
  const code = await run(args, io);
  return { code, out, err };
}

function resulting(ruleSet: RuleSet, row: Case): string {
  const decision = decide(ruleSet, row.image, { context: contextOf(row) });
  ok(
    decision.action !== "invalid-input" && decision.action !== "invalid-output",
    `${row.image}: ${decision.action}${"error" in decision ? `: ${decision.error.message}` : ""}`,
  );
  const output = decision.action === "rewrite" || decision.action === "bypass" ? decision.output : decision.input;
  if (decision.action === "rewrite") {
    const again = decide(ruleSet, output, { context: contextOf(row) });
    // A rewrite onto itself is stable too: an ImageSwap [REPLACE] glob can match its own output.
    const stable = again.action === "none" || again.action === "keep" ||
      (again.action === "rewrite" && again.output === output);
    ok(stable, `${output} is rewritten again (${again.action})`);
  }
  return output;
}

const fixtures = [...Deno.readDirSync(FIXTURES)].filter((entry) => entry.isDirectory).map((entry) => entry.name)
  .sort();

Deno.test("tests/fixtures/compat/ holds a fixture for every format, and only fixtures", () => {
  deepStrictEqual(fixtures.filter((name) => formatOf(name) === undefined), []);
  deepStrictEqual(FOREIGN_FORMATS.filter((format) => !fixtures.some((name) => formatOf(name) === format)), []);
});

for (const name of fixtures) {
  const format = formatOf(name);
  Deno.test(`fixture ${name}`, async (t) => {
    if (format === undefined) fail(`${name}: name it after a format (${FOREIGN_FORMATS.join(", ")})`);
    const dir = `${FIXTURES}${name}/`;
    const rulesDir = `${dir}rules`;
    const cases = parseCases(await Deno.readTextFile(`${dir}cases.yaml`), `${name}/cases.yaml`);

    // The directory is read as a ConfigMap mount would be: every file in it, whatever its name.
    const read = await readRulePaths([rulesDir]);
    deepStrictEqual(read.problems.map(formatProblem), []);
    equal(read.texts.length, 1, `${name}/rules/ must hold exactly one file`);
    const [text] = read.texts;
    if (text === undefined) return;
    const original = loadRuleTexts(read.texts);
    const actual: Expected = {
      detected: detectFormat(text.text),
      problems: sortSummaries(original.problems.map(summary)),
      optOuts: original.optOuts.map(({ kind, key, value }) => ({ kind, key, value })),
    };
    const expectPath = `${dir}expect.yaml`;
    if (UPDATE) await Deno.writeTextFile(expectPath, stringify(actual));
    const expected = parse(await Deno.readTextFile(expectPath)) as Expected;

    await t.step("is recognised by content", () => equal(actual.detected, expected.detected));
    await t.step("loads with the expected problems, each naming its behaviour and line", () => {
      deepStrictEqual(actual.problems, sortSummaries(expected.problems));
      deepStrictEqual(original.problems.filter((p) => p.severity === "error").map(formatProblem), []);
      for (const problem of original.problems) equal(problem.source, text.name);
    });
    await t.step("reports the Pod opt-outs the tool honoured", () => deepStrictEqual(actual.optOuts, expected.optOuts));

    const imported = await cli(["import", "--from", format, text.name]);
    equal(imported.code, 0, imported.err);
    const reloaded: LoadResult = loadRuleTexts([{ name: `${name}.imported.yaml`, text: imported.out }]);
    await t.step("imports to our objects, which load the same", () => {
      equal(detectFormat(imported.out), "objects");
      deepStrictEqual(reloaded.problems.filter((p) => p.severity === "error").map(formatProblem), []);
      deepStrictEqual(objectProblems(reloaded.problems), objectProblems(original.problems));
      equal(reloaded.ruleSet.hash, original.ruleSet.hash);
    });

    for (const row of cases) {
      await t.step(stepName(row), () => {
        ok(normalizeReference(row.expected) !== undefined, `expected ${row.expected} is not valid`);
        equal(resulting(original.ruleSet, row), row.expected, "file as it is");
        equal(resulting(reloaded.ruleSet, row), row.expected, "imported form");
      });
    }

    await t.step("mirrorhook rewrite --rules reads the file", async () => {
      const groups = new Map<string, Case[]>();
      for (const row of cases) {
        const key = JSON.stringify([row.namespace ?? null, row.podLabels ?? null]);
        groups.set(key, [...(groups.get(key) ?? []), row]);
      }
      for (const rows of groups.values()) {
        const [first] = rows;
        if (first === undefined) continue;
        const args = ["rewrite", "--rules", rulesDir];
        if (first.namespace !== undefined) args.push("--namespace", first.namespace);
        for (const [key, value] of Object.entries(first.podLabels ?? {})) args.push("--pod-label", `${key}=${value}`);
        const result = await cli([...args, ...rows.map((row) => row.image)]);
        equal(result.code, 0, result.err);
        deepStrictEqual(result.out.trimEnd().split("\n"), rows.map((row) => row.expected));
      }
    });
  });
}

Deno.test("a directory with a file in no known format is an error naming that file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mirrorhook-compat-" });
  try {
    await Deno.writeTextFile(`${dir}/maps`, "default::harbor.example.com\n");
    await Deno.writeTextFile(`${dir}/README.md`, "Mounted from the imageswap-maps ConfigMap.\n");
    await Deno.mkdir(`${dir}/..2024_01_01`);
    await Deno.writeTextFile(`${dir}/.hidden`, "not read\n");
    const read = await readRulePaths([dir]);
    deepStrictEqual(read.texts.map((text) => text.name), [`${dir}/README.md`, `${dir}/maps`]);
    const loaded = loadRuleTexts(read.texts);
    const errors = loaded.problems.filter((problem) => problem.severity === "error");
    deepStrictEqual(errors.map((p) => [p.code, p.source, p.line]), [["not-an-object", `${dir}/README.md`, 1]]);
    deepStrictEqual(loaded.objects.map((object) => object.metadata.name), ["imageswap-maps"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("texts of several formats load together, and conflicts across them are found", () => {
  const loaded = loadRuleTexts([
    { name: "maps", text: "default::\n[EXACT]busybox:1.36::a.example.com/busybox:1.36\n" },
    { name: "relocation.yaml", text: "- from: docker.io/library/busybox:1.36\n  to: b.example.com/busybox:1.36\n" },
  ]);
  const conflicts = loaded.problems.filter((problem) => problem.code === "conflict");
  // Reported once, on the file read second, naming the first.
  deepStrictEqual(conflicts.map((p) => [p.source, p.line, p.related?.source, p.related?.line]), [
    ["relocation.yaml", 1, "maps", 2],
  ]);
});

Deno.test("mirrorhook import refuses a file with errors and prints nothing", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "mirrorhook-import-" });
  try {
    await Deno.writeTextFile(
      `${dir}/rrr.yaml`,
      `apiVersion: dev.flemzord.fr/v1alpha1
kind: RegistryRewriteRule
metadata: { name: hub }
spec:
  rules:
    - { match: '^docker\\.io/(.*)', replace: '\${ECR_REGISTRY}/dockerhub/$1' }
`,
    );
    await t.step("a replacement that cannot yield a reference", async () => {
      const result = await cli(["import", "--from", "flemzord", `${dir}/rrr.yaml`]);
      equal(result.code, 1);
      equal(result.out, "");
      ok(result.err.includes(`${dir}/rrr.yaml:6:`), result.err);
    });
    await t.step("a missing file", async () => {
      const result = await cli(["import", "--from", "flemzord", `${dir}/rrr.yaml`.replace("rrr.yaml", "missing")]);
      equal(result.code, 1);
    });
    await t.step("no --from: recognised as RegistryRewriteRules, refused for the same error", async () => {
      const result = await cli(["import", `${dir}/rrr.yaml`]);
      equal(result.code, 1);
      equal(result.out, "");
      ok(result.err.includes("(--from flemzord)") && result.err.includes(`${dir}/rrr.yaml:6:`), result.err);
    });
    await t.step(
      "an unknown tool",
      async () => equal((await cli(["import", "--from", "x", `${dir}/rrr.yaml`])).code, 2),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
