// Checks that the program's sources are ASCII: V8 keeps each loaded module's text for the process's life, two bytes a
// character (inline source map included) when one character is outside Latin-1, so one arrow in a comment doubled it.

import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);

async function* sources(dir: URL): AsyncGenerator<URL> {
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isDirectory) yield* sources(new URL(`${entry.name}/`, dir));
    else if (entry.name.endsWith(".ts") && !entry.name.endsWith("_test.ts")) yield new URL(entry.name, dir);
  }
}

Deno.test("main.ts and lib/ (tests aside) are ASCII: non-ASCII text is written as \\u escapes", async () => {
  const found: string[] = [];
  for (const url of [new URL("main.ts", ROOT), ...await Array.fromAsync(sources(new URL("lib/", ROOT)))]) {
    const lines = (await Deno.readTextFile(url)).split("\n");
    lines.forEach((line, index) => {
      // deno-lint-ignore no-control-regex
      const other = /[^\x00-\x7f]/.exec(line);
      if (other !== null) {
        found.push(`${url.pathname.slice(ROOT.pathname.length)}:${index + 1}: ${JSON.stringify(other[0])}`);
      }
    });
  }
  assert.deepEqual(found, []);
});
