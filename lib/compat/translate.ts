// Reads a whole text as one named foreign format (for `mirrorhook import --from`), whatever its content looks like.

import type { Problem } from "../rules/problem.ts";
import { compatProblem, type ForeignFormat, TOOL_NAMES, type Translation } from "./common.ts";
import { readDocuments } from "../rules/documents.ts";
import { FLEMZORD_KIND, isFlemzordObject, translateFlemzord } from "./flemzord.ts";
import { imageMapPairs, isImageMapObject, translateImageMapList, translateImageMapObjects } from "./imagemap.ts";
import { translateImageSwap } from "./imageswap.ts";
import { translateProxyUrl } from "./proxy_url.ts";

/** Reads `text` (named `source` in problems and object names) as `format`. */
export function translateText(text: string, source: string, format: ForeignFormat): Translation {
  switch (format) {
    case "imageswap":
      return translateImageSwap(text, source);
    case "proxy-url":
      return translateProxyUrl(text, source);
    case "flemzord":
    case "imagemap": {
      const documents = readDocuments(text, source);
      const problems: Problem[] = [...documents.problems];
      const [first] = documents.items;
      if (
        format === "imagemap" && documents.items.length === 1 && first?.whole === true && imageMapPairs(first.value)
      ) {
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
  }
}
