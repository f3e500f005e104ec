// Reads RegistryRewriteRule objects (flemzord/mutating-registry-webhook) into rule objects, and models that webhook.

import { normalizeReference } from "../image/reference.ts";
import type { ImageContext } from "../rules/compile.ts";
import type { FieldPath } from "../rules/problem.ts";
import { API_VERSION } from "../rules/schema.ts";
import {
  type Behaviour,
  type CompatProblem,
  compatProblem,
  type Position,
  q,
  type TranslatedObject,
  type Translation,
} from "./common.ts";
import { convertGoPattern, convertGoTemplate, goReplaceAll, literalPrefix, patternGroups } from "./go_regexp.ts";
import { compareWithTool, type Sample, type ToolResult } from "./compare.ts";
import { isRecord, type Json } from "../util/json.ts";

/** API group of RegistryRewriteRule. */
export const FLEMZORD_GROUP = "dev.flemzord.fr";
/** The kind mutating-registry-webhook reads. */
export const FLEMZORD_KIND = "RegistryRewriteRule";
/** Pods with this annotation set to "true" are never rewritten by mutating-registry-webhook. */
const FLEMZORD_OPT_OUT_ANNOTATION = "rewrite-disabled";

/** True for an object (or List item) that is a RegistryRewriteRule. */
export function isFlemzordObject(value: unknown): boolean {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const record = value as Record<string, unknown>;
  const apiVersion = record["apiVersion"];
  return record["kind"] === FLEMZORD_KIND ||
    (typeof apiVersion === "string" && apiVersion.startsWith(`${FLEMZORD_GROUP}/`));
}

/** A RegistryRewriteRule read from a text, and how to find its fields there. */
export interface FlemzordItem {
  readonly value: unknown;
  readonly locate: (path: FieldPath) => Position | undefined;
}

const TOP_FIELDS = new Set(["apiVersion", "kind", "metadata", "spec", "status"]);
const SPEC_FIELDS = new Set(["rules", "priority", "conditions"]);
const RULE_FIELDS = new Set(["match", "replace", "priority", "conditions"]);
const CONDITION_FIELDS = new Set(["namespaces", "labels"]);

interface Conditions {
  readonly namespaces: readonly string[];
  readonly labels: Readonly<Record<string, string>>;
  /** Where the conditions were written: on the rule or on the spec. */
  readonly path: FieldPath;
}

/** One rule after conversion, in mutating-registry-webhook's order. */
interface FlatRule {
  readonly object: string;
  readonly index: number;
  readonly priority: number;
  readonly match: string;
  readonly replace: string;
  /** The Go template as written, for the model of the webhook. */
  readonly template: string;
  readonly conditions: Conditions;
  readonly item: FlemzordItem;
}

function conditionsKey(conditions: Conditions): string {
  return JSON.stringify([[...conditions.namespaces].sort(), Object.entries(conditions.labels).sort()]);
}

/**
 * How mutating-registry-webhook normalizes an image before matching: `docker.io/library/` for bare names,
 * `docker.io/` for anything whose first component is not `localhost[:port]` or a host ending in a dot and
 * letters (so `registry:5000/...` and `10.0.0.1:5000/...` become Docker Hub paths); no `:latest` added;
 * `index.docker.io` kept.
 */
export function flemzordNormalize(image: string): string {
  if (/^localhost(:[0-9]+)?\//.test(image)) return image;
  const hub = /^docker\.io\/(.+)$/.exec(image);
  if (hub !== null && !(hub[1] ?? "").includes("/")) return `docker.io/library/${hub[1]}`;
  if (/^[a-zA-Z0-9][a-zA-Z0-9-_.]*\.[a-zA-Z]{2,}\//.test(image)) return image;
  if (/^[^/]+\//.test(image)) return `docker.io/${image}`;
  return `docker.io/library/${image}`;
}

function conditionsHold(conditions: Conditions, context: ImageContext): boolean {
  if (conditions.namespaces.length > 0 && !conditions.namespaces.includes(context.namespace ?? "")) return false;
  return Object.entries(conditions.labels).every(([key, value]) => (context.podLabels?.[key] ?? "") === value);
}

/** What mutating-registry-webhook does to one image: the first rule (priority, name, index) whose pattern matches. */
function simulateFlemzord(rules: readonly FlatRule[], image: string, context: ImageContext): ToolResult {
  const normalized = flemzordNormalize(image);
  for (const rule of rules) {
    if (!conditionsHold(rule.conditions, context)) continue;
    const pattern = new RegExp(rule.match);
    if (pattern.test(normalized)) {
      return { output: goReplaceAll(pattern, normalized, rule.template), at: rule.item.locate(rulePath(rule)) };
    }
  }
  return { output: image };
}

function rulePath(rule: FlatRule, field = "match"): FieldPath {
  return ["spec", "rules", rule.index, field];
}

const EXPLAIN: Partial<Record<Behaviour, string>> = {
  "no-default-tag":
    "mutating-registry-webhook matches an image without a tag as written (docker.io/library/nginx), mirrorhook as the runtime pulls it (docker.io/library/nginx:latest)",
  "registry-read-as-docker-hub":
    "mutating-registry-webhook reads a registry with a port or a numeric address (registry:5000, 10.0.0.1:5000) as a Docker Hub path and prepends docker.io/; mirrorhook reads it as the registry it is",
  "index-docker-io": "mutating-registry-webhook keeps index.docker.io as written; mirrorhook reads it as docker.io",
  "replace-all":
    "Go's ReplaceAllString replaces every match of an unanchored pattern; mirrorhook replaces the first (anchor the pattern with ^)",
};

/** Reads RegistryRewriteRule objects (all of one text) into ClusterImageRewrites named after them. */
export function translateFlemzord(items: readonly FlemzordItem[], source: string): Translation {
  const problems: CompatProblem[] = [];
  const flat: FlatRule[] = [];
  const explained = new Set<number>();
  for (const item of items) flat.push(...readObject(item, source, problems, explained));
  // The webhook's order: priority (higher first), then object name, then the order written.
  flat.sort((a, b) =>
    b.priority - a.priority || (a.object < b.object ? -1 : a.object > b.object ? 1 : 0) || a.index - b.index
  );
  const groups: FlatRule[][] = [];
  for (const rule of flat) {
    const last = groups.at(-1);
    const head = last?.[0];
    if (
      last !== undefined && head !== undefined && head.object === rule.object && head.priority === rule.priority &&
      conditionsKey(head.conditions) === conditionsKey(rule.conditions)
    ) last.push(rule);
    else groups.push([rule]);
  }
  const perObject = new Map<string, number>();
  for (const group of groups) perObject.set(group[0]?.object ?? "", (perObject.get(group[0]?.object ?? "") ?? 0) + 1);
  const seen = new Map<string, number>();
  const objects: TranslatedObject[] = [];
  const names: string[] = [];
  // Names of split objects must not take the name of another RegistryRewriteRule.
  const used = new Set(flat.map((rule) => rule.object));
  for (const group of groups) {
    const head = group[0];
    if (head === undefined) continue;
    const total = perObject.get(head.object) ?? 1;
    const k = (seen.get(head.object) ?? 0) + 1;
    seen.set(head.object, k);
    let name = head.object;
    if (total > 1) {
      name = `${head.object}-${String(k).padStart(String(total).length, "0")}`;
      while (used.has(name)) name = `${name}-${k}`;
      used.add(name);
    }
    names.push(name);
    objects.push(buildObject(name, group));
  }
  // Our order within a priority is by object name; say so when that differs from the webhook's.
  const ours = groups.map((group, i) => ({ group, name: names[i] ?? "" }))
    .sort((a, b) =>
      (b.group[0]?.priority ?? 0) - (a.group[0]?.priority ?? 0) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
    );
  const mismatch = ours.findIndex((entry, i) => entry.group !== groups[i]);
  if (mismatch >= 0) {
    const rule = ours[mismatch]?.group[0];
    if (rule !== undefined) {
      problems.push(compatProblem(
        `the objects made from this file sort in another order than mutating-registry-webhook's rules (priority, object name, rule order); give ${
          q(rule.object)
        }'s rules distinct priorities`,
        { source, at: rule.item.locate(rulePath(rule)), behaviour: "rule-order" },
      ));
    }
  }
  problems.push(...compareWithTool({
    format: "flemzord",
    source,
    objects,
    samples: samplesFor(flat),
    tool: (image, context) => simulateFlemzord(flat, image, context),
    explained,
    explain: EXPLAIN,
  }));
  return {
    format: "flemzord",
    objects,
    problems,
    optOuts: items.length === 0
      ? []
      : [{ format: "flemzord", kind: "annotation", key: FLEMZORD_OPT_OUT_ANNOTATION, value: "true", source }],
  };
}

function buildObject(name: string, group: readonly FlatRule[]): TranslatedObject {
  const head = group[0];
  const conditions = head?.conditions ?? { namespaces: [], labels: {}, path: [] };
  const spec: Json = { priority: head?.priority ?? 0 };
  if (conditions.namespaces.length > 0) spec["namespaces"] = [...conditions.namespaces];
  if (Object.keys(conditions.labels).length > 0) spec["podSelector"] = { matchLabels: { ...conditions.labels } };
  spec["rules"] = group.map((rule) => ({ match: rule.match, replace: rule.replace }));
  const locate = (path: FieldPath): Position | undefined => {
    if (head === undefined) return undefined;
    if (path[0] === "metadata") return head.item.locate(["metadata", "name"]);
    if (path[0] !== "spec") return head.item.locate([]);
    const index = typeof path[2] === "number" ? path[2] : 0;
    const rule = path[1] === "rules" ? group[index] ?? head : head;
    if (path[1] === "rules") return rule.item.locate(rulePath(rule, path[3] === "replace" ? "replace" : "match"));
    if (path[1] === "namespaces") return rule.item.locate([...conditions.path, "namespaces", ...path.slice(2)]);
    if (path[1] === "podSelector") return rule.item.locate([...conditions.path, "labels", ...path.slice(3)]);
    if (path[1] === "priority") return rule.item.locate(["spec", "rules", rule.index, "priority"]);
    return rule.item.locate(rulePath(rule));
  };
  const rules = new Map<number, string[]>();
  group.forEach((rule, index) => {
    const notes = [`${rule.object}, rule ${rule.index}`];
    if (rule.match !== "" && rule.template !== rule.replace) notes.push(`Go replacement: ${rule.template}`);
    rules.set(index, notes);
  });
  return {
    raw: { apiVersion: API_VERSION, kind: "ClusterImageRewrite", metadata: { name }, spec },
    locate,
    comments: { object: [], rules },
  };
}

/** Reads one RegistryRewriteRule; its structural problems are errors positioned in the source. */
function readObject(
  item: FlemzordItem,
  source: string,
  problems: CompatProblem[],
  explained: Set<number>,
): FlatRule[] {
  const error = (path: FieldPath, detail: string, code: CompatProblem["code"] = "invalid-value") =>
    problems.push(compatProblem(detail, { source, at: item.locate(path), severity: "error", code }));
  const warn = (path: FieldPath, detail: string, behaviour: Behaviour) =>
    problems.push(compatProblem(detail, { source, at: item.locate(path), behaviour }));
  const value = item.value;
  if (!isRecord(value)) {
    error([], "expected a RegistryRewriteRule object", "not-an-object");
    return [];
  }
  const unknown = (record: Json, allowed: ReadonlySet<string>, path: FieldPath) => {
    for (const key of Object.keys(record)) {
      if (!allowed.has(key)) {
        warn(
          [...path, key],
          `${q(key)} is not a RegistryRewriteRule field; the API server prunes it, and mirrorhook ignores it`,
          "ignored-field",
        );
      }
    }
  };
  unknown(value, TOP_FIELDS, []);
  const metadata = value["metadata"];
  const name = isRecord(metadata) ? metadata["name"] : undefined;
  if (typeof name !== "string" || name === "") {
    error(["metadata"], "metadata.name is required", "required");
    return [];
  }
  const spec = value["spec"];
  if (!isRecord(spec)) {
    error(["spec"], `RegistryRewriteRule ${q(name)} needs spec.rules`, "required");
    return [];
  }
  unknown(spec, SPEC_FIELDS, ["spec"]);
  const specPriority = readPriority(spec["priority"], ["spec", "priority"], error) ?? 0;
  let specExplained = false;
  const specConditions = readConditions(spec["conditions"], ["spec", "conditions"], {
    error,
    warn,
    unknown,
    explain: () => void (specExplained = true),
  });
  const rules = spec["rules"];
  if (!Array.isArray(rules) || rules.length === 0) {
    error(["spec", "rules"], `RegistryRewriteRule ${q(name)} needs at least one rule in spec.rules`, "required");
    return [];
  }
  const flat: FlatRule[] = [];
  rules.forEach((rule: unknown, index) => {
    const path: FieldPath = ["spec", "rules", index];
    if (!isRecord(rule)) {
      error(path, `rule ${index} of RegistryRewriteRule ${q(name)} is not an object`, "type");
      return;
    }
    unknown(rule, RULE_FIELDS, path);
    const match = rule["match"];
    const replace = rule["replace"];
    if (typeof match !== "string" || match === "") {
      error(
        [...path, "match"],
        `rule ${index} of RegistryRewriteRule ${q(name)} needs match (a Go regular expression)`,
        "required",
      );
      return;
    }
    if (typeof replace !== "string") {
      error([...path, "replace"], `rule ${index} of RegistryRewriteRule ${q(name)} needs replace`, "required");
      return;
    }
    const converted = convertGoPattern(match);
    if (!converted.ok) {
      error(
        [...path, "match"],
        `rule ${index} of RegistryRewriteRule ${q(name)}: cannot convert the Go pattern ${
          q(match)
        }: ${converted.error}`,
        "invalid-regex",
      );
      return;
    }
    const template = convertGoTemplate(replace, patternGroups(converted.source));
    for (const note of template.notes) {
      warn(
        [...path, "replace"],
        note.reason === "name-swallows-text"
          ? `Go reads ${q(note.token)} as the group ${
            q(note.token.slice(1))
          }, which does not exist, so it expands to nothing (as in mutating-registry-webhook); write \${${
            /^\$([0-9]+)/.exec(note.token)?.[1]
          }} to follow a group with text`
          : `${
            q(note.token)
          } is not a group of the pattern, so Go expands it to nothing (it is not an environment variable); mirrorhook does the same`,
        "go-empty-expansion",
      );
    }
    const priority = readPriority(rule["priority"], [...path, "priority"], error) ?? specPriority;
    let ruleExplained = rule["conditions"] === undefined && specExplained;
    const conditions = rule["conditions"] === undefined
      ? specConditions
      : readConditions(rule["conditions"], [...path, "conditions"], {
        error,
        warn,
        unknown,
        explain: () => void (ruleExplained = true),
      });
    const line = item.locate([...path, "match"])?.line;
    if (ruleExplained && line !== undefined) explained.add(line);
    flat.push({
      object: name,
      index,
      priority,
      match: converted.source,
      replace: template.replace,
      template: replace,
      conditions,
      item,
    });
  });
  return flat;
}

function readPriority(
  value: unknown,
  path: FieldPath,
  error: (path: FieldPath, detail: string, code?: CompatProblem["code"]) => void,
): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value) || Math.abs(value) > 2 ** 31 - 1) {
    error(path, `priority must be a 32-bit integer, got ${JSON.stringify(value)}`, "type");
    return undefined;
  }
  return value;
}

function readConditions(
  value: unknown,
  path: FieldPath,
  report: {
    error: (path: FieldPath, detail: string, code?: CompatProblem["code"]) => void;
    warn: (path: FieldPath, detail: string, behaviour: Behaviour) => void;
    unknown: (record: Json, allowed: ReadonlySet<string>, path: FieldPath) => void;
    /** Marks the rule as explained: the webhook's different matching here is already reported. */
    explain: () => void;
  },
): Conditions {
  const none: Conditions = { namespaces: [], labels: {}, path };
  if (value === undefined || value === null) return none;
  if (!isRecord(value)) {
    report.error(path, "conditions must be an object with namespaces and/or labels", "type");
    return none;
  }
  report.unknown(value, CONDITION_FIELDS, path);
  const namespaces: string[] = [];
  const rawNamespaces = value["namespaces"];
  if (rawNamespaces !== undefined && rawNamespaces !== null) {
    if (!Array.isArray(rawNamespaces) || rawNamespaces.some((item) => typeof item !== "string")) {
      report.error([...path, "namespaces"], "conditions.namespaces must be a list of namespace names", "type");
    } else namespaces.push(...(rawNamespaces as string[]));
  }
  const labels: Record<string, string> = {};
  const rawLabels = value["labels"];
  if (rawLabels !== undefined && rawLabels !== null) {
    if (!isRecord(rawLabels) || Object.values(rawLabels).some((item) => typeof item !== "string")) {
      report.error([...path, "labels"], "conditions.labels must be a map of label values", "type");
    } else {
      for (const [key, item] of Object.entries(rawLabels)) {
        labels[key] = item as string;
        if (item === "") {
          report.explain();
          report.warn(
            [...path, "labels", key],
            `mutating-registry-webhook also matches Pods without the label ${
              q(key)
            } when its value is ""; mirrorhook requires the label, with an empty value`,
            "empty-label-value",
          );
        }
      }
    }
  }
  return { namespaces, labels, path };
}

function samplesFor(rules: readonly FlatRule[]): Sample[] {
  const images: [string, Behaviour][] = [
    ["nginx", "no-default-tag"],
    ["nginx:1.25", "replace-all"],
    ["bitnami/redis", "no-default-tag"],
    ["bitnami/redis:7", "replace-all"],
    ["docker.io/caddy:2.7", "replace-all"],
    ["quay.io/org/app", "no-default-tag"],
    ["quay.io/org/app:1.0", "replace-all"],
    ["index.docker.io/library/nginx:1.25", "index-docker-io"],
    ["index.docker.io/bitnami/redis:7", "index-docker-io"],
    ["registry.example.com:5000/team/app:1.0", "registry-read-as-docker-hub"],
    ["registry:5000/team/app:1.0", "registry-read-as-docker-hub"],
    ["10.0.0.1:5000/app:1.0", "registry-read-as-docker-hub"],
    ["10.0.0.1/app:1.0", "registry-read-as-docker-hub"],
  ];
  for (const rule of rules) {
    const prefix = literalPrefix(rule.match);
    if (prefix === "") continue;
    const base = prefix.includes("/") ? prefix : `${prefix}/`;
    const stem = base.endsWith("/") ? `${base}team/app` : base;
    images.push([stem, "no-default-tag"], [`${stem}:1.0`, "replace-all"]);
  }
  const contexts: ImageContext[] = [{}];
  const seen = new Set<string>();
  for (const rule of rules) {
    const key = conditionsKey(rule.conditions);
    if (
      seen.has(key) || (rule.conditions.namespaces.length === 0 && Object.keys(rule.conditions.labels).length === 0)
    ) {
      continue;
    }
    seen.add(key);
    const namespace = rule.conditions.namespaces[0];
    contexts.push({ ...(namespace === undefined ? {} : { namespace }), podLabels: rule.conditions.labels });
  }
  const samples: Sample[] = [];
  const unique = new Set<string>();
  for (const [image, behaviour] of images) {
    if (unique.has(image) || normalizeReference(image) === undefined) continue;
    unique.add(image);
    for (const context of contexts) samples.push({ image, behaviour, context });
  }
  return samples;
}
