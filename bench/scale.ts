// Scale benchmark: time to ready and resident memory (absolute and above idle) of `mirrorhook serve` for large rule files.
//
// Usage: deno task bench:scale [--json] [CASE…]   (cases: idle, exact-10k, prefix-10k, match-10k, exact-20k, exact-100k)
// Each case writes its rules to a temporary directory (files of at most 5,000 rules, under the 2 MiB limit),
// starts `serve` on 127.0.0.1 (with a certificate minted here, in a TLS directory: not --dev, which would load the
// minting library into the server and add its example rules) with the V8 flags of the `mirrorhook` task, polls /readyz every 20 ms and
// reads VmRSS from /proc 1 s after ready ("ready RSS": the load's garbage and the pattern screening worker still
// there) and again SCALE_SETTLE_MS later (default 45 s: the screening worker has stopped after 10 s idle and V8's
// memory reducer has run, 30 to 36 s after start; 35 s after ready read some runs just before it, 20 MB higher, and
// the median of 3 swung with that) — "RSS MiB", what a running server holds. Every server is killed
// after its case; every case is bounded by CASE_TIMEOUT_MS. "above idle" subtracts the RSS of the one-rule server.
// --json prints one line per case instead of the table: {"rules":10000,"kind":"match","rss_mb":…,"ready_rss_mb":…}
// (kind "idle" for the one-rule server).
// Columns: ready ms is wall time from spawn to the first 200 of /readyz (inflated on a busy machine); CPU ms is the
// process's CPU time by then (every thread, the pattern screening worker included); main ms is the main thread's
// alone, about the time to ready on an idle machine, since start-up is serial there.
// Environment: SCALE_RUNS (default 3), SCALE_SETTLE_MS (default 45000), SCALE_V8_FLAGS (replaces the task's V8
// flags, for experiments).

import { exactKey, prefixKey, regexRule } from "./rules_fixture.ts";
import type { RuleSpec } from "../lib/rules/schema.ts";
import { mintCertificates } from "../lib/server/certs.ts";
import { taskEnv } from "../tests/support/cli.ts";

const REPO_ROOT = new URL("..", import.meta.url).pathname;
const CASE_TIMEOUT_MS = 60_000;
const READY_SETTLE_MS = 1_000;
const SETTLE_MS = Number(Deno.env.get("SCALE_SETTLE_MS") ?? "45000");
const RULES_PER_OBJECT = 1_000;
const OBJECTS_PER_FILE = 5;

type Kind = "exact" | "prefix" | "match";

export interface Case {
  readonly name: string;
  readonly kind: Kind;
  readonly count: number;
}

export const CASES: readonly Case[] = [
  { name: "idle", kind: "exact", count: 1 },
  { name: "exact-10k", kind: "exact", count: 10_000 },
  { name: "prefix-10k", kind: "prefix", count: 10_000 },
  { name: "match-10k", kind: "match", count: 10_000 },
  { name: "exact-20k", kind: "exact", count: 20_000 },
  { name: "exact-100k", kind: "exact", count: 100_000 },
];

function rule(kind: Kind, j: number): RuleSpec {
  if (kind === "exact") return { exact: exactKey(j), replace: `mirror.example.com/exact/${j}:1` };
  if (kind === "prefix") return { prefix: prefixKey(j), replace: `mirror.example.com/prefix/${j}` };
  return regexRule(j);
}

function quote(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

/** YAML of one ClusterImageRewrite, written by hand so that the benchmark does not depend on the serializer. */
function objectYaml(name: string, rules: readonly RuleSpec[]): string {
  const lines = ["apiVersion: mirrorhook.dev/v1alpha1", "kind: ClusterImageRewrite", `metadata:`, `  name: ${name}`];
  lines.push("spec:", "  rules:");
  for (const spec of rules) {
    const [key, value] = "exact" in spec && spec.exact !== undefined
      ? ["exact", spec.exact]
      : "prefix" in spec && spec.prefix !== undefined
      ? ["prefix", spec.prefix]
      : ["match", spec.match ?? ""];
    lines.push(`    - ${key}: ${quote(value)}`, `      replace: ${quote(spec.replace ?? "")}`);
  }
  return lines.join("\n") + "\n";
}

/** Writes the case's rules into `dir`; returns the total bytes written. */
export async function writeRules(dir: string, { kind, count }: Case): Promise<number> {
  let bytes = 0;
  const objects = Math.ceil(count / RULES_PER_OBJECT);
  for (let file = 0; file * OBJECTS_PER_FILE < objects; file++) {
    const documents: string[] = [];
    for (let o = file * OBJECTS_PER_FILE; o < Math.min(objects, (file + 1) * OBJECTS_PER_FILE); o++) {
      const rules: RuleSpec[] = [];
      for (let j = o * RULES_PER_OBJECT; j < Math.min(count, (o + 1) * RULES_PER_OBJECT); j++) {
        rules.push(rule(kind, j));
      }
      documents.push(objectYaml(`scale-${kind}-${o}`, rules));
    }
    const text = documents.join("---\n");
    bytes += new TextEncoder().encode(text).byteLength;
    await Deno.writeTextFile(`${dir}/rules-${String(file).padStart(3, "0")}.yaml`, text);
  }
  return bytes;
}

/** The `mirrorhook` task of deno.json, in words. */
async function taskWords(): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(`${REPO_ROOT}deno.json`)) as { tasks: Record<string, string> };
  return (config.tasks["mirrorhook"] ?? "").split(/\s+/);
}

/** The V8 flags the `mirrorhook` task passes (so the benchmark measures what operators run). */
async function taskFlags(): Promise<string[]> {
  const override = Deno.env.get("SCALE_V8_FLAGS");
  if (override !== undefined) return override === "" ? [] : [`--v8-flags=${override}`];
  return (await taskWords()).filter((word) => word.startsWith("--v8-flags="));
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** CPU time (user + system) the process used so far, in ms: on a busy machine a steadier figure than wall time. */
function cpuMs(pid: number, thread?: number): number {
  const stat = Deno.readTextFileSync(thread === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${thread}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10; // utime and stime, in 1/100 s
}

function rssMiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN);
  return kb / 1024;
}

interface Measured {
  readonly outcome: "ready" | "refused" | "timeout";
  readonly readyMs: number;
  readonly cpuMs: number;
  /** CPU time of the main thread alone: about the time to ready on an idle machine (start-up is serial). */
  readonly mainMs: number;
  /** RSS once settled (SETTLE_MS after ready). */
  readonly rssMiB: number;
  /** RSS 1 s after ready. */
  readonly readyRssMiB: number;
  readonly detail: string;
}

/** The first problem `serve` printed when it refused to start. */
function refusal(stderr: string): string {
  const line = stderr.split("\n").find((l) => !l.startsWith("{") && l.includes(": error: ")) ?? stderr.split("\n")[0] ??
    "";
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}

async function measure(
  dir: string,
  flags: readonly string[],
  tlsDir: string,
  env: Readonly<Record<string, string>>,
): Promise<Measured> {
  const probePort = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...flags,
      "-P=mirrorhook",
      "main.ts",
      "serve",
      "--tls-dir",
      tlsDir,
      "--host",
      "127.0.0.1",
      "--rules",
      dir,
      "--port",
      "0",
      "--probe-port",
      String(probePort),
      "--log-level",
      "error",
    ],
    cwd: REPO_ROOT,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    env: { ...env, NO_COLOR: "1" },
  }).spawn();
  const stderr = new Response(child.stderr).text();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const started = performance.now();
  try {
    while (performance.now() - started < CASE_TIMEOUT_MS) {
      if (exited) {
        const text = await stderr;
        return {
          outcome: "refused",
          readyMs: performance.now() - started,
          cpuMs: 0,
          mainMs: 0,
          rssMiB: 0,
          readyRssMiB: 0,
          detail: refusal(text),
        };
      }
      try {
        const response = await fetch(`http://127.0.0.1:${probePort}/readyz`, { signal: AbortSignal.timeout(1000) });
        await response.body?.cancel();
        if (response.status === 200) {
          const readyMs = performance.now() - started;
          const cpu = cpuMs(child.pid);
          const main = cpuMs(child.pid, child.pid);
          await new Promise((resolve) => setTimeout(resolve, READY_SETTLE_MS));
          const readyRss = rssMiB(child.pid);
          await new Promise((resolve) => setTimeout(resolve, Math.max(0, SETTLE_MS - READY_SETTLE_MS)));
          const settled = rssMiB(child.pid);
          return {
            outcome: "ready",
            readyMs,
            cpuMs: cpu,
            mainMs: main,
            rssMiB: settled,
            readyRssMiB: readyRss,
            detail: "",
          };
        }
      } catch {
        // not listening yet
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return {
      outcome: "timeout",
      readyMs: CASE_TIMEOUT_MS,
      cpuMs: cpuMs(child.pid),
      mainMs: cpuMs(child.pid, child.pid),
      rssMiB: rssMiB(child.pid),
      readyRssMiB: rssMiB(child.pid),
      detail: "",
    };
  } finally {
    if (!exited) child.kill("SIGKILL");
    await status;
    await stderr.catch(() => "");
  }
}

/**
 * Runs a case `runs` times: the least ready and CPU times (the runs least disturbed by other work on the machine)
 * and the median resident memory (which moves with the timing of garbage collection).
 */
async function measureBest(
  dir: string,
  flags: readonly string[],
  runs: number,
  tlsDir: string,
  env: Readonly<Record<string, string>>,
): Promise<Measured> {
  const all: Measured[] = [];
  for (let run = 0; run < runs; run++) {
    const m = await measure(dir, flags, tlsDir, env);
    if (m.outcome !== "ready") return m;
    all.push(m);
  }
  const first = all[0];
  if (first === undefined) throw new Error("Cannot measure with 0 runs");
  const median = (values: number[]) => values.sort((x, y) => x - y)[Math.floor(values.length / 2)] ?? Number.NaN;
  return {
    ...first,
    readyMs: Math.min(...all.map((m) => m.readyMs)),
    cpuMs: Math.min(...all.map((m) => m.cpuMs)),
    mainMs: Math.min(...all.map((m) => m.mainMs)),
    rssMiB: median(all.map((m) => m.rssMiB)),
    readyRssMiB: median(all.map((m) => m.readyRssMiB)),
  };
}

async function main(): Promise<void> {
  const runs = Number(Deno.env.get("SCALE_RUNS") ?? "3");
  const json = Deno.args.includes("--json");
  const args = Deno.args.filter((arg) => arg !== "--json");
  const wanted = args.length > 0 ? args : CASES.map((c) => c.name);
  const unknown = wanted.filter((name) => !CASES.some((c) => c.name === name));
  if (unknown.length > 0) throw new Error(`Cannot run unknown case(s) ${unknown.join(", ")}`);
  const flags = await taskFlags();
  const env = taskEnv();
  const write = (line: string) => Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));
  const out = (line: string) => json ? undefined : write(line);
  out(
    `bench:scale  deno ${Deno.version.deno}  ${runs} runs: least time, median memory  flags: ${
      flags.join(" ") || "(none)"
    }  env: ${Object.entries(env).map(([name, value]) => `${name}=${value}`).join(" ") || "(none)"}`,
  );
  out(
    `case         rules  file MB  outcome  ready ms  CPU ms  main ms  ready RSS  RSS MiB (+${
      SETTLE_MS / 1000
    } s)  above idle MiB`,
  );
  const tlsDir = await Deno.makeTempDir({ prefix: "mirrorhook-scale-tls-" });
  const chain = await mintCertificates();
  await Deno.writeTextFile(`${tlsDir}/tls.crt`, chain.cert);
  await Deno.writeTextFile(`${tlsDir}/tls.key`, chain.key);
  let idle: number | undefined;
  for (const c of CASES.filter((c) => c.name === "idle" || wanted.includes(c.name))) {
    const dir = await Deno.makeTempDir({ prefix: "mirrorhook-scale-" });
    try {
      const bytes = await writeRules(dir, c);
      const m = await measureBest(dir, flags, runs, tlsDir, env);
      if (c.name === "idle") idle = m.rssMiB;
      const above = idle === undefined || m.outcome !== "ready" ? "" : (m.rssMiB - idle).toFixed(1);
      if (json) {
        write(JSON.stringify({
          rules: c.count,
          kind: c.name === "idle" ? "idle" : c.kind,
          rss_mb: Number(m.rssMiB.toFixed(1)),
          ready_rss_mb: Number(m.readyRssMiB.toFixed(1)),
          outcome: m.outcome,
          ready_ms: Math.round(m.readyMs),
        }));
        continue;
      }
      out(
        [
          c.name.padEnd(12),
          String(c.count).padStart(6),
          (bytes / 1e6).toFixed(2).padStart(7),
          m.outcome.padEnd(7),
          m.readyMs.toFixed(0).padStart(8),
          m.cpuMs.toFixed(0).padStart(6),
          m.mainMs.toFixed(0).padStart(7),
          m.readyRssMiB.toFixed(1).padStart(9),
          m.rssMiB.toFixed(1).padStart(17),
          above.padStart(14),
        ].join("  ") + (m.detail === "" ? "" : `\n  ${m.detail}`),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
  await Deno.remove(tlsDir, { recursive: true });
}

if (import.meta.main) await main();
