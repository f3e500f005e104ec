// RegistryRewriteRule objects (mutating-registry-webhook) read from the cluster: translated into ClusterImageRewrites,
// which are validated and compiled as `mirrorhook import` and a rule file in that format are (lib/compat/load.ts). Pure.

import { FLEMZORD_KIND, translateFlemzord } from "./flemzord.ts";
import type { CompatProblem, Translation } from "./common.ts";
import type { PodOptOut } from "../rules/compile.ts";
import { loadTranslation } from "./load.ts";
import { joinProblems, limitMessage, type Problem } from "../rules/problem.ts";
import { describeObject, type RewriteObject } from "../rules/schema.ts";
import { isRecord, type Json } from "../util/json.ts";

/** `registryrewriterules.dev.flemzord.fr`: where problems found only by reading all of them together are reported. */
const REGISTRY_REWRITE_RULES_RESOURCE = "registryrewriterules.dev.flemzord.fr";

/** What was decided about one RegistryRewriteRule: the same shape as the verdict on one of our objects. */
export interface ForeignVerdict {
  /** `RegistryRewriteRule//name`. */
  readonly key: string;
  /** `RegistryRewriteRule "name"`. */
  readonly label: string;
  readonly generation?: number;
  readonly reason: "Valid" | "InvalidRule" | "Conflict";
  readonly message: string;
  /** Rules it contributes to the rules in force (0 when it is not used). */
  readonly rules: number;
}

function metadataOf(object: unknown): Json {
  return isRecord(object) && isRecord(object["metadata"]) ? object["metadata"] : {};
}

function stringField(record: Json, field: string): string | undefined {
  const value = record[field];
  return typeof value === "string" ? value : undefined;
}

function generationOf(object: unknown): number | undefined {
  const value = metadataOf(object)["generation"];
  return typeof value === "number" ? value : undefined;
}

/** `RegistryRewriteRule//name`, as the cluster source keys objects of every kind. */
function objectKey(object: unknown): string {
  const metadata = metadataOf(object);
  return `${FLEMZORD_KIND}/${stringField(metadata, "namespace") ?? ""}/${stringField(metadata, "name") ?? ""}`;
}

function labelOf(object: unknown): string {
  const metadata = metadataOf(object);
  const namespace = stringField(metadata, "namespace");
  return describeObject({
    kind: FLEMZORD_KIND,
    metadata: { name: stringField(metadata, "name") ?? "", ...(namespace === undefined ? {} : { namespace }) },
  });
}

/**
 * Name prefix of the ClusterImageRewrites made from RegistryRewriteRules. They share the store with the real
 * ClusterImageRewrites, where two objects of one name would drop one of them; a real object whose name a
 * translation would take anyway wins, and the RegistryRewriteRule is not used.
 */
const TRANSLATED_PREFIX = "flemzord-";

/** Result of {@linkcode evaluateRegistryRewriteRules}. */
export interface ForeignEvaluation {
  /** Translated objects to put in force, each with the key (`RegistryRewriteRule//name`) of the one it came from. */
  readonly used: readonly { readonly object: RewriteObject; readonly owner: string }[];
  /** The Pod opt-outs mutating-registry-webhook honours: in force while any RegistryRewriteRule exists. */
  readonly optOuts: readonly PodOptOut[];
  /** One per RegistryRewriteRule, by `RegistryRewriteRule//name`. */
  readonly verdicts: ReadonlyMap<string, ForeignVerdict>;
  /** Errors and warnings of each RegistryRewriteRule, by key; under "" those found only by reading them together. */
  readonly problems: ReadonlyMap<string, readonly Problem[]>;
}

interface ForeignCheck {
  readonly errors: readonly Problem[];
  readonly warnings: readonly Problem[];
  readonly optOuts: readonly PodOptOut[];
}

/** Checks are kept per object version, as the checks of our own objects are. */
const foreignChecks = new WeakMap<object, ForeignCheck>();

/** `RegistryRewriteRule "hub"` becomes `ClusterImageRewrite "flemzord-hub"` (and `flemzord-hub-1`... when split). */
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
 * first: one with errors (an invalid Go regular expression, a rule without `match`...) is not used, and does
 * not affect the others. The others are translated together, because mutating-registry-webhook orders rules
 * across all of them. A translation that would take the name of a ClusterImageRewrite in `taken` is not used.
 */
export function evaluateRegistryRewriteRules(
  raws: readonly unknown[],
  taken: ReadonlySet<string> = new Set(),
): ForeignEvaluation {
  const verdicts = new Map<string, ForeignVerdict>();
  const problems = new Map<string, readonly Problem[]>();
  const optOuts = new Map<string, PodOptOut>();
  const entries = raws.filter(isRecord)
    .map((raw) => ({ raw, key: objectKey(raw) }))
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
  const translation = prefixNames(translateFlemzord(items, REGISTRY_REWRITE_RULES_RESOURCE));
  const ownerOf = new Map<string, string>();
  for (const object of translation.objects) {
    asked.length = 0;
    object.locate(["metadata"]);
    const owner = asked.at(-1);
    const name = stringField(metadataOf(object.raw), "name");
    if (owner !== undefined && name !== undefined) ownerOf.set(name, owner);
  }
  const loaded = loadTranslation(translation, REGISTRY_REWRITE_RULES_RESOURCE);
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
