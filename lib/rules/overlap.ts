// Finds rules that decide the same references: conflicts (errors), tenant overrides and rules that never decide (warnings).

import type { CompiledObject, CompiledRule } from "./compile.ts";
import { type FieldPath, formatPath, objectProblem, type Problem, type RelatedPlace } from "./problem.ts";
import type { LabelSelector, RewriteObject } from "./schema.ts";
import { isEmptySelector, selectorsMayOverlap } from "./selector.ts";

/** Decision order of objects: enforced first, priority (higher first), then namespaced before cluster-wide, then name. */
export function compareDecisionOrder(a: RewriteObject, b: RewriteObject): number {
  const ea = a.spec.enforced === true;
  if (ea !== (b.spec.enforced === true)) return ea ? -1 : 1;
  if (a.spec.priority !== b.spec.priority) return b.spec.priority - a.spec.priority;
  if (a.kind !== b.kind) return a.kind === "ImageRewrite" ? -1 : 1;
  if (a.metadata.name !== b.metadata.name) return a.metadata.name < b.metadata.name ? -1 : 1;
  const an = a.metadata.namespace ?? "";
  const bn = b.metadata.namespace ?? "";
  return an < bn ? -1 : an > bn ? 1 : 0;
}

/** One problem between two rules, reported on `object`; `related` is the other side (the same object inside one). */
export interface OverlapFinding {
  readonly object: CompiledObject;
  readonly related: CompiledObject;
  readonly problem: Problem;
}

/** Result of {@linkcode findOverlaps}. */
export interface OverlapResult {
  readonly findings: readonly OverlapFinding[];
  /** Objects left out because a rule conflicts with an object listed before them, which stays in force. */
  readonly rejected: ReadonlySet<CompiledObject>;
}

/** What a rule decides, whatever object it is in: the same key means the same references. */
function keyOf(rule: CompiledRule): string {
  return rule.type === "match" ? `match\u0000${rule.on}\u0000${rule.key}` : `${rule.type}\u0000${rule.key}`;
}

/** `prefix "docker.io"`, `"docker.io/library/nginx:1"`, `pattern "^quay\.io/(.*)$"`: as patterns are written. */
function describeKey(rule: CompiledRule): string {
  switch (rule.type) {
    case "exact":
      return `"${rule.key}"`;
    case "prefix":
      return `prefix "${rule.key}"`;
    case "match":
      return `pattern "${rule.key}"${rule.on === "original" ? " (on: original)" : ""}`;
  }
}

function sameOutcome(a: CompiledRule, b: CompiledRule): boolean {
  return a.keep === b.keep && a.replace === b.replace && a.alternatives.join("\n") === b.alternatives.join("\n");
}

function rulePath(rule: CompiledRule): FieldPath {
  return ["spec", "rules", rule.index, rule.type];
}

function relatedOf(rule: CompiledRule): RelatedPlace {
  const fieldPath = rulePath(rule);
  return { object: rule.object.label, rule: rule.index, path: formatPath(fieldPath), fieldPath };
}

function level(object: CompiledObject): string {
  return `${object.enforced ? "enforced, " : ""}priority ${object.priority}`;
}

function report(
  severity: Problem["severity"],
  code: Problem["code"],
  on: CompiledRule,
  other: CompiledRule,
  detail: string,
): OverlapFinding {
  const problem = objectProblem(severity, code, { object: on.object.label, path: rulePath(on) }, detail);
  return { object: on.object, related: other.object, problem: { ...problem, related: relatedOf(other) } };
}

/**
 * Problems between the rules of one object, in written order: the same references decided again with the
 * same outcome is a warning (the later rule never decides), with another outcome an error. Returns the rules
 * to keep (every rule but the conflicting ones).
 */
export function checkWithinObject(rules: readonly CompiledRule[]): { problems: Problem[]; kept: CompiledRule[] } {
  const problems: Problem[] = [];
  const kept: CompiledRule[] = [];
  const first = new Map<string, CompiledRule>();
  for (const rule of rules) {
    const key = keyOf(rule);
    const earlier = first.get(key);
    if (earlier === undefined) {
      first.set(key, rule);
      kept.push(rule);
    } else if (sameOutcome(earlier, rule)) {
      problems.push(
        report(
          "warning",
          "never-decides",
          rule,
          earlier,
          `never decides: rule ${earlier.index} decides ${describeKey(rule)} first, with the same outcome`,
        ).problem,
      );
      kept.push(rule);
    } else {
      problems.push(
        report(
          "error",
          "conflict",
          rule,
          earlier,
          `conflicts with rule ${earlier.index}: both decide ${describeKey(rule)} differently`,
        ).problem,
      );
    }
  }
  return { problems, kept };
}

/**
 * Checks objects against each other in the order listed (files before cluster objects, cluster objects oldest
 * first): an object whose rule decides the same references as an object listed before it, at the same level,
 * in the same tenancy (cluster-wide or the same namespace) and with another outcome, is rejected; the earlier
 * one stays in force. Between a namespaced and a cluster-wide object that is no conflict: inside its own
 * namespace the namespaced object decides first (the documented precedence), and it gets an `override`
 * warning; the cluster-wide rule stays in force everywhere. A tenant's rule that an enforced ClusterImageRewrite
 * always decides first, or a rule whose twin decides first with the same outcome, gets `never-decides`.
 */
export function findOverlaps(
  listed: readonly { readonly object: CompiledObject; readonly rules: readonly CompiledRule[] }[],
): OverlapResult {
  const findings: OverlapFinding[] = [];
  const rejected = new Set<CompiledObject>();
  const accepted = new Map<string, CompiledRule[]>();
  for (const { object, rules } of listed) {
    const own: OverlapFinding[] = [];
    let conflicted = false;
    for (const rule of rules) {
      for (const peer of accepted.get(keyOf(rule)) ?? []) {
        const finding = classify(rule, peer);
        if (finding === undefined) continue;
        if (finding.problem.severity === "error") conflicted = true;
        own.push(finding);
      }
    }
    if (conflicted) {
      // A rejected object decides nothing: only its conflicts are worth reporting.
      rejected.add(object);
      findings.push(...own.filter((finding) => finding.problem.severity === "error"));
      continue;
    }
    findings.push(...own);
    for (const rule of rules) {
      const key = keyOf(rule);
      const list = accepted.get(key);
      if (list === undefined) accepted.set(key, [rule]);
      else list.push(rule);
    }
  }
  return { findings, rejected };
}

/** `rule` is from the object being added, `peer` from one already accepted; both decide the same references. */
function classify(rule: CompiledRule, peer: CompiledRule): OverlapFinding | undefined {
  const a = rule.object;
  const b = peer.object;
  if (a === b || !scopesMayOverlap(a, b)) return undefined;
  const same = sameOutcome(rule, peer);
  const aTenant = a.kind === "ImageRewrite";
  const bTenant = b.kind === "ImageRewrite";
  if (a.enforced !== b.enforced || a.priority !== b.priority) {
    // Another level decides first: the documented precedence. Between a tenant's rule and a cluster-wide one it
    // still says who wins in the tenant's namespace: the tenant overrides, or its rule never decides there.
    if (same || aTenant === bTenant) return undefined;
    const [tenant, platform] = aTenant ? [rule, peer] : [peer, rule];
    const tenantFirst = !platform.object.enforced && tenant.object.priority > platform.object.priority;
    if (tenantFirst) {
      return report(
        "warning",
        "override",
        tenant,
        platform,
        `overrides rule ${platform.index} of ${platform.object.label} in namespace "${
          tenant.object.namespace ?? ""
        }" only: there this object decides ${describeKey(tenant)} first (${level(tenant.object)} before ${
          level(platform.object)
        }); everywhere else ${platform.object.label} still does`,
      );
    }
    if (!coversTenant(platform.object, tenant.object)) return undefined;
    return report(
      "warning",
      "never-decides",
      tenant,
      platform,
      platform.object.enforced
        ? `never decides: rule ${platform.index} of the enforced ${platform.object.label} decides ${
          describeKey(tenant)
        } first in every namespace`
        : `never decides: rule ${platform.index} of ${platform.object.label} decides ${describeKey(tenant)} first (${
          level(platform.object)
        } before ${level(tenant.object)})`,
    );
  }
  if (aTenant !== bTenant) {
    if (same) return undefined;
    const [tenant, platform] = aTenant ? [rule, peer] : [peer, rule];
    return report(
      "warning",
      "override",
      tenant,
      platform,
      `overrides rule ${platform.index} of ${platform.object.label} in namespace "${
        tenant.object.namespace ?? ""
      }" only: there this object decides ${describeKey(tenant)} first (namespaced before cluster-wide at ${
        level(tenant.object)
      }); everywhere else ${platform.object.label} still does`,
    );
  }
  if (same) {
    const [first, later] = compareDecisionOrder(a.source, b.source) <= 0 ? [rule, peer] : [peer, rule];
    if (!covers(first.object, later.object)) return undefined;
    return report(
      "warning",
      "never-decides",
      later,
      first,
      `never decides: rule ${first.index} of ${first.object.label} decides ${
        describeKey(later)
      } first, with the same outcome`,
    );
  }
  return report(
    "error",
    "conflict",
    rule,
    peer,
    `conflicts with rule ${peer.index} of ${peer.object.label}, which comes first (an earlier file or source, or an older object) and wins: both decide ${
      describeKey(rule)
    } differently at ${level(a)}`,
  );
}

/**
 * False only when the two objects can never apply to the same Pod: disjoint namespaces, or selectors (on the Pod's
 * labels, or on its namespace's) that no one set of labels satisfies both of (`team: a` and `team: b`).
 */
function scopesMayOverlap(a: CompiledObject, b: CompiledObject): boolean {
  if (!selectorsMayOverlap(a.source.spec.podSelector, b.source.spec.podSelector)) return false;
  return selectorsMayOverlap(namespaceScope(a), namespaceScope(b));
}

/** The label every namespace carries with its own name (set by the API server since Kubernetes 1.21). */
const NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name";

/**
 * Where an object applies, as one selector on namespace labels: its namespaceSelector, and its namespaces (a
 * ClusterImageRewrite's `namespaces`, an ImageRewrite's own) as a requirement on {@linkcode NAMESPACE_NAME_LABEL}, so
 * that `namespaces: [team-a]` and a namespaceSelector naming team-b are seen never to meet.
 */
function namespaceScope(object: CompiledObject): LabelSelector | undefined {
  const selector = object.source.spec.namespaceSelector;
  const names = object.kind === "ImageRewrite" ? [object.namespace ?? ""] : object.namespaces;
  if (names === undefined) return selector;
  return {
    ...selector,
    matchExpressions: [
      ...(selector?.matchExpressions ?? []),
      { key: NAMESPACE_NAME_LABEL, operator: "In", values: [...names] },
    ],
  };
}

/**
 * True when the cluster-wide `platform` applies to every Pod the namespaced `tenant` applies to (their namespaces
 * overlap already): no namespaceSelector, and no podSelector but the tenant's own. Otherwise the tenant's rule still
 * decides for the Pods the platform's selectors leave out.
 */
function coversTenant(platform: CompiledObject, tenant: CompiledObject): boolean {
  const { podSelector, namespaceSelector } = platform.source.spec;
  if (namespaceSelector !== undefined && !isEmptySelector(namespaceSelector)) return false;
  if (podSelector === undefined || isEmptySelector(podSelector)) return true;
  return JSON.stringify(podSelector) === JSON.stringify(tenant.source.spec.podSelector ?? null);
}

/** True when `first` applies wherever `later` does, so that `first` always gets the image first. */
function covers(first: CompiledObject, later: CompiledObject): boolean {
  const spec = first.source.spec;
  const noPodSelector = spec.podSelector === undefined || isEmptySelector(spec.podSelector);
  const noNamespaceSelector = spec.namespaceSelector === undefined || isEmptySelector(spec.namespaceSelector);
  if (spec.namespaces === undefined && noPodSelector && noNamespaceSelector) {
    return first.kind !== "ImageRewrite" || first.namespace === later.namespace;
  }
  return scopeOf(first) === scopeOf(later);
}

function scopeOf(object: CompiledObject): string {
  const { spec } = object.source;
  return JSON.stringify([
    object.kind === "ImageRewrite" ? object.namespace ?? "" : null,
    spec.namespaces ?? null,
    spec.namespaceSelector ?? null,
    spec.podSelector ?? null,
  ]);
}
