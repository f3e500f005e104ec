// deno-lint-ignore-file no-console -- a command-line load generator prints its result
// Open-loop load at a fixed rate: latency is measured from each request's scheduled time (no coordinated omission).
// Usage: deno run -A bench/rate.ts URL BODY_FILE CA_FILE RATE SECONDS [MAX_IN_FLIGHT=256]
// Prints one JSON line: {"rate":…,"sent":…,"ok":…,"errors":…,"p50_ms":…,"p90_ms":…,"p99_ms":…,"max_ms":…}
const [url, bodyFile, caFile, rateArg, secondsArg, maxArg] = Deno.args;
if (
  url === undefined || bodyFile === undefined || caFile === undefined || rateArg === undefined ||
  secondsArg === undefined
) {
  console.error("usage: rate.ts URL BODY_FILE CA_FILE RATE SECONDS [MAX_IN_FLIGHT]");
  Deno.exit(2);
}
if (!/^https:\/\/(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?\//.test(url)) {
  console.error("rate.ts: only loopback https URLs");
  Deno.exit(2);
}
const target: string = url;
const rate = Number(rateArg);
const seconds = Math.min(Number(secondsArg), 120);
const maxInFlight = Number(maxArg ?? 256);
const body = await Deno.readTextFile(bodyFile);
const client = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(caFile)] });
const latencies: number[] = [];
let sent = 0;
let errors = 0;
let inFlight = 0;
let skipped = 0;
const start = performance.now();
const total = Math.floor(rate * seconds);
const pending = new Set<Promise<void>>();

async function one(scheduled: number): Promise<void> {
  inFlight++;
  try {
    const response = await fetch(target, {
      method: "POST",
      body,
      headers: { "content-type": "application/json" },
      client,
    });
    const text = await response.text();
    if (response.status !== 200 || !text.includes('"allowed":true')) errors++;
    else latencies.push(performance.now() - scheduled);
  } catch {
    errors++;
  } finally {
    inFlight--;
  }
}

while (sent + skipped < total) {
  const now = performance.now();
  const due = Math.min(total, Math.floor(((now - start) / 1000) * rate));
  while (sent + skipped < due) {
    const scheduled = start + ((sent + skipped) / rate) * 1000;
    if (inFlight >= maxInFlight) {
      skipped++;
      continue;
    }
    sent++;
    const p = one(scheduled);
    pending.add(p);
    void p.finally(() => pending.delete(p));
  }
  await new Promise((resolve) => setTimeout(resolve, 1));
}
await Promise.race([Promise.all(pending), new Promise((resolve) => setTimeout(resolve, 15_000))]);
client.close();
latencies.sort((a, b) => a - b);
const pct = (p: number) =>
  latencies.length === 0
    ? 0
    : latencies[Math.min(latencies.length - 1, Math.ceil((p / 100) * latencies.length) - 1)] ?? 0;
const r3 = (x: number) => Math.round(x * 1000) / 1000;
console.log(JSON.stringify({
  rate,
  seconds,
  sent,
  ok: latencies.length,
  errors,
  skipped_over_max_in_flight: skipped,
  p50_ms: r3(pct(50)),
  p90_ms: r3(pct(90)),
  p99_ms: r3(pct(99)),
  max_ms: r3(latencies.at(-1) ?? 0),
}));
