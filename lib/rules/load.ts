// Reads rule objects from YAML or JSON text (multi-document, Lists) and places every problem at its line and column.

import { isMap, isScalar, isSeq, LineCounter, type Node, parseAllDocuments } from "yaml";
import { type CompileResult, compileRuleSet } from "./compile.ts";
import type { FieldPath, Problem } from "./problem.ts";
import { type DraftObject, type RewriteObject, validateObject } from "./schema.ts";

/** Rule files larger than this are refused before parsing. */
export const MAX_RULE_FILE_BYTES = 8 * 1024 * 1024;
const MAX_DOCUMENTS = 10_000;

/** One rule text and the name problems should carry. */
export interface RuleText {
  readonly name: string;
  readonly text: string;
}

/** Objects read from texts, their compiled set, and every problem (errors and warnings), positioned. */
export interface LoadResult extends CompileResult {
  readonly objects: readonly RewriteObject[];
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
}

/** Reads one text into objects; problems carry `source`, `line` and `column`. */
export function parseRuleText(input: RuleText): ParsedText {
  const problems: Problem[] = [];
  const objects: Located[] = [];
  const drafts: ParsedText["drafts"] = [];
  const source = input.name;
  const bytes = byteLength(input.text);
  if (bytes > MAX_RULE_FILE_BYTES) {
    problems.push({
      severity: "error",
      code: "file-too-large",
      message: `Cannot read ${source}: ${bytes} bytes is over the ${MAX_RULE_FILE_BYTES}-byte limit for a rule file`,
      path: "",
      fieldPath: [],
      source,
    });
    return { objects, drafts, problems };
  }
  const lineCounter = new LineCounter();
  let documents;
  try {
    documents = parseAllDocuments(input.text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  } catch (error) {
    problems.push(
      fileProblem(source, `Cannot parse ${source}: ${error instanceof Error ? error.message : String(error)}`),
    );
    return { objects, drafts, problems };
  }
  const list = Array.isArray(documents) ? documents : [documents];
  const position = (offset: number | undefined) => {
    if (offset === undefined) return {};
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };
  if (list.length > MAX_DOCUMENTS) {
    problems.push(fileProblem(source, `Cannot read ${source}: more than ${MAX_DOCUMENTS} documents`));
    return { objects, drafts, problems };
  }
  for (const doc of list) {
    if (doc.errors.length > 0) {
      for (const error of doc.errors) {
        problems.push({
          ...fileProblem(source, `Cannot parse ${source}: ${error.message.split("\n")[0]}`),
          ...position(error.pos[0]),
        });
      }
      continue;
    }
    for (const warning of doc.warnings) {
      problems.push({
        ...fileProblem(source, `Check ${source}: ${warning.message.split("\n")[0]}`),
        severity: "warning",
        ...position(warning.pos[0]),
      });
    }
    if (doc.contents === null) continue;
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (error) {
      problems.push({
        ...fileProblem(source, `Cannot read ${source}: ${error instanceof Error ? error.message : String(error)}`),
        ...position(doc.contents.range?.[0]),
      });
      continue;
    }
    // An empty document (`---` then `---`) reads as null; kubectl skips it, and so do we.
    if (value === null || value === undefined) continue;
    const locateIn = (base: FieldPath) => (path: FieldPath) => {
      const found = position(locateOffset(doc.contents, [...base, ...path]));
      return found.line === undefined ? undefined : { line: found.line, column: found.column ?? 1 };
    };
    const items = listItems(value);
    const entries: [unknown, FieldPath][] = items === undefined
      ? [[value, []]]
      : items.map((item, i) => [item, ["items", i]]);
    for (const [item, base] of entries) {
      const result = validateObject(item);
      const locate = locateIn(base);
      for (const found of result.problems) {
        problems.push({ ...found, source, ...(locate(found.fieldPath) ?? {}) });
      }
      if (result.object !== undefined) objects.push({ object: result.object, locate, source });
      if (result.draft !== undefined) drafts.push({ object: result.draft.object, draft: result.draft, locate, source });
    }
  }
  return { objects, drafts, problems };
}

/** Reads, validates and compiles rule texts together (so conflicts across files are found). */
export function loadRuleTexts(inputs: readonly RuleText[]): LoadResult {
  const problems: Problem[] = [];
  const located: Located[] = [];
  const drafts: ParsedText["drafts"] = [];
  for (const input of inputs) {
    const result = parseRuleText(input);
    problems.push(...result.problems);
    located.push(...result.objects);
    drafts.push(...result.drafts);
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
  return { ruleSet: compiled.ruleSet, problems, objects: located.map((entry) => entry.object) };
}

/** UTF-8 size, computed only when the character count alone cannot settle the limit. */
function byteLength(text: string): number {
  if (text.length > MAX_RULE_FILE_BYTES || text.length * 3 <= MAX_RULE_FILE_BYTES) return text.length;
  return new TextEncoder().encode(text).length;
}

function fileProblem(source: string, message: string): Problem {
  return { severity: "error", code: "yaml-syntax", message, path: "", fieldPath: [], source };
}

function listItems(value: unknown): unknown[] | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const record = value as Record<string, unknown>;
  const kind = record["kind"];
  if (typeof kind === "string" && kind.endsWith("List") && Array.isArray(record["items"])) return record["items"];
  return undefined;
}

function locateOffset(root: unknown, path: FieldPath): number | undefined {
  let node = root as Node | null | undefined;
  let offset = node?.range?.[0];
  for (const segment of path) {
    if (isMap(node)) {
      const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === String(segment));
      if (pair === undefined) break;
      offset = (pair.key as Node).range?.[0] ?? offset;
      node = pair.value as Node | null;
    } else if (isSeq(node) && typeof segment === "number") {
      const item = node.items[segment] as Node | undefined;
      if (item === undefined) break;
      offset = item.range?.[0] ?? offset;
      node = item;
    } else break;
  }
  return offset;
}
