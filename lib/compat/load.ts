// Reads rule texts in every accepted format (our objects, RegistryRewriteRule, ImageMap, ImageSwap maps, proxy URL, from/to lists), positioned.

import type { ForeignOptOut, Translation } from "./common.ts";
import type { PodOptOut } from "../rules/compile.ts";
import { wholeTextFormat } from "./formats.ts";
import { type DocumentItem, readDocuments } from "../rules/documents.ts";
import { isFlemzordObject, translateFlemzord } from "./flemzord.ts";
import { isImageMapObject, translateImageMapObjects } from "./imagemap.ts";
import { type CompileResult, compileRuleSet } from "../rules/compile.ts";
import type { FieldPath, Problem } from "../rules/problem.ts";
import { type DraftObject, type RewriteObject, validateObject } from "../rules/schema.ts";

/** Rule files larger than this are refused before parsing (some 15,000 to 20,000 `exact` rules; split larger sets). */
export const MAX_RULE_FILE_BYTES = 2 * 1024 * 1024;

/** The most rules loaded together (from every file): the supported scale, measured by `deno task bench:scale`. */
const MAX_RULES = 20_000;

/** One rule text and the name problems should carry. */
export interface RuleText {
  readonly name: string;
  readonly text: string;
}

/** Objects read from texts, their compiled set, and every problem (errors and warnings), positioned. */
export interface LoadResult extends CompileResult {
  readonly objects: readonly RewriteObject[];
  /**
   * Pod opt-outs of the other tools whose configuration was read (e.g. mutating-registry-webhook's
   * `rewrite-disabled: "true"` annotation): the admission layer must leave such Pods alone too.
   */
  readonly optOuts: readonly PodOptOut[];
}

/** An object read from a text, and how to find its fields there. */
export interface Located {
  readonly object: RewriteObject;
  readonly locate: (path: FieldPath) => { line: number; column: number } | undefined;
  readonly source: string;
}

/** What one text holds: sound objects, drafts of objects with structural errors, and problems. */
export interface ParsedText {
  readonly objects: Located[];
  /** Objects with errors, cut to their sound rules; only for reporting compile problems. */
  readonly drafts: (Located & { readonly draft: DraftObject })[];
  readonly problems: Problem[];
  readonly optOuts: ForeignOptOut[];
}

const ACCEPTED =
  "expected ClusterImageRewrite or ImageRewrite objects, RegistryRewriteRule or ImageMap objects, an ImageSwap map file, a proxy URL, or a list of from/to pairs";

/**
 * Reads one text into objects; problems carry `source`, `line` and `column`. The format is recognised by
 * content; texts in another tool's format are translated into our objects, which are then validated as if
 * they had been written in YAML.
 */
export function parseRuleText(input: RuleText): ParsedText {
  const parsed: ParsedText = { objects: [], drafts: [], problems: [], optOuts: [] };
  const source = input.name;
  const bytes = byteLength(input.text);
  if (bytes > MAX_RULE_FILE_BYTES) {
    parsed.problems.push({
      severity: "error",
      code: "file-too-large",
      message: `Cannot read ${source}: ${bytes} bytes is over the ${MAX_RULE_FILE_BYTES}-byte limit for a rule file`,
      path: "",
      fieldPath: [],
      source,
    });
    return parsed;
  }
  const format = wholeTextFormat(input.text);
  if (format !== undefined) {
    addTranslation(parsed, format.translate(input.text, source), source);
    return parsed;
  }
  const documents = readDocuments(input.text, source);
  parsed.problems.push(...documents.problems);
  const flemzord: DocumentItem[] = [];
  const imageMaps: DocumentItem[] = [];
  for (const item of documents.items) {
    if (isFlemzordObject(item.value)) flemzord.push(item);
    else if (isImageMapObject(item.value)) imageMaps.push(item);
    else if (item.whole && (typeof item.value !== "object" || Array.isArray(item.value))) {
      parsed.problems.push({
        severity: "error",
        code: "not-an-object",
        message: `Cannot read ${source}: not a rule file: ${ACCEPTED}`,
        path: "",
        fieldPath: [],
        source,
        ...(item.locate([]) ?? {}),
      });
    } else addObject(parsed, item.value, item.locate, source);
  }
  // RegistryRewriteRules are read together: their order depends on all of them.
  if (flemzord.length > 0) addTranslation(parsed, translateFlemzord(flemzord, source), source);
  if (imageMaps.length > 0) addTranslation(parsed, translateImageMapObjects(imageMaps, source), source);
  return parsed;
}

function addObject(parsed: ParsedText, value: unknown, locate: Located["locate"], source: string): void {
  const result = validateObject(value);
  for (const found of result.problems) parsed.problems.push({ ...found, source, ...(locate(found.fieldPath) ?? {}) });
  if (result.object !== undefined) parsed.objects.push({ object: result.object, locate, source });
  if (result.draft !== undefined) {
    parsed.drafts.push({ object: result.draft.object, draft: result.draft, locate, source });
  }
}

function addTranslation(parsed: ParsedText, translation: Translation, source: string): void {
  parsed.problems.push(...translation.problems);
  parsed.optOuts.push(...translation.optOuts);
  for (const object of translation.objects) addObject(parsed, object.raw, object.locate, source);
}

/** Reads, validates and compiles rule texts together (so conflicts across files are found). */
export function loadRuleTexts(inputs: readonly RuleText[]): LoadResult {
  return compileParsed(inputs.map(parseRuleText));
}

/** Screens patterns away from the caller's thread (lib/server/pattern_screener.ts); rejects when it cannot. */
export type ScreenPatterns = (sources: readonly string[]) => Promise<unknown>;

/**
 * {@linkcode loadRuleTexts} for servers: every `match` pattern is screened by `screen` (a worker) first, so
 * that compiling finds each verdict cached and the thread that answers admissions never screens. When
 * screening is refused (busy, too slow), the load fails with one `unscreened-pattern` error.
 */
export async function loadRuleTextsScreened(inputs: readonly RuleText[], screen: ScreenPatterns): Promise<LoadResult> {
  const texts = inputs.map(parseRuleText);
  const sources = texts.flatMap((text) =>
    [...text.objects, ...text.drafts].flatMap((entry) => matchPatterns(entry.object.spec.rules))
  );
  try {
    if (sources.length > 0) await screen(sources);
  } catch (error) {
    const found: Problem = {
      severity: "error",
      code: "unscreened-pattern",
      message: `Cannot check the regular expressions of ${inputs.map((input) => input.name).join(", ")}: ${
        error instanceof Error ? error.message : String(error)
      }`,
      path: "",
      fieldPath: [],
      ...(inputs.length === 1 && inputs[0] !== undefined ? { source: inputs[0].name } : {}),
    };
    const empty = compileRuleSet([]);
    return { ...empty, problems: [found], objects: [], optOuts: [] };
  }
  return compileParsed(texts);
}

/** The `match` patterns of rules (as validated, or as drafted). */
export function matchPatterns(rules: readonly unknown[]): string[] {
  return rules.flatMap((rule) =>
    typeof rule === "object" && rule !== null && typeof (rule as { match?: unknown }).match === "string"
      ? [(rule as { match: string }).match]
      : []
  );
}

/**
 * Validates and compiles objects translated from another tool's configuration (for `mirrorhook import`),
 * with every problem placed in that configuration, exactly as loading the file itself would.
 */
export function loadTranslation(translation: Translation, source: string): LoadResult {
  const parsed: ParsedText = { objects: [], drafts: [], problems: [], optOuts: [] };
  addTranslation(parsed, translation, source);
  return compileParsed([parsed]);
}

function compileParsed(texts: readonly ParsedText[]): LoadResult {
  const tooMany = countRules(texts);
  if (tooMany !== undefined) {
    const problems = texts.flatMap((text) => text.problems.filter((problem) => problem.severity === "error"));
    return { ...compileRuleSet([]), problems: [...problems, tooMany], objects: [], optOuts: [] };
  }
  const problems: Problem[] = [];
  const located: Located[] = [];
  const drafts: ParsedText["drafts"] = [];
  const optOuts = new Map<string, ForeignOptOut>();
  for (const result of texts) {
    problems.push(...result.problems);
    located.push(...result.objects);
    drafts.push(...result.drafts);
    for (const optOut of result.optOuts) {
      const key = `${optOut.kind}\u0000${optOut.key}\u0000${optOut.value}`;
      if (!optOuts.has(key)) optOuts.set(key, optOut);
    }
  }
  const where = new Map<RewriteObject, Located>([...located, ...drafts].map((entry) => [entry.object, entry]));
  const compiled = compileRuleSet(located.map((entry) => entry.object), {
    drafts: drafts.map((entry) => entry.draft),
    place: (found, object) => {
      const entry = where.get(object);
      return entry === undefined ? found : { ...found, source: entry.source, ...(entry.locate(found.fieldPath) ?? {}) };
    },
  });
  problems.push(...compiled.problems);
  const podOptOuts = [...optOuts.values()];
  return {
    ruleSet: podOptOuts.length === 0 ? compiled.ruleSet : { ...compiled.ruleSet, optOuts: podOptOuts },
    problems,
    problemsByObject: compiled.problemsByObject,
    inForce: compiled.inForce,
    objects: located.map((entry) => entry.object),
    optOuts: podOptOuts,
  };
}

/** UTF-8 size, computed only when the character count alone cannot settle the limit. */
function byteLength(text: string): number {
  if (text.length > MAX_RULE_FILE_BYTES || text.length * 3 <= MAX_RULE_FILE_BYTES) return text.length;
  return new TextEncoder().encode(text).length;
}

/**
 * The `too-many-rules` error when the texts hold more than {@linkcode MAX_RULES} rules, named after the text
 * that crosses the ceiling; checked before compiling, so an oversized set costs a parse, not a compile.
 */
function countRules(texts: readonly ParsedText[]): Problem | undefined {
  let total = 0;
  let crossing: string | undefined;
  const counts: string[] = [];
  for (const text of texts) {
    let inText = 0;
    for (const entry of text.objects) inText += entry.object.spec.rules.length;
    total += inText;
    if (crossing === undefined && total > MAX_RULES) crossing = text.objects[0]?.source;
    if (inText > 0) counts.push(`${text.objects[0]?.source}: ${inText}`);
  }
  if (crossing === undefined) return undefined;
  return {
    severity: "error",
    code: "too-many-rules",
    message:
      `Cannot load ${crossing}: it brings the rules loaded together to ${total}, over the supported ${MAX_RULES} ` +
      `(rules per file: ${counts.slice(0, 10).join(", ")}${counts.length > 10 ? ", \u2026" : ""})`,
    path: "",
    fieldPath: [],
    source: crossing,
  };
}
