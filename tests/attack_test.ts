// Issue 10's memory attacks against `mirrorhook serve` as its own process: RSS stays under the Deployment's limit.

import assert from "node:assert/strict";
import {
  labelFlood,
  memoryOf,
  probeAdmissions,
  slowBodies,
  startServerProcess,
  trackMemory,
} from "./support/attacks.ts";
import { metricValue, scrapeMetrics, tempDir } from "./support/webhook.ts";

/** The memory limit of the Deployment in deploy/. */
const LIMIT_BYTES = 512 * 1024 * 1024;

Deno.test("attack: 40 slow-body connections (8,000,000 of 8,388,000 bytes) keep RSS under 512 Mi; admissions go on", async () => {
  await using dir = await tempDir("mirrorhook-attack-");
  await using server = await startServerProcess(dir.path);
  let stopped = false;
  const probing = probeAdmissions(server, () => stopped);
  const memory = trackMemory(server.pid);
  const detail = await slowBodies(server, { holdMs: 15_000 });
  stopped = true;
  const probe = await probing;
  const sampled = await memory.stop();
  const { peak } = await memoryOf(server.pid);
  const peakBytes = Math.max(sampled, peak);
  const figures = `peak RSS ${(peakBytes / 1048576).toFixed(0)} MiB, ${
    JSON.stringify(detail)
  }, probe ${probe.ok}/${probe.sent}`;
  assert.ok(peakBytes < LIMIT_BYTES, figures);
  assert.equal(probe.blocked, 0, `${figures}: ${probe.failures.join(" | ")}`);
  assert.ok(probe.ok > 0, figures);
  // Most connections were refused at the buffered-bytes cap rather than read whole.
  assert.match(String(detail["answers"]), /"503":/, figures);
  // The process reports its real resident memory (it read 0 before).
  const rss = metricValue(await scrapeMetrics(server.probePort), "process_resident_memory_bytes");
  assert.ok(rss > 10 * 1024 * 1024, `process_resident_memory_bytes ${rss}`);
});

Deno.test("attack: a flood of fresh operation strings and direct.to registries adds no metric series", async () => {
  await using dir = await tempDir("mirrorhook-attack-");
  await using server = await startServerProcess(dir.path);
  const detail = await labelFlood(server, { requests: 500, workers: 4 });
  const metrics = await scrapeMetrics(server.probePort);
  const series = (prefix: string) => metrics.split("\n").filter((line) => line.startsWith(prefix)).length;
  assert.ok(series("mirrorhook_admission_requests_total{") <= 2, JSON.stringify(detail));
  assert.ok(series("mirrorhook_rewrites_total{") <= 1, JSON.stringify(detail));
  assert.ok(metrics.length < 64 * 1024, `/metrics is ${metrics.length} bytes`);
  // Series only: HELP lines may name fixed label values (mirrorhook_mirror_copies_failed_total's "registry-error").
  const samples = metrics.split("\n").filter((line) => !line.startsWith("#")).join("\n");
  assert.equal(samples.includes("OP-"), false);
  assert.equal(samples.includes("registry-"), false);
});
