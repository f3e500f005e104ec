// Decides what happens to one image: bypass, then priority levels (exact, longest prefix, match), first match wins.

import { formatReference, type ImageReference, type ImageReferenceError, parseReference } from "../image/reference.ts";
import type { CompiledRule, ImageContext, PriorityLevel, RuleSet } from "./compile.ts";

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

/** `ClusterImageRewrite hub, rule 1`: how warnings and --explain name a rule. */
export function describeRule(rule: CompiledRule): string {
  const name = rule.object.namespace === undefined ? rule.object.name : `${rule.object.namespace}/${rule.object.name}`;
  return `${rule.object.kind} ${name}, rule ${rule.index}`;
}

/** The targets of a decision, in order: a rule's `to` list, else its one output; none when it does not rewrite. */
export function decisionTargets(decision: Decision): readonly string[] {
  if (decision.action === "rewrite") return decision.outputs ?? [decision.output];
  return decision.action === "bypass" ? [decision.output] : [];
}

/** Decides the fate of `image` (as written in the Pod) under `ruleSet`. Pure; never throws on any input. */
export function decide(ruleSet: RuleSet, image: string, options: DecideOptions): Decision {
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
  return { action: "none", input: image, notes };
}

/** Ensures a non-empty bypass prefix ends with `/`. */
export function normalizeBypassPrefix(prefix: string): string {
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
    // Walk the trie along the name's segments, then try the deepest (longest) prefix first.
    const hits: (readonly CompiledRule[])[] = [];
    let node = level.prefixes.children.get(reference.registry);
    if (node !== undefined) {
      if (node.rules.length > 0) hits.push(node.rules);
      for (const segment of reference.path.split("/")) {
        node = node.children.get(segment);
        if (node === undefined) break;
        if (node.rules.length > 0) hits.push(node.rules);
      }
    }
    for (let i = hits.length - 1; i >= 0; i--) {
      for (const rule of hits[i] ?? []) if (applies(rule)) return rule;
    }
  }
  for (const rule of level.match) {
    const pattern = rule.pattern;
    if (pattern === undefined) continue;
    // Scope first: a rule of another namespace never runs its pattern on this image.
    if (!inScope(rule)) {
      if (explain !== undefined && pattern.test(rule.on === "original" ? original : normalized)) applies(rule);
      continue;
    }
    if (pattern.test(rule.on === "original" ? original : normalized)) return rule;
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
      return (rule.on === "original" ? original : normalized).replace(rule.pattern ?? /$^/, replace);
  }
  return formatReference(reference);
}
