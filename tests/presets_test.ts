// Runs every preset in rules/ against its cases file in rules/cases/: the directory listing is the test list.

import { deepStrictEqual, fail, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { normalizeReference } from "../lib/image/reference.ts";
import type { ImageContext } from "../lib/rules/compile.ts";
import { decide } from "../lib/rules/engine.ts";
import { loadRuleTexts } from "../lib/compat/load.ts";
import { formatProblem } from "../lib/rules/problem.ts";
import type { Labels } from "../lib/rules/selector.ts";
import { readRulePaths } from "../lib/sources/rule_files.ts";

const RULES_DIR = fileURLToPath(new URL("../rules/", import.meta.url));
const PRESET_SUFFIX = ".yaml";
const CASES_SUFFIX = ".yaml";
const CASES_DIR = `${RULES_DIR}cases/`;
const CASE_FIELDS = new Set(["image", "namespace", "podLabels", "namespaceLabels", "expected"]);

/** One row of a cases file: an image as written, where it is admitted, and the reference it must end up as. */
interface Case {
  readonly image: string;
  readonly namespace?: string;
  readonly podLabels?: Labels;
  readonly namespaceLabels?: Labels;
  readonly expected: string;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function readLabels(value: unknown, where: string): Labels | undefined {
  if (value === undefined) return undefined;
  if (!isRecord(value) || !Object.values(value).every((item) => typeof item === "string")) {
    throw new TypeError(`Cannot read ${where}: expected a map of string labels`);
  }
  return value as Labels;
}

function readString(row: Record<string, unknown>, field: string, where: string): string | undefined {
  const value = row[field];
  if (value === undefined) return undefined;
  if (typeof value !== "string" || value === "") {
    throw new TypeError(`Cannot read ${where}.${field}: expected a non-empty string, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Narrows a parsed cases file to rows; throws on anything else, naming the row and field. */
function parseCases(text: string, source: string): Case[] {
  const value: unknown = parse(text);
  if (!Array.isArray(value) || value.length === 0) {
    throw new TypeError(`Cannot read ${source}: expected a non-empty list of cases`);
  }
  return value.map((row: unknown, index) => {
    const where = `${source}[${index}]`;
    if (!isRecord(row)) throw new TypeError(`Cannot read ${where}: expected a case object`);
    const unknown = Object.keys(row).filter((key) => !CASE_FIELDS.has(key));
    if (unknown.length > 0) {
      throw new TypeError(
        `Cannot read ${where}: unknown field(s) ${unknown.map((key) => JSON.stringify(key)).join(", ")}`,
      );
    }
    const image = readString(row, "image", where);
    const expected = readString(row, "expected", where);
    if (image === undefined || expected === undefined) {
      throw new TypeError(`Cannot read ${where}: image and expected are required`);
    }
    const namespace = readString(row, "namespace", where);
    const podLabels = readLabels(row["podLabels"], `${where}.podLabels`);
    const namespaceLabels = readLabels(row["namespaceLabels"], `${where}.namespaceLabels`);
    return {
      image,
      expected,
      ...(namespace === undefined ? {} : { namespace }),
      ...(podLabels === undefined ? {} : { podLabels }),
      ...(namespaceLabels === undefined ? {} : { namespaceLabels }),
    };
  });
}

function contextOf(row: Case): ImageContext {
  return {
    ...(row.namespace === undefined ? {} : { namespace: row.namespace }),
    ...(row.podLabels === undefined ? {} : { podLabels: row.podLabels }),
    ...(row.namespaceLabels === undefined ? {} : { namespaceLabels: row.namespaceLabels }),
  };
}

function formatLabels(labels: Labels): string {
  return Object.entries(labels).map(([key, value]) => `${key}=${value}`).join(",");
}

/** `image @ namespace`, plus the labels when a row gives them, so rows that differ only there stay apart. */
function stepName(row: Case): string {
  const parts = [`${row.image} @ ${row.namespace ?? "(no namespace)"}`];
  if (row.namespaceLabels !== undefined) parts.push(`[namespace ${formatLabels(row.namespaceLabels)}]`);
  if (row.podLabels !== undefined) parts.push(`[pod ${formatLabels(row.podLabels)}]`);
  return parts.join(" ");
}

async function exists(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

const names = [...Deno.readDirSync(RULES_DIR)]
  .filter((entry) => entry.isFile && entry.name.endsWith(PRESET_SUFFIX))
  .map((entry) => entry.name)
  .sort();
const presets = names;
const casesFiles = [...Deno.readDirSync(CASES_DIR)]
  .filter((entry) => entry.isFile && entry.name.endsWith(CASES_SUFFIX))
  .map((entry) => entry.name)
  .sort();

Deno.test("rules/ holds presets", () => {
  ok(presets.length > 0, `no presets found in ${RULES_DIR}`);
});

Deno.test("every cases file in rules/cases/ belongs to a preset", () => {
  const orphans = casesFiles.filter((name) => !presets.includes(name.slice(0, -CASES_SUFFIX.length) + PRESET_SUFFIX));
  deepStrictEqual(orphans, []);
});

Deno.test("rules/ is a catalogue: as one directory, the two Docker Hub presets conflict (README: one preset per ConfigMap)", async () => {
  const read = await readRulePaths([RULES_DIR]);
  deepStrictEqual(read.problems.map(formatProblem), []);
  deepStrictEqual(read.texts.length, presets.length);
  const errors = loadRuleTexts(read.texts).problems.filter((problem) => problem.severity === "error");
  deepStrictEqual(
    errors.map((p) => [p.code, p.source?.slice(RULES_DIR.length), p.line, p.related?.source?.slice(RULES_DIR.length)]),
    [
      ["conflict", "dockerhub-harbor.yaml", 27, "dockerhub-ecr.yaml"],
      ["conflict", "dockerhub-harbor.yaml", 30, "dockerhub-ecr.yaml"],
    ],
  );
});

for (const preset of presets) {
  Deno.test(`preset ${preset}`, async (t) => {
    const casesName = preset.slice(0, -PRESET_SUFFIX.length) + CASES_SUFFIX;
    const casesPath = CASES_DIR + casesName;
    if (!(await exists(casesPath))) fail(`rules/${preset} has no cases file: create rules/cases/${casesName}`);
    const cases = parseCases(await Deno.readTextFile(casesPath), `rules/cases/${casesName}`);

    const read = await readRulePaths([RULES_DIR + preset]);
    deepStrictEqual(read.problems.map(formatProblem), []);
    const loaded = loadRuleTexts(read.texts);
    // Presets are applied as they are: warnings count as much as errors.
    deepStrictEqual(loaded.problems.map(formatProblem), []);
    ok(loaded.ruleSet.ruleCount > 0, `rules/${preset} holds no rules`);

    for (const row of cases) {
      await t.step(stepName(row), () => {
        ok(normalizeReference(row.expected) !== undefined, `expected ${JSON.stringify(row.expected)} is not valid`);
        const context = contextOf(row);
        const decision = decide(loaded.ruleSet, row.image, { context });
        ok(
          decision.action !== "invalid-input" && decision.action !== "invalid-output",
          `${row.image}: ${decision.action}${"error" in decision ? `: ${decision.error.message}` : ""}`,
        );
        const actual = decision.action === "rewrite" || decision.action === "bypass" ? decision.output : decision.input;
        deepStrictEqual(actual, row.expected);
        if (decision.action === "rewrite") {
          // Admitting the rewritten Pod again must change nothing.
          const again = decide(loaded.ruleSet, decision.output, { context });
          ok(
            again.action === "none" || again.action === "keep",
            `${decision.output} is rewritten again (${again.action}${"output" in again ? ` to ${again.output}` : ""})`,
          );
        }
      });
    }
  });
}
