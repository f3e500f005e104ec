// Reads rule files and directories (ConfigMap mounts included) into texts for the loader, whatever their format.

import { type LoadResult, loadRuleTexts, MAX_RULE_FILE_BYTES, type RuleText } from "../compat/load.ts";
import type { Problem } from "../rules/problem.ts";

/** Texts read, and problems with paths that could not be read. */
export interface ReadResult {
  readonly texts: readonly RuleText[];
  readonly problems: readonly Problem[];
}

/** Options of {@linkcode readRulePaths}. */
export interface ReadOptions {
  /**
   * Names of the files read last time. A path among them that is now a directory is a read error (its rules
   * would otherwise vanish without a word); a subdirectory that never was a rule file is skipped as before.
   */
  readonly previous?: ReadonlySet<string>;
}

function readProblem(source: string, detail: string): Problem {
  return {
    severity: "error",
    code: "read-error",
    message: `Cannot read ${source}: ${detail}`,
    path: "",
    fieldPath: [],
    source,
  };
}

/** Why `stat` failed, in words an operator can act on. */
function statFailure(error: unknown): string {
  if (error instanceof Deno.errors.NotFound) return "no such file or directory (a dangling symbolic link?)";
  if (error instanceof Deno.errors.FilesystemLoop) return "a loop of symbolic links";
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  return error instanceof Error ? error.message : String(error);
}

const WAS_A_FILE = "it is a directory now, where a rule file was read before (subdirectories are not read)";

async function readOne(path: string): Promise<RuleText | Problem> {
  try {
    const info = await Deno.stat(path);
    if (info.isDirectory) return readProblem(path, WAS_A_FILE);
    if (!info.isFile) return readProblem(path, "not a regular file");
    if (info.size > MAX_RULE_FILE_BYTES) {
      return {
        ...readProblem(
          path,
          `${info.size} bytes is over the ${MAX_RULE_FILE_BYTES}-byte limit for a rule file (split it into several files)`,
        ),
        code: "file-too-large",
      };
    }
    const bytes = await Deno.readFile(path);
    return { name: path, text: new TextDecoder("utf-8", { fatal: true }).decode(bytes) };
  } catch (error) {
    return readProblem(path, error instanceof TypeError ? "not valid UTF-8 text" : statFailure(error));
  }
}

/**
 * Reads each path: a file as it is, a directory as every regular file in it (sorted; hidden entries such as
 * Kubernetes' `..data` skipped; symlinks followed; subdirectories not entered). Files are not picked by
 * extension, because ConfigMap keys such as ImageSwap's `maps` often have none: the loader recognises each
 * file by content and reports one it cannot read as an error naming it. Nothing disappears silently: a missing
 * path, a dangling symbolic link, a loop of links, a file that cannot be read and a rule file replaced by a
 * directory are each a `read-error` problem naming the path, never an exception.
 */
export async function readRulePaths(paths: readonly string[], options: ReadOptions = {}): Promise<ReadResult> {
  const previous = options.previous ?? new Set<string>();
  const texts: RuleText[] = [];
  const problems: Problem[] = [];
  for (const path of paths) {
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(path);
    } catch (error) {
      problems.push(readProblem(path, statFailure(error)));
      continue;
    }
    const files: string[] = [];
    if (info.isDirectory && previous.has(path)) {
      problems.push(readProblem(path, WAS_A_FILE));
      continue;
    }
    if (info.isDirectory) {
      try {
        for await (const entry of Deno.readDir(path)) {
          if (entry.name.startsWith(".")) continue;
          const full = `${path.replace(/\/+$/, "")}/${entry.name}`;
          if (entry.isFile) files.push(full);
          else if (entry.isDirectory) {
            if (previous.has(full)) files.push(full); // readOne reports it
          } else if (entry.isSymlink) {
            // Followed; a link that points nowhere or at itself is reported by readOne.
            const target = await Deno.stat(full).catch(() => undefined);
            if (target?.isDirectory !== true || previous.has(full)) files.push(full);
          } else files.push(full); // a socket or a FIFO: reported, never opened
        }
      } catch (error) {
        problems.push(readProblem(path, statFailure(error)));
        continue;
      }
      files.sort();
    } else files.push(path);
    for (const file of files) {
      const result = await readOne(file);
      if ("text" in result) texts.push(result);
      else problems.push(result);
    }
  }
  return { texts, problems };
}

/** What {@linkcode readAndLoadRules} read and compiled. */
export interface ReadAndLoadResult {
  readonly texts: readonly RuleText[];
  readonly loaded: LoadResult;
  /** The problems of reading, then those of loading. */
  readonly problems: readonly Problem[];
}

/** Reads `paths` ({@linkcode readRulePaths}) and loads what was read, with the problems of both steps together. */
export async function readAndLoadRules(paths: readonly string[]): Promise<ReadAndLoadResult> {
  const read = await readRulePaths(paths);
  const loaded = loadRuleTexts(read.texts);
  return { texts: read.texts, loaded, problems: [...read.problems, ...loaded.problems] };
}
