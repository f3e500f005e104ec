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

/** What two selectors ask of one label key together. */
interface KeyNeeds {
  /** Each `In` list (and each `matchLabels` value, as a list of one): the value must be in every one. */
  readonly within: ReadonlySet<string>[];
  readonly notIn: Set<string>;
  exists: boolean;
  absent: boolean;
}

/**
 * False only when no set of labels satisfies both selectors (`team: a` and `team: b`; `Exists` and `DoesNotExist`;
 * `In` and `NotIn` of the same values). Keys are independent of one another, so the two can select the same labels
 * exactly when the requirements on each key, taken together, can be met. An absent selector selects everything.
 */
export function selectorsMayOverlap(a: LabelSelector | undefined, b: LabelSelector | undefined): boolean {
  const needs = new Map<string, KeyNeeds>();
  const of = (key: string): KeyNeeds => {
    let found = needs.get(key);
    if (found === undefined) {
      found = { within: [], notIn: new Set(), exists: false, absent: false };
      needs.set(key, found);
    }
    return found;
  };
  for (const selector of [a, b]) {
    for (const [key, value] of Object.entries(selector?.matchLabels ?? {})) of(key).within.push(new Set([value]));
    for (const requirement of selector?.matchExpressions ?? []) {
      const key = of(requirement.key);
      const values = requirement.values ?? [];
      switch (requirement.operator) {
        case "In":
          key.within.push(new Set(values));
          break;
        case "NotIn":
          values.forEach((value) => key.notIn.add(value));
          break;
        case "Exists":
          key.exists = true;
          break;
        case "DoesNotExist":
          key.absent = true;
          break;
      }
    }
  }
  for (const key of needs.values()) {
    // Without the label: fine unless a value or the label's presence is required.
    if (key.within.length === 0 && !key.exists) continue;
    if (key.absent) return false;
    // With it: any value but the excluded ones, or one in every list and not excluded.
    const [first, ...rest] = key.within;
    if (first === undefined) continue;
    const fits = [...first].some((value) => !key.notIn.has(value) && rest.every((list) => list.has(value)));
    if (!fits) return false;
  }
  return true;
}
