// Cases files for `mirrorhook test`: reading them (with line numbers) and running one case as the webhook would.

import { isMap, isSeq, LineCounter, parseDocument } from "yaml";
import { mutatePod } from "../mutate/pod.ts";
import type { RuleSet } from "../rules/compile.ts";
import { decide, type Decision, describeRule } from "../rules/engine.ts";
import type { Labels } from "../rules/selector.ts";
import { isRecord } from "../util/json.ts";

/** One row: an image as written in a Pod, where it is admitted, and what the Pod must end up with. */
export interface Case {
  readonly image: string;
  readonly namespace?: string;
  readonly podLabels?: Labels;
  readonly namespaceLabels?: Labels;
  readonly expected: string;
  /** Substrings of the admission warnings expected (besides "rewrote ..."); absent: not checked. */
  readonly warnings?: readonly string[];
  /** 1-based line of the row in its file. */
  readonly line: number;
}

/** A cases file as read: its rows, and the rule paths it names (relative to the file) if it names any. */
export interface CasesFile {
  readonly rules?: readonly string[];
  readonly cases: readonly Case[];
}

/** A problem in a cases file, at `source:line`. */
export interface CasesProblem {
  readonly source: string;
  readonly line: number;
  readonly message: string;
}

const CASE_FIELDS = new Set(["image", "namespace", "podLabels", "namespaceLabels", "expected", "warnings"]);
const FILE_FIELDS = new Set(["rules", "cases"]);

function quote(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/**
 * Reads a cases file: a list of rows, or a mapping `{rules: PATH | [PATH...], cases: [rows]}`. Every problem is
 * collected with its line; a file with problems yields no cases.
 */
export function parseCasesText(text: string, source: string): CasesFile | { problems: CasesProblem[] } {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const problems: CasesProblem[] = [];
  const lineOf = (offset: number | undefined) => lineCounter.linePos(offset ?? 0).line;
  const report = (offset: number | undefined, message: string) =>
    problems.push({ source, line: lineOf(offset), message });
  for (const error of doc.errors) report(error.pos[0], `Cannot parse YAML: ${error.message.split("\n")[0]}`);
  if (problems.length > 0) return { problems };

  let rules: string[] | undefined;
  let rowsNode: unknown = doc.contents;
  if (isMap(doc.contents)) {
    const value: unknown = doc.contents.toJSON();
    const unknownKeys = isRecord(value) ? Object.keys(value).filter((key) => !FILE_FIELDS.has(key)) : [];
    if (unknownKeys.length > 0) {
      report(doc.contents.range?.[0], `unknown field(s) ${unknownKeys.map(quote).join(", ")}: expected rules, cases`);
    }
    const named = isRecord(value) ? value["rules"] : undefined;
    if (typeof named === "string" && named !== "") rules = [named];
    else if (Array.isArray(named) && named.length > 0 && named.every((p) => typeof p === "string" && p !== "")) {
      rules = named as string[];
    } else if (named !== undefined) {
      report(doc.contents.range?.[0], `rules: expected a path or a list of paths, got ${quote(named)}`);
    }
    rowsNode = doc.contents.get("cases", true);
  }
  if (!isSeq(rowsNode) || rowsNode.items.length === 0) {
    report(doc.contents?.range?.[0], "expected a non-empty list of cases (or a mapping with rules and cases)");
    return { problems };
  }
  const cases: Case[] = [];
  rowsNode.items.forEach((node, index) => {
    const offset = (node as { range?: [number, number, number] } | null)?.range?.[0];
    const line = lineOf(offset);
    const at = (message: string) => problems.push({ source, line, message: `case ${index + 1}: ${message}` });
    const row: unknown = (node as { toJSON?: () => unknown } | null)?.toJSON?.() ?? null;
    if (!isRecord(row)) {
      at(`expected a mapping with image and expected, got ${quote(row)}`);
      return;
    }
    const unknownKeys = Object.keys(row).filter((key) => !CASE_FIELDS.has(key));
    if (unknownKeys.length > 0) {
      at(`unknown field(s) ${unknownKeys.map(quote).join(", ")}: expected ${[...CASE_FIELDS].join(", ")}`);
    }
    const string = (field: string, required: boolean): string | undefined => {
      const value = row[field];
      if (value === undefined) {
        if (required) at(`${field} is required`);
        return undefined;
      }
      if (typeof value !== "string" || value === "") {
        at(`${field}: expected a non-empty string, got ${quote(value)}`);
        return undefined;
      }
      return value;
    };
    const labels = (field: string): Labels | undefined => {
      const value = row[field];
      if (value === undefined) return undefined;
      if (!isRecord(value) || !Object.values(value).every((item) => typeof item === "string")) {
        at(`${field}: expected a map of string labels, got ${quote(value)}`);
        return undefined;
      }
      return value as Labels;
    };
    const image = string("image", true);
    const expected = string("expected", true);
    const namespace = string("namespace", false);
    const podLabels = labels("podLabels");
    const namespaceLabels = labels("namespaceLabels");
    const warnings = row["warnings"];
    if (warnings !== undefined && !(Array.isArray(warnings) && warnings.every((w) => typeof w === "string"))) {
      at(`warnings: expected a list of strings, got ${quote(warnings)}`);
    }
    if (image === undefined || expected === undefined) return;
    cases.push({
      image,
      expected,
      line,
      ...(namespace === undefined ? {} : { namespace }),
      ...(podLabels === undefined ? {} : { podLabels }),
      ...(namespaceLabels === undefined ? {} : { namespaceLabels }),
      ...(Array.isArray(warnings) ? { warnings: warnings as string[] } : {}),
    });
  });
  if (problems.length > 0) return { problems };
  return { ...(rules === undefined ? {} : { rules }), cases };
}

/** The outcome of one case. */
export interface CaseResult {
  readonly case: Case;
  readonly passed: boolean;
  /** The reference the Pod ends up with. */
  readonly actual: string;
  /** What decided: a rule, the bypass prefix, "no rule matched", or why the Pod was left alone. */
  readonly decidedBy: string;
  /** Admission warnings, without the "rewrote ..." notices. */
  readonly warnings: readonly string[];
  /** Why the case failed, one line each; empty when it passed. */
  readonly failures: readonly string[];
}

function decidedBy(decision: Decision | undefined, skipped: string | undefined): string {
  if (skipped !== undefined) return `Pod left alone (${skipped})`;
  if (decision === undefined) return "no image decided";
  switch (decision.action) {
    case "rewrite":
    case "keep":
      return describeRule(decision.rule);
    case "bypass":
      return "the bypass prefix";
    case "none":
      return "no rule matched";
    case "invalid-input":
      return decision.error.message;
    case "invalid-output":
      return `${decision.rule === undefined ? "the bypass prefix" : describeRule(decision.rule)} (invalid output)`;
  }
}

/** Options of {@linkcode runCase}. */
export interface RunCaseOptions {
  readonly ruleSet: RuleSet;
  readonly bypassPrefix?: string;
}

/**
 * Runs one case as the webhook admits it: a Pod with one container of `image`, the row's Pod labels, namespace and
 * namespace labels (so opt-out labels and excluded namespaces count). It also admits the result again, which must
 * change nothing.
 */
export function runCase(row: Case, options: RunCaseOptions): CaseResult {
  const pod = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "case", ...(row.podLabels === undefined ? {} : { labels: { ...row.podLabels } }) },
    spec: { containers: [{ name: "case", image: row.image }] },
  };
  const result = mutatePod(pod, {
    ruleSet: options.ruleSet,
    ...(row.namespace === undefined ? {} : { namespace: row.namespace }),
    ...(row.namespaceLabels === undefined ? {} : { namespaceLabels: row.namespaceLabels }),
    ...(options.bypassPrefix === undefined ? {} : { bypassPrefix: options.bypassPrefix }),
  });
  const actual = result.changes[0]?.to ?? row.image;
  const decision = result.decisions[0]?.decision;
  const warnings = result.warnings.filter((warning) => !warning.startsWith("mirrorhook: rewrote "));
  const failures: string[] = [];
  if (actual !== row.expected) failures.push(`expected ${row.expected}, got ${actual}`);
  if (row.warnings !== undefined) {
    const unmatched = [...warnings];
    for (const wanted of row.warnings) {
      const at = unmatched.findIndex((warning) => warning.includes(wanted));
      if (at < 0) failures.push(`expected a warning containing ${quote(wanted)}`);
      else unmatched.splice(at, 1);
    }
    for (const extra of unmatched) failures.push(`unexpected warning: ${extra}`);
  }
  if (decision?.action === "rewrite" && actual !== row.image) {
    const context = {
      ...(row.namespace === undefined ? {} : { namespace: row.namespace }),
      podLabels: row.podLabels ?? {},
      ...(row.namespaceLabels === undefined ? {} : { namespaceLabels: row.namespaceLabels }),
    };
    const again = decide(options.ruleSet, actual, { context });
    if (again.action === "rewrite" && again.output !== actual) {
      failures.push(`not idempotent: ${actual} is rewritten again to ${again.output} by ${describeRule(again.rule)}`);
    }
  }
  return {
    case: row,
    passed: failures.length === 0,
    actual,
    decidedBy: decidedBy(decision, result.skipped),
    warnings,
    failures,
  };
}
