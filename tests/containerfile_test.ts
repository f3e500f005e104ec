// Checks the Containerfile without building it (no container engine here, and `deno compile` downloads Deno's
// runtime, which this machine cannot reach): two stages, the binary from `deno task compile`, FROM scratch with what
// scripts/copy-shared-libs.sh stages, USER 65532, ENTRYPOINT, OCI labels, a build context that holds every source the
// binary needs. The library-copying script itself runs here on the Deno executable (glibc-dynamic, like a compiled
// binary), and when this runs as root the staged libraries alone run it in a chroot.

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import { buildProgram, VERSION } from "../lib/cli/program.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const COPY_LIBS = "scripts/copy-shared-libs.sh";

interface Instruction {
  readonly keyword: string;
  readonly args: string;
  readonly line: number;
}

interface Stage {
  readonly from: string;
  readonly name?: string;
  readonly instructions: readonly Instruction[];
}

/** Instructions of a Containerfile: comments dropped, `\` continuations joined. */
function parseContainerfile(text: string): Instruction[] {
  const instructions: Instruction[] = [];
  let pending = "";
  let start = 0;
  text.split("\n").forEach((raw, index) => {
    const line = raw.trim();
    if (pending === "" && (line === "" || line.startsWith("#"))) return;
    if (pending !== "" && line.startsWith("#")) return;
    if (pending === "") start = index + 1;
    if (line.endsWith("\\")) {
      pending += `${line.slice(0, -1).trim()} `;
      return;
    }
    const joined = `${pending}${line}`.trim();
    pending = "";
    const space = joined.search(/\s/);
    instructions.push({
      keyword: (space < 0 ? joined : joined.slice(0, space)).toUpperCase(),
      args: space < 0 ? "" : joined.slice(space + 1).trim(),
      line: start,
    });
  });
  assert.equal(pending, "", "a continuation runs off the end");
  return instructions;
}

function stagesOf(instructions: readonly Instruction[]): { args: Map<string, string>; stages: Stage[] } {
  const args = new Map<string, string>();
  const stages: { from: string; name?: string; instructions: Instruction[] }[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === "FROM") {
      const match = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(instruction.args);
      assert.ok(match?.[1] !== undefined, `FROM on line ${instruction.line}`);
      stages.push({ from: match[1], ...(match[2] === undefined ? {} : { name: match[2] }), instructions: [] });
    } else if (stages.length === 0) {
      assert.equal(instruction.keyword, "ARG", `only ARG before the first FROM (line ${instruction.line})`);
      const [name, value] = instruction.args.split("=", 2);
      args.set(name as string, value ?? "");
    } else (stages.at(-1) as { instructions: Instruction[] }).instructions.push(instruction);
  }
  return { args, stages };
}

const containerfile = Deno.readTextFileSync(`${ROOT}Containerfile`);
const { args: globalArgs, stages } = stagesOf(parseContainerfile(containerfile));
const build = stages[0] as Stage;
const final = stages.at(-1) as Stage;
const denoJson = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)) as {
  version: string;
  tasks: Record<string, string>;
};
const compileTask = denoJson.tasks["compile"] ?? "";
/** `--output <path>` of the compile task: the binary the image takes. */
const compiledBinary = /--output[ =](\S+)/.exec(compileTask)?.[1] ?? "";

function runs(stage: Stage): string[] {
  return stage.instructions.filter((i) => i.keyword === "RUN").map((i) => i.args);
}

function labels(stage: Stage): Map<string, string> {
  const found = new Map<string, string>();
  for (const instruction of stage.instructions.filter((i) => i.keyword === "LABEL")) {
    for (const match of instruction.args.matchAll(/([\w.-]+)=("(?:[^"\\]|\\.)*"|\S+)/g)) {
      found.set(match[1] as string, (match[2] as string).replace(/^"|"$/g, ""));
    }
  }
  return found;
}

/** `ARG NAME=default` inside a stage. */
function stageArg(stage: Stage, name: string): string | undefined {
  for (const instruction of stage.instructions.filter((i) => i.keyword === "ARG")) {
    const [key, value] = instruction.args.split("=", 2);
    if (key === name) return value;
  }
  return undefined;
}

Deno.test("Containerfile: a build stage, then FROM scratch", () => {
  assert.equal(stages.length, 2);
  assert.equal(build.name, "build");
  assert.match(build.from, /^docker\.io\/denoland\/deno:debian-\$\{DENO_VERSION\}$/);
  assert.equal(final.from, "scratch");
  assert.equal(final.name, undefined);
});

Deno.test("Containerfile: the image's Deno is the one CI installs", () => {
  const ci = /^DENO_VERSION=(\S+)$/m.exec(Deno.readTextFileSync(`${ROOT}.ci/run`))?.[1];
  assert.ok(ci !== undefined, ".ci/run sets DENO_VERSION");
  assert.equal(globalArgs.get("DENO_VERSION"), ci);
});

Deno.test("Containerfile: the build stage compiles with the compile task of deno.json", async (t) => {
  await t.step("the task: the mirrorhook permission set, the bundled presets, main.ts", () => {
    assert.match(compileTask, /^deno compile /);
    assert.match(compileTask, /(^| )-P=mirrorhook( |$)/);
    assert.match(compileTask, /(^| )--include rules\/( |$)/);
    assert.match(compileTask, / main\.ts$/);
    assert.notEqual(compiledBinary, "");
  });
  await t.step("dependencies from the lock file, then `deno task compile`, flags nowhere else", () => {
    const commands = runs(build);
    const install = commands.findIndex((command) => /\bdeno install --frozen\b/.test(command));
    const compile = commands.findIndex((command) => /^deno task compile$/.test(command));
    assert.ok(install >= 0, "deno install --frozen");
    assert.ok(compile > install, "deno task compile after the dependencies");
    assert.ok(!commands.some((command) => /\bdeno compile\b/.test(command)), "no second set of compile flags");
  });
  await t.step("the compiled binary is the one staged, with exactly the libraries ldd lists", () => {
    const commands = runs(build).join("\n");
    assert.ok(commands.includes(`sh ${COPY_LIBS} ${compiledBinary} /rootfs`), `${COPY_LIBS} ${compiledBinary}`);
    assert.ok(commands.includes(`install -D -m 0755 ${compiledBinary} /rootfs/mirrorhook`));
  });
  await t.step("CA certificates, a passwd entry for 65532, a writable /tmp", () => {
    const commands = runs(build).join("\n");
    assert.match(commands, /apt-get install -y --no-install-recommends ca-certificates/);
    assert.match(commands, /\/etc\/ssl\/certs\/ca-certificates\.crt \/rootfs\/etc\/ssl\/certs\/ca-certificates\.crt/);
    assert.ok(commands.includes("nonroot:x:65532:65532::/home/nonroot:/sbin/nologin\\n' > /rootfs/etc/passwd"));
    assert.ok(commands.includes("> /rootfs/etc/group"));
    assert.ok(commands.includes("install -d -m 1777 /rootfs/tmp"));
  });
});

Deno.test("Containerfile: the final stage holds only the staged root and runs `mirrorhook serve` as 65532", async (t) => {
  const keywords = final.instructions.map((i) => i.keyword);
  await t.step("only the staged root is copied, and nothing runs", () => {
    assert.deepEqual(
      final.instructions.filter((i) => i.keyword === "COPY" || i.keyword === "ADD").map((i) => i.args),
      ["--from=build /rootfs/ /"],
    );
    assert.ok(!keywords.includes("RUN"), "scratch has no shell");
  });
  await t.step("USER 65532, as the Deployment's runAsUser", async () => {
    assert.deepEqual(final.instructions.filter((i) => i.keyword === "USER").map((i) => i.args), ["65532:65532"]);
    const deployment = parseAllDocuments(await Deno.readTextFile(`${ROOT}deploy/manager/deployment.yaml`))[0]
      ?.toJS() as { spec: { template: { spec: { securityContext: { runAsUser: number } } } } };
    assert.equal(deployment.spec.template.spec.securityContext.runAsUser, 65532);
  });
  await t.step('ENTRYPOINT ["/mirrorhook", "serve"]', () => {
    const entrypoints = final.instructions.filter((i) => i.keyword === "ENTRYPOINT");
    assert.equal(entrypoints.length, 1);
    assert.deepEqual(JSON.parse((entrypoints[0] as Instruction).args), ["/mirrorhook", "serve"]);
    assert.ok(!keywords.includes("CMD"));
  });
  await t.step("EXPOSE the server's default ports", () => {
    const serve = buildProgram({ stdout() {}, stderr() {}, readText: () => Promise.resolve("") }, () => {}).commands
      .find((command) => command.name() === "serve");
    const defaults = ["--port", "--probe-port"].map((flag) =>
      String(serve?.options.find((option) => option.long === flag)?.defaultValue)
    );
    const exposed = final.instructions.filter((i) => i.keyword === "EXPOSE").flatMap((i) => i.args.split(/\s+/));
    assert.deepEqual(exposed, defaults);
  });
  await t.step("OCI labels, the version that of deno.json and --version", () => {
    const found = labels(final);
    for (const key of ["title", "description", "version", "revision", "source"]) {
      assert.ok(found.get(`org.opencontainers.image.${key}`), `org.opencontainers.image.${key}`);
    }
    assert.equal(found.get("org.opencontainers.image.version"), "${VERSION}");
    assert.equal(stageArg(final, "VERSION"), denoJson.version);
    assert.equal(VERSION, denoJson.version);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The build context

/** Docker's ignore-file rules, as far as .dockerignore uses them: last matching line wins, `!` re-includes. */
function ignored(patterns: readonly string[], path: string): boolean {
  const toRegExp = (pattern: string) =>
    new RegExp(
      `^${
        pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*\*\//g, "\u0000").replace(/\*/g, "[^/]*")
          .replace(/\?/g, "[^/]").replaceAll("\u0000", "(?:.*/)?")
      }$`,
    );
  const parents = path.split("/").map((_, i, parts) => parts.slice(0, i + 1).join("/"));
  let result = false;
  for (const raw of patterns) {
    const negated = raw.startsWith("!");
    const pattern = (negated ? raw.slice(1) : raw).replace(/^\/+|\/+$/g, "");
    if (parents.some((prefix) => toRegExp(pattern).test(prefix))) result = !negated;
  }
  return result;
}

const dockerignore = Deno.readTextFileSync(`${ROOT}.dockerignore`).split("\n").map((line) => line.trim())
  .filter((line) => line !== "" && !line.startsWith("#"));

Deno.test(".dockerignore: the context is only what the build stage copies", async (t) => {
  const sources = build.instructions.filter((i) => i.keyword === "COPY").flatMap((i) =>
    i.args.split(/\s+/).filter((part) => !part.startsWith("--")).slice(0, -1)
  ).map((source) => source.replace(/\/$/, ""));
  await t.step("every COPY source exists and is in the context", async () => {
    for (const source of sources) {
      await Deno.stat(`${ROOT}${source}`);
      assert.ok(!ignored(dockerignore, source), `${source} is excluded by .dockerignore`);
    }
  });
  await t.step("everything else is left out", () => {
    assert.equal(dockerignore[0], "*");
    for (
      const path of [
        ".git",
        "tests/deploy_test.ts",
        "deploy/install.yaml",
        "dist/mirrorhook",
        "scripts/render-install.sh",
      ]
    ) {
      assert.ok(ignored(dockerignore, path), path);
    }
  });
  await t.step("every local module of main.ts, and the bundled rules/, is copied and not ignored", async () => {
    const output = await new Deno.Command(Deno.execPath(), { args: ["info", "--json", "main.ts"], cwd: ROOT }).output();
    assert.ok(output.success, new TextDecoder().decode(output.stderr));
    const info = JSON.parse(new TextDecoder().decode(output.stdout)) as { modules: { specifier: string }[] };
    const local = info.modules.map((module) => module.specifier).filter((specifier) => specifier.startsWith("file:"))
      .map((specifier) => fileURLToPath(specifier).slice(ROOT.length));
    assert.ok(local.includes("main.ts"));
    for (const path of [...local, "rules/k8s-gcr-to-registry-k8s.yaml"]) {
      assert.ok(sources.some((source) => path === source || path.startsWith(`${source}/`)), `${path} is not copied`);
      assert.ok(!ignored(dockerignore, path), `${path} is excluded by .dockerignore`);
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------
// scripts/copy-shared-libs.sh

async function sh(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command("sh", { args, cwd: ROOT, stdin: "null" }).output();
  const decoder = new TextDecoder();
  return { code: output.code, stdout: decoder.decode(output.stdout), stderr: decoder.decode(output.stderr) };
}

async function filesUnder(root: string, prefix = ""): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(`${root}${prefix}`)) {
    const path = `${prefix}/${entry.name}`;
    if (entry.isDirectory) found.push(...await filesUnder(root, path));
    else found.push(path);
  }
  return found;
}

function isRoot(): boolean {
  return Deno.uid() === 0;
}

function hasChroot(): boolean {
  try {
    return new Deno.Command("chroot", { args: ["--version"], stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
}

Deno.test(`${COPY_LIBS} stages exactly the libraries ldd lists, at their paths`, async (t) => {
  const root = await Deno.makeTempDir({ prefix: "mirrorhook-rootfs-" });
  try {
    const executable = Deno.execPath();
    const ldd = await new Deno.Command("ldd", { args: [executable] }).output();
    assert.ok(ldd.success, "the Deno executable is dynamically linked, as `deno compile` output is");
    const listed = [...new TextDecoder().decode(ldd.stdout).matchAll(/(?:=> )?(\/\S+) \(0x/g)].map((m) => m[1]);

    const result = await sh([COPY_LIBS, executable, root]);
    assert.equal(result.code, 0, result.stderr);
    await t.step("the loader and every library, nothing else", async () => {
      assert.ok(listed.length >= 2);
      assert.deepEqual(result.stdout.trim().split("\n").sort(), [...listed].sort());
      assert.deepEqual((await filesUnder(root)).sort(), [...listed].sort());
      for (const path of listed) assert.ok((await Deno.lstat(`${root}${path}`)).isFile, `${path} is a regular file`);
    });
    await t.step({
      name: "they alone run it (in a chroot, as root)",
      ignore: !isRoot() || !hasChroot(),
      fn: async () => {
        await Deno.copyFile(executable, `${root}/deno`);
        await Deno.chmod(`${root}/deno`, 0o755);
        const run = await new Deno.Command("chroot", {
          args: [root, "/deno", "eval", "console.log(JSON.stringify([Deno.build.os, 6 * 7]))"],
          clearEnv: true,
          env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1", DENO_DIR: "/deno-dir" },
        }).output();
        assert.equal(new TextDecoder().decode(run.stdout).trim(), '["linux",42]', new TextDecoder().decode(run.stderr));
      },
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test(`${COPY_LIBS} refuses what it cannot do`, async (t) => {
  await t.step("usage", async () => assert.equal((await sh([COPY_LIBS])).code, 2));
  await t.step(
    "not an executable",
    async () => assert.equal((await sh([COPY_LIBS, "deno.json", "/nonexistent"])).code, 1),
  );
});
