// Prometheus metrics (mirrorhook_mirror_*) and log lines for the events of a Mirrorer.

import { Counter, Gauge, Histogram, type Registry } from "../util/prom.ts";
import { formatBytes } from "./copy.ts";
import type { MirrorEvent } from "./mirrorer.ts";

/** Metrics of image copies; image names are never labels (unbounded), failure reasons are (a fixed set). */
export interface MirrorMetrics {
  readonly started: Counter;
  readonly finished: Counter;
  readonly failed: Counter<"reason">;
  /** Bytes uploaded to targets (blobs neither present nor mounted). */
  readonly bytes: Counter;
  /** Copies running now. */
  readonly inProgress: Gauge;
  /** Copies waiting for a slot. */
  readonly queued: Gauge;
  readonly duration: Histogram<"result">;
  /** Feeds one event into the metrics; pass it as (or call it from) the Mirrorer's `onEvent`. */
  record(event: MirrorEvent): void;
}

/** Creates the copy metrics on `registry`. */
export function createMirrorMetrics(registry: Registry): MirrorMetrics {
  const registers = [registry];
  const started = new Counter({
    name: "mirrorhook_mirror_copies_started_total",
    help: "Image copies started.",
    registers,
  });
  const finished = new Counter({
    name: "mirrorhook_mirror_copies_finished_total",
    help: "Image copies that completed: every blob and manifest in the target.",
    registers,
  });
  const failed = new Counter({
    name: "mirrorhook_mirror_copies_failed_total",
    help:
      "Image copies that failed, by reason (auth, not-found, unreachable, registry-error, too-large, digest-mismatch, invalid-manifest, platform-missing, aborted, internal).",
    labelNames: ["reason"] as const,
    registers,
  });
  const bytes = new Counter({
    name: "mirrorhook_mirror_bytes_copied_total",
    help: "Bytes uploaded to target registries by image copies (mounted and already present blobs not counted).",
    registers,
  });
  const inProgress = new Gauge({
    name: "mirrorhook_mirror_copies_in_progress",
    help: "Image copies running now.",
    registers,
  });
  const queued = new Gauge({
    name: "mirrorhook_mirror_copies_queued",
    help: "Image copies waiting for a free slot.",
    registers,
  });
  const duration = new Histogram({
    name: "mirrorhook_mirror_copy_duration_seconds",
    help: "Duration of image copies, by result (finished, failed).",
    labelNames: ["result"] as const,
    buckets: [0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800],
    registers,
  });
  return {
    started,
    finished,
    failed,
    bytes,
    inProgress,
    queued,
    duration,
    record(event) {
      switch (event.type) {
        case "queued":
          queued.inc();
          break;
        case "started":
          if (event.waited) queued.dec();
          started.inc();
          inProgress.inc();
          break;
        case "finished":
          finished.inc();
          bytes.inc(event.bytes);
          inProgress.dec();
          duration.observe({ result: "finished" }, event.seconds);
          break;
        case "failed":
          failed.inc({ reason: event.reason });
          if (event.started) inProgress.dec();
          else if (event.waited) queued.dec();
          duration.observe({ result: "failed" }, event.seconds);
          break;
      }
    },
  };
}

/** One log line for an event: its level, message and structured fields. */
export interface MirrorLogLine {
  readonly level: "info" | "warning";
  readonly message: string;
  readonly fields: Readonly<Record<string, string | number>>;
}

/** The log line of a finished or failed copy (one per copy); undefined for queued and started. */
export function formatMirrorEvent(event: MirrorEvent): MirrorLogLine | undefined {
  switch (event.type) {
    case "finished":
      return {
        level: "info",
        message: `mirrored ${event.source} to ${event.target} (${event.result.digest}): ${
          formatBytes(event.result.totalBytes)
        }, ${formatBytes(event.bytes)} uploaded, in ${event.seconds.toFixed(1)} s`,
        fields: {
          source: event.source,
          target: event.target,
          digest: event.result.digest,
          totalBytes: event.result.totalBytes,
          copiedBytes: event.bytes,
          seconds: Number(event.seconds.toFixed(3)),
        },
      };
    case "failed":
      return {
        level: "warning",
        message: `Cannot mirror ${event.source} to ${event.target} (${event.reason}) after ${
          event.seconds.toFixed(1)
        } s: ${event.message}`,
        fields: {
          source: event.source,
          target: event.target,
          reason: event.reason,
          seconds: Number(event.seconds.toFixed(3)),
        },
      };
    default:
      return undefined;
  }
}
