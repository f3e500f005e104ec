// Runs the real `mirrorhook` command line as a subprocess, the way the `mirrorhook` task in deno.json runs it.

import { fileURLToPath } from "node:url";

/** The repository root, where deno.json and main.ts live. */
export const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** What one run of the command printed and how it ended. */
export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** The `mirrorhook` task of deno.json, read as a shell reads it: its environment assignments, then its words. */
function readTask(): { env: Record<string, string>; words: string[] } {
  const config = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)) as { tasks?: Record<string, unknown> };
  const task = config.tasks?.["mirrorhook"];
  if (typeof task !== "string") throw new Error("deno.json has no mirrorhook task");
  const words = task.split(/\s+/).filter((word) => word !== "");
  const env: Record<string, string> = {};
  while (words.length > 0 && /^[A-Z_][A-Z0-9_]*=/.test(words[0] ?? "")) {
    const assignment = words.shift() ?? "";
    env[assignment.slice(0, assignment.indexOf("="))] = assignment.slice(assignment.indexOf("=") + 1);
  }
  const run = words.indexOf("run");
  const main = words.indexOf("main.ts");
  if (words[0] !== "deno" || run < 0 || main < run) throw new Error(`Cannot read the mirrorhook task: ${task}`);
  return { env, words };
}

/**
 * The `deno run` flags of the `mirrorhook` task (permissions, V8 flags), read from deno.json so the tests run the
 * command exactly as users do, whatever flags the task gains.
 */
export function taskRunFlags(): string[] {
  const { words } = readTask();
  return words.slice(words.indexOf("run") + 1, words.indexOf("main.ts"));
}

/** The environment the `mirrorhook` task sets before `deno` (MALLOC_ARENA_MAX=1, as the container image sets it). */
export function taskEnv(): Record<string, string> {
  return readTask().env;
}

/** Options of {@linkcode runCli}. */
export interface RunCliOptions {
  /** Text written to standard input (then closed); none by default. */
  readonly stdin?: string;
  /** Working directory; the repository root by default. */
  readonly cwd?: string;
  /** Extra environment variables. */
  readonly env?: Readonly<Record<string, string>>;
}

/** Runs `mirrorhook args...` to completion (60 s at most) and returns its exit status and output. */
export async function runCli(args: readonly string[], options: RunCliOptions = {}): Promise<CliRun> {
  const command = new Deno.Command(Deno.execPath(), {
    args: ["run", ...taskRunFlags(), `${ROOT}main.ts`, ...args],
    cwd: options.cwd ?? ROOT,
    env: { ...taskEnv(), NO_COLOR: "1", ...options.env },
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  });
  const child = command.spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const output = await child.output();
  const decoder = new TextDecoder();
  return { code: output.code, stdout: decoder.decode(output.stdout), stderr: decoder.decode(output.stderr) };
}
