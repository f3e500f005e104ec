// Command-line answers agree with the server: opt-outs, --verify outcomes, patterns as written, validate's report,
// errors that name their variable or option, log messages without quoted values.

import assert from "node:assert/strict";
import { configureLogging, logger } from "../lib/server/log.ts";
import { runCli } from "./support/cli.ts";

const MATCH_RULES = `apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: hub
spec:
  rules:
    - match: '^docker\\.io/(.*)$'
      replace: cache.example.com/$1
`;

async function withFiles<T>(files: Record<string, string>, body: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "mirrorhook-answers-" });
  try {
    for (const [name, text] of Object.entries(files)) await Deno.writeTextFile(`${dir}/${name}`, text);
    return await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("rewrite honours opt-outs as mutate and the webhook do, and prints patterns as written", async () => {
  await withFiles({ "hub.yaml": MATCH_RULES }, async (dir) => {
    const rules = `${dir}/hub.yaml`;
    const plain = await runCli(["rewrite", "-r", rules, "--explain", "nginx"]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.equal(plain.stdout.split("\n")[0], "cache.example.com/library/nginx:latest");
    assert.ok(plain.stdout.includes(`match "^docker\\.io/(.*)$" → "cache.example.com/$1"`), plain.stdout);

    const rows: { args: string[]; why: string }[] = [
      { args: ["--pod-label", "mirrorhook.dev/rewrite=disabled"], why: "Pod label mirrorhook.dev/rewrite=disabled" },
      {
        args: ["-n", "team", "--namespace-label", "mirrorhook.dev/rewrite=disabled"],
        why: "namespace label mirrorhook.dev/rewrite=disabled",
      },
      { args: ["-n", "kube-system"], why: "namespace kube-system is excluded" },
    ];
    for (const row of rows) {
      const result = await runCli(["rewrite", "-r", rules, ...row.args, "--explain", "nginx"]);
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(result.stdout.trimEnd().split("\n"), [
        "nginx",
        "  # nginx",
        `  # unchanged: the Pod is left alone: ${row.why}`,
      ]);
    }
    const json = await runCli([
      "rewrite",
      "-r",
      rules,
      "--pod-label",
      "mirrorhook.dev/rewrite=disabled",
      "-o",
      "json",
      "nginx",
    ]);
    assert.deepEqual(JSON.parse(json.stdout), [{
      input: "nginx",
      output: "nginx",
      action: "skipped",
      reason: "Pod label mirrorhook.dev/rewrite=disabled",
    }]);
  });
});

Deno.test("rewrite --verify --explain says what finally happened", async () => {
  // Nothing listens on port 1 of 127.0.0.1: the check fails at once, and onMissing (default keep) decides.
  const rules = MATCH_RULES.replace("cache.example.com/$1", "127.0.0.1:1/cache/$1");
  await withFiles({ "hub.yaml": rules }, async (dir) => {
    const result = await runCli([
      "rewrite",
      "-r",
      `${dir}/hub.yaml`,
      "--verify",
      "--verify-timeout",
      "5",
      "--insecure-registry",
      "127.0.0.1:1",
      "--explain",
      "nginx:1.27",
    ]);
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.trimEnd().split("\n");
    assert.equal(lines[0], "nginx:1.27");
    assert.match(
      lines.at(-1)!,
      /^ {2}# final: kept nginx:1\.27: 127\.0\.0\.1:1\/cache\/library\/nginx:1\.27 could not be checked \(.+\), onMissing: keep$/,
    );
  });
});

Deno.test("validate sorts by file and line, reports a conflict once with both places, says things once", async () => {
  const object = (name: string, rules: string) =>
    `apiVersion: mirrorhook.dev/v1alpha1\nkind: ClusterImageRewrite\nmetadata:\n  name: ${name}\nspec:\n  rules:\n${rules}`;
  await withFiles({
    "a.yaml": object("a", "    - exact: nginx:1.27\n      replace: a.example.com/nginx:1.27\n"),
    "c.yaml": object("c", "    - match: '^(unclosed'\n      replace: x.io/y\n"),
    "b.yaml": object(
      "b",
      "    - exact: nginx:1.27\n      replace: b.example.com/nginx:1.27\n    - match: '^quay\\.io/(.*)$'\n      replace: q.example.com/$1\n      on: original\n",
    ),
  }, async (dir) => {
    // Files given in reverse order: problems still come sorted by file, then line.
    const result = await runCli(["validate", `${dir}/c.yaml`, `${dir}/b.yaml`, `${dir}/a.yaml`]);
    assert.equal(result.code, 1);
    const lines = result.stdout.trimEnd().split("\n").slice(0, -1);
    const places = lines.map((line) => line.replace(`${dir}/`, "").split(": ")[0] ?? "");
    assert.deepEqual(places, [...places].sort((x, y) => x.localeCompare(y, "en", { numeric: true })));
    const conflicts = lines.filter((line) => line.includes("conflict"));
    assert.equal(conflicts.length, 1, result.stdout);
    const conflict = conflicts[0] ?? "";
    assert.ok(conflict.includes(`${dir}/a.yaml:7:`) && conflict.includes(`${dir}/b.yaml:7:`), conflict);
    const regex = lines.filter((line) => /invalid regular expression/i.test(line));
    assert.equal(regex.length, 1);
    assert.equal(regex[0]?.match(/invalid regular expression/gi)?.length, 1, regex[0] ?? "");
    assert.ok(
      lines.some((line) => line.startsWith(`${dir}/b.yaml:11:7: warning: key on is unquoted`)),
      result.stdout,
    );
    const json = JSON.parse((await runCli(["validate", "-o", "json", `${dir}/b.yaml`])).stdout);
    const keys = json.problems.filter((p: { code: string }) => p.code === "yaml-boolean-key");
    assert.deepEqual(keys.map((p: { line: number; column: number }) => [p.line, p.column]), [[11, 7]]);
  });
});

Deno.test("errors name the environment variable or option at fault; unknown options come first", async (t) => {
  await t.step("MIRRORHOOK_PORT=abc", async () => {
    const result = await runCli(["serve", "--dev"], { env: { MIRRORHOOK_PORT: "abc" } });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /'--port <port>' value 'abc' from env 'MIRRORHOOK_PORT' is invalid/);
  });
  await t.step("MIRRORHOOK_REGISTRY_CA=nonsense", async () => {
    const result = await runCli(["serve", "--dev"], { env: { MIRRORHOOK_REGISTRY_CA: "nonsense" } });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /MIRRORHOOK_REGISTRY_CA expects key=value/);
  });
  await t.step("--port abc", async () => {
    const result = await runCli(["serve", "--dev", "--port", "abc"]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /'--port <port>' argument 'abc' is invalid/);
  });
  await t.step("an unknown option before a missing --rules", async () => {
    const result = await runCli(["rewrite", "--rule", "hub.yaml", "nginx"]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /unknown option '--rule'/);
  });
  await t.step("a missing --rules alone", async () => {
    const result = await runCli(["rewrite", "nginx"]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /required option '-r, --rules <path>' not specified/);
  });
});

Deno.test("log messages put plain values in as they are", () => {
  const lines: string[] = [];
  configureLogging("info", (line) => void lines.push(line));
  try {
    logger("server").info("Serving /mutate on https://{host}:{port}, excluded {namespaces}", {
      host: "127.0.0.1",
      port: 8443,
      namespaces: ["kube-system"],
    });
  } finally {
    configureLogging("error", () => {});
  }
  const record = JSON.parse(lines[0]!);
  assert.equal(record.message, 'Serving /mutate on https://127.0.0.1:8443, excluded ["kube-system"]');
  assert.deepEqual(record.properties, { host: "127.0.0.1", port: 8443, namespaces: ["kube-system"] });
});
