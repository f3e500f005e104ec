// Benchmarks the webhook core of `serve` (bytes in, answer bytes out, no transport) against a JSON-only floor.
//
// The core is built as lib/server/app.ts builds it: createWebhookCore with bench/rules.yaml, the metrics, a
// registry verifier, and LogTape configured by configureLogging (JSON Lines written to /dev/null, so the
// formatting work is the production one). The floor does what any webhook must: decode and JSON.parse the body,
// JSON.stringify an answer of mirrorhook's size, encode it. Own work per admission = core − floor. A third row runs
// the same rules with `verify: true` once the verifier's cache holds every target (one pass, no registry lookup).
//
//   deno task bench:core
//
// Fixtures: ../shared/bench/fixtures (override with MIRRORHOOK_BENCH_FIXTURES).

import { createWebhookCore, type WebhookRequest, type WebhookResponse } from "../lib/server/handler.ts";
import { createMetrics } from "../lib/server/metrics.ts";
import { configureLogging, createLineBatch, logger } from "../lib/server/log.ts";
import { readAndLoadRules } from "../lib/sources/rule_files.ts";
import { loadRuleTexts } from "../lib/compat/load.ts";
import type { RuleSet } from "../lib/rules/compile.ts";
import { type ManifestChecker, Verifier } from "../lib/verify/verifier.ts";
import { VerifyPolicy } from "../lib/verify/policy.ts";
import { createVerifyMetrics } from "../lib/verify/metrics.ts";

const here = (path: string) => decodeURIComponent(new URL(path, import.meta.url).pathname);
const fixtures = Deno.env.get("MIRRORHOOK_BENCH_FIXTURES") ?? "/work/shared/bench/fixtures";

const loaded = await readAndLoadRules([here("rules.yaml")]);
const errors = loaded.problems.filter((problem) => problem.severity === "error");
if (errors.length > 0) throw new Error(`Cannot load bench/rules.yaml: ${errors[0]?.message}`);
const ruleSet = loaded.loaded.ruleSet;
// The same rules with `verify: true`: every rewrite asks the registry, answered from the verifier's cache once warm.
const verifiedRuleSet = loadRuleTexts([{
  name: "rules-verified.yaml",
  text: (loaded.texts[0]?.text ?? "").replace("\nspec:\n", "\nspec:\n  verify: true\n"),
}]).ruleSet;
if (!verifiedRuleSet.levels.some((level) => [...level.prefixes.children.values()].length > 0)) {
  throw new Error("Cannot build the verified bench rules");
}

// Production formatting and batching (one write per 64 KiB or 20 ms, as on standard error), to the null device.
const devNull = Deno.openSync("/dev/null", { write: true });
const lineEncoder = new TextEncoder();
const lines = createLineBatch((bytes) => devNull.writeSync(bytes));
configureLogging("info", lines.add);

const metrics = createMetrics();
const verifyMetrics = createVerifyMetrics(metrics.registry);
/** Registry lookups made; the warm runs must make none. */
let lookups = 0;

async function createCore(rules: RuleSet, registry?: ManifestChecker) {
  const verifier = await Verifier.create({
    policy: VerifyPolicy.create({ registries: ["mirror.corp.example"], clusterRules: "listed" }),
    deadlineMs: 2000,
    dockerConfigs: [],
    insecureRegistries: [],
    caFiles: {},
    metrics: verifyMetrics,
    ...(registry === undefined ? {} : { checker: registry }),
  });
  return createWebhookCore({
    rules: () => rules,
    metrics,
    logger: logger("server"),
    maxBodyBytes: 8 * 1024 * 1024,
    onError: "allow",
    dryRun: false,
    bypassPrefix: "direct.to/",
    excludedNamespaces: new Set(["kube-system"]),
    verifier,
    verifyDeadlineMs: 2000,
    verifyDecisions: verifyMetrics.decisions,
    verifyChosen: verifyMetrics.chosen,
    mirror: { request: () => undefined },
  });
}

const core = await createCore(ruleSet);
const verifiedCore = await createCore(verifiedRuleSet, {
  check: () => {
    lookups++;
    return Promise.resolve({ status: "present" });
  },
});

function request(body: Uint8Array): WebhookRequest {
  return {
    method: "POST",
    path: "/mutate",
    contentType: "application/json",
    readBody: () => Promise.resolve(body),
  };
}

const answerEncoder = new TextEncoder();
let sink = 0;

async function run(body: Uint8Array, handle = core): Promise<WebhookResponse> {
  const response = await handle(request(body));
  sink += answerEncoder.encode(response.body).byteLength;
  return response;
}

for (const name of ["pod-admission.json", "pod-admission-large.json"]) {
  const body = await Deno.readFile(`${fixtures}/${name}`);
  const first = await run(body);
  if (first.status !== 200 || !first.body.includes('"patch"')) {
    throw new Error(`The core did not patch ${name}: ${first.status} ${first.body.slice(0, 200)}`);
  }
  // A constant answer of the same size and shape as mirrorhook's.
  const answer = JSON.parse(first.body);
  const answerBytes = answerEncoder.encode(JSON.stringify(answer)).byteLength;
  const group = name.replace(".json", "");

  Deno.bench({
    name: `floor ${name}: decode + JSON.parse, JSON.stringify of a ${answerBytes}-byte answer, encode`,
    group,
    baseline: true,
    fn: () => {
      const parsed = JSON.parse(new TextDecoder().decode(body));
      sink += parsed.request === undefined ? 0 : 1;
      sink += answerEncoder.encode(JSON.stringify(answer)).byteLength;
    },
  });
  Deno.bench({
    name: `core ${name} (${body.byteLength}-byte request, ${answerBytes}-byte answer)`,
    group,
    fn: async () => {
      await run(body);
    },
  });
  // Verified rules, cache warm: one pass, no registry lookup (checked below).
  await run(body, verifiedCore);
  const warm = lookups;
  const verified = await run(body, verifiedCore);
  if (lookups !== warm || !verified.body.includes("verified in the registry")) {
    throw new Error(`The verified core did not answer ${name} from a warm cache`);
  }
  Deno.bench({
    name: `core ${name}, every rule verify: true, registry answers cached`,
    group,
    fn: async () => {
      await run(body, verifiedCore);
    },
  });
}

globalThis.addEventListener("unload", () => {
  // Keeps the results alive, so no work is optimized away.
  if (sink < 0) devNull.writeSync(lineEncoder.encode(String(sink)));
  lines.flush();
  devNull.close();
});
