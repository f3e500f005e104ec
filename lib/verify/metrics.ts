// Prometheus metrics of target verification (mirrorhook_verify_*), registered on the server's prom-client Registry.

import { Counter, Gauge, Histogram, type Registry } from "../util/prom.ts";

/** Every verification metric. Registry hosts are labels (bounded by the rules' targets); image names never are. */
export interface VerifyMetrics {
  /** Per reference checked: `result` present|missing|error|timeout, `cache` hit|miss|coalesced; fed by `countCheck`. */
  readonly checks: Counter<"result" | "cache">;
  /**
   * Counts one check. Cheaper than `checks.inc(labels)` (which hashes the labels every time) on the warm-cache
   * path: totals are kept in plain numbers and copied into `checks` when the registry is scraped.
   */
  countCheck(result: string, cache: string): void;
  /** Per HTTP exchange with a registry or token server: `host`, `kind` manifest|token, `code` (status or failure). */
  readonly registryRequests: Counter<"host" | "kind" | "code">;
  readonly registryDuration: Histogram<"host" | "kind">;
  /** Distinct lookups under way, including those that outlived their admission's deadline. */
  readonly lookupsInFlight: Gauge;
  /** Answers held in the cache. */
  readonly cacheEntries: Gauge;
  /**
   * What admission did with each verified rewrite: `result` verified|missing|error|timeout and `action`
   * rewrite|keep (incremented by the admission code, which knows the rule's onMissing).
   */
  readonly decisions: Counter<"result" | "action">;
  /** Verified rewrites by which of the rule's targets was chosen (rules with `to`). */
  readonly chosen: Counter<"position">;
}

/** Creates the verification metrics on `registry`. */
export function createVerifyMetrics(registry: Registry): VerifyMetrics {
  const registers = [registry];
  const tally = new Map<string, { result: string; cache: string; count: number }>();
  return {
    checks: new Counter({
      name: "mirrorhook_verify_checks_total",
      help:
        "References checked against their target registry, by result (present, missing, error, timeout) and cache (hit: answered from the cache; coalesced: joined a lookup already under way; miss: new registry lookup; overdue: a lookup already past an admission deadline, answered timeout at once).",
      labelNames: ["result", "cache"] as const,
      registers,
      collect() {
        this.reset();
        for (const { result, cache, count } of tally.values()) this.inc({ result, cache }, count);
      },
    }),
    countCheck(result, cache) {
      const key = `${result}/${cache}`;
      const entry = tally.get(key);
      if (entry === undefined) tally.set(key, { result, cache, count: 1 });
      else entry.count++;
    },
    registryRequests: new Counter({
      name: "mirrorhook_verify_registry_requests_total",
      help:
        "HTTP requests to registries (kind manifest) and their token servers (kind token), by host and code (HTTP status, network-error, timeout, aborted, refused: a redirect the policy did not allow).",
      labelNames: ["host", "kind", "code"] as const,
      registers,
    }),
    registryDuration: new Histogram({
      name: "mirrorhook_verify_registry_request_duration_seconds",
      help: "Duration of HTTP requests to registries and token servers.",
      labelNames: ["host", "kind"] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10],
      registers,
    }),
    lookupsInFlight: new Gauge({
      name: "mirrorhook_verify_lookups_in_flight",
      help: "Registry lookups under way, including those that outlived the admission deadline (they warm the cache).",
      registers,
    }),
    cacheEntries: new Gauge({
      name: "mirrorhook_verify_cache_entries",
      help: "Registry answers held in the verification cache.",
      registers,
    }),
    decisions: new Counter({
      name: "mirrorhook_verify_decisions_total",
      help:
        "Verified rewrites by verification result (verified, missing, error, timeout) and what was done (rewrite, or keep the original image per onMissing).",
      labelNames: ["result", "action"] as const,
      registers,
    }),
    chosen: new Counter({
      name: "mirrorhook_verify_chosen_target_total",
      help:
        "Verified rewrites by the position of the chosen target among its rule's targets (0: replace or the first of to; higher: earlier targets lacked the image or could not be checked).",
      labelNames: ["position"] as const,
      registers,
    }),
  };
}
