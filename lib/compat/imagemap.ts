// Reads imagemap-style exact maps (from/to pairs, and kubernetes-image-mapper's ImageMap objects) into rule objects.

import { normalizeReference } from "../image/reference.ts";
import type { FieldPath } from "../rules/problem.ts";
import { API_VERSION } from "../rules/schema.ts";
import {
  type CompatProblem,
  compatProblem,
  nameFromSource,
  type Position,
  q,
  type TranslatedObject,
  type Translation,
} from "./common.ts";
import { isRecord, type Json } from "../util/json.ts";

/** API group of kubernetes-image-mapper's ImageMap. */
const IMAGEMAP_GROUP = "mapper.imagerelocation.pivotal.io";
/** Namespace an ImageMap without one lands in, as `kubectl apply` in the default context would put it. */
const IMAGEMAP_DEFAULT_NAMESPACE = "default";

/** True for an ImageMap object (or List item). */
export function isImageMapObject(value: unknown): boolean {
  if (!isRecord(value)) return false;
  const apiVersion = value["apiVersion"];
  return value["kind"] === "ImageMap" ||
    (typeof apiVersion === "string" && apiVersion.startsWith(`${IMAGEMAP_GROUP}/`));
}

function isPair(value: unknown): boolean {
  return isRecord(value) && "from" in value && "to" in value;
}

/** The pairs of a bare from/to list (`[{from, to}, ...]` or `{map: [{from, to}, ...]}`), and their path; else undefined. */
export function imageMapPairs(value: unknown): { pairs: unknown[]; path: FieldPath } | undefined {
  if (Array.isArray(value) && value.length > 0 && value.every(isPair)) return { pairs: value, path: [] };
  if (isRecord(value) && Object.keys(value).length === 1 && Array.isArray(value["map"])) {
    const pairs = value["map"] as unknown[];
    if (pairs.length > 0 && pairs.every(isPair)) return { pairs, path: ["map"] };
  }
  return undefined;
}

/** An ImageMap or from/to list read from a text, and how to find its fields there. */
export interface ImageMapItem {
  readonly value: unknown;
  readonly locate: (path: FieldPath) => Position | undefined;
}

/** Turns pairs into exact rules: the last pair for an image wins, as in the map the tool builds. */
function exactRules(
  pairs: readonly unknown[],
  base: FieldPath,
  item: ImageMapItem,
  source: string,
  problems: CompatProblem[],
): { rules: Json[]; paths: FieldPath[]; comments: Map<number, string[]> } {
  const chosen = new Map<string, { index: number; from: string; to: string }>();
  pairs.forEach((pair, index) => {
    const path = [...base, index];
    if (!isRecord(pair) || typeof pair["from"] !== "string" || typeof pair["to"] !== "string") {
      problems.push(compatProblem("each entry needs from and to, both image references", {
        source,
        at: item.locate(path),
        severity: "error",
        code: "type",
      }));
      return;
    }
    const from = pair["from"];
    const to = pair["to"];
    if (to === "") {
      problems.push(compatProblem(`${q(from)} maps to an empty reference`, {
        source,
        at: item.locate([...path, "to"]),
        severity: "error",
        code: "invalid-replacement",
      }));
      return;
    }
    const normalized = normalizeReference(from);
    const key = normalized ?? from;
    const earlier = chosen.get(key);
    if (earlier !== undefined) {
      problems.push(compatProblem(
        earlier.from === from
          ? `${
            q(from)
          } is already mapped by entry ${earlier.index}; the later entry wins, as in kubernetes-image-mapper`
          : `${q(from)} and ${
            q(earlier.from)
          } (entry ${earlier.index}) are the same image; kubernetes-image-mapper keeps the two spellings apart, mirrorhook uses the later entry for both`,
        { source, at: item.locate([...path, "from"]), behaviour: "duplicate-key", code: "duplicate" },
      ));
      chosen.delete(key);
    }
    if (normalized !== undefined && normalized !== from) {
      problems.push(compatProblem(
        `kubernetes-image-mapper matches ${
          q(from)
        } only as written; mirrorhook matches the image however it is written (e.g. ${q(normalized)})`,
        { source, at: item.locate([...path, "from"]), behaviour: "exact-as-written" },
      ));
    }
    chosen.set(key, { index, from, to });
  });
  const entries = [...chosen.values()].sort((a, b) => a.index - b.index);
  return {
    rules: entries.map(({ from, to }) => ({ exact: from, replace: to })),
    paths: entries.map(({ index }) => [...base, index]),
    comments: new Map(entries.map(({ index, from, to }, i) => [i, [`entry ${index}: ${from} \u2192 ${to}`]])),
  };
}

function locator(item: ImageMapItem, paths: readonly FieldPath[]) {
  return (path: FieldPath): Position | undefined => {
    if (path[0] === "spec" && path[1] === "rules" && typeof path[2] === "number") {
      const base = paths[path[2]];
      if (base !== undefined) return item.locate([...base, path[3] === "replace" ? "to" : "from"]);
    }
    return item.locate(path[0] === "metadata" ? ["metadata", "name"] : []);
  };
}

/** Reads a bare from/to list into a ClusterImageRewrite named after the file. */
export function translateImageMapList(item: ImageMapItem, source: string): Translation {
  const problems: CompatProblem[] = [];
  const found = imageMapPairs(item.value);
  if (found === undefined) {
    problems.push(compatProblem("expected a list of from/to pairs", {
      source,
      at: item.locate([]),
      severity: "error",
      code: "not-an-object",
    }));
    return { format: "imagemap", objects: [], problems, optOuts: [] };
  }
  const { rules, paths, comments } = exactRules(found.pairs, found.path, item, source, problems);
  const objects: TranslatedObject[] = rules.length === 0 ? [] : [{
    raw: {
      apiVersion: API_VERSION,
      kind: "ClusterImageRewrite",
      metadata: { name: nameFromSource("imagemap", source) },
      spec: { priority: 0, rules },
    },
    locate: locator(item, paths),
    comments: { object: [], rules: comments },
  }];
  return { format: "imagemap", objects, problems, optOuts: [] };
}

/** Reads ImageMap objects into ImageRewrites in their namespaces (an ImageMap applies to its namespace only). */
export function translateImageMapObjects(items: readonly ImageMapItem[], source: string): Translation {
  const problems: CompatProblem[] = [];
  const objects: TranslatedObject[] = [];
  for (const item of items) {
    const value = item.value;
    const metadata = isRecord(value) ? value["metadata"] : undefined;
    const name = isRecord(metadata) ? metadata["name"] : undefined;
    const spec = isRecord(value) ? value["spec"] : undefined;
    const map = isRecord(spec) ? spec["map"] : undefined;
    if (typeof name !== "string" || name === "") {
      problems.push(compatProblem("an ImageMap needs metadata.name", {
        source,
        at: item.locate(["metadata"]),
        severity: "error",
        code: "required",
      }));
      continue;
    }
    if (!Array.isArray(map) || map.length === 0) {
      problems.push(compatProblem(`ImageMap ${q(name)} needs spec.map, a list of from/to pairs`, {
        source,
        at: item.locate(["spec"]),
        severity: "error",
        code: "required",
      }));
      continue;
    }
    let namespace = isRecord(metadata) ? metadata["namespace"] : undefined;
    if (namespace === undefined) {
      namespace = IMAGEMAP_DEFAULT_NAMESPACE;
      problems.push(compatProblem(
        `ImageMap ${
          q(name)
        } has no metadata.namespace; an ImageMap applies only in the namespace it is created in, so mirrorhook applies it in ${
          q(IMAGEMAP_DEFAULT_NAMESPACE)
        } (set metadata.namespace to choose)`,
        { source, at: item.locate(["metadata"]), behaviour: "no-namespace" },
      ));
    }
    const { rules, paths, comments } = exactRules(map, ["spec", "map"], item, source, problems);
    if (rules.length === 0) continue;
    objects.push({
      raw: {
        apiVersion: API_VERSION,
        kind: "ImageRewrite",
        metadata: { name, namespace },
        spec: { priority: 0, rules },
      },
      locate: locator(item, paths),
      comments: { object: [], rules: comments },
    });
  }
  return { format: "imagemap", objects, problems, optOuts: [] };
}
