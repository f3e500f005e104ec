// Recognises by content which format a rule text is in: Kubernetes-style objects, an ImageSwap map file, a proxy URL, a from/to list.

import { API_GROUP } from "../rules/schema.ts";
import { readDocuments } from "../rules/documents.ts";
import { type ForeignFormat, TOOL_NAMES } from "./common.ts";
import { FLEMZORD_KIND, isFlemzordObject } from "./flemzord.ts";
import { imageMapPairs, isImageMapObject } from "./imagemap.ts";
import { isProxyUrlText, significantLines } from "./proxy_url.ts";

/**
 * How a text is read. `objects` covers YAML and JSON documents of any kind (mirrorhook's own objects,
 * RegistryRewriteRule and ImageMap objects, each recognised per document), and is the fallback, so that
 * a broken YAML file gets YAML errors.
 */
export type TextFormat = "objects" | "imageswap" | "proxy-url" | "imagemap";

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
 * (`default`, `noswap_wildcards`, `[EXACT]…`, `[REPLACE]…`, or a registry with a dot).
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

/** True for a from/to list: `- from: … / to: …` items, or `map:` holding them (YAML or JSON). */
export function isImageMapText(text: string): boolean {
  const first = significantLines(text)[0]?.text.trimStart() ?? "";
  if (!/^(-|\[|map\s*:|\{\s*"map")/.test(first)) return false;
  const { items, problems } = readDocuments(text, "");
  if (problems.some((problem) => problem.severity === "error") || items.length !== 1) return false;
  const [item] = items;
  return item !== undefined && item.whole && imageMapPairs(item.value) !== undefined;
}

/** Which reader a text needs; see {@linkcode TextFormat}. */
export function detectFormat(text: string): TextFormat {
  if (significantLines(text).length === 0) return "objects";
  if (isImageMapText(text)) return "imagemap";
  if (isProxyUrlText(text)) return "proxy-url";
  if (isImageSwapText(text)) return "imageswap";
  return "objects";
}

/** What a text looks like to `mirrorhook import`: the foreign format it is in (when one), and words for people. */
export interface TextDescription {
  /** The tool whose configuration this is; undefined when it is none of theirs (or cannot be told). */
  readonly format?: ForeignFormat;
  /** True when it holds mirrorhook's own objects, which need no import. */
  readonly mirrorhook: boolean;
  /** True when it holds Kubernetes-style objects (documents with a kind), whatever their kind. */
  readonly objects?: boolean;
  /** `RegistryRewriteRule objects of mutating-registry-webhook (2)`, `Kubernetes objects of kind Deployment`, … */
  readonly description: string;
}

function plural(count: number, word: string): string {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

/** Recognises which tool's configuration `text` is, and says what it looks like (for `import` without `--from`). */
export function describeText(text: string): TextDescription {
  const lines = significantLines(text);
  if (lines.length === 0) return { mirrorhook: false, description: "an empty file" };
  switch (detectFormat(text)) {
    case "imagemap":
      return { format: "imagemap", mirrorhook: false, description: `a from/to list of ${TOOL_NAMES.imagemap}` };
    case "proxy-url":
      return { format: "proxy-url", mirrorhook: false, description: `a PROXY_URL of ${TOOL_NAMES["proxy-url"]}` };
    case "imageswap":
      return {
        format: "imageswap",
        mirrorhook: false,
        description: `an ImageSwap map file (${plural(lines.length, "line")})`,
      };
    case "objects":
      break;
  }
  const { items, problems } = readDocuments(text, "");
  if (items.length === 0) {
    const syntax = problems.some((problem) => problem.severity === "error");
    return { mirrorhook: false, description: syntax ? "text that is not valid YAML or JSON" : "no objects" };
  }
  const flemzord = items.filter((item) => isFlemzordObject(item.value)).length;
  const imageMap = items.filter((item) => isImageMapObject(item.value)).length;
  const kinds = new Map<string, number>();
  let ours = 0;
  for (const { value } of items) {
    const record = typeof value === "object" && value !== null && !Array.isArray(value)
      ? value as Record<string, unknown>
      : {};
    const apiVersion = record["apiVersion"];
    if (typeof apiVersion === "string" && apiVersion.startsWith(`${API_GROUP}/`)) ours++;
    const kind = typeof record["kind"] === "string" ? record["kind"] : "(no kind)";
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  }
  if (flemzord > 0 && flemzord >= imageMap && flemzord >= ours) {
    return {
      format: "flemzord",
      mirrorhook: false,
      objects: true,
      description: `${FLEMZORD_KIND} objects of ${TOOL_NAMES.flemzord} (${flemzord})`,
    };
  }
  if (imageMap > 0 && imageMap >= ours) {
    return {
      format: "imagemap",
      mirrorhook: false,
      objects: true,
      description: `ImageMap objects of ${TOOL_NAMES.imagemap}`,
    };
  }
  const kindList = [...kinds.entries()].map(([kind, count]) => count === 1 ? kind : `${kind} ×${count}`).join(", ");
  if (ours > 0) return { mirrorhook: true, objects: true, description: `mirrorhook objects (${kindList})` };
  if (!kinds.has("(no kind)")) {
    return { mirrorhook: false, objects: true, description: `Kubernetes objects of kind ${kindList}` };
  }
  return { mirrorhook: false, description: `YAML or JSON that no tool reads (${kindList})` };
}
