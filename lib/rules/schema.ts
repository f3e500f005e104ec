// The rule objects as written (ImageRewrite, ClusterImageRewrite) and their structural validation.

import { type FieldPath, formatPath, type Problem, type ProblemCode } from "./problem.ts";
import { isRecord, type Json } from "../util/json.ts";
import { type TargetOptions, validateTargetOptions, validateTargets } from "./target_options.ts";

/** API group of mirrorhook's objects. */
export const API_GROUP = "mirrorhook.dev";
/** The one served version. */
export const API_VERSION = `${API_GROUP}/v1alpha1`;
/** Kinds of rule objects. */
export const REWRITE_KINDS = ["ClusterImageRewrite", "ImageRewrite"] as const;
export type RewriteKind = (typeof REWRITE_KINDS)[number];

/** A Kubernetes label selector. */
export interface LabelSelector {
  readonly matchLabels?: Readonly<Record<string, string>>;
  readonly matchExpressions?: readonly LabelSelectorRequirement[];
}

/** One `matchExpressions` entry. */
export interface LabelSelectorRequirement {
  readonly key: string;
  readonly operator: "In" | "NotIn" | "Exists" | "DoesNotExist";
  readonly values?: readonly string[];
}

/** One rule as written: exactly one of `exact`, `prefix`, `match`, and either `replace` or `keep: true`. */
export interface RuleSpec extends TargetOptions {
  readonly exact?: string;
  readonly prefix?: string;
  readonly match?: string;
  readonly replace?: string;
  /** Ordered alternatives in place of `replace`: with `verify`, the first whose registry has the image wins. */
  readonly to?: readonly string[];
  readonly keep?: boolean;
  /** For `match`: run on the normalized reference (default) or on the reference as written. */
  readonly on?: "normalized" | "original";
  /** Ask the target registry whether the rewritten reference exists before rewriting; overrides `spec.verify`. */
  readonly verify?: boolean;
  /** What a verified rule does when the target is missing or cannot be checked; overrides `spec.onMissing`. */
  readonly onMissing?: OnMissing;
}

/** `keep` the original image (default) or `rewrite` anyway when verification finds no target. */
export type OnMissing = "keep" | "rewrite";

/** `spec` of both kinds. */
export interface RewriteSpec extends TargetOptions {
  readonly priority: number;
  readonly namespaces?: readonly string[];
  readonly namespaceSelector?: LabelSelector;
  readonly podSelector?: LabelSelector;
  readonly rules: readonly RuleSpec[];
  /** Default of `verify` for every rule of the object (false when absent). */
  readonly verify?: boolean;
  /** Default of `onMissing` for every rule of the object (`keep` when absent). */
  readonly onMissing?: OnMissing;
  /** ClusterImageRewrite only: its rules decide before every object that is not enforced, in every namespace. */
  readonly enforced?: boolean;
}

/** The metadata mirrorhook reads; other metadata fields are allowed and ignored. */
export interface RewriteMetadata {
  readonly name: string;
  readonly namespace?: string;
  readonly generation?: number;
  readonly creationTimestamp?: string;
  readonly uid?: string;
}

/** A validated rule object. */
export interface RewriteObject {
  readonly kind: RewriteKind;
  readonly metadata: RewriteMetadata;
  readonly spec: RewriteSpec;
}

/** `ClusterImageRewrite "hub"` or `ImageRewrite "team/hub"`. */
export function describeObject(object: { kind: string; metadata: { name: string; namespace?: string } }): string {
  const name = object.kind === "ImageRewrite" && object.metadata.namespace !== undefined
    ? `${object.metadata.namespace}/${object.metadata.name}`
    : object.metadata.name;
  return `${object.kind} ${JSON.stringify(name)}`;
}

export const TOP_FIELDS = new Set(["apiVersion", "kind", "metadata", "spec", "status"]);
export const SPEC_FIELDS = new Set([
  "priority",
  "namespaces",
  "namespaceSelector",
  "podSelector",
  "rules",
  "verify",
  "onMissing",
  "enforced",
  "platforms",
  "imagePullSecrets",
  "mirror",
]);
export const RULE_FIELDS = new Set([
  "exact",
  "prefix",
  "match",
  "replace",
  "to",
  "keep",
  "on",
  "verify",
  "onMissing",
  "platforms",
  "imagePullSecrets",
  "mirror",
]);
export const SELECTOR_FIELDS = new Set(["matchLabels", "matchExpressions"]);
export const REQUIREMENT_FIELDS = new Set(["key", "operator", "values"]);
const OPERATORS = new Set(["In", "NotIn", "Exists", "DoesNotExist"]);
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^(?=.{1,63}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const INT32_MAX = 2 ** 31 - 1;

/**
 * An object with structural errors, cut down to its structurally valid rules, so that compile-level
 * problems in those rules can be reported in the same run. Never compiled into a rule set.
 */
export interface DraftObject {
  readonly object: RewriteObject;
  /** Index in the written `spec.rules` of each rule in `object.spec.rules`. */
  readonly ruleIndexes: readonly number[];
}

/** Structural validation result: the object when there were no errors, and every problem found. */
export interface ValidationResult {
  readonly object?: RewriteObject;
  /** When there were errors but some rules are sound: those rules, for compile checks only. */
  readonly draft?: DraftObject;
  readonly problems: readonly Problem[];
}

function typeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "list";
  if (isRecord(value)) return "object";
  return typeof value;
}

/** Collects problems for one object; every finding carries its path. */
class Collector {
  readonly problems: Problem[] = [];
  object: string | undefined;

  add(severity: Problem["severity"], code: ProblemCode, path: FieldPath, message: string): void {
    const rule = path[0] === "spec" && path[1] === "rules" && typeof path[2] === "number" ? path[2] : undefined;
    const where = formatPath(path);
    const subject = rule === undefined ? (this.object ?? "object") : `rule ${rule} of ${this.object ?? "object"}`;
    this.problems.push({
      severity,
      code,
      message: `${severity === "error" ? "Invalid" : "Check"} ${subject}: ${
        where === "" ? "" : `${where}: `
      }${message}`,
      path: where,
      fieldPath: path,
      ...(this.object === undefined ? {} : { object: this.object }),
      ...(rule === undefined ? {} : { rule }),
    });
  }

  error(code: ProblemCode, path: FieldPath, message: string): void {
    this.add("error", code, path, message);
  }

  warn(code: ProblemCode, path: FieldPath, message: string): void {
    this.add("warning", code, path, message);
  }

  unknownFields(value: Json, allowed: ReadonlySet<string>, path: FieldPath): void {
    for (const key of Object.keys(value)) {
      if (!allowed.has(key)) {
        this.error(
          "unknown-field",
          [...path, key],
          `unknown field ${JSON.stringify(key)} (allowed: ${[...allowed].join(", ")})`,
        );
      }
    }
  }

  string(value: unknown, path: FieldPath): string | undefined {
    if (typeof value === "string") return value;
    if (value === undefined) this.error("required", path, "a string is required");
    else this.error("type", path, `expected a string, got ${typeName(value)}`);
    return undefined;
  }
}

/**
 * Validates one rule object as written (from a file or the API): every problem with its field path.
 * Semantic checks on patterns and references happen in `compile.ts`.
 */
export function validateObject(value: unknown): ValidationResult {
  const c = new Collector();
  if (!isRecord(value)) {
    c.error("not-an-object", [], `expected a ${REWRITE_KINDS.join(" or ")} object, got ${typeName(value)}`);
    return { problems: c.problems };
  }
  const kind = value["kind"];
  const metadata = value["metadata"];
  const name = isRecord(metadata) && typeof metadata["name"] === "string" ? metadata["name"] : undefined;
  const namespace = isRecord(metadata) && typeof metadata["namespace"] === "string" ? metadata["namespace"] : undefined;
  if (typeof kind === "string" && (REWRITE_KINDS as readonly string[]).includes(kind) && name !== undefined) {
    c.object = describeObject({ kind, metadata: { name, ...(namespace === undefined ? {} : { namespace }) } });
  }

  if (value["apiVersion"] !== API_VERSION) {
    c.error(
      "invalid-value",
      ["apiVersion"],
      `expected ${JSON.stringify(API_VERSION)}, got ${JSON.stringify(value["apiVersion"] ?? null)}`,
    );
  }
  if (typeof kind !== "string" || !(REWRITE_KINDS as readonly string[]).includes(kind)) {
    c.error(
      "unknown-kind",
      ["kind"],
      `expected one of ${REWRITE_KINDS.join(", ")}, got ${JSON.stringify(kind ?? null)}`,
    );
  }
  c.unknownFields(value, TOP_FIELDS, []);

  const meta = validateMetadata(c, metadata, kind);
  const checked = validateSpec(c, value["spec"], kind);
  if (meta === undefined || checked === undefined || c.object === undefined) return { problems: c.problems };
  const object = { kind: kind as RewriteKind, metadata: meta, spec: checked.spec };
  if (!c.problems.some((problem) => problem.severity === "error")) return { object, problems: c.problems };
  if (checked.spec.rules.length === 0) return { problems: c.problems };
  return { draft: { object, ruleIndexes: checked.ruleIndexes }, problems: c.problems };
}

function validateMetadata(c: Collector, value: unknown, kind: unknown): RewriteMetadata | undefined {
  if (!isRecord(value)) {
    c.error(value === undefined ? "required" : "type", ["metadata"], "metadata with a name is required");
    return undefined;
  }
  const name = value["name"];
  if (name === undefined) c.error("required", ["metadata", "name"], "metadata.name is required");
  else if (typeof name !== "string") c.error("type", ["metadata", "name"], `expected a string, got ${typeName(name)}`);
  else if (name.length > 253 || !DNS_SUBDOMAIN.test(name)) {
    c.error(
      "invalid-value",
      ["metadata", "name"],
      `${JSON.stringify(name)} is not a valid name (lowercase DNS subdomain)`,
    );
  }
  const namespace = value["namespace"];
  if (namespace !== undefined && typeof namespace !== "string") {
    c.error("type", ["metadata", "namespace"], `expected a string, got ${typeName(namespace)}`);
  } else if (namespace !== undefined && !DNS_LABEL.test(namespace)) {
    c.error("invalid-value", ["metadata", "namespace"], `${JSON.stringify(namespace)} is not a valid namespace name`);
  }
  if (kind === "ImageRewrite" && namespace === undefined) {
    c.error(
      "required",
      ["metadata", "namespace"],
      "an ImageRewrite needs metadata.namespace: it applies only to Pods in that namespace",
    );
  }
  if (kind === "ClusterImageRewrite" && namespace !== undefined) {
    c.warn(
      "ignored",
      ["metadata", "namespace"],
      "a ClusterImageRewrite is cluster-scoped; metadata.namespace is ignored (use spec.namespaces to scope it)",
    );
  }
  const generation = value["generation"];
  const creationTimestamp = value["creationTimestamp"];
  const uid = value["uid"];
  if (typeof name !== "string") return undefined;
  return {
    name,
    ...(kind === "ImageRewrite" && typeof namespace === "string" ? { namespace } : {}),
    ...(typeof generation === "number" ? { generation } : {}),
    ...(typeof creationTimestamp === "string" ? { creationTimestamp } : {}),
    ...(typeof uid === "string" ? { uid } : {}),
  };
}

function validateSpec(
  c: Collector,
  value: unknown,
  kind: unknown,
): { spec: RewriteSpec; ruleIndexes: number[] } | undefined {
  if (!isRecord(value)) {
    c.error(
      value === undefined ? "required" : "type",
      ["spec"],
      `spec is required and must be an object, got ${typeName(value)}`,
    );
    return undefined;
  }
  c.unknownFields(value, SPEC_FIELDS, ["spec"]);

  let priority = 0;
  const rawPriority = value["priority"];
  if (rawPriority !== undefined) {
    if (
      typeof rawPriority !== "number" || !Number.isInteger(rawPriority) || rawPriority > INT32_MAX ||
      rawPriority < -INT32_MAX - 1
    ) {
      c.error("type", ["spec", "priority"], `expected a 32-bit integer, got ${JSON.stringify(rawPriority)}`);
    } else priority = rawPriority;
  }

  let namespaces: string[] | undefined;
  const rawNamespaces = value["namespaces"];
  if (rawNamespaces !== undefined) {
    if (kind === "ImageRewrite") {
      c.error(
        "invalid-value",
        ["spec", "namespaces"],
        "only a ClusterImageRewrite can list namespaces; an ImageRewrite applies to its own namespace",
      );
    }
    if (!Array.isArray(rawNamespaces)) {
      c.error("type", ["spec", "namespaces"], `expected a list of namespace names, got ${typeName(rawNamespaces)}`);
    } else {
      namespaces = [];
      rawNamespaces.forEach((item, index) => {
        if (typeof item !== "string" || !DNS_LABEL.test(item)) {
          c.error(
            "invalid-value",
            ["spec", "namespaces", index],
            `${JSON.stringify(item)} is not a valid namespace name`,
          );
        } else namespaces?.push(item);
      });
      if (rawNamespaces.length === 0) {
        c.warn(
          "invalid-value",
          ["spec", "namespaces"],
          "an empty list applies to no namespace at all; remove the field to apply everywhere",
        );
      }
    }
  }

  const namespaceSelector = value["namespaceSelector"] === undefined
    ? undefined
    : validateSelector(c, value["namespaceSelector"], ["spec", "namespaceSelector"]);
  if (value["namespaceSelector"] !== undefined && kind === "ImageRewrite") {
    c.error(
      "invalid-value",
      ["spec", "namespaceSelector"],
      "only a ClusterImageRewrite can select namespaces; an ImageRewrite applies to its own namespace",
    );
  }
  const podSelector = value["podSelector"] === undefined
    ? undefined
    : validateSelector(c, value["podSelector"], ["spec", "podSelector"]);

  const rawRules = value["rules"];
  const rules: RuleSpec[] = [];
  const ruleIndexes: number[] = [];
  if (rawRules === undefined) c.error("required", ["spec", "rules"], "spec.rules is required");
  else if (!Array.isArray(rawRules)) {
    c.error("type", ["spec", "rules"], `expected a list of rules, got ${typeName(rawRules)}`);
  } else {
    if (rawRules.length === 0) c.error("required", ["spec", "rules"], "spec.rules needs at least one rule");
    rawRules.forEach((rule, index) => {
      const checked = validateRule(c, rule, ["spec", "rules", index]);
      if (checked !== undefined) {
        rules.push(checked);
        ruleIndexes.push(index);
      }
    });
  }
  let enforced: boolean | undefined;
  const rawEnforced = value["enforced"];
  if (rawEnforced !== undefined) {
    if (typeof rawEnforced !== "boolean") {
      c.error("type", ["spec", "enforced"], `expected true or false, got ${typeName(rawEnforced)}`);
    } else if (kind === "ImageRewrite") {
      c.error(
        "invalid-value",
        ["spec", "enforced"],
        "only a ClusterImageRewrite can be enforced; an ImageRewrite applies to its own namespace",
      );
    } else enforced = rawEnforced;
  }
  const verification = validateVerification(c, value, ["spec"]);
  if (
    verification.onMissing !== undefined && verification.verify !== true && !rules.some((rule) => rule.verify === true)
  ) {
    c.warn(
      "ignored",
      ["spec", "onMissing"],
      "onMissing applies only to verified rules; set verify: true on the object or on a rule",
    );
  }
  const spec: RewriteSpec = {
    priority,
    rules,
    ...(namespaces === undefined ? {} : { namespaces }),
    ...(namespaceSelector === undefined ? {} : { namespaceSelector }),
    ...(podSelector === undefined ? {} : { podSelector }),
    ...verification,
    ...(enforced === undefined ? {} : { enforced }),
  };
  return { spec, ruleIndexes };
}

/** `verify` and `onMissing` of a spec or a rule, each only when given and valid. */
function validateVerification(
  c: Collector,
  value: Json,
  path: FieldPath,
): { verify?: boolean; onMissing?: OnMissing } & TargetOptions {
  const out: { verify?: boolean; onMissing?: OnMissing } & TargetOptions = {
    ...validateTargetOptions(value, path, (code, where, message) => c.error(code, where, message)),
  };
  const verify = value["verify"];
  if (verify !== undefined) {
    if (typeof verify !== "boolean") {
      c.error("type", [...path, "verify"], `expected true or false, got ${typeName(verify)}`);
    } else out.verify = verify;
  }
  const onMissing = value["onMissing"];
  if (onMissing !== undefined) {
    if (onMissing !== "keep" && onMissing !== "rewrite") {
      c.error(
        "invalid-value",
        [...path, "onMissing"],
        `expected "keep" or "rewrite", got ${JSON.stringify(onMissing)}`,
      );
    } else out.onMissing = onMissing;
  }
  return out;
}

/** The rule when it is structurally sound, else undefined (its problems are in `c`). */
function validateRule(c: Collector, value: unknown, path: FieldPath): RuleSpec | undefined {
  const before = c.problems.length;
  if (!isRecord(value)) {
    c.error("type", path, `expected a rule object, got ${typeName(value)}`);
    return undefined;
  }
  c.unknownFields(value, RULE_FIELDS, path);
  const kinds = (["exact", "prefix", "match"] as const).filter((key) => value[key] !== undefined);
  if (kinds.length !== 1) {
    c.error(
      "rule-kind",
      path,
      kinds.length === 0
        ? "a rule needs one of exact, prefix or match"
        : `a rule takes exactly one of exact, prefix or match, got ${kinds.join(" and ")}`,
    );
  }
  const rule: { -readonly [K in keyof RuleSpec]: RuleSpec[K] } = {};
  for (const key of kinds) {
    const text = c.string(value[key], [...path, key]);
    if (text === "") c.error("invalid-value", [...path, key], `${key} cannot be empty`);
    else if (text !== undefined) rule[key] = text;
  }
  const replace = value["replace"];
  const keep = value["keep"];
  if (keep !== undefined && typeof keep !== "boolean") {
    c.error("type", [...path, "keep"], `expected true or false, got ${typeName(keep)}`);
  }
  if (replace !== undefined) {
    const text = c.string(replace, [...path, "replace"]);
    if (text === "") c.error("invalid-replacement", [...path, "replace"], "replace cannot be empty");
    else if (text !== undefined) rule.replace = text;
  }
  const to = value["to"];
  if (to !== undefined) {
    const targets = validateTargets(to, [...path, "to"], (code, where, message) => c.error(code, where, message));
    if (targets !== undefined) rule.to = targets;
  }
  if (to !== undefined && (keep === true || replace !== undefined)) {
    c.error("keep-and-replace", path, "a rule takes one of replace, to or keep: true");
  } else if (keep === true && replace !== undefined) {
    c.error("keep-and-replace", path, "a rule takes either replace or keep: true, not both");
  } else if (keep !== true && replace === undefined && to === undefined) {
    c.error("required", [...path, "replace"], "a rule needs replace (or keep: true to never rewrite what it matches)");
  }
  if (keep === true) rule.keep = true;
  const on = value["on"];
  if (on !== undefined) {
    if (on !== "normalized" && on !== "original") {
      c.error("invalid-value", [...path, "on"], `expected "normalized" or "original", got ${JSON.stringify(on)}`);
    } else if (value["match"] === undefined) {
      c.error(
        "invalid-value",
        [...path, "on"],
        "on applies only to match rules; exact and prefix always see the normalized reference",
      );
    } else rule.on = on;
  }
  const verification = validateVerification(c, value, path);
  if (keep === true && (verification.verify !== undefined || verification.onMissing !== undefined)) {
    c.warn(
      "ignored",
      [...path, verification.verify !== undefined ? "verify" : "onMissing"],
      "a keep rule never rewrites, so there is nothing to verify",
    );
  } else if (verification.verify === false && verification.onMissing !== undefined) {
    c.warn("ignored", [...path, "onMissing"], "onMissing applies only when the rule is verified");
  }
  Object.assign(rule, verification);
  return c.problems.slice(before).some((problem) => problem.severity === "error") ? undefined : rule;
}

function validateSelector(c: Collector, value: unknown, path: FieldPath): LabelSelector | undefined {
  if (!isRecord(value)) {
    c.error("type", path, `expected a label selector, got ${typeName(value)}`);
    return undefined;
  }
  c.unknownFields(value, SELECTOR_FIELDS, path);
  const selector: { matchLabels?: Record<string, string>; matchExpressions?: LabelSelectorRequirement[] } = {};
  const labels = value["matchLabels"];
  if (labels !== undefined) {
    if (!isRecord(labels)) {
      c.error("type", [...path, "matchLabels"], `expected a map of labels, got ${typeName(labels)}`);
    } else {
      selector.matchLabels = {};
      for (const [key, item] of Object.entries(labels)) {
        checkLabelKey(c, key, [...path, "matchLabels", key]);
        if (typeof item !== "string" || item.length > 63 || !LABEL_VALUE.test(item)) {
          c.error("invalid-value", [...path, "matchLabels", key], `${JSON.stringify(item)} is not a valid label value`);
        } else selector.matchLabels[key] = item;
      }
    }
  }
  const expressions = value["matchExpressions"];
  if (expressions !== undefined) {
    if (!Array.isArray(expressions)) {
      c.error("type", [...path, "matchExpressions"], `expected a list, got ${typeName(expressions)}`);
    } else {
      selector.matchExpressions = [];
      expressions.forEach((item, index) => {
        const at = [...path, "matchExpressions", index];
        if (!isRecord(item)) {
          c.error("type", at, `expected a requirement object, got ${typeName(item)}`);
          return;
        }
        c.unknownFields(item, REQUIREMENT_FIELDS, at);
        const key = c.string(item["key"], [...at, "key"]);
        if (key !== undefined) checkLabelKey(c, key, [...at, "key"]);
        const operator = item["operator"];
        if (typeof operator !== "string" || !OPERATORS.has(operator)) {
          c.error(
            "invalid-value",
            [...at, "operator"],
            `expected one of ${[...OPERATORS].join(", ")}, got ${JSON.stringify(operator ?? null)}`,
          );
          return;
        }
        const values = item["values"];
        const needsValues = operator === "In" || operator === "NotIn";
        if (values !== undefined && (!Array.isArray(values) || values.some((v) => typeof v !== "string"))) {
          c.error("type", [...at, "values"], "expected a list of strings");
          return;
        }
        if (needsValues && (values === undefined || values.length === 0)) {
          c.error("required", [...at, "values"], `operator ${operator} needs at least one value`);
        } else if (!needsValues && values !== undefined && values.length > 0) {
          c.error("invalid-value", [...at, "values"], `operator ${operator} takes no values`);
        }
        if (key !== undefined) {
          selector.matchExpressions?.push({
            key,
            operator: operator as LabelSelectorRequirement["operator"],
            ...(needsValues && Array.isArray(values) ? { values: values as string[] } : {}),
          });
        }
      });
    }
  }
  return selector;
}

function checkLabelKey(c: Collector, key: string, path: FieldPath): void {
  const slash = key.lastIndexOf("/");
  const prefix = slash < 0 ? undefined : key.slice(0, slash);
  const name = slash < 0 ? key : key.slice(slash + 1);
  if (
    name.length > 63 || !LABEL_NAME.test(name) ||
    (prefix !== undefined && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix)))
  ) {
    c.error("invalid-value", path, `${JSON.stringify(key)} is not a valid label key`);
  }
}
