// The file source on real files: a rule file that turns into a directory or a broken link never disappears silently.

import assert from "node:assert/strict";
import type { LogRecord } from "@logtape/logtape";
import { createMetrics, type Metrics } from "../lib/server/metrics.ts";
import { FileRuleSource } from "../lib/sources/file_source.ts";
import { RuleStore } from "../lib/sources/store.ts";
import { DATA_LINK, KubeMount } from "./support/kube_mount.ts";
import { memoryLogger, tempDir, waitFor } from "./support/webhook.ts";

/** One object, one rule, named after `name`. */
function rules(name: string): string {
  return `apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: ${name}
spec:
  rules:
    - exact: registry.example.com/${name}:1
      replace: mirror.example.com/${name}:1
`;
}

interface Fixture extends AsyncDisposable {
  readonly source: FileRuleSource;
  readonly store: RuleStore;
  readonly metrics: Metrics;
  readonly records: LogRecord[];
  readonly messages: () => string[];
}

/** Starts a file source on `paths` with the watch and a fast poll, as `serve` runs it. */
async function startSource(paths: readonly string[]): Promise<Fixture> {
  const store = new RuleStore();
  const metrics = createMetrics({ defaultMetrics: false });
  const { logger, records, messages } = memoryLogger();
  const source = new FileRuleSource({ paths, store, metrics, logger, pollIntervalMs: 200, debounceMs: 50 });
  const problems = await source.start();
  assert.deepEqual(problems.filter((p) => p.severity === "error"), []);
  return { source, store, metrics, records, messages, [Symbol.asyncDispose]: () => Promise.resolve(source.stop()) };
}

async function reloads(fixture: Fixture, result: "success" | "error"): Promise<number> {
  const metric = await fixture.metrics.reloads.get();
  return metric.values.find((v) => v.labels.source === "file" && v.labels.result === result)?.value ?? 0;
}

function ruleNames(store: RuleStore): string[] {
  return store.current.objects.map((object) => object.name).sort();
}

/** Waits (watch or poll) until a reload with `result` is counted after `before`. */
async function counted(fixture: Fixture, result: "success" | "error", before: number, timeoutMs = 5000): Promise<void> {
  const done = await waitFor(async () => (await reloads(fixture, result)) > before ? true : undefined, {
    timeoutMs,
    intervalMs: 25,
  });
  assert.ok(done !== undefined, `no ${result} reload counted`);
}

/** How b.yaml goes bad, done to a path that does not exist yet. */
const BREAKERS: readonly [string, (path: string) => Promise<void>][] = [
  ["a directory", async (path) => {
    await Deno.mkdir(path);
    await Deno.writeTextFile(`${path}/inner.yaml`, rules("inner"));
  }],
  ["a dangling symbolic link", (path) => Deno.symlink(`${path}.gone`, path)],
  ["a loop of symbolic links", async (path) => {
    await Deno.symlink(`${path}.other`, path);
    await Deno.symlink(path, `${path}.other`);
  }],
];

/** Checks that b.yaml's rules stay, and that the failure is a logged, counted, reported `read-error`. */
async function assertReadError(fixture: Fixture, file: string, errorsBefore: number, hashBefore: string) {
  await counted(fixture, "error", errorsBefore);
  assert.equal(fixture.store.current.hash, hashBefore, "the last good rules stay in force");
  assert.deepEqual(ruleNames(fixture.store), ["a", "b"]);
  const status = fixture.store.status().find((s) => s.name === "file");
  assert.ok(status?.lastError?.includes(file), `lastError names ${file}: ${status?.lastError}`);
  const logged = fixture.records.find((r) => r.level === "error" && JSON.stringify(r.properties).includes(file));
  assert.ok(logged !== undefined, `an error log line names ${file}: ${fixture.messages().join("\n")}`);
  assert.deepEqual(logged.properties["codes"], ["read-error"]);
  assert.ok(String(fixture.messages().at(-1)).includes("last good rules stay in force"));
}

/** Checks that once b.yaml is gone for good, the reload succeeds and says that b.yaml was removed. */
async function assertRemoved(fixture: Fixture, file: string, successesBefore: number) {
  await counted(fixture, "success", successesBefore);
  assert.deepEqual(ruleNames(fixture.store), ["a"]);
  const removed = fixture.records.find((r) => r.properties["change"] === "removed" && r.properties["file"] === file);
  assert.ok(removed !== undefined, `a log line says ${file} was removed: ${fixture.messages().join("\n")}`);
  assert.equal(fixture.store.status().find((s) => s.name === "file")?.lastError, undefined);
}

Deno.test("file source: b.yaml in a plain directory goes bad", async (t) => {
  for (const [name, breakIt] of BREAKERS) {
    await t.step(`replaced by ${name}: a read error, the last good rules stay`, async () => {
      await using dir = await tempDir("mirrorhook-files-");
      await Deno.writeTextFile(`${dir.path}/a.yaml`, rules("a"));
      await Deno.writeTextFile(`${dir.path}/b.yaml`, rules("b"));
      await using fixture = await startSource([dir.path]);
      assert.deepEqual(ruleNames(fixture.store), ["a", "b"]);
      const file = `${dir.path}/b.yaml`;
      const errors = await reloads(fixture, "error");
      const hash = fixture.store.current.hash;
      await Deno.remove(file);
      await breakIt(file);
      await assertReadError(fixture, file, errors, hash);

      const successes = await reloads(fixture, "success");
      await Deno.remove(file, { recursive: true });
      await Deno.remove(`${file}.other`).catch(() => {});
      await assertRemoved(fixture, file, successes);
    });
  }
});

/** Swaps the mount's `..data` (as the kubelet does) to a new directory laid out by `build`. */
async function swapData(mount: KubeMount, build: (dir: string) => Promise<void>): Promise<void> {
  const next = `..swap_${crypto.randomUUID()}`;
  await Deno.mkdir(`${mount.dir}/${next}`);
  await build(`${mount.dir}/${next}`);
  await Deno.symlink(next, `${mount.dir}/..data_tmp`);
  await Deno.rename(`${mount.dir}/..data_tmp`, `${mount.dir}/${DATA_LINK}`);
}

Deno.test("file source: b.yaml of a ConfigMap mount goes bad through the ..data swap", async (t) => {
  for (const [name, breakIt] of BREAKERS) {
    await t.step(`the new ..data holds ${name} at b.yaml: a read error, the last good rules stay`, async () => {
      await using dir = await tempDir("mirrorhook-files-");
      const mount = await KubeMount.create(`${dir.path}/rules`, { "a.yaml": rules("a"), "b.yaml": rules("b") });
      await using fixture = await startSource([mount.dir]);
      assert.deepEqual(ruleNames(fixture.store), ["a", "b"]);
      const file = `${mount.dir}/b.yaml`;
      const errors = await reloads(fixture, "error");
      const hash = fixture.store.current.hash;
      await swapData(mount, async (data) => {
        await Deno.writeTextFile(`${data}/a.yaml`, rules("a"));
        await breakIt(`${data}/b.yaml`);
      });
      await assertReadError(fixture, file, errors, hash);

      // The key is then removed from the ConfigMap: the kubelet swaps again and deletes the key's link.
      const successes = await reloads(fixture, "success");
      await mount.update({ "a.yaml": rules("a") });
      await assertRemoved(fixture, file, successes);
    });
  }
});

Deno.test("file source: a rules path named on the command line turns into a directory", async () => {
  await using dir = await tempDir("mirrorhook-files-");
  const file = `${dir.path}/rules.yaml`;
  await Deno.writeTextFile(file, rules("a"));
  await using fixture = await startSource([file]);
  const errors = await reloads(fixture, "error");
  const hash = fixture.store.current.hash;
  await Deno.remove(file);
  await Deno.mkdir(file);
  await Deno.writeTextFile(`${file}/b.yaml`, rules("b"));
  await counted(fixture, "error", errors);
  assert.equal(fixture.store.current.hash, hash);
  assert.deepEqual(ruleNames(fixture.store), ["a"]);
});

Deno.test("file source: an emptied ConfigMap is `no-rules`, the last good rules stay", async () => {
  await using dir = await tempDir("mirrorhook-files-");
  const mount = await KubeMount.create(`${dir.path}/rules`, { "a.yaml": rules("a") });
  await using fixture = await startSource([mount.dir]);
  const errors = await reloads(fixture, "error");
  await mount.update({});
  await counted(fixture, "error", errors);
  assert.deepEqual(ruleNames(fixture.store), ["a"]);
  const logged = fixture.records.findLast((r) => r.level === "error");
  assert.deepEqual(logged?.properties["codes"], ["no-rules"]);
});

Deno.test("file source: a first load that fails does not claim that last good rules stay in force", async () => {
  await using dir = await tempDir("mirrorhook-files-");
  const store = new RuleStore();
  const { logger, records, messages } = memoryLogger();
  const source = new FileRuleSource({ paths: [`${dir.path}/missing.yaml`], store, logger });
  const problems = await source.start();
  source.stop();
  assert.deepEqual(problems.map((p) => [p.code, p.source]), [["read-error", `${dir.path}/missing.yaml`]]);
  const logged = records.filter((r) => r.level === "error");
  assert.equal(logged.length, 1, messages().join("\n"));
  assert.ok(!messages().some((m) => m.includes("last good")), messages().join("\n"));
  assert.equal(store.ready, false);
});

/** One object with `count` distinct exact rules, numbered from `from`. */
function manyRules(name: string, count: number, from = 0): string {
  const lines = [`apiVersion: mirrorhook.dev/v1alpha1`, `kind: ClusterImageRewrite`, `metadata:`, `  name: ${name}`];
  lines.push(`spec:`, `  rules:`);
  for (let i = from; i < from + count; i++) {
    lines.push(`    - exact: registry.example.com/app-${i}:1`, `      replace: mirror.example.com/app-${i}:1`);
  }
  return lines.join("\n") + "\n";
}

Deno.test("file source: the supported scale is enforced at load, naming the file", async (t) => {
  await using dir = await tempDir("mirrorhook-files-");
  const rows: [string, Record<string, string>, string, string][] = [
    [
      "a file over 2 MiB",
      { "a.yaml": rules("a"), "big.yaml": `# ${"x".repeat(2 * 1024 * 1024)}\n${rules("b")}` },
      "file-too-large",
      "big.yaml",
    ],
    [
      "more than 20,000 rules in all",
      { "a.yaml": manyRules("a", 10_000), "b.yaml": manyRules("b", 10_001, 10_000) },
      "too-many-rules",
      "b.yaml",
    ],
  ];
  for (const [name, files, code, culprit] of rows) {
    await t.step(`${name}: refused with \`${code}\` naming ${culprit}`, async () => {
      const mount = await KubeMount.create(`${dir.path}/${code}`, files);
      const store = new RuleStore();
      const { logger } = memoryLogger();
      const source = new FileRuleSource({ paths: [mount.dir], store, logger });
      const problems = await source.start();
      source.stop();
      const errors = problems.filter((p) => p.severity === "error");
      assert.deepEqual(errors.map((p) => [p.code, p.source]), [[code, `${mount.dir}/${culprit}`]]);
      assert.ok(errors[0]?.message.includes(`${mount.dir}/${culprit}`), String(errors[0]?.message));
      assert.equal(store.ready, false);
    });
  }
  await t.step("exactly 20,000 rules load", async () => {
    const mount = await KubeMount.create(`${dir.path}/ceiling`, {
      "a.yaml": manyRules("a", 10_000),
      "b.yaml": manyRules("b", 10_000, 10_000),
    });
    const store = new RuleStore();
    const { logger } = memoryLogger();
    const source = new FileRuleSource({ paths: [mount.dir], store, logger });
    const problems = await source.start();
    source.stop();
    assert.deepEqual(problems.filter((p) => p.severity === "error"), []);
    assert.equal(store.current.ruleCount, 20_000);
  });
});

Deno.test("file source: a screening refused for a passing reason is retried by the next poll, files unchanged", async () => {
  await using dir = await tempDir("mirrorhook-files-");
  const file = `${dir.path}/rules.yaml`;
  const withPattern = (host: string) =>
    `${rules("a")}    - match: '^${host.replaceAll(".", "\\.")}/(.*)$'\n      replace: mirror.example.com/$1\n`;
  await Deno.writeTextFile(file, withPattern("quay.io"));
  let refuse = false;
  let screened = 0;
  const screen = (sources: readonly string[]) => {
    screened += sources.length;
    return refuse ? Promise.reject(new Error("the screening worker is busy")) : Promise.resolve();
  };
  const store = new RuleStore();
  const metrics = createMetrics({ defaultMetrics: false });
  const { logger } = memoryLogger();
  const source = new FileRuleSource({
    paths: [file],
    store,
    metrics,
    logger,
    pollIntervalMs: 100,
    debounceMs: 20,
    screen,
  });
  try {
    assert.deepEqual((await source.start()).filter((p) => p.severity === "error"), []);
    assert.ok(screened > 0);
    const fixture = { metrics } as Fixture;
    const errors = await reloads(fixture, "error");
    const successes = await reloads(fixture, "success");
    refuse = true;
    await Deno.writeTextFile(file, withPattern("ghcr.io"));
    await counted(fixture, "error", errors);
    refuse = false;
    // Nothing changes on disk: only the retry asked for by the refused screening can load the new version.
    // The full read that the poll makes every 30 polls (6 s here) would come too late.
    await counted(fixture, "success", successes, 2000);
    assert.ok(store.current.objects.some((object) => object.name === "a"));
    assert.equal(store.status().find((s) => s.name === "file")?.lastError, undefined);
  } finally {
    source.stop();
  }
});
