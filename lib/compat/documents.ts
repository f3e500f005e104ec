// Reads YAML or JSON text into documents (List items expanded), each with a way to find its fields' line and column.

import { isMap, isScalar, isSeq, LineCounter, type Node, parseAllDocuments } from "yaml";
import type { FieldPath, Problem } from "../rules/problem.ts";
import type { Position } from "./common.ts";

const MAX_DOCUMENTS = 10_000;

/** One object read from a text: a document, or an item of a `kind: …List` document. */
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
 */
export function readDocuments(text: string, source: string): DocumentsResult {
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
  const position = (offset: number | undefined) => {
    if (offset === undefined) return {};
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };
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
    } catch (error) {
      problems.push({
        ...fileProblem(source, `Cannot read ${source}: ${error instanceof Error ? error.message : String(error)}`),
        ...position(doc.contents.range?.[0]),
      });
      continue;
    }
    // An empty document (`---` then `---`) reads as null; kubectl skips it, and so do we.
    if (value === null || value === undefined) continue;
    const locateIn = (base: FieldPath) => (path: FieldPath): Position | undefined => {
      const found = position(locateOffset(doc.contents, [...base, ...path]));
      return found.line === undefined ? undefined : { line: found.line, column: found.column ?? 1 };
    };
    const listed = listItems(value);
    if (listed === undefined) items.push({ value, locate: locateIn([]), whole: true });
    else listed.forEach((item, i) => items.push({ value: item, locate: locateIn(["items", i]), whole: false }));
  }
  return { items, problems };
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
