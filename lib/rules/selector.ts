// Kubernetes label selector matching, compiled once per rule object.

import type { LabelSelector } from "./schema.ts";

/** Labels of a Pod or Namespace. */
export type Labels = Readonly<Record<string, string>>;

/** A compiled selector: true when `labels` satisfy every requirement. */
export type LabelMatcher = (labels: Labels) => boolean;

/** True for `{}` (and empty lists): a selector that selects everything. */
export function isEmptySelector(selector: LabelSelector): boolean {
  return Object.keys(selector.matchLabels ?? {}).length === 0 && (selector.matchExpressions ?? []).length === 0;
}

/** Compiles a selector; an empty selector matches everything, as in Kubernetes. */
export function compileSelector(selector: LabelSelector): LabelMatcher {
  const checks: LabelMatcher[] = [];
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    checks.push((labels) => Object.hasOwn(labels, key) && labels[key] === value);
  }
  for (const requirement of selector.matchExpressions ?? []) {
    const { key } = requirement;
    const values = new Set(requirement.values ?? []);
    switch (requirement.operator) {
      case "In":
        checks.push((labels) => Object.hasOwn(labels, key) && values.has(labels[key] ?? ""));
        break;
      case "NotIn":
        checks.push((labels) => !Object.hasOwn(labels, key) || !values.has(labels[key] ?? ""));
        break;
      case "Exists":
        checks.push((labels) => Object.hasOwn(labels, key));
        break;
      case "DoesNotExist":
        checks.push((labels) => !Object.hasOwn(labels, key));
        break;
    }
  }
  return (labels) => checks.every((check) => check(labels));
}
