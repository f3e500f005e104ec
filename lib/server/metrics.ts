// Prometheus metrics (prom-client): one registry per server, names prefixed mirrorhook_, only bounded label values.

import process from "node:process";
import { setImmediate } from "node:timers";
import { Counter, Gauge, Histogram, Registry } from "../util/prom.ts";
// prom-client's default metrics one by one (collectDefaultMetrics takes them all), without its eventLoopLag.
import gc from "prom-client/lib/metrics/gc.js";
import heapSizeAndUsed from "prom-client/lib/metrics/heapSizeAndUsed.js";
import heapSpacesSizeAndUsed from "prom-client/lib/metrics/heapSpacesSizeAndUsed.js";
import osMemoryHeap from "prom-client/lib/metrics/osMemoryHeap.js";
import processHandles from "prom-client/lib/metrics/processHandles.js";
import processMaxFileDescriptors from "prom-client/lib/metrics/processMaxFileDescriptors.js";
import processOpenFileDescriptors from "prom-client/lib/metrics/processOpenFileDescriptors.js";
import processRequests from "prom-client/lib/metrics/processRequests.js";
import processResources from "prom-client/lib/metrics/processResources.js";
import processStartTime from "prom-client/lib/metrics/processStartTime.js";
import version from "prom-client/lib/metrics/version.js";

/** Every metric mirrorhook exports, on its own registry. */
export interface Metrics {
  readonly registry: Registry;
  readonly requests: Counter<"operation" | "result" | "dry_run">;
  readonly duration: Histogram<"operation">;
  readonly inFlight: Gauge;
  readonly rewrites: Counter<"kind" | "object" | "registry">;
  readonly skips: Counter<"reason">;
  readonly invalidImages: Counter<"reason">;
  readonly errors: Counter<"stage">;
  readonly validations: Counter<"operation" | "result">;
  readonly reloads: Counter<"source" | "result">;
  readonly rulesLoaded: Gauge<"source">;
  readonly objectsLoaded: Gauge<"source">;
  readonly namespaceLookups: Counter<"result">;
  readonly certificateExpiry: Gauge;
  readonly certificateReloads: Counter<"result">;
}

/** prom-client's process metrics that read /proc/self, which Deno's permission set refuses (they read 0). */
const PROC_METRICS = [
  "process_resident_memory_bytes",
  "process_virtual_memory_bytes",
  "process_heap_bytes",
  "process_open_fds",
  "process_max_fds",
];

/**
 * Replaces prom-client's /proc-based process metrics with real ones: resident memory from Deno.memoryUsage(), open
 * file descriptors from /proc/self/fd when it can be listed (otherwise the metric is left out rather than 0).
 */
function processMetrics(registry: Registry): void {
  for (const name of PROC_METRICS) registry.removeSingleMetric(name);
  new Gauge({
    name: "process_resident_memory_bytes",
    help: "Resident memory size in bytes.",
    registers: [registry],
    collect() {
      this.set(Deno.memoryUsage().rss);
    },
  });
  const openFds = (): number | undefined => {
    try {
      let count = 0;
      for (const _ of Deno.readDirSync("/proc/self/fd")) count++;
      return count;
    } catch {
      return undefined;
    }
  };
  if (openFds() === undefined) return;
  new Gauge({
    name: "process_open_fds",
    help: "Number of open file descriptors.",
    registers: [registry],
    collect() {
      const count = openFds();
      if (count !== undefined) this.set(count);
    },
  });
}

/**
 * prom-client's default metrics, in its order, but for eventLoopLag: its min, max, mean, stddev and percentile gauges
 * read `monitorEventLoopDelay`, which on Deno 2.9 is a histogram of 5 significant digits that grows with the longest
 * delay it saw (1 MiB per doubling): 10 to 18 MB resident after the stall of loading 10,000 rules, never given back.
 * `nodejs_eventloop_lag_seconds` (the delay of one callback at each scrape) stays.
 */
const DEFAULT_METRICS: readonly ((registry: Registry, config: object) => void)[] = [
  processCpuMetrics,
  processStartTime,
  osMemoryHeap,
  processOpenFileDescriptors,
  processMaxFileDescriptors,
  processResources,
  processHandles,
  processRequests,
  heapSizeAndUsed,
  heapSpacesSizeAndUsed,
  version,
  gc,
];

/**
 * prom-client's processCpuTotal (user, system and both, counted at each scrape), written here: its module loads
 * @opentelemetry/api for exemplars, which mirrorhook does not use.
 */
function processCpuMetrics(registry: Registry): void {
  const registers = [registry];
  let last = process.cpuUsage();
  new Counter({
    name: "process_cpu_user_seconds_total",
    help: "Total user CPU time spent in seconds.",
    registers,
    // This one metric's `collect` sets all three.
    collect() {
      const now = process.cpuUsage();
      const userMicros = now.user - last.user;
      const systemMicros = now.system - last.system;
      last = now;
      this.inc(userMicros / 1e6);
      system.inc(systemMicros / 1e6);
      total.inc((userMicros + systemMicros) / 1e6);
    },
  });
  const system = new Counter({
    name: "process_cpu_system_seconds_total",
    help: "Total system CPU time spent in seconds.",
    registers,
  });
  const total = new Counter({
    name: "process_cpu_seconds_total",
    help: "Total user and system CPU time spent in seconds.",
    registers,
  });
}

function defaultMetrics(registry: Registry): void {
  for (const metric of DEFAULT_METRICS) metric(registry, { register: registry });
  new Gauge({
    name: "nodejs_eventloop_lag_seconds",
    help: "Lag of event loop in seconds.",
    registers: [registry],
    aggregator: "average",
    // As prom-client measures it: the value is set when the callback runs, so a scrape reads the previous one.
    collect() {
      const start = performance.now();
      setImmediate(() => this.set((performance.now() - start) / 1000));
    },
  });
}

/** Creates the metrics; `defaultMetrics` adds prom-client's process and runtime metrics. */
export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  const registers = [registry];
  if (options.defaultMetrics !== false) {
    defaultMetrics(registry);
    processMetrics(registry);
  }
  return {
    registry,
    requests: new Counter({
      name: "mirrorhook_admission_requests_total",
      help:
        "Admission requests by operation (CREATE, UPDATE, DELETE, CONNECT, unknown, other), result (rewritten, would-rewrite in --dry-run mode, unchanged, skipped, invalid, error) and whether the API server marked the request dryRun.",
      labelNames: ["operation", "result", "dry_run"] as const,
      registers,
    }),
    duration: new Histogram({
      name: "mirrorhook_admission_duration_seconds",
      help: "Time from request received to response ready.",
      labelNames: ["operation"] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    inFlight: new Gauge({
      name: "mirrorhook_admission_in_flight",
      help: "Admission requests being handled.",
      registers,
    }),
    rewrites: new Counter({
      name: "mirrorhook_rewrites_total",
      help:
        'Images rewritten, by deciding rule object (kind, namespace/name; "bypass" for the bypass prefix) and target registry.',
      labelNames: ["kind", "object", "registry"] as const,
      registers,
    }),
    skips: new Counter({
      name: "mirrorhook_skips_total",
      help:
        "Pods left alone without looking at images, by reason (opted-out, excluded-namespace, mirror-pod, own-pod, not-a-pod, subresource, operation).",
      labelNames: ["reason"] as const,
      registers,
    }),
    invalidImages: new Counter({
      name: "mirrorhook_invalid_images_total",
      help:
        "Images left unchanged because the reference (invalid-input) or a rule's output (invalid-output) was invalid.",
      labelNames: ["reason"] as const,
      registers,
    }),
    errors: new Counter({
      name: "mirrorhook_errors_total",
      help: "Unexpected errors, by stage; the Pod was admitted unchanged (or denied with --on-error deny).",
      labelNames: ["stage"] as const,
      registers,
    }),
    validations: new Counter({
      name: "mirrorhook_validations_total",
      help: "Rule objects checked by /validate, by operation and result (valid, invalid, skipped).",
      labelNames: ["operation", "result"] as const,
      registers,
    }),
    reloads: new Counter({
      name: "mirrorhook_rule_reloads_total",
      help: "Rule loads by source and result (success, error, unchanged).",
      labelNames: ["source", "result"] as const,
      registers,
    }),
    rulesLoaded: new Gauge({
      name: "mirrorhook_rules_loaded",
      help: "Rules in force, by source.",
      labelNames: ["source"] as const,
      registers,
    }),
    objectsLoaded: new Gauge({
      name: "mirrorhook_rule_objects_loaded",
      help: "Rule objects in force, by source.",
      labelNames: ["source"] as const,
      registers,
    }),
    namespaceLookups: new Counter({
      name: "mirrorhook_namespace_lookups_total",
      help:
        "Lookups of a namespace its watch had not delivered yet, for rules with a namespaceSelector, by result (GETs: found, not-found, error, timeout; no GET: invalid, a name no namespace can have, decided as one without labels; skipped, over 32 at once or 20 a second; error, timeout and skipped: those rules did not apply, with a warning).",
      labelNames: ["result"] as const,
      registers,
    }),
    certificateExpiry: new Gauge({
      name: "mirrorhook_certificate_expiry_timestamp_seconds",
      help: "notAfter of the serving certificate in force, as a Unix timestamp.",
      registers,
    }),
    certificateReloads: new Counter({
      name: "mirrorhook_certificate_reloads_total",
      help:
        "Serving certificate reloads by result (success; error: unreadable or mismatched pair, retried; rejected: expired or not yet valid, never served).",
      labelNames: ["result"] as const,
      registers,
    }),
  };
}
