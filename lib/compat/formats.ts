// The table of foreign rule formats: how each is named, recognised by content, and translated into our objects.

import type { Problem } from "../rules/problem.ts";
import { readDocuments } from "../rules/documents.ts";
import { compatProblem, type ForeignFormat, TOOL_NAMES, type Translation } from "./common.ts";
import { isImageMapText, isImageSwapText } from "./detect.ts";
import { FLEMZORD_KIND, isFlemzordObject, translateFlemzord } from "./flemzord.ts";
import { imageMapPairs, isImageMapObject, translateImageMapList, translateImageMapObjects } from "./imagemap.ts";
import { translateImageSwap } from "./imageswap.ts";
import { isProxyUrlText, significantLines, translateProxyUrl } from "./proxy_url.ts";

/** One foreign format. */
export interface Format {
  readonly name: ForeignFormat;
  /** True when a whole text is in this format; absent for formats read per document among objects. */
  readonly detect?: (text: string) => boolean;
  /** Reads `text` (named `source` in problems and object names) as this format, whatever it looks like. */
  readonly translate: (text: string, source: string) => Translation;
}

/**
 * How a text is read. `objects` covers YAML and JSON documents of any kind (mirrorhook's own objects,
 * RegistryRewriteRule and ImageMap objects, each recognised per document), and is the fallback, so that
 * a broken YAML file gets YAML errors.
 */
export type TextFormat = "objects" | "imageswap" | "proxy-url" | "imagemap";

/** Every foreign format, in the order texts are recognised. */
const FORMATS: readonly Format[] = [
  {
    name: "imagemap",
    detect: isImageMapText,
    translate: (text, source) => translateDocuments(text, source, "imagemap"),
  },
  { name: "proxy-url", detect: isProxyUrlText, translate: translateProxyUrl },
  { name: "imageswap", detect: isImageSwapText, translate: translateImageSwap },
  { name: "flemzord", translate: (text, source) => translateDocuments(text, source, "flemzord") },
];

/** The format of a whole text, or undefined for Kubernetes-style objects (see {@linkcode TextFormat}). */
export function wholeTextFormat(text: string): Format | undefined {
  if (significantLines(text).length === 0) return undefined;
  return FORMATS.find((format) => format.detect?.(text) === true);
}

/** Which reader a text needs; see {@linkcode TextFormat}. */
export function detectFormat(text: string): TextFormat {
  return (wholeTextFormat(text)?.name as TextFormat | undefined) ?? "objects";
}

/** Reads `text` (named `source` in problems and object names) as `format` (for `mirrorhook import --from`). */
export function translateText(text: string, source: string, format: ForeignFormat): Translation {
  const entry = FORMATS.find((candidate) => candidate.name === format);
  if (entry === undefined) throw new Error(`unknown format ${format}`);
  return entry.translate(text, source);
}

/** Reads YAML documents as RegistryRewriteRule objects, or as ImageMap objects or one from/to list. */
function translateDocuments(text: string, source: string, format: "flemzord" | "imagemap"): Translation {
  const documents = readDocuments(text, source);
  const problems: Problem[] = [...documents.problems];
  const [first] = documents.items;
  if (format === "imagemap" && documents.items.length === 1 && first?.whole === true && imageMapPairs(first.value)) {
    const translation = translateImageMapList(first, source);
    return { ...translation, problems: [...problems, ...translation.problems] };
  }
  const wanted = format === "flemzord" ? isFlemzordObject : isImageMapObject;
  const items = documents.items.filter((item) => wanted(item.value));
  for (const item of documents.items) {
    if (wanted(item.value)) continue;
    const kind = typeof item.value === "object" && item.value !== null && "kind" in item.value
      ? ` (kind ${JSON.stringify((item.value as { kind: unknown }).kind)})`
      : "";
    problems.push(compatProblem(
      `expected ${
        format === "flemzord" ? `${FLEMZORD_KIND} objects` : "ImageMap objects or a list of from/to pairs"
      } of ${TOOL_NAMES[format]}, got something else${kind}`,
      { source, at: item.locate([]), severity: "error", code: "unknown-kind" },
    ));
  }
  const translation = format === "flemzord"
    ? translateFlemzord(items, source)
    : translateImageMapObjects(items, source);
  return { ...translation, problems: [...problems, ...translation.problems] };
}
