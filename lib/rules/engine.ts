// Decides what happens to one image: bypass, then priority levels (exact, longest prefix, match), first match wins.

import {
  formatReference,
  type ImageReference,
  type ImageReferenceError,
  normalizeReference,
  parseReference,
} from "../image/reference.ts";
import { type CompiledRule, type ImageContext, matchesPattern, type PriorityLevel, type RuleSet } from "./compile.ts";

/** Options that are not part of the rules themselves. */
export interface DecideOptions {
  /** The Pod's namespace and labels, against which each rule's scope is checked. */
  readonly context: ImageContext;
  /** Images written as `<bypassPrefix><ref>` become `<ref>` and skip every rule; empty disables it. */
  readonly bypassPrefix?: string;
  /** Collect notes on rules that matched but were out of scope. */
  readonly explain?: boolean;
}

/** The default bypass prefix. */
export const DEFAULT_BYPASS_PREFIX = "direct.to/";

/** What happened to one image. `output` is always a normalized, valid reference. */
export type Decision =
  | {
    readonly action: "rewrite";
    readonly input: string;
    /** The input, normalized (parsed once here, so callers compare it with `output` without parsing again). */
    readonly normalizedInput: string;
    readonly output: string;
    /** Every target of a rule written with `to`, in order (the first is `output`); absent for one target. */
    readonly outputs?: readonly string[];
    readonly rule: CompiledRule;
    readonly notes: readonly string[];
  }
  | { readonly action: "keep"; readonly input: string; readonly rule: CompiledRule; readonly notes: readonly string[] }
  | { readonly action: "bypass"; readonly input: string; readonly output: string; readonly notes: readonly string[] }
  | { readonly action: "none"; readonly input: string; readonly notes: readonly string[] }
  | {
    readonly action: "invalid-input";
    readonly input: string;
    readonly error: ImageReferenceError;
    readonly notes: readonly string[];
  }
  | {
    readonly action: "invalid-output";
    readonly input: string;
    readonly output: string;
    readonly rule?: CompiledRule;
    readonly error: ImageReferenceError;
    readonly notes: readonly string[];
  };

/** Each rule's description, built once (a rule's object never changes once compiled). */
const descriptions = new WeakMap<CompiledRule, string>();

/** `ClusterImageRewrite hub, rule 1`: how warnings and --explain name a rule. */
export function describeRule(rule: CompiledRule): string {
  let description = descriptions.get(rule);
  if (description === undefined) {
    const name = rule.object.namespace === undefined
      ? rule.object.name
      : `${rule.object.namespace}/${rule.object.name}`;
    description = `${rule.object.kind} ${name}, rule ${rule.index}`;
    descriptions.set(rule, description);
  }
  return description;
}

/** The targets of a decision, in order: a rule's `to` list, else its one output; none when it does not rewrite. */
export function decisionTargets(decision: Decision): readonly string[] {
  if (decision.action === "rewrite") return decision.outputs ?? [decision.output];
  return decision.action === "bypass" ? [decision.output] : [];
}

/**
 * Decides the fate of `image` (as written in the Pod) under `ruleSet`. Pure; never throws on any input. Without
 * `explain`, what does not depend on the Pod (the parse, the rules whose key or prefix matches, each rule's output)
 * comes from the rule set's {@linkcode DecisionCache}; only the rules' scope is checked for this call.
 */
export function decide(ruleSet: RuleSet, image: string, options: DecideOptions): Decision {
  if (options.explain === true) return decideExplained(ruleSet, image, options);
  return decisionCache(ruleSet, options.bypassPrefix ?? DEFAULT_BYPASS_PREFIX).decide(
    image,
    new RuleScope(options.context),
  );
}

/** The scope of rule objects for one Pod: each object's verdict computed once, on first use. */
export class RuleScope {
  readonly #context: ImageContext;
  readonly #verdicts = new Map<number, boolean>();
  constructor(context: ImageContext) {
    this.#context = context;
  }
  /** Whether the rule's object applies to this Pod. */
  applies(rule: CompiledRule): boolean {
    const order = rule.object.order;
    let verdict = this.#verdicts.get(order);
    if (verdict === undefined) {
      verdict = rule.object.outOfScope(this.#context) === undefined;
      this.#verdicts.set(order, verdict);
    }
    return verdict;
  }
}

/** Most distinct images remembered per rule set and bypass prefix; those not used lately are forgotten first. */
export const DECISION_CACHE_SIZE = 4096;
/**
 * Most characters of images remembered per rule set and bypass prefix (outputs are about as long again): long
 * references fill the cache sooner, so what it holds stays a few MiB however the images are written.
 */
export const DECISION_CACHE_CHARS = 512 * 1024;
/** Longer images are decided without being remembered (no reference is longer: they are invalid). */
const MAX_CACHED_IMAGE = 1024;

const NO_NOTES: readonly string[] = Object.freeze([]);
const NO_RULES: readonly CompiledRule[] = Object.freeze([]);

/**
 * What an image is under one rule set whatever the Pod: its parse, and per priority level the rules whose exact key
 * or prefix matches it, in the order `decide` tries them. Patterns and outputs are computed when first needed (a
 * pattern of a rule out of scope is never run).
 */
class ImageFacts {
  /** The decision when no rule's scope matters (bypass prefix, invalid reference). */
  readonly fixed: Decision | undefined;
  readonly none: Decision;
  readonly #input: string;
  readonly #reference: ImageReference | undefined;
  readonly #normalized: string;
  /** The image normalized, when it parsed (not for a bypassed image). */
  get normalized(): string | undefined {
    return this.#reference === undefined ? undefined : this.#normalized;
  }
  readonly #candidates: readonly (readonly CompiledRule[])[];
  #tested: Map<CompiledRule, boolean> | undefined;
  #decisions: Map<CompiledRule, Decision> | undefined;

  constructor(ruleSet: RuleSet, image: string, bypass: string) {
    this.#input = image;
    this.none = { action: "none", input: image, notes: NO_NOTES };
    this.#candidates = [];
    this.#normalized = "";
    if (bypass !== "" && image.startsWith(bypass)) {
      const output = image.slice(bypass.length);
      const target = parseReference(output);
      this.fixed = target.ok
        ? { action: "bypass", input: image, output: formatReference(target.reference), notes: NO_NOTES }
        : { action: "invalid-output", input: image, output, error: target.error, notes: NO_NOTES };
      return;
    }
    const parsed = parseReference(image);
    if (!parsed.ok) {
      this.fixed = { action: "invalid-input", input: image, error: parsed.error, notes: NO_NOTES };
      return;
    }
    this.fixed = undefined;
    this.#reference = parsed.reference;
    this.#normalized = formatReference(parsed.reference);
    this.#candidates = ruleSet.levels.map((level) => keyedCandidates(level, parsed.reference, this.#normalized));
  }

  /** The decision for a Pod whose rule scope is `scope`. */
  decide(levels: readonly PriorityLevel[], scope: RuleScope): Decision {
    if (this.fixed !== undefined) return this.fixed;
    for (let i = 0; i < levels.length; i++) {
      for (const rule of this.#candidates[i] ?? NO_RULES) if (scope.applies(rule)) return this.#decisionFor(rule);
      const match = levels[i]?.match ?? NO_RULES;
      for (const rule of match) {
        // Scope first: a rule of another namespace never runs its pattern on this image.
        if (rule.pattern === undefined || !scope.applies(rule)) continue;
        if (this.#test(rule)) return this.#decisionFor(rule);
      }
    }
    return this.none;
  }

  #test(rule: CompiledRule): boolean {
    this.#tested ??= new Map();
    let hit = this.#tested.get(rule);
    if (hit === undefined) {
      hit = matchesPattern(rule, rule.on === "original" ? this.#input : this.#normalized);
      this.#tested.set(rule, hit);
    }
    return hit;
  }

  #decisionFor(rule: CompiledRule): Decision {
    this.#decisions ??= new Map();
    let decision = this.#decisions.get(rule);
    if (decision === undefined) {
      decision = ruleDecision(rule, this.#reference as ImageReference, this.#normalized, this.#input, NO_NOTES);
      this.#decisions.set(rule, decision);
    }
    return decision;
  }
}

/** The prefix rules of a level along the image's name, by walking the trie segment by segment: shortest prefix first. */
function prefixHits(level: PriorityLevel, reference: ImageReference): (readonly CompiledRule[])[] {
  const hits: (readonly CompiledRule[])[] = [];
  let node = level.prefixes.children.get(reference.registry);
  if (node === undefined) return hits;
  if (node.rules.length > 0) hits.push(node.rules);
  for (const segment of reference.path.split("/")) {
    node = node.children.get(segment);
    if (node === undefined) break;
    if (node.rules.length > 0) hits.push(node.rules);
  }
  return hits;
}

/** A level's exact rules for the image, then its prefix rules from the longest prefix: what decide tries first. */
function keyedCandidates(level: PriorityLevel, reference: ImageReference, normalized: string): readonly CompiledRule[] {
  const exact = level.exact.get(normalized);
  if (level.prefixes.children.size === 0) return exact ?? NO_RULES;
  const hits = prefixHits(level, reference);
  if (hits.length === 0) return exact ?? NO_RULES;
  const candidates: CompiledRule[] = exact === undefined ? [] : [...exact];
  for (let i = hits.length - 1; i >= 0; i--) candidates.push(...(hits[i] ?? NO_RULES));
  return candidates;
}

/**
 * Decisions by image under one rule set and bypass prefix, bounded ({@linkcode DECISION_CACHE_SIZE} images and
 * {@linkcode DECISION_CACHE_CHARS} characters of them, images not used lately out first). A new rule set (any change of rules) gets a new cache; the Pod's namespace and labels are never
 * part of what is cached, since each decision checks the rules' scope for its own Pod.
 */
export class DecisionCache {
  readonly #ruleSet: RuleSet;
  readonly #bypass: string;
  /** Most images, and most of their characters, in each generation: the two hold at most the cache's bounds. */
  readonly #generation: number;
  readonly #generationChars: number;
  /** Images used since the last turn; `#older` holds those of the generation before, forgotten at the next turn. */
  #recent = new Map<string, ImageFacts>();
  #recentChars = 0;
  #older = new Map<string, ImageFacts>();
  #olderChars = 0;

  constructor(
    ruleSet: RuleSet,
    bypassPrefix: string,
    maxEntries = DECISION_CACHE_SIZE,
    maxChars = DECISION_CACHE_CHARS,
  ) {
    this.#ruleSet = ruleSet;
    this.#bypass = normalizeBypassPrefix(bypassPrefix);
    this.#generation = Math.max(1, Math.floor(maxEntries / 2));
    this.#generationChars = Math.max(MAX_CACHED_IMAGE, Math.floor(maxChars / 2));
  }

  /** Characters of the images remembered now. */
  get chars(): number {
    return this.#recentChars + this.#olderChars;
  }

  /** Images remembered now. */
  get size(): number {
    return this.#recent.size + this.#older.size;
  }

  /** The normalized form of `image` (as `normalizeReference`), parsed once while remembered. */
  normalized(image: string): string | undefined {
    const facts = this.#entry(image);
    return facts.fixed?.action === "bypass" || facts.fixed?.action === "invalid-output"
      ? normalizeReference(image)
      : facts.normalized;
  }

  /** The decision for `image` in a Pod whose scope is `scope`. */
  decide(image: string, scope: RuleScope): Decision {
    return this.#entry(image).decide(this.#ruleSet.levels, scope);
  }

  /**
   * One lookup for an image used lately. An image of the older generation moves to the recent one; when the recent
   * one is full it becomes the older, and what the older held (used in neither) is forgotten: an approximate LRU.
   */
  #entry(image: string): ImageFacts {
    let facts = this.#recent.get(image);
    if (facts !== undefined) return facts;
    if (image.length > MAX_CACHED_IMAGE) return new ImageFacts(this.#ruleSet, image, this.#bypass);
    facts = this.#older.get(image);
    if (facts !== undefined) {
      this.#older.delete(image);
      this.#olderChars -= image.length;
    } else facts = new ImageFacts(this.#ruleSet, image, this.#bypass);
    if (this.#recent.size >= this.#generation || this.#recentChars + image.length > this.#generationChars) {
      this.#older = this.#recent;
      this.#olderChars = this.#recentChars;
      this.#recent = new Map();
      this.#recentChars = 0;
    }
    this.#recent.set(image, facts);
    this.#recentChars += image.length;
    return facts;
  }
}

/** The caches of each rule set in use, by bypass prefix; dropped with the rule set. */
const caches = new WeakMap<RuleSet, Map<string, DecisionCache>>();

/** The decision cache of `ruleSet` under `bypassPrefix` (created on first use). */
export function decisionCache(ruleSet: RuleSet, bypassPrefix: string = DEFAULT_BYPASS_PREFIX): DecisionCache {
  let byPrefix = caches.get(ruleSet);
  if (byPrefix === undefined) {
    byPrefix = new Map();
    caches.set(ruleSet, byPrefix);
  }
  let cache = byPrefix.get(bypassPrefix);
  if (cache === undefined) {
    cache = new DecisionCache(ruleSet, bypassPrefix);
    byPrefix.set(bypassPrefix, cache);
  }
  return cache;
}

/** The decision of `rule` for a parsed image: keep, or its outputs (invalid-output when the first is invalid). */
function ruleDecision(
  rule: CompiledRule,
  reference: ImageReference,
  normalized: string,
  image: string,
  notes: readonly string[],
  explain?: string[],
): Decision {
  if (rule.keep) return { action: "keep", input: image, rule, notes };
  const output = produce(rule, reference, normalized, image);
  const result = parseReference(output);
  if (!result.ok) return { action: "invalid-output", input: image, output, rule, error: result.error, notes };
  const first = formatReference(result.reference);
  if (rule.alternatives.length === 0) {
    return { action: "rewrite", input: image, normalizedInput: normalized, output: first, rule, notes };
  }
  // Later targets that cannot yield a valid reference for this image are left out (noted for --explain).
  const outputs = [first];
  for (const replace of rule.alternatives) {
    const other = parseReference(produce({ ...rule, replace }, reference, normalized, image));
    if (other.ok) outputs.push(formatReference(other.reference));
    else explain?.push(`${describeRule(rule)}: target ${JSON.stringify(replace)} skipped: ${other.error.message}`);
  }
  return { action: "rewrite", input: image, normalizedInput: normalized, output: first, outputs, rule, notes };
}

/** `decide` with notes on rules that matched but were out of scope (for --explain); nothing cached. */
function decideExplained(ruleSet: RuleSet, image: string, options: DecideOptions): Decision {
  const { context } = options;
  const notes: string[] = [];
  const bypass = normalizeBypassPrefix(options.bypassPrefix ?? DEFAULT_BYPASS_PREFIX);
  if (bypass !== "" && image.startsWith(bypass)) {
    const target = parseReference(image.slice(bypass.length));
    if (!target.ok) {
      return { action: "invalid-output", input: image, output: image.slice(bypass.length), error: target.error, notes };
    }
    return { action: "bypass", input: image, output: formatReference(target.reference), notes };
  }
  const parsed = parseReference(image);
  if (!parsed.ok) return { action: "invalid-input", input: image, error: parsed.error, notes };
  const reference = parsed.reference;
  const normalized = formatReference(reference);
  const explain = options.explain === true ? notes : undefined;
  const scopeCache = new Map<number, string | undefined>();
  const outOfScope = (rule: CompiledRule): string | undefined => {
    const { object } = rule;
    if (scopeCache.has(object.order)) return scopeCache.get(object.order);
    const reason = object.outOfScope(context);
    scopeCache.set(object.order, reason);
    return reason;
  };
  const applies = (rule: CompiledRule): boolean => {
    const reason = outOfScope(rule);
    if (reason !== undefined) explain?.push(`${describeRule(rule)} matched but ${rule.object.label} ${reason}`);
    return reason === undefined;
  };
  const scope: Scope = { applies, inScope: (rule) => outOfScope(rule) === undefined, explain };

  for (const level of ruleSet.levels) {
    const rule = findInLevel(level, reference, normalized, image, scope);
    if (rule === undefined) continue;
    return ruleDecision(rule, reference, normalized, image, notes, explain);
  }
  return { action: "none", input: image, notes };
}

/** Ensures a non-empty bypass prefix ends with `/`. */
function normalizeBypassPrefix(prefix: string): string {
  return prefix === "" || prefix.endsWith("/") ? prefix : `${prefix}/`;
}

interface Scope {
  /** Whether the rule's object applies here; notes why not when explaining. */
  readonly applies: (rule: CompiledRule) => boolean;
  /** Whether the rule's object applies here, silently. */
  readonly inScope: (rule: CompiledRule) => boolean;
  /** Set when explaining: out-of-scope match rules are then also run, to say they matched. */
  readonly explain: readonly string[] | undefined;
}

function findInLevel(
  level: PriorityLevel,
  reference: ImageReference,
  normalized: string,
  original: string,
  { applies, inScope, explain }: Scope,
): CompiledRule | undefined {
  const exact = level.exact.get(normalized);
  if (exact !== undefined) {
    for (const rule of exact) if (applies(rule)) return rule;
  }
  if (level.prefixes.children.size > 0) {
    // The deepest (longest) prefix first.
    const hits = prefixHits(level, reference);
    for (let i = hits.length - 1; i >= 0; i--) {
      for (const rule of hits[i] ?? []) if (applies(rule)) return rule;
    }
  }
  for (const rule of level.match) {
    const pattern = rule.pattern;
    if (pattern === undefined) continue;
    // Scope first: a rule of another namespace never runs its pattern on this image.
    if (!inScope(rule)) {
      if (explain !== undefined && matchesPattern(rule, rule.on === "original" ? original : normalized)) applies(rule);
      continue;
    }
    if (matchesPattern(rule, rule.on === "original" ? original : normalized)) return rule;
  }
  return undefined;
}

function produce(rule: CompiledRule, reference: ImageReference, normalized: string, original: string): string {
  const replace = rule.replace ?? "";
  switch (rule.type) {
    case "exact":
      return replace;
    case "prefix":
      return replace + normalized.slice(rule.key.length);
    case "match":
      return (rule.on === "original" ? original : normalized).replace(rule.pattern?.regexp ?? /$^/, replace);
  }
  return formatReference(reference);
}
