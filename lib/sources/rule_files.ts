// Reads rule files and directories (ConfigMap mounts included) into texts for the loader, whatever their format.

import { MAX_RULE_FILE_BYTES, type RuleText } from "../rules/load.ts";
import type { Problem } from "../rules/problem.ts";

/** Texts read, and problems with paths that could not be read. */
export interface ReadResult {
  readonly texts: readonly RuleText[];
  readonly problems: readonly Problem[];
}

function readProblem(source: string, detail: string): Problem {
  return {
    severity: "error",
    code: "yaml-syntax",
    message: `Cannot read ${source}: ${detail}`,
    path: "",
    fieldPath: [],
    source,
  };
}

async function readOne(path: string): Promise<RuleText | Problem> {
  try {
    const info = await Deno.stat(path);
    if (info.size > MAX_RULE_FILE_BYTES) {
      return {
        ...readProblem(path, `${info.size} bytes is over the ${MAX_RULE_FILE_BYTES}-byte limit`),
        code: "file-too-large",
      };
    }
    const bytes = await Deno.readFile(path);
    return { name: path, text: new TextDecoder("utf-8", { fatal: true }).decode(bytes) };
  } catch (error) {
    return readProblem(
      path,
      error instanceof TypeError ? "not valid UTF-8 text" : error instanceof Error ? error.message : String(error),
    );
  }
}

/**
 * Reads each path: a file as it is, a directory as every regular file in it (sorted; hidden entries such as
 * Kubernetes' `..data` skipped; symlinks followed; subdirectories not entered). Files are not picked by
 * extension, because ConfigMap keys such as ImageSwap's `maps` often have none: the loader recognises each
 * file by content and reports one it cannot read as an error naming it. A missing path is a problem, not an
 * exception.
 */
export async function readRulePaths(paths: readonly string[]): Promise<ReadResult> {
  const texts: RuleText[] = [];
  const problems: Problem[] = [];
  for (const path of paths) {
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(path);
    } catch (error) {
      problems.push(
        readProblem(path, error instanceof Deno.errors.NotFound ? "no such file or directory" : String(error)),
      );
      continue;
    }
    const files: string[] = [];
    if (info.isDirectory) {
      try {
        for await (const entry of Deno.readDir(path)) {
          if (entry.name.startsWith(".")) continue;
          const full = `${path.replace(/\/+$/, "")}/${entry.name}`;
          const regular = entry.isFile ||
            (entry.isSymlink && (await Deno.stat(full).catch(() => undefined))?.isFile === true);
          if (regular) files.push(full);
        }
      } catch (error) {
        problems.push(readProblem(path, error instanceof Error ? error.message : String(error)));
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
