// Tests of the metrics registry: which metrics a server exports.

import assert from "node:assert/strict";
import { createMetrics } from "./metrics.ts";

/** The names of the metrics a registry exports. */
async function names(text: Promise<string>): Promise<string[]> {
  return (await text).split("\n").filter((line) => line.startsWith("# TYPE ")).map((line) => line.split(" ")[2] ?? "");
}

Deno.test("the default metrics are prom-client's, with the event-loop lag but not Deno's delay histogram", async () => {
  const { registry } = createMetrics();
  const exported = await names(registry.metrics());
  for (
    const name of [
      "process_cpu_seconds_total",
      "process_start_time_seconds",
      "process_resident_memory_bytes",
      "nodejs_heap_size_used_bytes",
      "nodejs_heap_space_size_used_bytes",
      "nodejs_version_info",
      "nodejs_eventloop_lag_seconds",
      "mirrorhook_admission_requests_total",
    ]
  ) assert.ok(exported.includes(name), `${name} is missing from ${exported.join(", ")}`);
  assert.deepEqual(exported.filter((name) => /^nodejs_eventloop_lag_.+_seconds$/.test(name)), []);
});

Deno.test("nodejs_eventloop_lag_seconds reads the delay measured at the previous scrape", async () => {
  const { registry } = createMetrics();
  await registry.metrics();
  await new Promise((resolve) => setTimeout(resolve, 10));
  const line = (await registry.metrics()).split("\n").find((l) => l.startsWith("nodejs_eventloop_lag_seconds "));
  const seconds = Number(line?.split(" ")[1]);
  assert.ok(Number.isFinite(seconds) && seconds >= 0, `lag ${line}`);
});

Deno.test("without default metrics only mirrorhook's own are exported", async () => {
  const { registry } = createMetrics({ defaultMetrics: false });
  const exported = await names(registry.metrics());
  assert.deepEqual(exported.filter((name) => !name.startsWith("mirrorhook_")), []);
});
