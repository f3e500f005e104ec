// Tenants' regular expressions against a real server: crafted images, /validate floods, 10k patterns, huge literals.

import assert from "node:assert/strict";
import { V8_FLAGS_ARGUMENT } from "../lib/rules/pattern.ts";
import { screenPattern } from "../lib/rules/pattern.ts";
import "../lib/rules/pattern_analysis.ts";
import { loadRuleTexts } from "../lib/compat/load.ts";
import { startServer, StartupError } from "../lib/server/app.ts";
import { mintCertificates } from "../lib/server/certs.ts";
import { createWebhookCore } from "../lib/server/handler.ts";
import { createMetrics } from "../lib/server/metrics.ts";
import { compileRuleSet } from "../lib/rules/compile.ts";
import { KubeMount } from "./support/kube_mount.ts";
import {
  checkAnswer,
  freePort,
  HARBOR_NGINX,
  HARBOR_RULES,
  memoryLogger,
  podReview,
  readyz,
  REPO_ROOT,
  tempDir,
  testConfig,
  waitFor,
} from "./support/webhook.ts";
import { admissionReview } from "./support/admission_review.ts";

/** Accepted by the static analysis (it misses overlapping alternatives), yet exponential on a backtracking engine. */
const SNEAKY = "^(a|a)*c$";
/** The pattern: accepted with a warning before, 3 of 3 times. */
const PATHOLOGICAL = "^((a*)*b)\\2(?:[a-z0-9._-]{1,20}/){0,30}$";
const CRAFTED = "a".repeat(32);

const TENANT_RULES = `apiVersion: mirrorhook.dev/v1alpha1
kind: ImageRewrite
metadata:
  name: tenant
  namespace: team-a
spec:
  priority: 10
  rules:
    - match: '${SNEAKY}'
      on: original
      replace: tenant.example.com/c
---
${HARBOR_RULES}`;

function review(image: string, namespace: string): Record<string, unknown> {
  const base = podReview();
  const request = base["request"] as Record<string, unknown>;
  const object = structuredClone(request["object"]) as { metadata: Record<string, unknown>; spec: unknown };
  object.metadata["namespace"] = namespace;
  object.spec = { containers: [{ name: "app", image }] };
  return { ...base, request: { ...request, uid: crypto.randomUUID(), namespace, object } };
}

function ruleReview(spec: unknown, name = "tenant"): Record<string, unknown> {
  return admissionReview({
    name,
    namespace: "team-a",
    userInfo: { username: "alice" },
    object: {
      apiVersion: "mirrorhook.dev/v1alpha1",
      kind: "ImageRewrite",
      metadata: { name, namespace: "team-a" },
      spec,
    },
    dryRun: false,
  });
}

async function post(
  client: Deno.HttpClient,
  port: number,
  path: string,
  body: unknown,
  timeoutMs = 10_000,
): Promise<{ status: number; text: string; ms: number }> {
  const started = performance.now();
  const response = await fetch(`https://127.0.0.1:${port}${path}`, {
    method: "POST",
    client,
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  return { status: response.status, text: await response.text(), ms: performance.now() - started };
}

function responseOf(text: string): Record<string, unknown> {
  return (JSON.parse(text) as { response: Record<string, unknown> }).response;
}

/** Prints a measured figure (no assertion on speed: the machine is shared). */
function print(line: string): void {
  // deno-lint-ignore no-console
  console.log(line);
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
}

Deno.test("a crafted image next to a tenant's backtracking pattern is answered in normal admission time", async () => {
  assert.equal(screenPattern(SNEAKY).status, "safe", "the static check accepts it");
  await using dir = await tempDir("mirrorhook-regex-");
  const chain = await mintCertificates();
  const tls = await KubeMount.create(`${dir.path}/tls`, { "tls.crt": chain.cert, "tls.key": chain.key });
  await Deno.writeTextFile(`${dir.path}/rules.yaml`, TENANT_RULES);
  const port = freePort();
  let probePort = freePort();
  while (probePort === port) probePort = freePort();
  // A separate process: were its event loop stuck in a regular expression, this one still times out and reports.
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-P=mirrorhook",
      V8_FLAGS_ARGUMENT,
      "main.ts",
      "serve",
      "--rules",
      `${dir.path}/rules.yaml`,
      "--tls-dir",
      tls.dir,
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
      "--probe-port",
      String(probePort),
      "--shutdown-delay",
      "0",
    ],
    cwd: REPO_ROOT,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const client = Deno.createHttpClient({ caCerts: [chain.caCert] });
  try {
    const ready = await waitFor(
      () => readyz(probePort).then((r) => r.status === 200 ? true : undefined, () => undefined),
      { timeoutMs: 20_000, intervalMs: 100 },
    );
    assert.ok(ready !== undefined, "/readyz became 200");
    const rows: [string, string, string | undefined][] = [
      // The tenant's pattern runs first (priority 10), linearly, and does not match: the platform's rule decides.
      ["team-a", CRAFTED, `harbor.example.com/dockerhub/library/${CRAFTED}:latest`],
      // Out of the tenant's scope: its pattern never runs.
      ["team-b", CRAFTED, `harbor.example.com/dockerhub/library/${CRAFTED}:latest`],
      ["team-b", "nginx:1.27", HARBOR_NGINX],
      ["team-a", `${"a".repeat(200)}c`, "tenant.example.com/c:latest"],
    ];
    const figures: string[] = [];
    for (const [namespace, image, expected] of rows) {
      const answer = await post(client, port, "/mutate", review(image, namespace));
      const uid = JSON.parse(answer.text).response.uid;
      const problem = checkAnswer(answer.status, answer.text, uid, expected);
      assert.equal(problem, undefined, `${image.slice(0, 12)}… in ${namespace}: ${problem}`);
      figures.push(`${image.slice(0, 12)}… in ${namespace}: ${answer.ms.toFixed(1)} ms`);
    }
    const health = await fetch(`http://127.0.0.1:${probePort}/healthz`, { signal: AbortSignal.timeout(5000) });
    assert.equal(health.status, 200);
    await health.body?.cancel();
    // The pattern is refused by /validate, deterministically.
    const denied = await post(client, port, "/validate", ruleReview({ rules: [{ match: PATHOLOGICAL, keep: true }] }));
    assert.equal(responseOf(denied.text)["allowed"], false);
    assert.match(denied.text, /linear-time engine/);
    print(`crafted images answered: ${figures.join("; ")}`);
  } finally {
    client.close();
    child.kill("SIGKILL");
    await child.status;
  }
});

Deno.test("/mutate keeps answering while /validate screens 200 new patterns per request", async () => {
  await using dir = await tempDir("mirrorhook-regex-");
  const chain = await mintCertificates();
  await Deno.writeTextFile(`${dir.path}/rules.yaml`, HARBOR_RULES);
  const { logger } = memoryLogger();
  const tls = await KubeMount.create(`${dir.path}/tls`, { "tls.crt": chain.cert, "tls.key": chain.key });
  const server = await startServer(testConfig({ rules: [`${dir.path}/rules.yaml`], tlsDir: tls.dir }), { logger });
  const client = Deno.createHttpClient({ caCerts: [chain.caCert] });
  try {
    const port = server.webhookPort;
    const mutate = async (until: () => boolean, maxRequests: number) => {
      const times: number[] = [];
      while (!until() && times.length < maxRequests) {
        const answer = await post(client, port, "/mutate", review("nginx:1.27", "shop"));
        assert.equal(answer.status, 200);
        times.push(answer.ms);
      }
      return times;
    };
    const idle = await mutate(() => false, 100);
    let screening = true;
    const during: number[] = [];
    const flood = (async () => {
      const answers: string[] = [];
      for (let round = 0; round < 5; round++) {
        const id = crypto.randomUUID().slice(0, 8);
        const rules = Array.from({ length: 200 }, (_, i) => ({
          match: `^(?:registry-${id}-${i}\\.example\\.com|mirror-${i}\\.${id}\\.io)/([a-z0-9._-]+/)*(?<app>[^/:]+)$`,
          replace: `harbor.example.com/${i}/$<app>`,
        }));
        const answer = await post(client, port, "/validate", ruleReview({ rules }, `flood-${round}`), 60_000);
        const response = responseOf(answer.text);
        // Checked (allowed), or refused because the check was late on a loaded machine: either way an answer.
        const refused = (response["status"] as { code?: number } | undefined)?.code === 503;
        answers.push(response["allowed"] === true ? "checked" : refused ? "refused" : answer.text.slice(0, 300));
      }
      return answers;
    })().finally(() => screening = false);
    const [answers] = await Promise.all([flood, mutate(() => !screening, 10_000).then((t) => during.push(...t))]);
    assert.ok(answers.every((a) => a === "checked" || a === "refused"), answers.join("\n"));
    assert.ok(during.length > 0, "admissions were answered while /validate was screening");
    print(
      `/mutate p50/p99 idle ${percentile(idle, 50).toFixed(1)}/${
        percentile(idle, 99).toFixed(1)
      } ms (${idle.length}); ` +
        `while /validate screened 5 × 200 patterns (${answers.join(", ")}) ${percentile(during, 50).toFixed(1)}/${
          percentile(during, 99).toFixed(1)
        } ms (${during.length} admissions)`,
    );
  } finally {
    client.close();
    await server.shutdown("test");
  }
});

Deno.test("10,000 match rules load through the screening worker", async () => {
  await using dir = await tempDir("mirrorhook-regex-");
  const id = crypto.randomUUID().slice(0, 8);
  const objects = Array.from({ length: 100 }, (_, o) => {
    const rules = Array.from(
      { length: 100 },
      (_, r) =>
        `    - match: '^registry-${id}-${o}-${r}\\.example\\.com/(.*)$'\n      replace: harbor.example.com/m${o}-${r}/$1`,
    );
    return `apiVersion: mirrorhook.dev/v1alpha1\nkind: ClusterImageRewrite\nmetadata:\n  name: many-${o}\nspec:\n  rules:\n${
      rules.join("\n")
    }\n`;
  });
  await Deno.writeTextFile(`${dir.path}/rules.yaml`, objects.join("---\n"));
  const { logger } = memoryLogger();
  const started = performance.now();
  const chain = await mintCertificates();
  const tls = await KubeMount.create(`${dir.path}/tls`, { "tls.crt": chain.cert, "tls.key": chain.key });
  const server = await startServer(testConfig({ rules: [`${dir.path}/rules.yaml`], tlsDir: tls.dir }), { logger });
  const readyMs = performance.now() - started;
  try {
    assert.equal(server.store.current.ruleCount, 10_000);
    assert.ok(server.readiness().ready);
    print(`10,000 distinct match rules: ready in ${readyMs.toFixed(0)} ms`);
  } finally {
    await server.shutdown("test");
  }
});

Deno.test("a 100 KB literal pattern is refused at load, with its file, line and column", async () => {
  await using dir = await tempDir("mirrorhook-regex-");
  const file = `${dir.path}/huge.yaml`;
  await Deno.writeTextFile(
    file,
    `apiVersion: mirrorhook.dev/v1alpha1\nkind: ClusterImageRewrite\nmetadata:\n  name: huge\nspec:\n  rules:\n    - match: '${
      "a".repeat(100 * 1024)
    }'\n      keep: true\n`,
  );
  const text = await Deno.readTextFile(file);
  const loaded = loadRuleTexts([{ name: file, text }]);
  assert.deepEqual(
    loaded.problems.map((p) => [p.severity, p.code, p.source, p.line, p.column]),
    [["error", "pattern-too-long", file, 7, 7]],
  );
  const { logger } = memoryLogger();
  await assert.rejects(
    startServer(testConfig({ rules: [file], tlsDir: dir.path }), { logger }),
    (error) => error instanceof StartupError && error.problems.some((p) => p.code === "pattern-too-long"),
  );
});

Deno.test("/validate refuses (503) when the patterns cannot be screened in time", async () => {
  const { logger } = memoryLogger();
  const handle = createWebhookCore({
    rules: () => compileRuleSet([]).ruleSet,
    metrics: createMetrics(),
    logger,
    screenPatterns: () => Promise.reject(new Error("Cannot screen patterns within 8000 ms")),
  });
  const body = new TextEncoder().encode(JSON.stringify(ruleReview({ rules: [{ match: "^x$", keep: true }] })));
  const answer = await handle({
    method: "POST",
    path: "/validate",
    contentType: "application/json",
    readBody: () => Promise.resolve(body),
  });
  const response = JSON.parse(answer.body).response;
  assert.equal(response.allowed, false);
  assert.equal(response.status.code, 503);
});
