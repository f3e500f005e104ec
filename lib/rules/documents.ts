// Reads YAML or JSON text into documents (List items expanded), each with a way to find its fields' line and column.

import { CORE_SCHEMA, loadAll } from "js-yaml";
import { type Document, isMap, isScalar, isSeq, LineCounter, type Node, parseAllDocuments } from "yaml";
import type { FieldPath, Problem } from "./problem.ts";

const MAX_DOCUMENTS = 10_000;

/** 1-based line and column in a source text. */
export interface Position {
  readonly line: number;
  readonly column: number;
}

/** One object read from a text: a document, or an item of a `kind: ...List` document. */
export interface DocumentItem {
  readonly value: unknown;
  /** Line and column of a field path inside this item (the nearest existing ancestor when it is absent). */
  readonly locate: (path: FieldPath) => Position | undefined;
  /** True when the item is a whole document (not a List item). */
  readonly whole: boolean;
}

/** Items of a text, and syntax problems (errors) and parser warnings, positioned. */
export interface DocumentsResult {
  readonly items: readonly DocumentItem[];
  readonly problems: readonly Problem[];
}

function fileProblem(source: string, message: string): Problem {
  return { severity: "error", code: "yaml-syntax", message, path: "", fieldPath: [], source };
}

/**
 * Parses every document of `text`; a document with syntax errors yields problems and no item, so good
 * documents next to a broken one are still read. Empty documents are skipped, as kubectl does.
 *
 * Two parsers, for speed: `js-yaml` builds plain values about five times faster and with a fraction of the
 * memory of `yaml`'s syntax tree, which matters for files of thousands of rules. It reads every text without
 * anchors (so no alias can multiply a document) that it parses cleanly; `yaml` reads the rest (errors and
 * warnings with positions, aliases with a count limit), and is run on a clean text only when a problem must be
 * placed, to find its line and column. `keep`: a format check's read, whose documents the loading read that follows
 * takes instead of parsing again.
 */
export function readDocuments(text: string, source: string, options: { keep?: boolean } = {}): DocumentsResult {
  const fast = text.includes("&") ? undefined : readFast(text, options.keep === true);
  if (fast === undefined) return readPositioned(text, source);
  if (fast.length > MAX_DOCUMENTS) {
    return {
      items: [],
      problems: [fileProblem(source, `Cannot read ${source}: more than ${MAX_DOCUMENTS} documents`)],
    };
  }
  let tree: PositionedTree | undefined;
  const items: DocumentItem[] = [];
  fast.forEach((value, index) => {
    const locateIn = (base: FieldPath) => (path: FieldPath): Position | undefined => {
      tree ??= positionedTree(text);
      const contents = tree.contents[index];
      if (contents === undefined) return undefined;
      return tree.position(locateOffset(contents, [...base, ...path]));
    };
    addItems(items, value, locateIn);
  });
  return { items, problems: [] };
}

/**
 * The text a format check read and its documents, held weakly: recognising a file's format reads it once to look
 * (`keep`), and loading reads it again in the same synchronous run (see `parseRuleText`), where a weak reference is
 * guaranteed to hold, so the second read is free; the second read forgets it. Other reads keep nothing: a rules file
 * read once was otherwise kept until the next read (up to 2 MiB).
 */
let recent: { text: string; documents: WeakRef<unknown[]> } | undefined;

/** The non-empty documents of a clean text, or undefined when `js-yaml` cannot read it as plain data. */
function readFast(text: string, keep: boolean): unknown[] | undefined {
  const cached = recent?.text === text ? recent.documents.deref() : undefined;
  recent = undefined;
  // Once read again the text is not held any longer (a rules file may be 2 MiB).
  if (cached !== undefined) return cached;
  try {
    const documents = loadAll(text, { schema: CORE_SCHEMA, maxAliases: 0 })
      .filter((value) => value !== null && value !== undefined);
    documents.forEach(detachStrings);
    if (keep) recent = { text, documents: new WeakRef(documents) };
    return documents;
  } catch {
    return undefined;
  }
}

/**
 * Replaces every string in `value` (in place) by a copy of its own. A parser's strings are slices of the text, and
 * V8 keeps a whole text alive while any slice of it lives: the rule set holding a few short strings of each rule
 * would keep every rule file's text in memory (1 MB for 10,000 rules).
 */
function detachStrings(value: unknown): void {
  if (typeof value !== "object" || value === null) return;
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    const field = record[key];
    if (typeof field === "string") record[key] = detached(field);
    else detachStrings(field);
  }
}

function detached(text: string): string {
  // JSON.parse makes a flat string of its own; V8 copies short slices already.
  return text.length < 13 ? text : JSON.parse(JSON.stringify(text));
}

/** `yaml`'s tree of a text that parses cleanly: the contents of each non-empty document, in order. */
interface PositionedTree {
  readonly contents: readonly Node[];
  readonly position: (offset: number | undefined) => Position | undefined;
}

function positionedTree(text: string): PositionedTree {
  const lineCounter = new LineCounter();
  const documents = parseAllDocuments(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const list: Document.Parsed[] = Array.isArray(documents) ? documents : [documents];
  const contents: Node[] = [];
  for (const doc of list) {
    const node = doc.contents as Node | null;
    if (node === null || (isScalar(node) && (node.value === null || node.value === undefined))) continue;
    contents.push(node);
  }
  return { contents, position: (offset) => toPosition(lineCounter, offset) };
}

function toPosition(lineCounter: LineCounter, offset: number | undefined): Position | undefined {
  if (offset === undefined) return undefined;
  const { line, col } = lineCounter.linePos(offset);
  return { line, column: col };
}

/** The whole `yaml` path: syntax errors and warnings positioned, aliases expanded with a limit. */
function readPositioned(text: string, source: string): DocumentsResult {
  const problems: Problem[] = [];
  const items: DocumentItem[] = [];
  const lineCounter = new LineCounter();
  let documents;
  try {
    documents = parseAllDocuments(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  } catch (error) {
    problems.push(
      fileProblem(source, `Cannot parse ${source}: ${error instanceof Error ? error.message : String(error)}`),
    );
    return { items, problems };
  }
  const list = Array.isArray(documents) ? documents : [documents];
  const position = (offset: number | undefined) => toPosition(lineCounter, offset) ?? {};
  if (list.length > MAX_DOCUMENTS) {
    problems.push(fileProblem(source, `Cannot read ${source}: more than ${MAX_DOCUMENTS} documents`));
    return { items, problems };
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
      detachStrings(value);
    } catch (error) {
      problems.push({
        ...fileProblem(source, `Cannot read ${source}: ${error instanceof Error ? error.message : String(error)}`),
        ...position(doc.contents.range?.[0]),
      });
      continue;
    }
    // An empty document (`---` then `---`) reads as null; kubectl skips it, and so do we.
    if (value === null || value === undefined) continue;
    const locateIn = (base: FieldPath) => (path: FieldPath): Position | undefined =>
      toPosition(lineCounter, locateOffset(doc.contents, [...base, ...path]));
    addItems(items, value, locateIn);
  }
  return { items, problems };
}

/** Adds a document, or each item of a `kind: ...List` document. */
function addItems(
  items: DocumentItem[],
  value: unknown,
  locateIn: (base: FieldPath) => DocumentItem["locate"],
): void {
  const listed = listItems(value);
  if (listed === undefined) items.push({ value, locate: locateIn([]), whole: true });
  else listed.forEach((item, i) => items.push({ value: item, locate: locateIn(["items", i]), whole: false }));
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
