// Says what a text looks like, for `mirrorhook import`: the tool it belongs to (if any) and words for people.

import { API_GROUP } from "../rules/schema.ts";
import { readDocuments } from "../rules/documents.ts";
import { type ForeignFormat, TOOL_NAMES } from "./common.ts";
import { FLEMZORD_KIND, isFlemzordObject } from "./flemzord.ts";
import { detectFormat } from "./formats.ts";
import { isImageMapObject } from "./imagemap.ts";
import { significantLines } from "./proxy_url.ts";
import { isRecord } from "../util/json.ts";

/** What a text looks like to `mirrorhook import`: the foreign format it is in (when one), and words for people. */
export interface TextDescription {
  /** The tool whose configuration this is; undefined when it is none of theirs (or cannot be told). */
  readonly format?: ForeignFormat;
  /** True when it holds mirrorhook's own objects, which need no import. */
  readonly mirrorhook: boolean;
  /** True when it holds Kubernetes-style objects (documents with a kind), whatever their kind. */
  readonly objects?: boolean;
  /** `RegistryRewriteRule objects of mutating-registry-webhook (2)`, `Kubernetes objects of kind Deployment`, ... */
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
    const record = isRecord(value) ? value : {};
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
  const kindList = [...kinds.entries()].map(([kind, count]) => count === 1 ? kind : `${kind} \u00d7${count}`).join(
    ", ",
  );
  if (ours > 0) return { mirrorhook: true, objects: true, description: `mirrorhook objects (${kindList})` };
  if (!kinds.has("(no kind)")) {
    return { mirrorhook: false, objects: true, description: `Kubernetes objects of kind ${kindList}` };
  }
  return { mirrorhook: false, description: `YAML or JSON that no tool reads (${kindList})` };
}
