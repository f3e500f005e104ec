// Finds the Pods and Pod templates in any Kubernetes object (workloads, Lists) and mutates each as the webhook would.

import type { RuleSet } from "../rules/compile.ts";
import type { Labels } from "../rules/selector.ts";
import { isRecord, type Json } from "../util/json.ts";
import { type ImageChange, mutatePod, type SkipReason } from "./pod.ts";

/** Where each workload kind keeps its Pod template (apps/v1, batch/v1, v1). */
export const POD_TEMPLATE_PATHS: Readonly<Record<string, readonly string[]>> = {
  Deployment: ["spec", "template"],
  StatefulSet: ["spec", "template"],
  DaemonSet: ["spec", "template"],
  ReplicaSet: ["spec", "template"],
  ReplicationController: ["spec", "template"],
  Job: ["spec", "template"],
  CronJob: ["spec", "jobTemplate", "spec", "template"],
  PodTemplate: ["template"],
};

/** A path into a JSON object: keys and array indexes. */
export type JsonPath = readonly (string | number)[];

/** One edit to make to the object: set the value at `path` (creating what is missing). */
export interface Edit {
  readonly path: JsonPath;
  readonly value: unknown;
}

/** One Pod or Pod template found, and what mutating it did. */
export interface PodSpecResult {
  /** `Deployment web/nginx`, `Pod default/web-0`, `CronJob backup` (no namespace known). */
  readonly object: string;
  /** Path of the Pod (empty) or of the Pod template in the document. */
  readonly path: JsonPath;
  readonly namespace?: string;
  readonly changes: readonly ImageChange[];
  readonly warnings: readonly string[];
  readonly skipped?: SkipReason;
}

/** The result for one document. */
export interface WorkloadResult {
  /** Edits to apply to the document, in order; empty when nothing changes. */
  readonly edits: readonly Edit[];
  readonly pods: readonly PodSpecResult[];
}

/** Options beyond the object itself. */
export interface WorkloadOptions {
  readonly ruleSet: RuleSet;
  /** Namespace for objects that name none (each object's own metadata.namespace comes first). */
  readonly namespace?: string;
  readonly namespaceLabels?: Labels;
  readonly bypassPrefix?: string;
}

const MAX_LIST_DEPTH = 4;

function at(value: unknown, path: readonly string[]): unknown {
  let node = value;
  for (const key of path) node = isRecord(node) ? node[key] : undefined;
  return node;
}

function metadataString(object: Json, key: string): string | undefined {
  const metadata = object["metadata"];
  const value = isRecord(metadata) ? metadata[key] : undefined;
  return typeof value === "string" && value !== "" ? value : undefined;
}

/** RFC 6901 pointer -> path segments; array indexes become numbers where the target is an array. */
function pointerPath(pointer: string, root: unknown): (string | number)[] {
  const path: (string | number)[] = [];
  let node = root;
  for (const raw of pointer.split("/").slice(1)) {
    const segment = raw.replaceAll("~1", "/").replaceAll("~0", "~");
    if (Array.isArray(node)) {
      const index = Number(segment);
      path.push(index);
      node = node[index];
    } else {
      path.push(segment);
      node = isRecord(node) ? node[segment] : undefined;
    }
  }
  return path;
}

function mutateTemplate(
  template: Json,
  path: JsonPath,
  describe: { object: string; namespace?: string },
  options: WorkloadOptions,
): { edits: Edit[]; result: PodSpecResult } {
  // The Pod a controller creates from this template: its metadata and spec, in the object's namespace.
  const pod = { apiVersion: "v1", kind: "Pod", metadata: template["metadata"], spec: template["spec"] };
  if (pod.metadata === undefined) delete (pod as Partial<typeof pod>).metadata;
  const result = mutatePod(pod, {
    ruleSet: options.ruleSet,
    ...(describe.namespace === undefined ? {} : { namespace: describe.namespace }),
    ...(options.namespaceLabels === undefined ? {} : { namespaceLabels: options.namespaceLabels }),
    ...(options.bypassPrefix === undefined ? {} : { bypassPrefix: options.bypassPrefix }),
  });
  const edits = result.patch.map((operation) => ({
    path: [...path, ...pointerPath(operation.path, pod)],
    value: operation.value,
  }));
  return {
    edits,
    result: {
      object: describe.object,
      path,
      ...(describe.namespace === undefined ? {} : { namespace: describe.namespace }),
      changes: result.changes,
      warnings: result.warnings,
      ...(result.skipped === undefined ? {} : { skipped: result.skipped }),
    },
  };
}

function visit(value: unknown, path: JsonPath, options: WorkloadOptions, depth: number, out: WorkloadResult): void {
  if (!isRecord(value)) return;
  const kind = value["kind"];
  if (typeof kind !== "string") return;
  if (kind === "List" || (kind.endsWith("List") && Array.isArray(value["items"]))) {
    const items = value["items"];
    if (depth >= MAX_LIST_DEPTH || !Array.isArray(items)) return;
    items.forEach((item, index) => visit(item, [...path, "items", index], options, depth + 1, out));
    return;
  }
  const name = metadataString(value, "name") ?? metadataString(value, "generateName") ?? "(unnamed)";
  const namespace = metadataString(value, "namespace") ?? options.namespace;
  const describe = {
    object: `${kind} ${namespace === undefined ? "" : `${namespace}/`}${name}`,
    ...(namespace === undefined ? {} : { namespace }),
  };
  let templatePath: readonly string[] | undefined;
  if (kind === "Pod") templatePath = [];
  else if (Object.hasOwn(POD_TEMPLATE_PATHS, kind)) templatePath = POD_TEMPLATE_PATHS[kind];
  if (templatePath === undefined) return;
  const template = templatePath.length === 0 ? value : at(value, templatePath);
  if (!isRecord(template)) return;
  const { edits, result } = mutateTemplate(template, [...path, ...templatePath], describe, options);
  (out.edits as Edit[]).push(...edits);
  (out.pods as PodSpecResult[]).push(result);
}

/**
 * Mutates every Pod and Pod template in `value` (a Pod, a workload, a `kind: List` or `*List` of them) with the
 * namespace of each object. Pure; anything else yields no edits.
 */
export function mutateWorkload(value: unknown, options: WorkloadOptions): WorkloadResult {
  const out: WorkloadResult = { edits: [], pods: [] };
  visit(value, [], options, 0, out);
  return out;
}

/** Applies `edits` to a JSON value in place (the counterpart of {@linkcode mutateWorkload} for plain objects). */
export function applyEdits(root: unknown, edits: readonly Edit[]): void {
  for (const edit of edits) {
    let node: unknown = root;
    for (let i = 0; i < edit.path.length - 1; i++) {
      const key = edit.path[i]!;
      const container = node as Record<string | number, unknown>;
      if (typeof container[key] !== "object" || container[key] === null) container[key] = {};
      node = container[key];
    }
    (node as Record<string | number, unknown>)[edit.path[edit.path.length - 1]!] = structuredClone(edit.value);
  }
}
