// The rules in force: objects from every source, compiled together, swapped atomically; readiness per source.

import { compileRuleSet, type PodOptOut, type RuleSet } from "../rules/compile.ts";
import type { Problem } from "../rules/problem.ts";
import type { RewriteObject } from "../rules/schema.ts";

/** Status of one source as /readyz reports it. */
export interface SourceStatus {
  readonly name: string;
  readonly loaded: boolean;
  readonly objects: number;
  readonly rules: number;
  readonly lastError?: string;
}

/** Holds the last good objects of each source and the rule set compiled from all of them. */
export class RuleStore {
  #sources = new Map<
    string,
    {
      loaded: boolean;
      objects: readonly RewriteObject[];
      optOuts?: readonly PodOptOut[];
      rules: number;
      lastError?: string;
    }
  >();
  #ruleSet: RuleSet = compileRuleSet([]).ruleSet;
  #problems: readonly Problem[] = [];
  #listeners = new Set<(ruleSet: RuleSet) => void>();

  /** Declares a source; the store is not ready until every declared source has loaded once. */
  register(name: string): void {
    if (!this.#sources.has(name)) this.#sources.set(name, { loaded: false, objects: [], rules: 0 });
  }

  /** Replaces a source's objects (already validated by the source) and Pod opt-outs, and recompiles. */
  update(name: string, objects: readonly RewriteObject[], optOuts: readonly PodOptOut[] = []): readonly Problem[] {
    const rules = objects.reduce((sum, object) => sum + object.spec.rules.length, 0);
    this.#sources.set(name, { loaded: true, objects, optOuts, rules });
    const all = [...this.#sources.values()].flatMap((source) => source.objects);
    const compiled = compileRuleSet(all);
    const allOptOuts = [...this.#sources.values()].flatMap((source) => source.optOuts ?? []);
    this.#ruleSet = allOptOuts.length === 0 ? compiled.ruleSet : { ...compiled.ruleSet, optOuts: allOptOuts };
    this.#problems = compiled.problems;
    for (const listener of this.#listeners) listener(this.#ruleSet);
    return compiled.problems;
  }

  /** Records a failed reload; the source's last good objects stay in force. */
  fail(name: string, error: string): void {
    const source = this.#sources.get(name) ?? { loaded: false, objects: [], rules: 0 };
    this.#sources.set(name, { ...source, lastError: error });
  }

  /** The rule set in force. */
  get current(): RuleSet {
    return this.#ruleSet;
  }

  /** Problems from compiling all sources together (e.g. conflicts across sources). */
  get problems(): readonly Problem[] {
    return this.#problems;
  }

  /** True when every registered source has loaded at least once. */
  get ready(): boolean {
    return [...this.#sources.values()].every((source) => source.loaded);
  }

  /** Per-source status for /readyz. */
  status(): SourceStatus[] {
    return [...this.#sources.entries()].map(([name, source]) => ({
      name,
      loaded: source.loaded,
      objects: source.objects.length,
      rules: source.rules,
      ...(source.lastError === undefined ? {} : { lastError: source.lastError }),
    }));
  }

  /** Calls `listener` after each swap; returns an unsubscribe function. */
  onChange(listener: (ruleSet: RuleSet) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
