// `mirrorhook import --from TOOL FILE`: another tool's configuration printed as mirrorhook objects, with comments.

import type { ForeignFormat } from "../compat/common.ts";
import { formatImport } from "../compat/emit.ts";
import { translateText } from "../compat/formats.ts";
import { loadTranslation } from "../compat/load.ts";
import { formatProblem, hasErrors } from "../rules/problem.ts";
import { type CliIo, EXIT } from "./io.ts";

/**
 * Translates `file` (`-` for standard input) from `from`'s format; prints the objects on stdout and every
 * problem on stderr. Exit 1, with nothing on stdout, when the configuration has errors.
 */
export async function runImport(file: string, from: ForeignFormat, io: CliIo): Promise<number> {
  let text: string;
  try {
    text = await io.readText(file);
  } catch (error) {
    io.stderr(`mirrorhook: cannot read ${file}: ${error instanceof Error ? error.message : String(error)}\n`);
    return EXIT.failed;
  }
  const source = file === "-" ? "stdin" : file;
  const translation = translateText(text, source, from);
  const loaded = loadTranslation(translation, source);
  for (const problem of loaded.problems) io.stderr(`${formatProblem(problem)}\n`);
  if (hasErrors(loaded.problems)) {
    io.stderr(
      `mirrorhook: nothing imported: ${loaded.problems.filter((p) => p.severity === "error").length} error(s)\n`,
    );
    return EXIT.failed;
  }
  io.stdout(formatImport(translation, { format: from, source }));
  return EXIT.ok;
}
