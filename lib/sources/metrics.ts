// What a rule source counts: the narrow view of the server's metrics that sources write to (server/metrics.ts fits it).

/** A counter with labels (prom-client's Counter fits). */
export interface LabelledCounter<L extends string> {
  inc(labels: Partial<Record<L, string>>): void;
}

/** A gauge with labels (prom-client's Gauge fits). */
export interface LabelledGauge<L extends string> {
  set(labels: Partial<Record<L, string>>, value: number): void;
}

/** The metrics a rule source updates on each load. */
export interface SourceMetrics {
  /** Loads by source and result (success, error). */
  readonly reloads: LabelledCounter<"source" | "result">;
  /** Rules in force from the source. */
  readonly rulesLoaded: LabelledGauge<"source">;
  /** Rule objects in force from the source. */
  readonly objectsLoaded: LabelledGauge<"source">;
  /** GETs of namespaces the watch had not delivered yet, by result (found, not-found, error, timeout; invalid, skipped: no GET). */
  readonly namespaceLookups?: LabelledCounter<"result">;
}
