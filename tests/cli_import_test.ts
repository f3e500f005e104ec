// `mirrorhook import` finds the format itself, and a wrong --from says what the file looks like.

import assert from "node:assert/strict";
import { FOREIGN_FORMATS, type ForeignFormat } from "../lib/compat/common.ts";
import { describeText } from "../lib/compat/describe.ts";
import type { CliIo } from "../lib/cli/io.ts";
import { run } from "../lib/cli/program.ts";
import { ROOT, runCli } from "./support/cli.ts";

const FIXTURES = `${ROOT}tests/fixtures/compat/`;

/** The tool of each fixture folder: its name up to the first `-` variant (`imagemap-objects` → imagemap). */
function formatOf(folder: string): ForeignFormat {
  const format = FOREIGN_FORMATS.find((name) => folder === name || folder.startsWith(`${name}-`));
  if (format === undefined) throw new Error(`tests/fixtures/compat/${folder}: no tool named like it`);
  return format;
}

async function inProcess(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const io: CliIo = {
    stdout: (text) => void (out += text),
    stderr: (text) => void (err += text),
    readText: (path) => Deno.readTextFile(path),
  };
  const code = await run(args, io);
  return { code, out, err };
}

const fixtures = [...Deno.readDirSync(FIXTURES)].filter((entry) => entry.isDirectory).map((entry) => entry.name).sort();

Deno.test("import without --from reads every compat fixture as its own tool's, as --from would", async (t) => {
  assert.ok(fixtures.length >= 5);
  for (const folder of fixtures) {
    const format = formatOf(folder);
    for (const entry of Deno.readDirSync(`${FIXTURES}${folder}/rules`)) {
      const file = `${FIXTURES}${folder}/rules/${entry.name}`;
      await t.step(`${folder}/rules/${entry.name}`, async () => {
        assert.equal(describeText(await Deno.readTextFile(file)).format, format);
        const named = await inProcess(["import", "--from", format, file]);
        const found = await inProcess(["import", file]);
        assert.equal(found.code, named.code);
        assert.equal(found.out, named.out);
        assert.match(found.err, new RegExp(`^mirrorhook: reading .* as .* \\(--from ${format}\\)$`, "m"));
      });
    }
  }
});

Deno.test("import refuses a wrong --from, a file of no tool and mirrorhook's own objects, saying what it looks like", async (t) => {
  const flemzord = `${FIXTURES}flemzord/rules/registry-rewrite-rules.yaml`;
  const rows: { name: string; args: string[]; stdin?: string; message: RegExp }[] = [
    {
      name: "RegistryRewriteRules read as ImageSwap",
      args: ["import", "--from", "imageswap", flemzord],
      message:
        /as ImageSwap \(--from imageswap\): it looks like RegistryRewriteRule objects of mutating-registry-webhook \(2\) \(--from flemzord\)/,
    },
    {
      name: "a Deployment read as a proxy URL, from stdin",
      args: ["import", "--from", "proxy-url", "-"],
      stdin: "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n",
      message:
        /Cannot import stdin as k8s-proxy-image-swapper \(--from proxy-url\): it looks like Kubernetes objects of kind Deployment/,
    },
    {
      name: "a Deployment without --from",
      args: ["import", "-"],
      stdin: "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n",
      message: /Cannot tell which tool stdin belongs to: it looks like Kubernetes objects of kind Deployment; name it/,
    },
    {
      name: "a mirrorhook preset",
      args: ["import", `${ROOT}rules/dockerhub-harbor.yaml`],
      message: /holds mirrorhook objects \(ClusterImageRewrite\): nothing to import/,
    },
  ];
  for (const row of rows) {
    await t.step(row.name, async () => {
      const result = await runCli(row.args, row.stdin === undefined ? {} : { stdin: row.stdin });
      assert.equal(result.code, 1, result.stderr);
      assert.equal(result.stdout, "");
      assert.match(result.stderr, row.message);
    });
  }
});
