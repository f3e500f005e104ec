// The Pod opt-outs of the tools whose configuration is read are honoured: mutating-registry-webhook's
// `rewrite-disabled: "true"` annotation and ImageSwap's `k8s.twr.io/imageswap: disabled` label, from the loader
// (CLI) and through the server's rule store.

import assert from "node:assert/strict";
import { mutatePod } from "../lib/mutate/pod.ts";
import { loadRuleTexts } from "../lib/compat/load.ts";
import { readRulePaths } from "../lib/sources/rule_files.ts";
import { RuleStore } from "../lib/sources/store.ts";

const FIXTURES = new URL("./fixtures/compat/", import.meta.url).pathname;

function pod(metadata: Record<string, unknown>): Record<string, unknown> {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "p", namespace: "default", ...metadata },
    spec: { containers: [{ name: "app", image: "nginx:1.27" }] },
  };
}

Deno.test("other tools' Pod opt-outs are honoured", async (t) => {
  const rows = [
    {
      format: "flemzord",
      opted: { annotations: { "rewrite-disabled": "true" } },
      other: { annotations: { "rewrite-disabled": "false" } },
    },
    {
      format: "imageswap",
      opted: { labels: { "k8s.twr.io/imageswap": "disabled" } },
      other: { labels: { "k8s.twr.io/imageswap": "enabled" } },
    },
  ];
  for (const row of rows) {
    const read = await readRulePaths([`${FIXTURES}${row.format}/rules`]);
    const loaded = loadRuleTexts(read.texts);
    assert.deepEqual(loaded.problems.filter((p) => p.severity === "error"), []);
    const store = new RuleStore();
    store.register("file");
    store.update("file", loaded.objects, loaded.optOuts);
    for (const [where, ruleSet] of [["loader", loaded.ruleSet], ["store", store.current]] as const) {
      await t.step(`${row.format}: ${where}`, () => {
        assert.equal(mutatePod(pod(row.opted), { ruleSet }).skipped, "opted-out");
        const other = mutatePod(pod(row.other), { ruleSet });
        assert.equal(other.skipped, undefined);
        assert.equal(other.changes.length, 1, "without the opt-out the image is rewritten");
      });
    }
  }
});
