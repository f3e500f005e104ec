// Compiles validated rule objects into a rule set: normalized keys, a hash map, a path-segment trie, screened regexes.

import { createHash } from "node:crypto";
import {
  formatName,
  formatReference,
  type ImageReference,
  isRegistryComponent,
  parseReference,
} from "../image/reference.ts";
import { checkWithinObject, compareDecisionOrder, findOverlaps } from "./overlap.ts";
import { type FieldPath, hasErrors, objectProblem, type Problem, type ProblemCode } from "./problem.ts";
import { LazyPattern, patternAnchor, patternGroups, patternRefusal, screenPattern } from "./pattern.ts";
import { compileSelector, isEmptySelector, type LabelMatcher, type Labels } from "./selector.ts";
import {
  describeObject,
  type DraftObject,
  type OnMissing,
  type RewriteKind,
  type RewriteObject,
  type RuleSpec,
} from "./schema.ts";

/** Where an image is being admitted: what scopes are evaluated against. */
export interface ImageContext {
  readonly namespace?: string;
  readonly podLabels?: Labels;
  /** Labels of the namespace; when absent, objects with a non-empty namespaceSelector do not apply. */
  readonly namespaceLabels?: Labels;
}

/** A rule object after compilation. */
export interface CompiledObject {
  readonly kind: RewriteKind;
  readonly name: string;
  readonly namespace?: string;
  /** `ClusterImageRewrite "hub"`. */
  readonly label: string;
  readonly priority: number;
  /** A ClusterImageRewrite with `spec.enforced`: decides before every object that is not, in every namespace. */
  readonly enforced: boolean;
  /** Rank in decision order (lower first), unique within a rule set. */
  readonly order: number;
  readonly namespaces?: ReadonlySet<string>;
  readonly source: RewriteObject;
  /** Undefined when the object applies in `context`, else why not. */
  outOfScope(context: ImageContext): string | undefined;
}

/** One rule after compilation. */
export interface CompiledRule {
  readonly object: CompiledObject;
  /** Index in `spec.rules`. */
  readonly index: number;
  readonly type: "exact" | "prefix" | "match";
  /** The normalized exact reference or prefix, or the pattern source. */
  readonly key: string;
  readonly keep: boolean;
  /** Normalized replacement for exact rules, name prefix for prefix rules, template for match rules. */
  readonly replace?: string;
  /** The targets after `replace` of a rule written with `to` (each compiled like `replace`), in order. */
  readonly alternatives: readonly string[];
  /** Match rules: the pattern, compiled when it first runs. */
  readonly pattern?: LazyPattern;
  /**
   * Match rules: the text every reference the pattern matches starts with (see `patternAnchor`), if any. An image that
   * does not start with it is not tested: the pattern is neither run nor compiled (V8 compiles at the first run).
   */
  readonly anchor?: string;
  readonly on: "normalized" | "original";
  /** Check that the rewritten reference exists in the target registry first (rule, else object; keep rules never). */
  readonly verify: boolean;
  /** When verification finds no target (missing, error, time-out): keep the original image or rewrite anyway. */
  readonly onMissing: OnMissing;
  /** Platforms a verified target must serve (rule, else object); empty: any. */
  readonly platforms: readonly string[];
  /** Secrets a Pod that gets an image from this rule must list in `spec.imagePullSecrets` (rule, else object). */
  readonly imagePullSecrets: readonly string[];
  /** Verified only: a target that lacks the image gets it copied from the source, in the background. */
  readonly mirror: boolean;
}

interface TrieNode {
  readonly children: Map<string, TrieNode>;
  readonly rules: CompiledRule[];
}

/** All rules of one priority (enforced objects form levels of their own, first), indexed for lookup. */
export interface PriorityLevel {
  readonly priority: number;
  readonly enforced: boolean;
  readonly exact: ReadonlyMap<string, readonly CompiledRule[]>;
  readonly prefixes: TrieNode;
  readonly match: readonly CompiledRule[];
}

/** A Pod annotation or label that opts the Pod out: the opt-outs of other tools whose configuration was read. */
export interface PodOptOut {
  readonly kind: "annotation" | "label";
  readonly key: string;
  readonly value: string;
}

/** The rules in force: immutable, shared by every admission. */
export interface RuleSet {
  /** Pods carrying any of these are left alone (besides mirrorhook's own opt-out label). */
  readonly optOuts?: readonly PodOptOut[];
  readonly levels: readonly PriorityLevel[];
  readonly objects: readonly CompiledObject[];
  readonly ruleCount: number;
  /** sha256 of the objects in decision order; equal on every replica with the same rules. */
  readonly hash: string;
}

/** Options of {@linkcode compileRuleSet}. */
export interface CompileOptions {
  /** Objects with structural errors: their sound rules are checked and reported, never added to the set. */
  readonly drafts?: readonly DraftObject[];
  /** Called on every problem with the input object it is about (by identity), e.g. to add a file position. */
  readonly place?: (problem: Problem, object: RewriteObject) => Problem;
}

/** A compiled rule set (possibly partial) and every problem found. */
export interface CompileResult {
  readonly ruleSet: RuleSet;
  readonly problems: readonly Problem[];
  /** The problems of each input object (drafts included), by identity. */
  readonly problemsByObject: ReadonlyMap<RewriteObject, readonly Problem[]>;
  /** The input objects in force, by identity. */
  readonly inForce: ReadonlySet<RewriteObject>;
}

/**
 * A rule set's string as one flat string of its own: the rule as written when equal (usual: already normalized),
 * else a copy. Normalizing builds strings by concatenation of slices (V8 keeps every piece and the text sliced),
 * about 130 bytes more per string than the string itself.
 */
function own(text: string, written: string | undefined): string {
  return text === written ? written : JSON.parse(JSON.stringify(text));
}

/** The empty list every rule without alternatives, platforms or pull secrets shares (not one each: 10,000 rules). */
const NONE: readonly string[] = Object.freeze([]);

const FILLERS = ["x", "x/x", "x:x", `sha256:${"a".repeat(64)}`, "docker.io/library/x:latest"];
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const REPLACEMENT_TOKEN = /\$(\$|&|`|'|<([^>]*)>|\d{1,2})/g;

/** Decision order of objects: enforced first, priority (higher first), then namespaced before cluster-wide, then name. */
const compareObjects: (a: RewriteObject, b: RewriteObject) => number = compareDecisionOrder;

/**
 * Compiles objects into a rule set. Objects with errors (their own, a duplicate name, or a conflict with an
 * object listed before them) are left out of the set; the caller decides whether a set with errors may be
 * used (a file source may not, the CRD source drops the bad object). Order matters only for conflicts: the
 * object listed first wins (sources list files first, then cluster objects oldest first); decisions follow
 * {@linkcode compareObjects} whatever the order.
 */
export function compileRuleSet(objects: readonly RewriteObject[], options: CompileOptions = {}): CompileResult {
  const problems: Problem[] = [];
  const byObject = new Map<RewriteObject, Problem[]>();
  const report = (found: Problem, source: RewriteObject, related?: RewriteObject) => {
    let placed = options.place?.(found, source) ?? found;
    if (related !== undefined && placed.related !== undefined && options.place !== undefined) {
      const there = options.place({ ...found, fieldPath: placed.related.fieldPath }, related);
      placed = {
        ...placed,
        related: {
          ...placed.related,
          ...(there.source === undefined ? {} : { source: there.source }),
          ...(there.line === undefined ? {} : { line: there.line }),
          ...(there.column === undefined ? {} : { column: there.column }),
        },
      };
    }
    problems.push(placed);
    const list = byObject.get(source);
    if (list === undefined) byObject.set(source, [placed]);
    else list.push(placed);
  };
  for (const draft of options.drafts ?? []) {
    for (const found of compileObject(draft.object, -1, draft.ruleIndexes).problems) {
      report(found, draft.object, draft.object);
    }
  }
  // The first of two objects with one name wins, as the first of two conflicting objects does.
  const seen = new Set<string>();
  const listed = new Map<RewriteObject, number>();
  objects.forEach((source, index) => {
    const key = `${source.kind}/${source.metadata.namespace ?? ""}/${source.metadata.name}`;
    if (seen.has(key)) {
      const label = describeObject(source);
      report(
        objectProblem("error", "duplicate-object", { object: label, path: [] }, `${label} is defined more than once`),
        source,
      );
    } else {
      seen.add(key);
      listed.set(source, index);
    }
  });
  const sorted = [...listed.keys()].sort(compareObjects);
  const candidates: { object: CompiledObject; rules: CompiledRule[] }[] = [];
  for (const source of sorted) {
    const result = compileObject(source, candidates.length);
    for (const found of result.problems) report(found, source, source);
    if (!hasErrors(result.problems)) candidates.push(result);
  }
  const inListedOrder = [...candidates].sort((a, b) =>
    (listed.get(a.object.source) ?? 0) - (listed.get(b.object.source) ?? 0)
  );
  const overlaps = findOverlaps(inListedOrder);
  for (const { object, related, problem: found } of overlaps.findings) report(found, object.source, related.source);
  const compiled = candidates.filter(({ object }) => !overlaps.rejected.has(object));

  const levels: PriorityLevel[] = [];
  for (const { object, rules } of compiled) {
    let level = levels.at(-1);
    if (level === undefined || level.priority !== object.priority || level.enforced !== object.enforced) {
      level = {
        priority: object.priority,
        enforced: object.enforced,
        exact: new Map(),
        prefixes: newNode(),
        match: [],
      };
      levels.push(level);
    }
    for (const rule of rules) addRule(level, rule);
  }
  const hash = createHash("sha256")
    .update(
      JSON.stringify(
        compiled.map(({ object }) => [object.kind, object.namespace ?? "", object.name, object.source.spec]),
      ),
    )
    .digest("hex");
  return {
    ruleSet: {
      levels,
      objects: compiled.map(({ object }) => object),
      ruleCount: compiled.reduce((sum, { rules }) => sum + rules.length, 0),
      hash,
    },
    problems,
    problemsByObject: byObject,
    inForce: new Set(compiled.map(({ object }) => object.source)),
  };
}

/**
 * Leaves share one empty Map and inner nodes one empty list until something is added (an empty Map alone takes ~230
 * bytes, and most of 10,000 prefixes end in a leaf). Never written: addRule gives a node its own first.
 */
const NO_CHILDREN: Map<string, TrieNode> = new Map();
const NO_PREFIX_RULES: CompiledRule[] = [];

function newNode(): TrieNode {
  return { children: NO_CHILDREN, rules: NO_PREFIX_RULES };
}

/** A trie node while the rule set is built (a built one is never changed). */
type BuildingNode = { children: Map<string, TrieNode>; rules: CompiledRule[] };

function addRule(level: PriorityLevel, rule: CompiledRule): void {
  switch (rule.type) {
    case "exact": {
      const map = level.exact as Map<string, CompiledRule[]>;
      const list = map.get(rule.key);
      if (list === undefined) map.set(rule.key, [rule]);
      else list.push(rule);
      break;
    }
    case "prefix": {
      let node = level.prefixes as BuildingNode;
      for (const segment of rule.key.split("/")) {
        let child = node.children.get(segment);
        if (child === undefined) {
          child = newNode();
          if (node.children === NO_CHILDREN) node.children = new Map();
          node.children.set(segment, child);
        }
        node = child as BuildingNode;
      }
      if (node.rules === NO_PREFIX_RULES) node.rules = [rule];
      else node.rules.push(rule);
      break;
    }
    case "match":
      (level.match as CompiledRule[]).push(rule);
      break;
  }
}

/** Compiles one object; `ruleIndexes` gives the written index of each rule when some were left out. */
function compileObject(
  source: RewriteObject,
  order: number,
  ruleIndexes?: readonly number[],
): { object: CompiledObject; rules: CompiledRule[]; problems: Problem[] } {
  const label = describeObject(source);
  const { spec } = source;
  const namespaces = spec.namespaces === undefined ? undefined : new Set(spec.namespaces);
  const podSelector = spec.podSelector === undefined ? undefined : compileSelector(spec.podSelector);
  // An empty selector selects everything, as in Kubernetes, so it needs no namespace labels.
  const namespaceSelector = spec.namespaceSelector === undefined || isEmptySelector(spec.namespaceSelector)
    ? undefined
    : compileSelector(spec.namespaceSelector);
  const object: CompiledObject = {
    kind: source.kind,
    name: source.metadata.name,
    ...(source.metadata.namespace === undefined ? {} : { namespace: source.metadata.namespace }),
    label,
    priority: spec.priority,
    enforced: spec.enforced === true,
    order,
    ...(namespaces === undefined ? {} : { namespaces }),
    source,
    outOfScope: scopeCheck(source, namespaces, namespaceSelector, podSelector),
  };
  const problems: Problem[] = [];
  const rules: CompiledRule[] = [];
  spec.rules.forEach((rule, position) => {
    const index = ruleIndexes?.[position] ?? position;
    const path: FieldPath = ["spec", "rules", index];
    const report = (severity: Problem["severity"], code: ProblemCode, field: string | undefined, detail: string) =>
      problems.push(
        objectProblem(severity, code, { object: label, path: field === undefined ? path : [...path, field] }, detail),
      );
    // `to: [a, b]` compiles as `replace: a`, each later target as its replacement would (problems under `to`).
    const [first, ...later] = rule.to ?? [];
    const toReport: Report = (severity, code, field, detail) =>
      report(severity, code, field === "replace" ? "to" : field, detail);
    const compiled = compileRule(
      object,
      first === undefined ? rule : { ...rule, replace: first },
      index,
      first === undefined ? report : toReport,
      rules,
    );
    // The rule's other fields were reported with the first target: only each later target's own problems now.
    const alternatives = later.map((to) =>
      compileRule(object, { ...rule, replace: to }, index, (severity, code, field, detail) => {
        if (field === "replace") toReport(severity, code, field, detail);
      }, rules)?.replace
    );
    if (compiled === undefined || alternatives.some((to) => to === undefined)) return;
    rules.push(later.length === 0 ? compiled : { ...compiled, alternatives: alternatives as string[] });
  });
  const within = checkWithinObject(rules);
  problems.push(...within.problems);
  rules.splice(0, rules.length, ...within.kept);
  return { object, rules, problems };
}

function scopeCheck(
  source: RewriteObject,
  namespaces: ReadonlySet<string> | undefined,
  namespaceSelector: LabelMatcher | undefined,
  podSelector: LabelMatcher | undefined,
): (context: ImageContext) => string | undefined {
  const own = source.kind === "ImageRewrite" ? source.metadata.namespace : undefined;
  return (context) => {
    if (own !== undefined && context.namespace !== own) {
      return `applies only in namespace ${JSON.stringify(own)}`;
    }
    if (namespaces !== undefined && (context.namespace === undefined || !namespaces.has(context.namespace))) {
      return `applies only in namespaces ${[...namespaces].map((n) => JSON.stringify(n)).join(", ")}`;
    }
    if (namespaceSelector !== undefined) {
      if (context.namespaceLabels === undefined) {
        return "has a namespaceSelector and the namespace labels are not known";
      }
      if (!namespaceSelector(context.namespaceLabels)) return "namespaceSelector does not match the namespace";
    }
    if (podSelector !== undefined && !podSelector(context.podLabels ?? {})) return "podSelector does not match the Pod";
    return undefined;
  };
}

type Report = (severity: Problem["severity"], code: ProblemCode, field: string | undefined, detail: string) => void;

function compileRule(
  object: CompiledObject,
  rule: RuleSpec,
  index: number,
  report: Report,
  earlier: readonly CompiledRule[],
): CompiledRule | undefined {
  const keep = rule.keep === true;
  const spec = object.source.spec;
  const base = {
    object,
    index,
    keep,
    on: rule.on ?? "normalized",
    verify: !keep && (rule.verify ?? spec.verify ?? false),
    onMissing: rule.onMissing ?? spec.onMissing ?? "keep",
    alternatives: NONE,
    mirror: !keep && (rule.verify ?? spec.verify ?? false) && (rule.mirror ?? spec.mirror ?? false),
    platforms: rule.platforms ?? spec.platforms ?? NONE,
    imagePullSecrets: keep ? NONE : rule.imagePullSecrets ?? spec.imagePullSecrets ?? NONE,
  } as const;
  // A copy pulls from the Pod's registry with the platform's credentials: only platform-written (cluster) objects.
  if (object.kind === "ImageRewrite" && (rule.mirror ?? spec.mirror) === true) {
    report(
      "error",
      "mirror-not-allowed",
      rule.mirror === undefined ? undefined : "mirror",
      "mirror: true is for cluster-wide objects (ClusterImageRewrite, rule files of the platform): an ImageRewrite " +
        "cannot make the webhook copy images with the platform's credentials",
    );
    return undefined;
  }
  if (rule.exact !== undefined) {
    const parsed = parseReference(rule.exact);
    if (!parsed.ok) {
      report("error", "invalid-reference", "exact", parsed.error.message);
      return undefined;
    }
    const key = formatReference(parsed.reference);
    if (keep) return { ...base, type: "exact", key: own(key, rule.exact) };
    const target = parseReference(rule.replace);
    if (!target.ok) {
      report("error", "invalid-replacement", "replace", `cannot yield a valid reference: ${target.error.message}`);
      return undefined;
    }
    const replace = formatReference(target.reference);
    if (replace === key) {
      report(
        "warning",
        "self-match",
        "replace",
        `rewrites ${JSON.stringify(key)} to itself, so the rule has no effect`,
      );
    }
    return { ...base, type: "exact", key: own(key, rule.exact), replace: own(replace, rule.replace) };
  }
  if (rule.prefix !== undefined) {
    const key = normalizePrefix(rule.prefix, report);
    if (key === undefined) return undefined;
    if (keep) return { ...base, type: "prefix", key: own(key, rule.prefix) };
    const replace = (rule.replace ?? "").replace(/\/+$/, "");
    const probe = parseReference(`${replace}/x`);
    if (replace.includes("@") || !probe.ok || !formatName(probe.reference).endsWith("/x")) {
      report(
        "error",
        "invalid-replacement",
        "replace",
        `${
          JSON.stringify(rule.replace)
        } cannot yield a valid reference: a prefix replacement is a registry and path without tag or digest${
          probe.ok ? "" : ` (${probe.error.message})`
        }`,
      );
      return undefined;
    }
    const normalizedReplace = formatName(probe.reference).slice(0, -2);
    if (normalizedReplace === key || normalizedReplace.startsWith(`${key}/`)) {
      report(
        "warning",
        "self-match",
        "replace",
        `the output ${
          JSON.stringify(normalizedReplace)
        } starts with the prefix it matches, so the rule matches its own output`,
      );
    }
    return { ...base, type: "prefix", key: own(key, rule.prefix), replace: own(replace, rule.replace) };
  }
  const source = rule.match ?? "";
  const verdict = screenPattern(source);
  if (verdict.status === "too-long") {
    report("error", "pattern-too-long", "match", verdict.reason);
    return undefined;
  }
  const refusal = patternRefusal(source);
  if (refusal?.kind === "invalid") {
    report("error", "invalid-regex", "match", `invalid regular expression: ${refusal.message}`);
    return undefined;
  }
  if (source.includes("\\\\")) {
    report(
      "warning",
      "double-escape",
      "match",
      `the pattern contains \\\\, which matches a literal backslash, and image references never contain one; in YAML single quotes write \\. for a dot`,
    );
  }
  if (verdict.status === "unbounded" || verdict.status === "invalid") {
    report(
      "error",
      "unbounded-pattern",
      "match",
      verdict.status === "invalid"
        ? `the pattern could not be analysed: ${verdict.reason}`
        : `the pattern cannot run in linear time: it uses ${verdict.reason}, which V8's linear-time engine (every pattern runs on it) does not support; ${
          verdict.reason.startsWith("the look-")
            ? "to leave images out, write a keep rule before this one instead"
            : "rewrite it without"
        }`,
    );
    return undefined;
  }
  if (verdict.status === "catastrophic") {
    report("error", "catastrophic-pattern", "match", `the pattern can backtrack catastrophically: ${verdict.reason}`);
    return undefined;
  }
  if (refusal !== undefined) {
    // The screen found it safe, yet V8's linear engine refuses it: refused here, not at the first Pod it would run on.
    report(
      "error",
      "unbounded-pattern",
      "match",
      `the pattern cannot run in linear time: V8's linear-time engine (every pattern runs on it) refuses it (${refusal.message}); rewrite it without back-references, look-arounds or large counted repetitions`,
    );
    return undefined;
  }
  const pattern = new LazyPattern(source);
  const anchor = patternAnchor(source);
  const anchored = anchor === undefined ? {} : { anchor };
  if (keep) return { ...base, type: "match", key: source, pattern, ...anchored };
  const replace = rule.replace ?? "";
  const { names: groups, count: groupCount } = patternGroups(source);
  for (const token of replace.matchAll(REPLACEMENT_TOKEN)) {
    const name = token[2];
    const number = /^\d+$/.test(token[1] ?? "") ? Number(token[1]) : undefined;
    if (name !== undefined && !groups.has(name)) {
      report(
        "error",
        "invalid-replacement",
        "replace",
        `refers to group $<${name}>, which the pattern does not define`,
      );
      return undefined;
    }
    if (number !== undefined && number > groupCount && !(number >= 10 && Math.floor(number / 10) <= groupCount)) {
      report(
        "error",
        "invalid-replacement",
        "replace",
        `refers to group $${number}, but the pattern has ${groupCount} group(s)`,
      );
      return undefined;
    }
  }
  const samples = FILLERS.map((filler) => expandTemplate(replace, filler));
  if (!samples.some((sample) => parseReference(sample).ok) && !yieldsInContext(source, samples)) {
    const error = parseReference(samples[0]);
    report(
      "error",
      "invalid-replacement",
      "replace",
      `${JSON.stringify(replace)} cannot yield a valid reference${error.ok ? "" : `: ${error.error.message}`}`,
    );
    return undefined;
  }
  const selfSample = samples.find((sample) => parseReference(sample).ok);
  const normalizedSample = selfSample === undefined ? undefined : parseReference(selfSample);
  if (normalizedSample?.ok === true) {
    const probe = rule.on === "original" ? selfSample ?? "" : formatReference(normalizedSample.reference);
    if (
      (anchor === undefined || probe.startsWith(anchor)) && pattern.test(probe) &&
      !keptBefore(earlier, selfSample ?? "", normalizedSample.reference)
    ) {
      report(
        "warning",
        "self-match",
        "match",
        `the pattern also matches the rule's own output (e.g. ${JSON.stringify(probe)})`,
      );
    }
  }
  return { ...base, type: "match", key: source, pattern, replace, ...anchored };
}

/** Whether a keep rule written earlier in the object decides `original` first (its output is then left alone). */
function keptBefore(earlier: readonly CompiledRule[], original: string, reference: ImageReference): boolean {
  const normalized = formatReference(reference);
  const name = formatName(reference);
  return earlier.some((rule) => {
    if (!rule.keep) return false;
    if (rule.type === "exact") return rule.key === normalized;
    if (rule.type === "prefix") return name === rule.key || name.startsWith(`${rule.key}/`);
    return matchesPattern(rule, rule.on === "original" ? original : normalized);
  });
}

/**
 * Whether a match rule's pattern matches `subject`; false without running (or compiling) it when the subject does not
 * start with the pattern's anchor.
 */
export function matchesPattern(rule: CompiledRule, subject: string): boolean {
  if (rule.anchor !== undefined && !subject.startsWith(rule.anchor)) return false;
  return rule.pattern?.test(subject) === true;
}

/**
 * Whether `samples` (the replacement, expanded) can make a valid reference with the text around the match kept, as
 * JavaScript's replace keeps it: `^docker\.io/library/` replaced by `mirror.example.com/lib/` leaves the rest of the
 * reference after it, `:latest$` replaced by `:stable` the name before it. Only where the pattern may leave text there:
 * it does not start with `^` (or does not end with `$`, `.*` or `.+`), or has an alternative that may not.
 */
function yieldsInContext(source: string, samples: readonly string[]): boolean {
  const alternatives = source.includes("|");
  const anchoredStart = source.startsWith("^") && !alternatives;
  const trailingBackslashes = /\\*(?=\$$)/.exec(source)?.[0].length ?? 0;
  // A pattern ending in `.*` or `.+` (in groups or not) runs to the end of the reference, as one ending in `$` does.
  const greedyEnd = /(?:^|[^\\])\.[*+]\)*$/.test(source);
  const anchoredEnd = ((source.endsWith("$") && trailingBackslashes % 2 === 0) || greedyEnd) && !alternatives;
  if (anchoredStart && anchoredEnd) return false;
  const befores = anchoredStart ? [""] : ["", "registry.example.com/", "registry.example.com/team"];
  const afters = anchoredEnd ? [""] : ["", "app:1", "/app:1", ":1"];
  return samples.some((sample) =>
    befores.some((before) => afters.some((after) => parseReference(before + sample + after).ok))
  );
}

/** Expands a JavaScript replacement template with every group set to `filler`. */
function expandTemplate(template: string, filler: string): string {
  return template.replace(REPLACEMENT_TOKEN, (_, token: string) => (token === "$" ? "$" : filler));
}

function normalizePrefix(prefix: string, report: Report): string | undefined {
  const trimmed = prefix.replace(/\/+$/, "");
  const segments = trimmed.split("/");
  const registry = segments[0] ?? "";
  if (!isRegistryComponent(registry)) {
    report(
      "error",
      "invalid-prefix",
      "prefix",
      `${
        JSON.stringify(prefix)
      } must start with a registry host (e.g. docker.io/${trimmed}); prefixes are matched against normalized references`,
    );
    return undefined;
  }
  const probe = parseReference(`${registry}/x`);
  if (!probe.ok) {
    report("error", "invalid-prefix", "prefix", probe.error.message);
    return undefined;
  }
  const path = segments.slice(1);
  for (const segment of path) {
    if (!PATH_COMPONENT.test(segment)) {
      report(
        "error",
        "invalid-prefix",
        "prefix",
        segment.includes(":") || segment.includes("@")
          ? `${
            JSON.stringify(prefix)
          }: a prefix matches whole path segments and cannot hold a tag or digest; use exact for one reference`
          : `${JSON.stringify(prefix)}: invalid path segment ${
            JSON.stringify(segment)
          } (lowercase letters, digits, separators)`,
      );
      return undefined;
    }
  }
  return [probe.reference.registry, ...path].join("/");
}
