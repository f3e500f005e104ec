// The rules in force: objects from every source, compiled together, swapped atomically; readiness per source.

import { type CompileResult, compileRuleSet, type PodOptOut, type RuleSet } from "../rules/compile.ts";
import type { Problem } from "../rules/problem.ts";
import { describeObject, type RewriteObject } from "../rules/schema.ts";

/** Status of one source as /readyz reports it. */
export interface SourceStatus {
  readonly name: string;
  readonly loaded: boolean;
  readonly objects: number;
  readonly rules: number;
  readonly lastError?: string;
}

/** A source's objects with the result of compiling them on their own (see {@linkcode RuleStore.updateCompiled}). */
export interface CompiledSource {
  readonly objects: readonly RewriteObject[];
  readonly optOuts: readonly PodOptOut[];
  readonly compiled: CompileResult;
}

/** A problem of an object in the store, with the source the object came from. */
export interface StoredProblem {
  readonly source: string;
  readonly problem: Problem;
  /** The source of the other object, for a problem between two objects. */
  readonly relatedSource?: string;
}

/** Problems that appeared and disappeared with one update. */
export interface ProblemChange {
  readonly added: readonly StoredProblem[];
  readonly resolved: readonly StoredProblem[];
}

/**
 * Holds the last good objects of each source and the rule set compiled from all of them. */
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
  #byObject: ReadonlyMap<RewriteObject, readonly Problem[]> = new Map();
  #inForce: ReadonlySet<RewriteObject> = new Set();
  #current = new Map<string, StoredProblem>();
  #listeners = new Set<(ruleSet: RuleSet) => void>();
  #problemListeners = new Set<(change: ProblemChange) => void>();

  /** Declares a source; the store is not ready until every declared source has loaded once. */
  register(name: string): void {
    if (!this.#sources.has(name)) this.#sources.set(name, { loaded: false, objects: [], rules: 0 });
  }

  /**
   * Replaces a source's objects (already validated by the source) and Pod opt-outs, and recompiles. Objects
   * are listed by source in the order sources registered (files first), each source's in the order given
   * (the cluster source gives them oldest first): of two conflicting objects the one listed first wins.
   */
  update(name: string, objects: readonly RewriteObject[], optOuts: readonly PodOptOut[] = []): readonly Problem[] {
    return this.#apply(name, { objects, optOuts });
  }

  /**
   * {@linkcode update} for a source that compiled its objects on its own to check them (the file source, through
   * `loadRuleTexts`): while no other source holds objects, that result is the whole rule set and is taken as it
   * is, so each object is compiled once per change; otherwise everything is compiled together.
   */
  updateCompiled(name: string, loaded: CompiledSource): readonly Problem[] {
    return this.#apply(name, loaded);
  }

  #apply(
    name: string,
    loaded: { objects: readonly RewriteObject[]; optOuts: readonly PodOptOut[]; compiled?: CompileResult },
  ) {
    const { objects, optOuts } = loaded;
    const rules = objects.reduce((sum, object) => sum + object.spec.rules.length, 0);
    this.#sources.set(name, { loaded: true, objects, optOuts, rules });
    const sourceOf = new Map<RewriteObject, string>();
    for (const [source, entry] of this.#sources) for (const object of entry.objects) sourceOf.set(object, source);
    const alone = sourceOf.size === objects.length;
    const compiled = loaded.compiled !== undefined && alone ? loaded.compiled : compileRuleSet([...sourceOf.keys()]);
    const allOptOuts = [...this.#sources.values()].flatMap((source) => source.optOuts ?? []);
    this.#ruleSet = allOptOuts.length === 0 ? compiled.ruleSet : { ...compiled.ruleSet, optOuts: allOptOuts };
    this.#problems = compiled.problems;
    this.#byObject = compiled.problemsByObject;
    this.#inForce = compiled.inForce;
    const sourceOfLabel = new Map([...sourceOf].map(([object, source]) => [describeObject(object), source]));
    const next = new Map<string, StoredProblem>();
    for (const [object, problems] of compiled.problemsByObject) {
      const source = sourceOf.get(object) ?? name;
      for (const problem of problems) {
        const relatedSource = problem.related === undefined ? undefined : sourceOfLabel.get(problem.related.object);
        next.set(`${source}\u0000${problem.code}\u0000${problem.object ?? ""}\u0000${problem.message}`, {
          source,
          problem,
          ...(relatedSource === undefined ? {} : { relatedSource }),
        });
      }
    }
    const added = [...next].filter(([key]) => !this.#current.has(key)).map(([, entry]) => entry);
    const resolved = [...this.#current].filter(([key]) => !next.has(key)).map(([, entry]) => entry);
    this.#current = next;
    for (const listener of this.#listeners) listener(this.#ruleSet);
    if (added.length > 0 || resolved.length > 0) {
      for (const listener of this.#problemListeners) listener({ added, resolved });
    }
    return compiled.problems;
  }

  /** The problems of one object (by identity, as given to {@linkcode update}) from the last compilation. */
  problemsOf(object: RewriteObject): readonly Problem[] {
    return this.#byObject.get(object) ?? [];
  }

  /** True when the object (by identity) is in the rule set in force. */
  inForce(object: RewriteObject): boolean {
    return this.#inForce.has(object);
  }

  /** Calls `listener` after an update that added or resolved problems; returns an unsubscribe function. */
  onProblems(listener: (change: ProblemChange) => void): () => void {
    this.#problemListeners.add(listener);
    return () => this.#problemListeners.delete(listener);
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
