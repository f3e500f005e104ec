// `deno task attack`: replays issue 10's attacks on a real `mirrorhook serve` (127.0.0.1, bounded) and prints figures.
// deno-lint-ignore-file no-console -- a benchmark prints its figures

import {
  type AttackDetail,
  keepAliveWedge,
  labelFlood,
  memoryOf,
  pipelining,
  probeAdmissions,
  type ServerProcess,
  slowBodies,
  startServerProcess,
  trackMemory,
} from "../tests/support/attacks.ts";
import { sleep } from "../tests/support/webhook.ts";

/** One attack: what it does, and the function that runs it (bounded) against a fresh server. */
interface Attack {
  readonly name: string;
  readonly what: string;
  /** Extra `serve` flags for this attack. */
  readonly flags?: readonly string[];
  readonly run: (server: ServerProcess) => Promise<AttackDetail>;
}

/**
 * The attacks, in issue 10's order. A tenant's pathological regular expression (point 1) and /validate screening
 * (point 2) go here as entries of their own: `run` posts the rule object or the Pod, the probe measures the rest.
 */
const ATTACKS: readonly Attack[] = [
  {
    name: "slow-body",
    what: "40 connections send 8,000,000 of 8,388,000 declared bytes, then stop",
    run: (server) => slowBodies(server),
  },

  {
    name: "label-flood",
    what: "5,000 admissions, each with a fresh 1 KiB operation and a direct.to/<fresh registry> image",
    run: (server) => labelFlood(server),
  },
  {
    name: "keep-alive-wedge",
    what: "20 connections: 1 MiB body to a wrong path, then an admission on the same connection",
    run: (server) => keepAliveWedge(server),
  },
  {
    name: "pipelining",
    what: "10 connections, 100 pipelined admissions each (118 KB per connection)",
    run: (server) => pipelining(server),
  },
];

const MIB = 1024 * 1024;

async function main(): Promise<void> {
  const only = Deno.args[0];
  const selected = ATTACKS.filter((attack) => only === undefined || attack.name === only);
  if (selected.length === 0) {
    throw new Error(`no attack named ${only}; known: ${ATTACKS.map((attack) => attack.name).join(", ")}`);
  }
  const rows: string[][] = [];
  for (const attack of selected) {
    const dir = await Deno.makeTempDir({ prefix: "mirrorhook-attack-" });
    try {
      await using server = await startServerProcess(dir, attack.flags ?? []);
      await sleep(500);
      const idle = await memoryOf(server.pid);
      let stopped = false;
      const probing = probeAdmissions(server, () => stopped);
      const memory = trackMemory(server.pid);
      const started = performance.now();
      const detail = await attack.run(server);
      const seconds = (performance.now() - started) / 1000;
      stopped = true;
      const probe = await probing;
      const peakSampled = await memory.stop();
      const after = await memoryOf(server.pid);
      rows.push([
        attack.name,
        `${(idle.rss / MIB).toFixed(0)}`,
        `${(Math.max(peakSampled, after.peak) / MIB).toFixed(0)}`,
        `${(after.rss / MIB).toFixed(0)}`,
        `${probe.p50Ms.toFixed(1)}`,
        `${probe.p99Ms.toFixed(1)}`,
        `${probe.ok}/${probe.sent}`,
        `${probe.blocked}`,
        `${seconds.toFixed(1)}`,
        Object.entries(detail).map(([key, value]) => `${key}=${value}`).join(" "),
      ]);
      console.log(`${attack.name}: ${attack.what}: done in ${seconds.toFixed(1)} s`);
      if (probe.failures.length > 0) console.log(`  blocked admissions, first ones: ${probe.failures.join(" | ")}`);
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  }
  const header = [
    "attack",
    "idle MiB",
    "peak MiB",
    "after MiB",
    "/mutate p50 ms",
    "p99 ms",
    "admitted",
    "blocked",
    "s",
    "detail",
  ];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((cell, i) => cell.padEnd(widths[i]!)).join("  ");
  console.log();
  console.log(line(header));
  for (const row of rows) console.log(line(row));
  console.log(
    "\nMemory: the server process's VmRSS (peak: VmHWM and 50 ms samples); the Deployment's limit is 512 MiB. " +
      "/mutate: one normal admission at a time during the attack; blocked = no correct answer within 10 s (must be 0).",
  );
  const blocked = rows.reduce((sum, row) => sum + Number(row[7]), 0);
  if (blocked > 0) Deno.exit(1);
}

await main();
