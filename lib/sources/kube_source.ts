// The CRD rule source: list-and-watch of ImageRewrite, ClusterImageRewrite and Namespace objects (and RegistryRewriteRules when installed), the older of two conflicting objects wins, each of our objects gets a Ready status.

import http from "node:http";
import https from "node:https";
import { KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "@logtape/logtape";
import { FLEMZORD_GROUP, FLEMZORD_KIND, translateFlemzord } from "../compat/flemzord.ts";
import type { CompatProblem, Translation } from "../compat/common.ts";
import { compileRuleSet, type PodOptOut } from "../rules/compile.ts";
import { loadTranslation, matchPatterns } from "../rules/load.ts";
import type { Problem } from "../rules/problem.ts";
import { API_VERSION, describeObject, type RewriteObject, validateObject } from "../rules/schema.ts";
import type { Labels } from "../rules/selector.ts";
import type { Metrics } from "../server/metrics.ts";
import type { RuleStore } from "./store.ts";

/** Name of this source in the store, metrics and logs. */
export const KUBE_SOURCE = "kube";

/** The Ready condition's reason: in use, rejected for its own errors, or rejected for a conflict with an older object. */
export type ReadyReason = "Valid" | "InvalidRule" | "Conflict";

/** What was decided about one object as the API holds it. */
export interface ObjectVerdict {
  /** `Kind/namespace/name` (namespace empty for cluster-scoped objects). */
  readonly key: string;
  /** `ImageRewrite "team/hub"`. */
  readonly label: string;
  readonly generation?: number;
  readonly reason: ReadyReason;
  readonly message: string;
  /** Rules this object contributes to the rules in force (0 when it is not used). */
  readonly rules: number;
  /** The validated object, when it is used. */
  readonly object?: RewriteObject;
}

/** Result of {@linkcode evaluateObjects}. */
export interface Evaluation {
  /** Objects to put in force, oldest first. */
  readonly used: readonly RewriteObject[];
  readonly verdicts: ReadonlyMap<string, ObjectVerdict>;
}

/** Settings of {@linkcode KubeRuleSource}. */
export interface KubeSourceOptions {
  /** Where the API server is and how to authenticate: see {@linkcode loadKubeConfig}. */
  readonly kubeConfig: KubeConfig;
  readonly store: RuleStore;
  readonly logger: Logger;
  readonly metrics?: Metrics;
  /** Watch namespaces for their labels (needed by `namespaceSelector`); readiness then waits for them too. Default true. */
  readonly watchNamespaces?: boolean;
  /** Write `status` on every rule object. Default true. */
  readonly writeStatus?: boolean;
  /** Reconnect backoff after failures: doubles from `initialMs` up to `maxMs`, jittered. Defaults 500 ms and 30 s. */
  readonly backoff?: { readonly initialMs?: number; readonly maxMs?: number };
  /** Server-side watch timeout; each watch asks for a random value between this and twice this. Default 300. */
  readonly watchTimeoutSeconds?: number;
  /** Items per LIST page. Default 500. */
  readonly pageSize?: number;
  /** Status writes attempted per object and change when they meet 409 Conflict. Default 5. */
  readonly statusAttempts?: number;
  /** Time limit of each non-watch request. Default 30 s. */
  readonly requestTimeoutMs?: number;
  /**
   * How often RegistryRewriteRules are looked for again while the API answers 404 (their CRD is not installed) or
   * 403 (the role does not grant them). Default 60 s.
   */
  readonly optionalRecheckMs?: number;
  /** Clock for `lastTransitionTime`. */
  readonly now?: () => Date;
  /** Screens the objects' patterns off this thread (a worker) before each evaluation; rejects when it cannot. */
  readonly screen?: (sources: readonly string[]) => Promise<unknown>;
}

/**
 * A KubeConfig for the API server: from `path` (`--kubeconfig`), else the in-cluster service account.
 * Throws when neither is available.
 */
export function loadKubeConfig(options: { readonly path?: string } = {}): KubeConfig {
  const config = new KubeConfig();
  if (options.path !== undefined) config.loadFromFile(options.path);
  else {
    if (!Deno.env.get("KUBERNETES_SERVICE_HOST") || !Deno.env.get("KUBERNETES_SERVICE_PORT")) {
      throw new Error(
        "Cannot connect to the Kubernetes API: not running in a cluster (KUBERNETES_SERVICE_HOST is unset) and no --kubeconfig given",
      );
    }
    config.loadFromCluster();
  }
  const cluster = config.getCurrentCluster();
  if (cluster === null) throw new Error("Cannot connect to the Kubernetes API: the kubeconfig has no current cluster");
  return config;
}

// ---------------------------------------------------------------------------------------------------------------
// Resources and the objects the API returns.

type Json = Record<string, unknown>;

interface Resource {
  readonly plural: string;
  readonly kind: string;
  readonly apiVersion: string;
  readonly namespaced: boolean;
  /** `/apis/group/version` or `/api/v1`. */
  readonly base: string;
}

const IMAGE_REWRITES: Resource = {
  plural: "imagerewrites",
  kind: "ImageRewrite",
  apiVersion: API_VERSION,
  namespaced: true,
  base: `/apis/${API_VERSION}`,
};
const CLUSTER_IMAGE_REWRITES: Resource = {
  plural: "clusterimagerewrites",
  kind: "ClusterImageRewrite",
  apiVersion: API_VERSION,
  namespaced: false,
  base: `/apis/${API_VERSION}`,
};
const NAMESPACES: Resource = {
  plural: "namespaces",
  kind: "Namespace",
  apiVersion: "v1",
  namespaced: false,
  base: "/api/v1",
};
/** mutating-registry-webhook's rule objects: read as rules when their CRD is installed, never written. */
const REGISTRY_REWRITE_RULES: Resource = {
  plural: "registryrewriterules",
  kind: FLEMZORD_KIND,
  apiVersion: `${FLEMZORD_GROUP}/v1alpha1`,
  namespaced: false,
  base: `/apis/${FLEMZORD_GROUP}/v1alpha1`,
};

/** `imagerewrites.mirrorhook.dev` */
function resourceName(resource: Resource): string {
  const group = resource.base.startsWith("/apis/") ? resource.base.split("/")[2] : undefined;
  return group === undefined ? resource.plural : `${resource.plural}.${group}`;
}

function collectionPath(resource: Resource): string {
  return `${resource.base}/${resource.plural}`;
}

function objectPath(resource: Resource, namespace: string, name: string): string {
  const tail = `${resource.plural}/${encodeURIComponent(name)}`;
  return resource.namespaced
    ? `${resource.base}/namespaces/${encodeURIComponent(namespace)}/${tail}`
    : `${resource.base}/${tail}`;
}

function isRecord(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function metadataOf(object: unknown): Json {
  return isRecord(object) && isRecord(object["metadata"]) ? object["metadata"] : {};
}

function stringField(record: Json, field: string): string | undefined {
  const value = record[field];
  return typeof value === "string" ? value : undefined;
}

function resourceVersionOf(object: unknown): string | undefined {
  return stringField(metadataOf(object), "resourceVersion");
}

function generationOf(object: unknown): number | undefined {
  const value = metadataOf(object)["generation"];
  return typeof value === "number" ? value : undefined;
}

/** Key of an object within one resource: `namespace/name`. */
function itemKey(object: unknown): string {
  const metadata = metadataOf(object);
  return `${stringField(metadata, "namespace") ?? ""}/${stringField(metadata, "name") ?? ""}`;
}

/** Key across kinds: `Kind/namespace/name`. */
function objectKey(kind: string, object: unknown): string {
  return `${kind}/${itemKey(object)}`;
}

function labelOf(object: unknown): string {
  const kind = isRecord(object) && typeof object["kind"] === "string" ? object["kind"] : "object";
  const metadata = metadataOf(object);
  const namespace = stringField(metadata, "namespace");
  return describeObject({
    kind,
    metadata: { name: stringField(metadata, "name") ?? "", ...(namespace === undefined ? {} : { namespace }) },
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Evaluation: which objects are used, and why the others are not. Pure.

interface ObjectCheck {
  readonly object?: RewriteObject;
  readonly errors: readonly Problem[];
  readonly warnings: readonly Problem[];
  /** `priority\0reference` of each `exact` rule: the only rules that can conflict across objects. */
  readonly exactKeys: readonly string[];
}

/** `spec.rules` of a raw object, when it is a list. */
function rulesOf(raw: unknown): unknown[] {
  const spec = isRecord(raw) ? raw["spec"] : undefined;
  const rules = isRecord(spec) ? spec["rules"] : undefined;
  return Array.isArray(rules) ? rules : [];
}

/** Checks are kept per object version: the watch hands out a new object for every change. */
const checks = new WeakMap<object, ObjectCheck>();

function checkObject(raw: Json): ObjectCheck {
  const cached = checks.get(raw);
  if (cached !== undefined) return cached;
  const validated = validateObject(raw);
  let problems: readonly Problem[] = validated.problems;
  let exactKeys: string[] = [];
  if (validated.object !== undefined) {
    const compiled = compileRuleSet([validated.object]);
    problems = [...problems, ...compiled.problems];
    exactKeys = compiled.ruleSet.levels.flatMap((level) =>
      [...level.exact.keys()].map((key) => `${level.priority}\u0000${key}`)
    );
  } else if (validated.draft !== undefined) {
    problems = [...problems, ...compileRuleSet([], { drafts: [validated.draft] }).problems];
  }
  const errors = problems.filter((problem) => problem.severity === "error");
  const warnings = problems.filter((problem) => problem.severity === "warning");
  const check: ObjectCheck = errors.length === 0 && validated.object !== undefined
    ? { object: validated.object, errors, warnings, exactKeys }
    : { errors, warnings, exactKeys: [] };
  checks.set(raw, check);
  return check;
}

/** Older first: creationTimestamp, then namespace/name, then kind; objects without a timestamp count as newest. */
function compareAge(a: RewriteObject, b: RewriteObject): number {
  const time = (object: RewriteObject) => {
    const parsed = Date.parse(object.metadata.creationTimestamp ?? "");
    return Number.isNaN(parsed) ? Number.POSITIVE_INFINITY : parsed;
  };
  const ta = time(a);
  const tb = time(b);
  if (ta !== tb) return ta < tb ? -1 : 1;
  const na = `${a.metadata.namespace ?? ""}/${a.metadata.name}`;
  const nb = `${b.metadata.namespace ?? ""}/${b.metadata.name}`;
  if (na !== nb) return na < nb ? -1 : 1;
  return a.kind < b.kind ? -1 : a.kind > b.kind ? 1 : 0;
}

/** metav1.Condition allows 32768 characters. */
const MESSAGE_LIMIT = 32768;
const LISTED_PROBLEMS = 5;

function joinProblems(problems: readonly Problem[]): string {
  const shown = problems.slice(0, LISTED_PROBLEMS).map((problem) => problem.message).join("; ");
  const more = problems.length - LISTED_PROBLEMS;
  return more > 0 ? `${shown}; and ${more} more` : shown;
}

function limitMessage(message: string): string {
  return message.length <= MESSAGE_LIMIT ? message : `${message.slice(0, MESSAGE_LIMIT - 1)}…`;
}

/**
 * Decides which API objects are used. Each object is validated and compiled on its own; an object with
 * errors is not used. Then objects are added oldest first, and an object whose `exact` rules conflict with
 * an object already added is not used: the older object wins and stays in force.
 */
export function evaluateObjects(raws: readonly unknown[]): Evaluation {
  const verdicts = new Map<string, ObjectVerdict>();
  const valid: { object: RewriteObject; check: ObjectCheck; key: string; generation?: number }[] = [];
  for (const raw of raws) {
    if (!isRecord(raw)) continue;
    const kind = typeof raw["kind"] === "string" ? raw["kind"] : "object";
    const key = objectKey(kind, raw);
    const generation = generationOf(raw);
    const check = checkObject(raw);
    if (check.object === undefined) {
      verdicts.set(key, {
        key,
        label: labelOf(raw),
        ...(generation === undefined ? {} : { generation }),
        reason: "InvalidRule",
        message: limitMessage(`Not used: ${joinProblems(check.errors)}`),
        rules: 0,
      });
    } else valid.push({ object: check.object, check, key, ...(generation === undefined ? {} : { generation }) });
  }
  valid.sort((a, b) => compareAge(a.object, b.object));

  const used: RewriteObject[] = [];
  const byExactKey = new Map<string, RewriteObject[]>();
  for (const { object, check, key, generation } of valid) {
    const label = describeObject(object);
    // Conflicts are pairwise: compile the object with each older object that decides one of its references.
    const peers = [...new Set(check.exactKeys.flatMap((exact) => byExactKey.get(exact) ?? []))];
    const older: string[] = [];
    const conflicts: Problem[] = [];
    for (const peer of peers) {
      const found = compileRuleSet([peer, object]).problems.filter((problem) =>
        problem.code === "conflict" && problem.object === label
      );
      if (found.length === 0) continue;
      older.push(describeObject(peer));
      conflicts.push(...found);
    }
    const base = { key, label, ...(generation === undefined ? {} : { generation }) };
    if (conflicts.length > 0) {
      verdicts.set(key, {
        ...base,
        reason: "Conflict",
        message: limitMessage(
          `Not used: conflicts with the older ${older.join(", ")}, which stays in force: ${joinProblems(conflicts)}`,
        ),
        rules: 0,
      });
      continue;
    }
    used.push(object);
    for (const exact of check.exactKeys) {
      const list = byExactKey.get(exact) ?? [];
      list.push(object);
      byExactKey.set(exact, list);
    }
    const count = object.spec.rules.length;
    const warnings = check.warnings.length === 0 ? "" : `; warnings: ${joinProblems(check.warnings)}`;
    verdicts.set(key, {
      ...base,
      reason: "Valid",
      message: limitMessage(`${count} rule(s) in force${warnings}`),
      rules: count,
      object,
    });
  }
  return { used, verdicts };
}

// ---------------------------------------------------------------------------------------------------------------
// RegistryRewriteRules (mutating-registry-webhook): translated into ClusterImageRewrites, which are validated and
// compiled as `mirrorhook import` and a rule file in that format are (lib/rules/load.ts). Pure.

/**
 * Name prefix of the ClusterImageRewrites made from RegistryRewriteRules. They share the store with the real
 * ClusterImageRewrites, where two objects of one name would drop one of them; a real object whose name a
 * translation would take anyway wins, and the RegistryRewriteRule is not used.
 */
export const TRANSLATED_PREFIX = "flemzord-";

/** Result of {@linkcode evaluateRegistryRewriteRules}. */
export interface ForeignEvaluation {
  /** Translated objects to put in force, each with the key (`RegistryRewriteRule//name`) of the one it came from. */
  readonly used: readonly { readonly object: RewriteObject; readonly owner: string }[];
  /** The Pod opt-outs mutating-registry-webhook honours: in force while any RegistryRewriteRule exists. */
  readonly optOuts: readonly PodOptOut[];
  /** One per RegistryRewriteRule, by `RegistryRewriteRule//name`. */
  readonly verdicts: ReadonlyMap<string, ObjectVerdict>;
  /** Errors and warnings of each RegistryRewriteRule, by key; under "" those found only by reading them together. */
  readonly problems: ReadonlyMap<string, readonly Problem[]>;
}

interface ForeignCheck {
  readonly errors: readonly Problem[];
  readonly warnings: readonly Problem[];
  readonly optOuts: readonly PodOptOut[];
}

/** Checks are kept per object version, as {@linkcode checks} are. */
const foreignChecks = new WeakMap<object, ForeignCheck>();

/** `RegistryRewriteRule "hub"` becomes `ClusterImageRewrite "flemzord-hub"` (and `flemzord-hub-1`… when split). */
function prefixNames(translation: Translation): Translation {
  return {
    ...translation,
    objects: translation.objects.map((object) => {
      const metadata = metadataOf(object.raw);
      const name = `${TRANSLATED_PREFIX}${stringField(metadata, "name") ?? ""}`;
      return { ...object, raw: { ...object.raw, metadata: { ...metadata, name } } };
    }),
  };
}

/** One RegistryRewriteRule on its own: its errors decide whether it is used, and its warnings are its own. */
function checkForeign(raw: Json): ForeignCheck {
  const cached = foreignChecks.get(raw);
  if (cached !== undefined) return cached;
  const source = labelOf(raw);
  const translation = prefixNames(translateFlemzord([{ value: raw, locate: () => undefined }], source));
  const loaded = loadTranslation(translation, source);
  const check: ForeignCheck = {
    errors: loaded.problems.filter((problem) => problem.severity === "error"),
    warnings: loaded.problems.filter((problem) => problem.severity === "warning"),
    optOuts: loaded.optOuts.map(({ kind, key, value }) => ({ kind, key, value })),
  };
  foreignChecks.set(raw, check);
  return check;
}

/** A compat problem's text without its `Check <source>:` lead, so that one read alone and together compare equal. */
function problemDetail(problem: Problem): string {
  return (problem as CompatProblem).detail ?? problem.message;
}

/**
 * Decides which RegistryRewriteRules are used, and as which ClusterImageRewrites. Each is read on its own
 * first: one with errors (an invalid Go regular expression, a rule without `match`…) is not used, and does
 * not affect the others. The others are translated together, because mutating-registry-webhook orders rules
 * across all of them. A translation that would take the name of a ClusterImageRewrite in `taken` is not used.
 */
export function evaluateRegistryRewriteRules(
  raws: readonly unknown[],
  taken: ReadonlySet<string> = new Set(),
): ForeignEvaluation {
  const verdicts = new Map<string, ObjectVerdict>();
  const problems = new Map<string, readonly Problem[]>();
  const optOuts = new Map<string, PodOptOut>();
  const entries = raws.filter(isRecord)
    .map((raw) => ({ raw, key: objectKey(FLEMZORD_KIND, raw) }))
    .sort((a, b) => a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
  const describe = (raw: Json, key: string) => {
    const generation = generationOf(raw);
    return { key, label: labelOf(raw), ...(generation === undefined ? {} : { generation }) };
  };
  const valid: { raw: Json; key: string; check: ForeignCheck }[] = [];
  for (const { raw, key } of entries) {
    const check = checkForeign(raw);
    problems.set(key, [...check.errors, ...check.warnings]);
    for (const optOut of check.optOuts) optOuts.set(`${optOut.kind}\u0000${optOut.key}\u0000${optOut.value}`, optOut);
    if (check.errors.length === 0) valid.push({ raw, key, check });
    else {
      verdicts.set(key, {
        ...describe(raw, key),
        reason: "InvalidRule",
        message: limitMessage(`Not used: ${joinProblems(check.errors)}`),
        rules: 0,
      });
    }
  }

  // A translated object's `locate` asks the item its metadata came from: that names the RegistryRewriteRule.
  const asked: string[] = [];
  const items = valid.map(({ raw, key }) => ({
    value: raw,
    locate: () => {
      asked.push(key);
      return undefined;
    },
  }));
  const translation = prefixNames(translateFlemzord(items, resourceName(REGISTRY_REWRITE_RULES)));
  const ownerOf = new Map<string, string>();
  for (const object of translation.objects) {
    asked.length = 0;
    object.locate(["metadata"]);
    const owner = asked.at(-1);
    const name = stringField(metadataOf(object.raw), "name");
    if (owner !== undefined && name !== undefined) ownerOf.set(name, owner);
  }
  const loaded = loadTranslation(translation, resourceName(REGISTRY_REWRITE_RULES));
  const alone = new Set([...problems.values()].flat().map(problemDetail));
  problems.set("", loaded.problems.filter((problem) => !alone.has(problemDetail(problem))));

  // Each object compiled on its own before, so errors here would be between objects: their owners are not used.
  const failed = new Map<string, Problem[]>();
  const byLabel = new Map(
    [...ownerOf].map(([name, owner]) => [describeObject({ kind: "ClusterImageRewrite", metadata: { name } }), owner]),
  );
  for (const problem of loaded.problems) {
    const owner = problem.severity === "error" && problem.object !== undefined
      ? byLabel.get(problem.object)
      : undefined;
    if (owner !== undefined) failed.set(owner, [...(failed.get(owner) ?? []), problem]);
  }
  const byOwner = new Map<string, RewriteObject[]>();
  for (const object of loaded.objects) {
    const owner = ownerOf.get(object.metadata.name);
    if (owner !== undefined) byOwner.set(owner, [...(byOwner.get(owner) ?? []), object]);
  }

  const used: { object: RewriteObject; owner: string }[] = [];
  for (const { raw, key, check } of valid) {
    const objects = byOwner.get(key) ?? [];
    const labels = objects.map((object) => describeObject(object)).join(", ");
    const errors = failed.get(key);
    const clashes = objects.filter((object) => taken.has(object.metadata.name));
    if (errors !== undefined) {
      verdicts.set(key, {
        ...describe(raw, key),
        reason: "InvalidRule",
        message: limitMessage(`Not used: ${joinProblems(errors)}`),
        rules: 0,
      });
    } else if (clashes.length > 0) {
      verdicts.set(key, {
        ...describe(raw, key),
        reason: "Conflict",
        message: limitMessage(
          `Not used: it would be ${
            clashes.map((object) => describeObject(object)).join(", ")
          }, the name of a ClusterImageRewrite in the cluster, which stays in force`,
        ),
        rules: 0,
      });
    } else {
      used.push(...objects.map((object) => ({ object, owner: key })));
      const count = objects.reduce((sum, object) => sum + object.spec.rules.length, 0);
      const warnings = check.warnings.length === 0 ? "" : `; warnings: ${joinProblems(check.warnings)}`;
      verdicts.set(key, {
        ...describe(raw, key),
        reason: "Valid",
        message: limitMessage(`${count} rule(s) in force as ${labels}${warnings}`),
        rules: count,
      });
    }
  }
  return { used, optOuts: [...optOuts.values()], verdicts, problems };
}

// ---------------------------------------------------------------------------------------------------------------
// Status: what it should be, and whether what is there already says it.

/** RFC 3339 with seconds, as metav1.Time serializes. */
function formatTime(date: Date): string {
  return date.toISOString().replace(/\.\d+Z$/, "Z");
}

/**
 * The status an object should have. `lastTransitionTime` is kept from the current Ready condition when its
 * status (True/False) is unchanged; conditions of other types are kept as they are.
 */
export function desiredStatus(current: unknown, verdict: ObjectVerdict, now: Date): Json {
  const conditions = isRecord(current) && Array.isArray(current["conditions"]) ? current["conditions"] : [];
  const previous = conditions.find((condition) => isRecord(condition) && condition["type"] === "Ready");
  const status = verdict.reason === "Valid" ? "True" : "False";
  const kept = isRecord(previous) && previous["status"] === status && typeof previous["lastTransitionTime"] === "string"
    ? previous["lastTransitionTime"]
    : undefined;
  const generation = verdict.generation === undefined ? {} : { observedGeneration: verdict.generation };
  const ready = {
    type: "Ready",
    status,
    ...generation,
    lastTransitionTime: kept ?? formatTime(now),
    reason: verdict.reason,
    message: verdict.message,
  };
  return {
    ...generation,
    rules: verdict.rules,
    conditions: [...conditions.filter((condition) => !(isRecord(condition) && condition["type"] === "Ready")), ready],
  };
}

/** JSON with object keys sorted: the API server re-orders keys, so equality must not depend on order. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (isRecord(value)) {
    return `{${
      Object.keys(value).filter((key) => value[key] !== undefined).sort().map((key) =>
        `${JSON.stringify(key)}:${canonical(value[key])}`
      ).join(",")
    }}`;
  }
  return JSON.stringify(value) ?? "null";
}

/** True when two statuses say the same thing. */
export function sameStatus(a: unknown, b: unknown): boolean {
  return canonical(a ?? null) === canonical(b ?? null);
}

/** The status without timestamps: what a write decided, independent of when. */
function statusFingerprint(status: unknown): string {
  const conditions = isRecord(status) && Array.isArray(status["conditions"]) ? status["conditions"] : [];
  return canonical({
    ...(isRecord(status) ? status : {}),
    conditions: conditions.map((condition) =>
      isRecord(condition) ? { ...condition, lastTransitionTime: undefined } : condition
    ),
  });
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP to the API server: node:http(s) with the options KubeConfig builds (TLS material, proxy agent, token).

/** A non-success answer from the API server, with its Status `code` and `reason`. */
export class KubeApiError extends Error {
  override name = "KubeApiError";
  readonly code: number;
  readonly reason: string | undefined;
  constructor(action: string, code: number, body: unknown) {
    const reason = isRecord(body) ? stringField(body, "reason") : undefined;
    const detail = isRecord(body) ? stringField(body, "message") : typeof body === "string" ? body.slice(0, 200) : "";
    super(`Cannot ${action}: ${code}${reason === undefined ? "" : ` ${reason}`}${detail ? `: ${detail}` : ""}`);
    this.code = code;
    this.reason = reason;
  }
}

/** Longest watch line accepted (one object); the API server's own request limit is 3 MiB. */
const MAX_LINE = 16 * 1024 * 1024;

interface Answer {
  readonly status: number;
  readonly body: unknown;
}

class KubeHttp {
  readonly #config: KubeConfig;
  readonly #server: string;
  readonly #timeoutMs: number;

  constructor(config: KubeConfig, timeoutMs: number) {
    const cluster = config.getCurrentCluster();
    if (cluster === null) {
      throw new Error("Cannot connect to the Kubernetes API: the kubeconfig has no current cluster");
    }
    this.#config = config;
    this.#server = cluster.server.replace(/\/+$/, "");
    this.#timeoutMs = timeoutMs;
  }

  /** One request with a JSON answer, bounded in time. */
  async request(
    method: string,
    path: string,
    options: { query?: Record<string, string>; body?: unknown; signal: AbortSignal },
  ): Promise<Answer> {
    const controller = new AbortController();
    const timer = setTimeout(
      () => controller.abort(new Error(`timed out after ${this.#timeoutMs} ms`)),
      this.#timeoutMs,
    );
    const signal = AbortSignal.any([options.signal, controller.signal]);
    try {
      const response = await this.#open(method, path, options.query ?? {}, options.body, signal);
      const chunks: Uint8Array[] = [];
      for await (const chunk of response) chunks.push(chunk as Uint8Array);
      const text = new TextDecoder().decode(concat(chunks));
      return { status: response.statusCode ?? 0, body: parseJson(text) };
    } finally {
      clearTimeout(timer);
    }
  }

  /** A watch: the status and, on 200, the newline-delimited events as lines. */
  async stream(
    path: string,
    query: Record<string, string>,
    signal: AbortSignal,
  ): Promise<{ status: number; body?: unknown; lines?: AsyncGenerator<string> }> {
    const response = await this.#open("GET", path, query, undefined, signal);
    if (response.statusCode !== 200) {
      const chunks: Uint8Array[] = [];
      for await (const chunk of response) chunks.push(chunk as Uint8Array);
      return { status: response.statusCode ?? 0, body: parseJson(new TextDecoder().decode(concat(chunks))) };
    }
    return { status: 200, lines: readLines(response) };
  }

  async #open(
    method: string,
    path: string,
    query: Record<string, string>,
    body: unknown,
    signal: AbortSignal,
  ): Promise<http.IncomingMessage> {
    signal.throwIfAborted();
    // Per request, so that a rotated service account token (re-read by KubeConfig) is picked up.
    const options: https.RequestOptions = {};
    await this.#config.applyToHTTPSOptions(options);
    const url = new URL(this.#server + path);
    for (const [name, value] of Object.entries(query)) url.searchParams.set(name, value);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = {};
    if (isRecord(options.headers)) {
      for (const [name, value] of Object.entries(options.headers)) {
        if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(", ") : String(value);
      }
    }
    headers["Accept"] = "application/json";
    headers["User-Agent"] = "mirrorhook";
    if (payload !== undefined) headers["Content-Type"] = "application/json";
    signal.throwIfAborted();
    return await new Promise((resolve, reject) => {
      const request = (url.protocol === "https:" ? https : http).request(url, { ...options, method, headers });
      const abort = () => request.destroy(signal.reason instanceof Error ? signal.reason : new Error("aborted"));
      signal.addEventListener("abort", abort, { once: true });
      const release = () => signal.removeEventListener("abort", abort);
      request.on("response", (response) => {
        response.on("close", release);
        resolve(response);
      });
      request.on("error", (error) => {
        release();
        reject(error);
      });
      request.end(payload);
    });
  }
}

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

async function* readLines(response: http.IncomingMessage): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for await (const chunk of response) {
      buffer += decoder.decode(chunk as Uint8Array, { stream: true });
      let end: number;
      while ((end = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 1);
        if (line.trim() !== "") yield line;
      }
      if (buffer.length > MAX_LINE) throw new Error(`watch event longer than ${MAX_LINE} bytes`);
    }
    buffer += decoder.decode();
    if (buffer.trim() !== "") yield buffer;
  } finally {
    response.destroy();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Reflector: list, then watch from the list's resourceVersion; relist on 410; reconnect with backoff.

interface Backoff {
  readonly initialMs: number;
  readonly maxMs: number;
}

/** Exponential, capped, with "equal jitter": half the step fixed, half random, so replicas spread out. */
function backoffDelay(failures: number, backoff: Backoff): number {
  const step = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.min(failures - 1, 30));
  return step / 2 + Math.random() * (step / 2);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A watch that lived this long was healthy even if it carried no event (quiet resource, no bookmarks). */
const HEALTHY_WATCH_MS = 10_000;

interface ReflectorOptions {
  readonly http: KubeHttp;
  readonly resource: Resource;
  readonly logger: Logger;
  readonly backoff: Backoff;
  readonly pageSize: number;
  readonly watchTimeoutSeconds: number;
  /** What to keep of each object (e.g. only a namespace's labels). */
  readonly keep: (object: Json) => Json;
  /** After a list replaced the items, or an event changed one. */
  readonly onChange: () => void;
  /** After a failed list or watch request (not after an ordinary disconnect of an open watch). */
  readonly onError: (message: string) => void;
  /** After a watch opened again following a failed request. */
  readonly onRecover: () => void;
  /**
   * For a resource whose CRD may not be installed: a 404 (not installed) or 403 (not granted) from LIST or
   * WATCH means "no objects", which counts as synced, and the resource is looked for again after `recheckMs`.
   */
  readonly optional?: { readonly recheckMs: number };
}

/** Mirrors one resource type into `items`, like client-go's Reflector. */
class Reflector {
  /** Objects by `namespace/name`. */
  items = new Map<string, Json>();
  /** True once a complete list has been received. */
  synced = false;
  #options: ReflectorOptions;
  /** Where the next watch starts; undefined means list first. */
  #resourceVersion: string | undefined;
  /** The current watch is open: errors from here on are disconnects, not failed requests. */
  #streaming = false;
  #failed = false;
  /** The status (404 or 403) an optional resource was last missing with; undefined while it is served. */
  #missing: number | undefined;

  constructor(options: ReflectorOptions) {
    this.#options = options;
  }

  async run(signal: AbortSignal): Promise<void> {
    const { logger, resource, backoff } = this.#options;
    const name = resourceName(resource);
    let failures = 0;
    while (!signal.aborted) {
      let healthy = false;
      this.#streaming = false;
      try {
        const listed = this.#resourceVersion === undefined;
        if (listed) await this.#list(signal);
        const started = performance.now();
        const { expired, events } = await this.#watch(signal);
        healthy = events > 0 || performance.now() - started >= HEALTHY_WATCH_MS;
        if (expired) {
          logger.info("Watch of {resource} expired (410 Gone); listing again", { resource: name });
          this.#resourceVersion = undefined;
          // A watch that expires right after a fresh list would loop: back off then.
          healthy = !listed || events > 0;
        } else if (!healthy) {
          logger.debug("Watch of {resource} closed without events; reconnecting", { resource: name });
        }
      } catch (error) {
        if (signal.aborted) break;
        if (error instanceof KubeApiError && error.code === 410) {
          logger.info("Watch of {resource} expired (410 Gone); listing again", { resource: name });
          this.#resourceVersion = undefined;
          healthy = failures === 0;
        } else if (this.#optionalMissing(error)) {
          failures = 0;
          await sleep(this.#options.optional?.recheckMs ?? 0, signal);
          continue;
        } else {
          const message = errorMessage(error);
          const details = { resource: name, message, failures: failures + 1 };
          if (this.#streaming) {
            // An open watch broke (API server restart, load balancer): resume from the last resourceVersion.
            logger.info("Watch of {resource} disconnected; resuming: {message}", details);
          } else {
            logger.warn("Cannot list and watch {resource}; retrying after backoff: {message}", details);
            this.#failed = true;
            this.#options.onError(`Cannot list and watch ${name}: ${message}`);
          }
        }
      }
      failures = healthy ? 0 : failures + 1;
      if (failures > 0 && !signal.aborted) await sleep(backoffDelay(failures, backoff), signal);
    }
  }

  async #list(signal: AbortSignal): Promise<void> {
    const { http, resource, pageSize, keep } = this.#options;
    const action = `list ${resourceName(resource)}`;
    const items = new Map<string, Json>();
    let token: string | undefined;
    let resourceVersion: string | undefined;
    do {
      const query: Record<string, string> = { limit: String(pageSize) };
      if (token !== undefined) query["continue"] = token;
      const answer = await http.request("GET", collectionPath(resource), { query, signal });
      if (answer.status !== 200) throw new KubeApiError(action, answer.status, answer.body);
      const body = answer.body;
      if (!isRecord(body) || !Array.isArray(body["items"])) throw new Error(`Cannot ${action}: not a list`);
      const metadata = metadataOf(body);
      resourceVersion = stringField(metadata, "resourceVersion");
      if (resourceVersion === undefined) throw new Error(`Cannot ${action}: the list has no resourceVersion`);
      for (const item of body["items"]) {
        // List items of built-in types carry no kind/apiVersion; watch events do.
        if (isRecord(item)) {
          items.set(itemKey(item), keep({ ...item, apiVersion: resource.apiVersion, kind: resource.kind }));
        }
      }
      token = stringField(metadata, "continue") || undefined;
    } while (token !== undefined);
    this.items = items;
    this.#resourceVersion = resourceVersion;
    this.synced = true;
    if (this.#missing !== undefined) {
      this.#missing = undefined;
      this.#options.logger.info("{resource} is served now; reading it", { resource: resourceName(resource) });
    }
    this.#options.onChange();
  }

  /** An optional resource that is not installed or not granted: no objects, and synced. False for other errors. */
  #optionalMissing(error: unknown): boolean {
    const { optional, logger, resource } = this.#options;
    if (optional === undefined || !(error instanceof KubeApiError) || (error.code !== 404 && error.code !== 403)) {
      return false;
    }
    if (this.#missing !== error.code) {
      const details = { resource: resourceName(resource), seconds: optional.recheckMs / 1000, message: error.message };
      // Logged once per state, not at every look.
      if (error.code === 404) {
        logger.info(
          "{resource} is not served (its CRD is not installed): none read; looking again every {seconds} s",
          details,
        );
      } else {
        logger.warn(
          "Cannot read {resource}, the role does not grant it: none read; grant get, list and watch to use them; looking again every {seconds} s: {message}",
          details,
        );
      }
      this.#missing = error.code;
    }
    this.#resourceVersion = undefined;
    const changed = !this.synced || this.items.size > 0;
    this.items = new Map();
    this.synced = true;
    if (this.#failed) {
      this.#failed = false;
      this.#options.onRecover();
    }
    if (changed) this.#options.onChange();
    return true;
  }

  async #watch(signal: AbortSignal): Promise<{ expired: boolean; events: number }> {
    const { http, resource, watchTimeoutSeconds, keep } = this.#options;
    const action = `watch ${resourceName(resource)}`;
    const timeoutSeconds = Math.round(watchTimeoutSeconds * (1 + Math.random()));
    // The server ends the watch after timeoutSeconds; a connection silent past that is dead (half-open TCP).
    const controller = new AbortController();
    const timer = setTimeout(
      () => controller.abort(new Error("watch outlived its timeout")),
      (timeoutSeconds + 30) * 1000,
    );
    let events = 0;
    try {
      const opened = await http.stream(
        collectionPath(resource),
        {
          watch: "1",
          resourceVersion: this.#resourceVersion ?? "",
          allowWatchBookmarks: "true",
          timeoutSeconds: String(timeoutSeconds),
        },
        AbortSignal.any([signal, controller.signal]),
      );
      if (opened.lines === undefined) throw new KubeApiError(action, opened.status, opened.body);
      this.#streaming = true;
      if (this.#failed) {
        this.#failed = false;
        this.#options.onRecover();
      }
      for await (const line of opened.lines) {
        const event = parseJson(line);
        if (!isRecord(event) || typeof event["type"] !== "string" || !isRecord(event["object"])) {
          throw new Error(`Cannot ${action}: malformed event`);
        }
        const object = event["object"];
        if (event["type"] === "ERROR") {
          if (object["code"] === 410) return { expired: true, events };
          throw new KubeApiError(action, typeof object["code"] === "number" ? object["code"] : 500, object);
        }
        const resourceVersion = resourceVersionOf(object);
        if (resourceVersion === undefined) throw new Error(`Cannot ${action}: event without resourceVersion`);
        events++;
        switch (event["type"]) {
          case "ADDED":
          case "MODIFIED":
            this.items.set(itemKey(object), keep({ ...object, apiVersion: resource.apiVersion, kind: resource.kind }));
            break;
          case "DELETED":
            this.items.delete(itemKey(object));
            break;
          case "BOOKMARK":
            break;
          default:
            this.#options.logger.debug("Ignored watch event of type {type}", { type: event["type"] });
        }
        this.#resourceVersion = resourceVersion;
        if (event["type"] !== "BOOKMARK") this.#options.onChange();
      }
      return { expired: false, events };
    } finally {
      clearTimeout(timer);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The source.

/**
 * Keeps the store's "kube" objects equal to the valid, non-conflicting rule objects in the cluster, and to the
 * translations of the valid RegistryRewriteRules (with mutating-registry-webhook's Pod opt-out) when their CRD
 * is installed.
 */
export class KubeRuleSource {
  #options: KubeSourceOptions;
  #http: KubeHttp;
  #controller = new AbortController();
  #rewrites: Reflector;
  #clusterRewrites: Reflector;
  #namespaces: Reflector | undefined;
  #registryRewriteRules: Reflector;
  #runs: Promise<void>[] = [];
  #started = false;
  #stopped = false;
  #synced = Promise.withResolvers<void>();
  #loaded = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #updating = false;
  #unsubscribe: (() => void) | undefined;
  /** Everything this source put in the store: our objects, then translated ones. */
  #used: readonly RewriteObject[] = [];
  #optOuts: readonly PodOptOut[] = [];
  /** The RegistryRewriteRule (verdict key) each translated object in `#used` came from. */
  #owners: ReadonlyMap<RewriteObject, string> = new Map();
  #usedFingerprint: string | undefined;
  /** The last evaluation of RegistryRewriteRules, and what it was made from (object versions, names taken). */
  #foreign: { raws: readonly Json[]; taken: string; evaluation: ForeignEvaluation } | undefined;
  /** Per RegistryRewriteRule (and "" for all together): the problems last logged. */
  #foreignLogged = new Map<string, string>();
  #verdicts = new Map<string, ObjectVerdict>();
  #verdictFingerprint: string | undefined;
  #pending = new Set<string>();
  #draining: Promise<void> | undefined;
  /** Per object: what we last wrote, and the resourceVersions just before and after, so a stale view does not rewrite. */
  #written = new Map<string, { fingerprint: string; versions: ReadonlySet<string> }>();
  #warnedStored = new Set<string>();

  constructor(options: KubeSourceOptions) {
    this.#options = options;
    this.#http = new KubeHttp(options.kubeConfig, options.requestTimeoutMs ?? 30_000);
    options.store.register(KUBE_SOURCE);
    const common = {
      http: this.#http,
      logger: options.logger,
      backoff: { initialMs: options.backoff?.initialMs ?? 500, maxMs: options.backoff?.maxMs ?? 30_000 },
      pageSize: options.pageSize ?? 500,
      watchTimeoutSeconds: options.watchTimeoutSeconds ?? 300,
      onError: (message: string) => {
        options.store.fail(KUBE_SOURCE, message);
        options.metrics?.reloads.inc({ source: KUBE_SOURCE, result: "error" });
      },
      onRecover: () => {
        // The store keeps a source's last error until its next update: clear it with the objects in force.
        if (this.#loaded && !this.#stopped) this.#update(this.#used, this.#optOuts);
      },
    };
    const rules = { ...common, keep: (object: Json) => object, onChange: () => this.#schedule() };
    this.#rewrites = new Reflector({ ...rules, resource: IMAGE_REWRITES });
    this.#clusterRewrites = new Reflector({ ...rules, resource: CLUSTER_IMAGE_REWRITES });
    this.#registryRewriteRules = new Reflector({
      ...rules,
      resource: REGISTRY_REWRITE_RULES,
      optional: { recheckMs: options.optionalRecheckMs ?? 60_000 },
    });
    if (options.watchNamespaces !== false) {
      this.#namespaces = new Reflector({
        ...common,
        resource: NAMESPACES,
        keep: (object) => {
          const metadata = metadataOf(object);
          return { metadata: { name: metadata["name"], labels: metadata["labels"] } };
        },
        // Labels are read at admission time; only readiness depends on this list.
        onChange: () => {
          if (!this.#loaded) this.#schedule();
        },
      });
    }
    this.#synced.promise.catch(() => {});
  }

  /** Resolves when the first complete lists are in the store; rejects if stopped before. */
  get synced(): Promise<void> {
    return this.#synced.promise;
  }

  /** Starts listing and watching in the background; readiness follows {@linkcode synced}. */
  start(): void {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    const signal = this.#controller.signal;
    for (const reflector of [this.#rewrites, this.#clusterRewrites, this.#namespaces, this.#registryRewriteRules]) {
      if (reflector !== undefined) this.#runs.push(reflector.run(signal));
    }
    this.#unsubscribe = this.#options.store.onChange(() => {
      // Another source changed the rules: our objects may now conflict with its objects.
      if (!this.#updating) this.#schedule();
    });
  }

  /** Stops watching and writing; resolves when every connection is closed. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#controller.abort(new Error("stopped"));
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#unsubscribe?.();
    this.#synced.reject(new Error("The Kubernetes rule source stopped before its first load"));
    await Promise.allSettled([...this.#runs, this.#draining]);
  }

  /** Labels of a namespace, or undefined when it is unknown (or namespaces are not watched). */
  namespaceLabels(name: string): Labels | undefined {
    const namespace = this.#namespaces?.items.get(`/${name}`);
    if (namespace === undefined) return undefined;
    const labels = metadataOf(namespace)["labels"];
    return isRecord(labels) ? labels as Labels : {};
  }

  /** The last verdict on each rule object (RegistryRewriteRules included), by `Kind/namespace/name`. */
  get verdicts(): ReadonlyMap<string, ObjectVerdict> {
    return this.#verdicts;
  }

  #schedule(): void {
    if (this.#stopped || this.#timer !== undefined) return;
    // One evaluation per burst of events.
    this.#timer = setTimeout(async () => {
      this.#timer = undefined;
      try {
        const screen = this.#options.screen;
        if (screen !== undefined) {
          const raws = [...this.#rewrites.items.values(), ...this.#clusterRewrites.items.values()];
          await screen(raws.flatMap((raw) => matchPatterns(rulesOf(raw))));
        }
        this.#reconcile();
      } catch (error) {
        this.#options.logger.error("Cannot evaluate rule objects: {message}", { message: errorMessage(error) });
        // Screening refused (busy, slow) decides nothing: the rules in force stay, and evaluation is tried again.
        if (this.#options.screen !== undefined && !this.#stopped) setTimeout(() => this.#schedule(), 1000);
      }
    }, 0);
  }

  #reconcile(): void {
    const { store, metrics, logger } = this.#options;
    if (this.#stopped) return;
    if (
      !this.#rewrites.synced || !this.#clusterRewrites.synced || this.#namespaces?.synced === false ||
      !this.#registryRewriteRules.synced
    ) return;
    const raws = [...this.#rewrites.items.values(), ...this.#clusterRewrites.items.values()];
    const evaluation = evaluateObjects(raws);
    const foreign = this.#evaluateForeign();
    // Translations hold `match` rules only, and conflicts are between `exact` rules: they cannot conflict with ours.
    const used = [...evaluation.used, ...foreign.used.map((entry) => entry.object)];

    const usedFingerprint = [
      ...used.map((object) =>
        canonical([object.kind, object.metadata.namespace ?? "", object.metadata.name, object.spec])
      ),
      ...foreign.optOuts.map((optOut) => canonical(["opt-out", optOut.kind, optOut.key, optOut.value])),
    ].sort().join("\n");
    if (usedFingerprint !== this.#usedFingerprint) {
      this.#usedFingerprint = usedFingerprint;
      this.#used = used;
      this.#optOuts = foreign.optOuts;
      this.#owners = new Map(foreign.used.map((entry) => [entry.object, entry.owner]));
      this.#update(used, foreign.optOuts);
    }
    this.#logForeignProblems(foreign);

    const verdicts = this.#crossSourceConflicts(new Map([...evaluation.verdicts, ...foreign.verdicts]));
    const verdictFingerprint = [...verdicts.values()]
      .map((verdict) => canonical([verdict.key, verdict.generation ?? null, verdict.reason, verdict.message]))
      .sort().join("\n");
    const previous = this.#verdicts;
    this.#verdicts = verdicts;
    if (verdictFingerprint !== this.#verdictFingerprint) {
      this.#verdictFingerprint = verdictFingerprint;
      for (const verdict of verdicts.values()) {
        const before = previous.get(verdict.key);
        if (before?.reason === verdict.reason && before.message === verdict.message) continue;
        if (verdict.reason === "Valid") {
          logger.info("Using {object}: {message}", { object: verdict.label, message: verdict.message });
        } else {
          logger.warn("Not using {object} ({reason}): {message}", {
            object: verdict.label,
            reason: verdict.reason,
            message: verdict.message,
          });
        }
      }
      const rejected = [...verdicts.values()].filter((verdict) => verdict.reason !== "Valid").length;
      const rules = used.reduce((sum, object) => sum + object.spec.rules.length, 0);
      metrics?.reloads.inc({ source: KUBE_SOURCE, result: rejected === 0 ? "success" : "error" });
      metrics?.rulesLoaded.set({ source: KUBE_SOURCE }, rules);
      metrics?.objectsLoaded.set({ source: KUBE_SOURCE }, used.length);
      logger.info(
        "Loaded rule objects from the API: {objects} object(s) in use, {rules} rule(s), {rejected} rejected, hash {hash}",
        {
          objects: used.length,
          rules,
          rejected,
          hash: store.current.hash,
        },
      );
    }
    if (!this.#loaded) {
      this.#loaded = true;
      this.#synced.resolve();
    }
    if (this.#options.writeStatus !== false) this.#queueStatusWrites();
  }

  /** RegistryRewriteRules, translated and checked once per change of them or of the ClusterImageRewrite names. */
  #evaluateForeign(): ForeignEvaluation {
    const raws = [...this.#registryRewriteRules.items.values()];
    const taken = [...this.#clusterRewrites.items.values()]
      .map((raw) => stringField(metadataOf(raw), "name") ?? "").sort();
    const takenKey = taken.join("\n");
    const cached = this.#foreign;
    if (
      cached !== undefined && cached.taken === takenKey && cached.raws.length === raws.length &&
      cached.raws.every((raw, index) => raw === raws[index])
    ) return cached.evaluation;
    const evaluation = evaluateRegistryRewriteRules(raws, new Set(taken));
    this.#foreign = { raws, taken: takenKey, evaluation };
    return evaluation;
  }

  /** Every problem of a RegistryRewriteRule, once each time its problems change: they get no status to show them. */
  #logForeignProblems(foreign: ForeignEvaluation): void {
    const { logger } = this.#options;
    for (const key of this.#foreignLogged.keys()) {
      if (!foreign.problems.has(key)) this.#foreignLogged.delete(key);
    }
    for (const [key, problems] of foreign.problems) {
      const fingerprint = problems.map((problem) => problem.message).join("\n");
      if (this.#foreignLogged.get(key) === fingerprint) continue;
      this.#foreignLogged.set(key, fingerprint);
      const object = foreign.verdicts.get(key)?.label ?? resourceName(REGISTRY_REWRITE_RULES);
      for (const problem of problems) {
        logger.warn("{object}: {message}", {
          object,
          severity: problem.severity,
          code: problem.code,
          message: problem.message,
        });
      }
    }
  }

  /** An object this source uses can still be dropped by the store for a conflict with another source's object. */
  #crossSourceConflicts(verdicts: ReadonlyMap<string, ObjectVerdict>): Map<string, ObjectVerdict> {
    const { store } = this.#options;
    const inForce = new Set(store.current.objects.map((object) => object.source));
    // Verdict key → labels of its objects left out: a RegistryRewriteRule may have become several objects.
    const dropped = new Map<string, string[]>();
    for (const object of this.#used) {
      if (inForce.has(object)) continue;
      const key = this.#owners.get(object) ?? objectKey(object.kind, object);
      dropped.set(key, [...(dropped.get(key) ?? []), describeObject(object)]);
    }
    const out = new Map<string, ObjectVerdict>();
    for (const [key, verdict] of verdicts) {
      const labels = dropped.get(key);
      if (verdict.reason !== "Valid" || labels === undefined) {
        out.set(key, verdict);
        continue;
      }
      const problems = store.problems.filter((problem) =>
        problem.severity === "error" && problem.object !== undefined && labels.includes(problem.object)
      );
      const { object: _object, ...rest } = verdict;
      out.set(key, {
        ...rest,
        reason: "Conflict",
        rules: 0,
        message: limitMessage(
          `Not used: conflicts with rules from another source${
            problems.length === 0 ? "" : `: ${joinProblems(problems)}`
          }`,
        ),
      });
    }
    return out;
  }

  #update(objects: readonly RewriteObject[], optOuts: readonly PodOptOut[]): void {
    this.#updating = true;
    try {
      this.#options.store.update(KUBE_SOURCE, objects, optOuts);
    } finally {
      this.#updating = false;
    }
  }

  /** Our object behind a verdict; undefined for a RegistryRewriteRule, which is not ours to write. */
  #rawObject(key: string): { raw: Json; resource: Resource } | undefined {
    const [kind] = key.split("/", 1);
    const resource = kind === IMAGE_REWRITES.kind
      ? IMAGE_REWRITES
      : kind === CLUSTER_IMAGE_REWRITES.kind
      ? CLUSTER_IMAGE_REWRITES
      : undefined;
    if (resource === undefined) return undefined;
    const reflector = resource === IMAGE_REWRITES ? this.#rewrites : this.#clusterRewrites;
    const raw = reflector.items.get(key.slice((kind ?? "").length + 1));
    return raw === undefined ? undefined : { raw, resource };
  }

  /** Whether `raw` needs a write to carry `verdict`. */
  #needsWrite(key: string, raw: Json, verdict: ObjectVerdict): boolean {
    const desired = desiredStatus(raw["status"], verdict, this.#now());
    if (sameStatus(raw["status"], desired)) return false;
    // Our own write of this very status is on its way through the watch (or the server stored it differently).
    const written = this.#written.get(key);
    const version = resourceVersionOf(raw);
    return !(written !== undefined && written.fingerprint === statusFingerprint(desired) && version !== undefined &&
      written.versions.has(version));
  }

  #queueStatusWrites(): void {
    for (const key of this.#written.keys()) {
      if (!this.#verdicts.has(key)) {
        this.#written.delete(key);
        this.#warnedStored.delete(key);
      }
    }
    for (const [key, verdict] of this.#verdicts) {
      const found = this.#rawObject(key);
      if (found !== undefined && this.#needsWrite(key, found.raw, verdict)) this.#pending.add(key);
    }
    if (this.#pending.size > 0 && this.#draining === undefined) {
      this.#draining = this.#drain().finally(() => {
        this.#draining = undefined;
      });
    }
  }

  async #drain(): Promise<void> {
    while (this.#pending.size > 0 && !this.#stopped) {
      const [key] = this.#pending;
      if (key === undefined) break;
      this.#pending.delete(key);
      try {
        await this.#writeStatus(key);
      } catch (error) {
        if (this.#stopped) return;
        this.#options.logger.warn("Cannot write the status of {object}: {message}", {
          object: key,
          message: errorMessage(error),
        });
      }
    }
  }

  #now(): Date {
    return this.#options.now?.() ?? new Date();
  }

  /**
   * PUT /status with the resourceVersion we saw: a write based on a stale view fails with 409, and then we
   * re-read and decide again. Replicas compute the same status, so the loser of a race finds it already there.
   */
  async #writeStatus(key: string): Promise<void> {
    const found = this.#rawObject(key);
    if (found === undefined) return;
    const { resource } = found;
    let raw = found.raw;
    const attempts = this.#options.statusAttempts ?? 5;
    const signal = this.#controller.signal;
    const metadata = metadataOf(raw);
    const path = `${
      objectPath(resource, stringField(metadata, "namespace") ?? "", stringField(metadata, "name") ?? "")
    }/status`;
    // Every version this write was based on: the watch may still deliver any of them after the write succeeded.
    const versions = new Set<string>();
    for (let attempt = 1; attempt <= attempts; attempt++) {
      const verdict = this.#verdicts.get(key);
      // Not evaluated at this generation yet: the watch brings the new version and a new verdict.
      if (verdict === undefined || verdict.generation !== generationOf(raw)) return;
      if (!this.#needsWrite(key, raw, verdict)) return;
      const desired = desiredStatus(raw["status"], verdict, this.#now());
      const before = resourceVersionOf(raw);
      if (before !== undefined) versions.add(before);
      const answer = await this.#http.request("PUT", path, {
        query: { fieldManager: "mirrorhook" },
        body: { ...raw, status: desired },
        signal,
      });
      if (answer.status === 200 || answer.status === 201) {
        const after = resourceVersionOf(answer.body);
        if (after !== undefined) versions.add(after);
        this.#written.set(key, { fingerprint: statusFingerprint(desired), versions });
        const stored = isRecord(answer.body) ? answer.body["status"] : undefined;
        if (!sameStatus(stored, desired) && !this.#warnedStored.has(key)) {
          this.#warnedStored.add(key);
          this.#options.logger.warn(
            "The API server stored a different status for {object} than written; is the CRD's status schema current?",
            { object: verdict.label },
          );
        }
        this.#options.logger.debug("Wrote the status of {object}: {reason}", {
          object: verdict.label,
          reason: verdict.reason,
        });
        return;
      }
      if (answer.status === 404) return;
      if (answer.status !== 409) {
        throw new KubeApiError(`write the status of ${verdict.label}`, answer.status, answer.body);
      }
      const fresh = await this.#http.request("GET", path.slice(0, -"/status".length), { signal });
      if (fresh.status === 404) return;
      if (fresh.status !== 200 || !isRecord(fresh.body)) {
        throw new KubeApiError(`read ${verdict.label}`, fresh.status, fresh.body);
      }
      raw = { ...fresh.body, apiVersion: resource.apiVersion, kind: resource.kind };
    }
    this.#options.logger.warn(
      "Gave up writing the status of {object} after {attempts} conflicts; will retry on the next change",
      {
        object: key,
        attempts,
      },
    );
  }
}
