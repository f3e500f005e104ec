// Recognises by content whether a text is an ImageSwap map file or a from/to list (the table is in formats.ts).

import { readDocuments } from "../rules/documents.ts";
import { imageMapPairs } from "./imagemap.ts";
import { significantLines } from "./proxy_url.ts";

const YAML_STRUCTURE = [
  /^\s*-(\s|$)/, // a sequence item
  /^\s*[{"']/, // flow mapping or quoted key
  /^\s*\[(?!EXACT\]|REPLACE\])/, // flow sequence, but not ImageSwap's keywords
  /^---/, // a document marker
];

/** The key ImageSwap would read from a line (spaces removed, comment cut), or undefined without a colon. */
function imageSwapKey(line: string): string | undefined {
  const hash = line.indexOf("#");
  const body = (hash < 0 ? line : line.slice(0, hash)).replace(/\s+/g, "");
  if (body.includes("::")) return body.slice(0, body.indexOf("::"));
  if (body.includes(":")) return body.slice(0, body.indexOf(":"));
  return undefined;
}

function isImageSwapKey(key: string): boolean {
  return key === "default" || key === "noswap_wildcards" || key.startsWith("[EXACT]") ||
    key.startsWith("[REPLACE]") || (key.includes(".") && !/[{}"'[\]]/.test(key));
}

/**
 * True for an ImageSwap map file: no line has YAML structure (sequences, flow syntax, document markers), no
 * key is a plain word other than ImageSwap's (`apiVersion:`, `name:` are not registry names, so YAML objects,
 * nested or flat, are never taken for a map file), and at least one line has a key ImageSwap knows
 * (`default`, `noswap_wildcards`, `[EXACT]...`, `[REPLACE]...`, or a registry with a dot).
 */
export function isImageSwapText(text: string): boolean {
  const lines = significantLines(text);
  if (lines.length === 0) return false;
  let known = 0;
  for (const { text: line } of lines) {
    if (YAML_STRUCTURE.some((pattern) => pattern.test(line))) return false;
    const key = imageSwapKey(line);
    if (key === undefined) continue;
    if (isImageSwapKey(key)) known++;
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(key) && key !== "default") return false;
  }
  return known > 0;
}

/** True for a from/to list: `- from: ... / to: ...` items, or `map:` holding them (YAML or JSON). */
export function isImageMapText(text: string): boolean {
  const first = significantLines(text)[0]?.text.trimStart() ?? "";
  if (!/^(-|\[|map\s*:|\{\s*"map")/.test(first)) return false;
  // Kept for the read that follows when the text is loaded (parseRuleText), which then costs nothing.
  const { items, problems } = readDocuments(text, "", { keep: true });
  if (problems.some((problem) => problem.severity === "error") || items.length !== 1) return false;
  const [item] = items;
  return item !== undefined && item.whole && imageMapPairs(item.value) !== undefined;
}
