// Screens regular expressions for catastrophic backtracking with recheck, once per pattern.

// recheck's browser build runs its checker in-process with no file, env or worker access.
import recheckModule from "recheck-pure";
import type * as Recheck from "recheck";

const recheck = recheckModule as unknown as typeof Recheck;

/** What the screen found. */
export type PatternVerdict =
  | { readonly status: "safe" }
  | { readonly status: "quadratic" }
  | { readonly status: "catastrophic"; readonly complexity: string; readonly attack?: string }
  | { readonly status: "unknown"; readonly reason: string };

const CACHE_LIMIT = 4096;
const cache = new Map<string, PatternVerdict>();

/** Checks `source` (no flags); polynomial of degree 3 or more and exponential count as catastrophic. */
export function screenPattern(source: string, timeoutMs = 2000): PatternVerdict {
  const cached = cache.get(source);
  if (cached !== undefined) return cached;
  let verdict: PatternVerdict;
  try {
    const result = recheck.checkSync(source, "", { timeout: timeoutMs });
    if (result.status === "safe") verdict = { status: "safe" };
    else if (result.status === "vulnerable") {
      const complexity = result.complexity;
      if (complexity.type === "polynomial" && complexity.degree <= 2) verdict = { status: "quadratic" };
      else {
        verdict = {
          status: "catastrophic",
          complexity: complexity.summary,
          ...(result.attack === undefined ? {} : { attack: result.attack.pattern }),
        };
      }
    } else verdict = { status: "unknown", reason: result.error.kind };
  } catch (error) {
    verdict = { status: "unknown", reason: error instanceof Error ? error.message : String(error) };
  }
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(source, verdict);
  return verdict;
}
