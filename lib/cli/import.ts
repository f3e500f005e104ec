// `mirrorhook import --from TOOL FILE`: another tool's configuration printed as mirrorhook objects, with comments.

import { type ForeignFormat, TOOL_NAMES } from "../compat/common.ts";
import { describeText, type TextDescription } from "../compat/describe.ts";
import { formatImport } from "../compat/emit.ts";
import { translateText } from "../compat/formats.ts";
import { loadTranslation } from "../compat/load.ts";
import { formatProblem, hasErrors } from "../rules/problem.ts";
import { type CliIo, EXIT } from "./io.ts";

/**
 * The format to read `text` as: `from` when it fits, the detected one without `from`; else a message saying what
 * the file looks like.
 */
function chooseFormat(
  described: TextDescription,
  from: ForeignFormat | undefined,
  file: string,
): { format: ForeignFormat } | { error: string } {
  const looks = `it looks like ${described.description}`;
  const hint = described.format === undefined ? "" : ` (--from ${described.format})`;
  if (described.mirrorhook) {
    return { error: `${file} holds ${described.description}: nothing to import; use it with --rules as it is` };
  }
  if (from === undefined) {
    if (described.format !== undefined) return { format: described.format };
    return {
      error:
        `Cannot tell which tool ${file} belongs to: ${looks}; name it with --from flemzord|imageswap|proxy-url|imagemap`,
    };
  }
  // Line formats read anything as lines: refuse objects rather than print a nonsense translation.
  const wrong = (described.format !== undefined && described.format !== from) ||
    (described.objects === true && (from === "imageswap" || from === "proxy-url"));
  if (wrong) return { error: `Cannot import ${file} as ${TOOL_NAMES[from]} (--from ${from}): ${looks}${hint}` };
  return { format: from };
}

/**
 * Translates `file` (`-` for standard input) from `from`'s format, or the format it is recognised as; prints the
 * objects on stdout and every problem on stderr. Exit 1, with nothing on stdout, when the configuration has errors
 * or is not `from`'s.
 */
export async function runImport(file: string, from: ForeignFormat | undefined, io: CliIo): Promise<number> {
  let text: string;
  try {
    text = await io.readText(file);
  } catch (error) {
    io.stderr(`mirrorhook: cannot read ${file}: ${error instanceof Error ? error.message : String(error)}\n`);
    return EXIT.failed;
  }
  const source = file === "-" ? "stdin" : file;
  const described = describeText(text);
  const chosen = chooseFormat(described, from, source);
  if ("error" in chosen) {
    io.stderr(`mirrorhook: ${chosen.error}\n`);
    return EXIT.failed;
  }
  if (from === undefined) {
    io.stderr(`mirrorhook: reading ${source} as ${described.description} (--from ${chosen.format})\n`);
  }
  const translation = translateText(text, source, chosen.format);
  const loaded = loadTranslation(translation, source);
  for (const problem of loaded.problems) io.stderr(`${formatProblem(problem)}\n`);
  if (hasErrors(loaded.problems)) {
    io.stderr(
      `mirrorhook: nothing imported: ${loaded.problems.filter((p) => p.severity === "error").length} error(s)\n`,
    );
    return EXIT.failed;
  }
  io.stdout(formatImport(translation, { format: chosen.format, source }));
  return EXIT.ok;
}
