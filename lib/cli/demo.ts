// `mirrorhook demo` (what `deno task start` runs): rewrites a sample Pod with a bundled preset, no cluster needed.

import jsonpatch from "fast-json-patch";
import { stringify } from "yaml";
import { SAMPLE_POD } from "../admission/sample.ts";
import { mutatePod } from "../mutate/pod.ts";
import { type CliIo, EXIT } from "./io.ts";
import { loadRulesForCli } from "./rules.ts";

/** The preset the demo uses, shipped in `rules/`. */
const DEMO_PRESET = decodeURIComponent(new URL("../../rules/dockerhub-harbor.yaml", import.meta.url).pathname);

/** Runs the demo: before and after for each image, the JSON Patch, and the Pod as admitted. */
export async function runDemo(rules: readonly string[], io: CliIo): Promise<number> {
  const paths = rules.length > 0 ? rules : [DEMO_PRESET];
  const ruleSet = await loadRulesForCli(paths, io);
  if (ruleSet === undefined) return EXIT.failed;
  const result = mutatePod(SAMPLE_POD, { ruleSet, namespace: "default" });
  io.stdout(`mirrorhook demo: a sample Pod admitted with the rules in ${paths.join(", ")}\n\n`);
  for (const { slot, decision } of result.decisions) {
    const after = decision.action === "rewrite" || decision.action === "bypass" ? decision.output : slot.image;
    io.stdout(`  ${slot.key.padEnd(8)} ${slot.image.padEnd(42)} \u2192 ${after}\n`);
  }
  io.stdout(`\nWarnings kubectl would show:\n${result.warnings.map((w) => `  ${w}\n`).join("")}`);
  io.stdout(`\nJSON Patch (RFC 6902) the webhook would return:\n${JSON.stringify(result.patch, null, 2)}\n`);
  const mutated =
    jsonpatch.applyPatch(structuredClone(SAMPLE_POD), jsonpatch.deepClone(result.patch), true, false).newDocument;
  io.stdout(`\nThe Pod as admitted:\n${stringify(mutated)}`);
  io.stdout(
    `\nTry your own: deno task mirrorhook rewrite --rules ${paths[0]} --explain nginx ghcr.io/org/app:1\n` +
      `             deno task mirrorhook mutate -f pod.yaml --rules ${paths[0]}\n`,
  );
  return EXIT.ok;
}
