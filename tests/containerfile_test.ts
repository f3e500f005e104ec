// Checks the Containerfile by its structure, without building it (no container engine here, and `deno compile`
// downloads Deno's runtime, which this machine cannot reach): the file is parsed into instructions (continuations
// joined) and its RUN lines into shell commands, and what matters is checked, not the text: a build stage on a pinned
// Deno image, then FROM scratch; the compile by `deno task compile`; a non-root USER 65532; file modes and owners;
// an ENTRYPOINT that runs the compiled binary's serve; a build context that holds every source the binary needs. The
// library-copying script itself runs here on the Deno executable (glibc-dynamic, like a compiled binary), and when
// this runs as root the staged libraries alone run it in a chroot.

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

/** One simple command of a RUN line, as `sh` would split it: words with quotes removed, and its `>` target. */
interface ShellCommand {
  readonly argv: readonly string[];
  readonly writes?: string;
}

/** The simple commands of a shell line (`&&`, `||`, `;`, `|` separate them; quotes and `\` escapes understood). */
function shellCommands(line: string): ShellCommand[] {
  const commands: ShellCommand[] = [];
  let argv: string[] = [];
  let writes: string | undefined;
  let word: string | undefined;
  let redirect = false;
  const endWord = () => {
    if (word === undefined) return;
    if (redirect) [writes, redirect] = [word, false];
    else argv.push(word);
    word = undefined;
  };
  const endCommand = () => {
    endWord();
    if (argv.length > 0) commands.push({ argv, ...(writes === undefined ? {} : { writes }) });
    [argv, writes] = [[], undefined];
  };
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      assert.ok(end > i, `unclosed ' in: ${line}`);
      word = (word ?? "") + line.slice(i + 1, end);
      i = end;
    } else if (c === '"') {
      let text = "";
      for (i++; i < line.length && line[i] !== '"'; i++) {
        if (line[i] === "\\" && /["\\$`]/.test(line[i + 1] ?? "")) i++;
        text += line[i];
      }
      assert.ok(i < line.length, `unclosed " in: ${line}`);
      word = (word ?? "") + text;
    } else if (c === "\\") word = (word ?? "") + (line[++i] ?? "");
    else if (/\s/.test(c)) endWord();
    else if (c === ">") {
      endWord();
      redirect = true;
    } else if (c === ";" || c === "|" || c === "&") {
      if (line[i + 1] === c) i++;
      endCommand();
    } else word = (word ?? "") + c;
  }
  endCommand();
  return commands;
}

function runs(stage: Stage): ShellCommand[] {
  return stage.instructions.filter((i) => i.keyword === "RUN").flatMap((i) => shellCommands(i.args));
}

/** An `install` command: `-d` or not, its mode and owner, and its operands. */
interface Install {
  readonly directory: boolean;
  readonly mode?: string;
  readonly owner?: string;
  readonly group?: string;
  readonly operands: readonly string[];
}

function installs(stage: Stage): Install[] {
  return runs(stage).filter((command) => command.argv[0] === "install").map(({ argv }) => {
    const found: { directory: boolean; mode?: string; owner?: string; group?: string; operands: string[] } = {
      directory: false,
      operands: [],
    };
    for (let i = 1; i < argv.length; i++) {
      const arg = argv[i] as string;
      const long = /^--(mode|owner|group)=(.*)$/.exec(arg);
      if (long) found[long[1] as "mode" | "owner" | "group"] = long[2] as string;
      else if (arg === "-m" || arg === "-o" || arg === "-g") {
        found[({ "-m": "mode", "-o": "owner", "-g": "group" } as const)[arg]] = argv[++i] as string;
      } else if (arg === "-d" || arg === "--directory") found.directory = true;
      else if (/^-[A-Za-z]+$/.test(arg)) found.directory ||= arg.includes("d");
      else found.operands.push(arg);
    }
    return found;
  });
}

/** The file the build stage installs at `target` (a path inside /rootfs), with its mode. */
function installedAt(target: string): Install | undefined {
  return installs(build).find((install) =>
    install.directory ? install.operands.includes(target) : install.operands.at(-1) === target
  );
}

/** Files the build stage writes with `printf … > path`, with the text printf gives them. */
function printed(stage: Stage): Map<string, string> {
  const files = new Map<string, string>();
  for (const command of runs(stage)) {
    if (command.argv[0] !== "printf" || command.writes === undefined) continue;
    files.set(command.writes, (command.argv[1] ?? "").replaceAll("\\n", "\n"));
  }
  return files;
}

/** A USER value (`name`, `uid`, `name:group`, `uid:gid`) as numbers, names looked up in the staged passwd/group. */
function numericUser(value: string): { uid: number; gid?: number } {
  const table = (path: string, name: string) => {
    const line = (printed(build).get(path) ?? "").split("\n").find((entry) => entry.split(":")[0] === name);
    assert.ok(line !== undefined, `${name} is not in the staged ${path}`);
    return Number(line.split(":")[2]);
  };
  const [user, group] = value.split(":", 2) as [string, string | undefined];
  const uid = /^\d+$/.test(user) ? Number(user) : table("/rootfs/etc/passwd", user);
  if (group === undefined) return { uid };
  return { uid, gid: /^\d+$/.test(group) ? Number(group) : table("/rootfs/etc/group", group) };
}

/** `${NAME}` and `$NAME` replaced by the global ARG defaults, as a FROM line is read. */
function expandArgs(text: string): string {
  return text.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, braced, bare) => {
    const name = (braced ?? bare) as string;
    assert.ok(globalArgs.has(name), `FROM uses ${name}, which no ARG before it defines`);
    return globalArgs.get(name) as string;
  });
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

/** The serve command of the CLI, for its options. */
function serveCommand() {
  const serve = buildProgram({ stdout() {}, stderr() {}, readText: () => Promise.resolve("") }, () => {}).commands
    .find((command) => command.name() === "serve");
  assert.ok(serve !== undefined);
  return serve;
}

const ciDenoVersion = /^DENO_VERSION=(\S+)$/m.exec(Deno.readTextFileSync(`${ROOT}.ci/run`))?.[1];

Deno.test("Containerfile: a build stage, then FROM scratch", () => {
  assert.equal(stages.length, 2, "two stages");
  assert.ok(build.name !== undefined, "the build stage is named, for COPY --from");
  assert.notEqual(build.from, "scratch");
  assert.equal(final.from, "scratch");
  assert.equal(final.name, undefined);
});

Deno.test("Containerfile: the base image is Deno's Debian image, pinned to the version CI installs", () => {
  assert.ok(ciDenoVersion !== undefined, ".ci/run sets DENO_VERSION");
  const reference = expandArgs(build.from);
  const match = /^(?:docker\.io\/)?denoland\/deno(?::([^@]+))?(?:@(sha256:[0-9a-f]{64}))?$/.exec(reference);
  assert.ok(match !== null, `${reference} is not denoland/deno`);
  const [, tag, digest] = match;
  assert.ok(tag !== undefined || digest !== undefined, `${reference} has neither tag nor digest`);
  if (tag !== undefined) {
    assert.match(tag, /(^|-)debian(-|$)/, "the Debian variant (apt-get, glibc, ldd)");
    assert.ok(tag.split("-").includes(ciDenoVersion), `${reference} is not pinned to Deno ${ciDenoVersion}`);
  }
});

Deno.test("Containerfile: the build stage compiles with the compile task of deno.json", async (t) => {
  await t.step("the task: the mirrorhook permission set, the V8 flags, the bundled presets, main.ts", () => {
    assert.match(compileTask, /^deno compile /);
    assert.match(compileTask, /(^| )-P=mirrorhook( |$)/);
    assert.match(compileTask, /(^| )--v8-flags=\S*--enable-experimental-regexp-engine-on-excessive-backtracks/);
    assert.match(compileTask, /(^| )--include rules\/( |$)/);
    assert.match(compileTask, / main\.ts$/);
    assert.notEqual(compiledBinary, "");
  });
  await t.step("dependencies from the lock file, then `deno task compile`, flags nowhere else", () => {
    const commands = runs(build).map((command) => command.argv);
    const install = commands.findIndex((argv) =>
      argv[0] === "deno" && argv[1] === "install" && argv.includes("--frozen")
    );
    const compile = commands.findIndex((argv) => argv.join(" ") === "deno task compile");
    assert.ok(install >= 0, "deno install --frozen");
    assert.ok(compile > install, "deno task compile after the dependencies");
    assert.ok(!commands.some((argv) => argv[0] === "deno" && argv[1] === "compile"), "no second set of compile flags");
  });
  await t.step("the compiled binary is staged with exactly the libraries ldd lists", () => {
    assert.ok(
      runs(build).some(({ argv }) => argv[0] === "sh" && argv[1] === COPY_LIBS && argv[2] === compiledBinary),
      `${COPY_LIBS} ${compiledBinary}`,
    );
  });
});

Deno.test("deno.json: the run tasks and the compile task (the image) pass the same V8 flags", () => {
  const flagsOf = (name: string) => /(?:^| )(--v8-flags=\S+)/.exec(denoJson.tasks[name] ?? "")?.[1];
  const compiled = flagsOf("compile");
  assert.ok(compiled !== undefined, "compile: --v8-flags");
  // Optimizing compiles on the main thread: a background compile thread interleaves its zone memory with the main
  // thread's in the one malloc arena and leaves the C heap ~3 MB larger after loading 10,000 rules.
  assert.ok(compiled.split(/[=,]/).includes("--no-concurrent-recompilation"), compiled);
  for (const name of ["start", "mirrorhook", "demo"]) assert.equal(flagsOf(name), compiled, name);
});

Deno.test("Containerfile: the image runs with the environment the run tasks of deno.json set", () => {
  const env = new Map<string, string>();
  for (const instruction of final.instructions.filter((i) => i.keyword === "ENV")) {
    for (const pair of instruction.args.split(/\s+/)) {
      env.set(pair.slice(0, pair.indexOf("=")), pair.slice(pair.indexOf("=") + 1));
    }
  }
  for (const name of ["start", "mirrorhook", "demo"]) {
    const words = (denoJson.tasks[name] ?? "").split(/\s+/);
    const assignments = words.slice(0, words.indexOf("deno"));
    assert.ok(assignments.includes("MALLOC_ARENA_MAX=1"), `${name}: ${words.slice(0, 3).join(" ")}`);
    for (const assignment of assignments) {
      const [variable = "", value] = assignment.split("=");
      assert.equal(env.get(variable), value, `ENV ${variable} of the final stage, as the ${name} task`);
    }
  }
});

Deno.test("Containerfile: the final stage holds only the staged root and runs `mirrorhook serve` as 65532", async (t) => {
  const keywords = final.instructions.map((i) => i.keyword);
  await t.step("only the build stage's staged root is copied, and nothing runs", () => {
    const copies = final.instructions.filter((i) => i.keyword === "COPY" || i.keyword === "ADD");
    assert.deepEqual(copies.map((i) => i.args.split(/\s+/)), [[`--from=${build.name}`, "/rootfs/", "/"]]);
    assert.ok(!keywords.includes("RUN"), "scratch has no shell");
  });
  await t.step("the last USER is not root, and is the Deployment's runAsUser", async () => {
    const user = final.instructions.filter((i) => i.keyword === "USER").at(-1);
    assert.ok(user !== undefined, "a USER (scratch would run as root)");
    const { uid, gid } = numericUser(user.args);
    assert.notEqual(uid, 0, "USER is root");
    assert.notEqual(gid, 0, "the group is root");
    const deployment = parseAllDocuments(await Deno.readTextFile(`${ROOT}deploy/manager/deployment.yaml`))[0]
      ?.toJS() as { spec: { template: { spec: { securityContext: { runAsUser: number } } } } };
    assert.equal(uid, deployment.spec.template.spec.securityContext.runAsUser);
    assert.equal(uid, 65532);
  });
  await t.step("the user has a passwd entry and a home it owns; /tmp is writable by all, sticky", () => {
    const passwd = (printed(build).get("/rootfs/etc/passwd") ?? "").split("\n").map((line) => line.split(":"));
    const entry = passwd.find((fields) => fields[2] === "65532");
    assert.ok(entry !== undefined, "65532 in /etc/passwd");
    assert.ok(printed(build).has("/rootfs/etc/group"), "an /etc/group");
    const home = installedAt(`/rootfs${entry[5]}`);
    assert.ok(home?.directory, `home ${entry[5]} is created`);
    assert.equal(home.owner, "65532");
    assert.equal(Number.parseInt(home.mode ?? "0755", 8) & 0o002, 0, "home is not world-writable");
    const tmp = installedAt("/rootfs/tmp");
    assert.ok(tmp?.directory, "/tmp is created");
    assert.equal(Number.parseInt(tmp.mode ?? "0", 8), 0o1777);
  });
  await t.step("the binary: executable, writable by no one but root; the CA bundle, not executable", () => {
    const entrypoint = JSON.parse(final.instructions.find((i) => i.keyword === "ENTRYPOINT")?.args ?? "[]")[0];
    const binary = installedAt(`/rootfs${entrypoint}`);
    assert.ok(binary !== undefined && !binary.directory, `${entrypoint} is installed`);
    assert.deepEqual(binary.operands.slice(0, -1), [compiledBinary], "it is the compile task's output");
    const mode = Number.parseInt(binary.mode ?? "0755", 8);
    assert.equal(mode & 0o111, 0o111, "executable");
    assert.equal(mode & 0o022, 0, "not group or world writable");
    assert.equal(binary.owner ?? "0", "0", "owned by root, so 65532 cannot replace it");
    const bundle = installedAt("/rootfs/etc/ssl/certs/ca-certificates.crt");
    assert.ok(bundle !== undefined, "CA certificates");
    assert.equal(Number.parseInt(bundle.mode ?? "0755", 8) & 0o133, 0, "the CA bundle is 0644 or stricter");
  });
  await t.step("ENTRYPOINT runs the compiled binary's serve, with serve's flags only", () => {
    const entrypoints = final.instructions.filter((i) => i.keyword === "ENTRYPOINT");
    assert.equal(entrypoints.length, 1);
    let argv: unknown;
    try {
      argv = JSON.parse((entrypoints[0] as Instruction).args);
    } catch {
      argv = undefined;
    }
    assert.ok(Array.isArray(argv) && argv.every((arg) => typeof arg === "string"), "exec form: scratch has no shell");
    assert.equal(argv[1], "serve");
    const flags = new Set(serveCommand().options.map((option) => option.long));
    for (const arg of argv.slice(2).filter((arg) => arg.startsWith("--"))) {
      assert.ok(flags.has(arg.split("=")[0]), `${arg} is not a serve flag`);
    }
    assert.ok(!keywords.includes("CMD"));
  });
  await t.step("EXPOSE the server's default ports", () => {
    const defaults = ["--port", "--probe-port"].map((flag) =>
      String(serveCommand().options.find((option) => option.long === flag)?.defaultValue)
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
