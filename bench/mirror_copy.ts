// Measures image copies between two local docker-registry instances: cold upload, warm (all present) and mount.
//
// Run: deno run -A bench/mirror_copy.ts [MiB per layer, default 32] [rounds, default 3]. Needs Debian's
// docker-registry. Two platforms, one layer each; the medians are printed, as MiB/s of bytes uploaded.

import { parseReferenceOrThrow } from "../lib/image/reference.ts";
import { formatBytes } from "../lib/mirror/copy.ts";
import { Mirrorer } from "../lib/mirror/mirrorer.ts";
import { Transport } from "../lib/verify/transport.ts";
import { pushPlatformImage } from "../tests/support/images.ts";
import { startRegistry } from "../tests/support/registry.ts";

const layerMiB = Number(Deno.args[0] ?? 32);
const rounds = Math.max(1, Math.min(20, Number(Deno.args[1] ?? 3)));

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

await using source = await startRegistry();
await using target = await startRegistry();
const image = await pushPlatformImage(source.url, "bench/app", "v1", {
  platforms: ["linux/amd64", "linux/arm64"],
  layerBytes: layerMiB * 1024 * 1024,
  seed: 7,
});
const transport = await Transport.create({ insecure: [source.host, target.host] });
const mirrorer = new Mirrorer({ transport });
const from = parseReferenceOrThrow(`${source.host}/bench/app:v1`);
const timings: Record<"cold" | "warm" | "mount", number[]> = { cold: [], warm: [], mount: [] };
try {
  for (let round = 0; round < rounds; round++) {
    const to = parseReferenceOrThrow(`${target.host}/round${round}/app:v1`);
    let started = performance.now();
    const cold = await mirrorer.mirror(from, to);
    timings.cold.push(performance.now() - started);
    if (cold.blobs.copied !== 4) throw new Error(`Cannot bench: round ${round} copied ${cold.blobs.copied} blobs`);
    started = performance.now();
    await mirrorer.mirror(from, to);
    timings.warm.push(performance.now() - started);
    started = performance.now();
    const mounted = await mirrorer.mirror(to, parseReferenceOrThrow(`${target.host}/mounted${round}/app:v1`));
    timings.mount.push(performance.now() - started);
    if (mounted.blobs.mounted !== 4) throw new Error(`Cannot bench: round ${round} mounted ${mounted.blobs.mounted}`);
  }
} finally {
  mirrorer.close();
  transport.close();
}
const total = image.totalBytes;
const cold = median(timings.cold);
// deno-lint-ignore no-console
console.log(
  [
    `image: 2 platforms, ${formatBytes(total)} in all, ${rounds} round(s), medians:`,
    `  cold copy (every blob uploaded): ${cold.toFixed(0)} ms, ${
      (total / 1024 / 1024 / (cold / 1000)).toFixed(0)
    } MiB/s`,
    `  warm copy (every blob present):  ${median(timings.warm).toFixed(0)} ms`,
    `  mount within the registry:       ${median(timings.mount).toFixed(0)} ms`,
  ].join("\n"),
);
