// Reports problems the rule store finds across objects and sources: one log line each when it appears, and a counter.

import type { Logger } from "@logtape/logtape";
import { Counter, type Registry } from "../util/prom.ts";
import { formatProblem } from "../rules/problem.ts";
import { FILE_SOURCE } from "../sources/file_source.ts";
import type { RuleStore, StoredProblem } from "../sources/store.ts";

const PROBLEMS_METRIC = "mirrorhook_rule_problems_total";

/**
 * Problems between objects: each source logs its objects' own problems already, and the file source those
 * between its own objects too (it loads all files together).
 */
function between(entry: StoredProblem): boolean {
  if (entry.source === FILE_SOURCE && (entry.relatedSource ?? FILE_SOURCE) === FILE_SOURCE) return false;
  return entry.problem.related !== undefined || entry.problem.code === "duplicate-object";
}

/**
 * Subscribes to the store's problems: counts each new one in `mirrorhook_rule_problems_total{source,code}`
 * (both labels from fixed sets) and logs each new problem between objects once, and once when it is gone.
 * Returns an unsubscribe function.
 */
export function reportRuleProblems(store: RuleStore, options: { logger: Logger; registry: Registry }): () => void {
  const { logger } = options;
  const existing = options.registry.getSingleMetric(PROBLEMS_METRIC);
  const counter = existing instanceof Counter ? existing as Counter<"source" | "code"> : new Counter({
    name: PROBLEMS_METRIC,
    help:
      "Problems found in rule objects as they appear (conflicts, overrides, rules that never decide\u2026), by source and code",
    labelNames: ["source", "code"] as const,
    registers: [options.registry],
  });
  return store.onProblems(({ added, resolved }) => {
    for (const entry of added) {
      counter.inc({ source: entry.source, code: entry.problem.code });
      if (!between(entry)) continue;
      const fields = { source: entry.source, code: entry.problem.code, message: formatProblem(entry.problem) };
      if (entry.problem.severity === "error") logger.error("Rule problem ({source}): {message}", fields);
      else logger.warn("Rule problem ({source}): {message}", fields);
    }
    for (const entry of resolved) {
      if (!between(entry)) continue;
      logger.info("Rule problem resolved ({source}): {message}", {
        source: entry.source,
        code: entry.problem.code,
        message: formatProblem(entry.problem),
      });
    }
  });
}
