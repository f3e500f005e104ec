// Checks the architecture of lib/: imports between folders run one way, and the pure folders use no I/O globals.
import assert from "node:assert/strict";

/**
 * Each folder of lib/ and its layer: a module may import only from its own folder or from folders of a lower
 * layer. `image` ← `rules` ← `compat`/`mutate` ← `admission` ← `sources`/`server`/`cli`.
 */
const LAYERS: Readonly<Record<string, number>> = {
  util: 0,
  image: 1,
  rules: 2,
  compat: 3,
  mutate: 3,
  verify: 3,
  mirror: 4,
  admission: 4,
  sources: 5,
  server: 6,
  cli: 7,
};
/** Folders whose modules compute only: no file system, network, console, timers or clock. */
const PURE = ["image", "rules", "admission", "mutate"];
const IO_GLOBALS =
  /\b(?:Deno\.[A-Za-z]|fetch\(|console\.|setTimeout\(|setInterval\(|queueMicrotask\(|Date\.now\(|new Date\(\)|performance\.now\()/;

const lib = new URL("../lib/", import.meta.url);

/** Every non-test module of lib/, with its top folder and its path under lib/. */
async function* modules(dir = lib): AsyncGenerator<{ folder: string; name: string; url: URL; text: string }> {
  for await (const entry of Deno.readDir(dir)) {
    const url = new URL(entry.isDirectory ? `${entry.name}/` : entry.name, dir);
    if (entry.isDirectory) yield* modules(url);
    else if (entry.isFile && entry.name.endsWith(".ts") && !entry.name.endsWith("_test.ts") && dir.href !== lib.href) {
      const name = url.href.slice(lib.href.length);
      yield { folder: name.split("/")[0]!, name, url, text: await Deno.readTextFile(url) };
    }
  }
}

/** Code without comments and string contents that are not import specifiers (good enough for the checks). */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "").replace(/([^:])\/\/.*$/gm, "$1");
}

Deno.test("every folder of lib/ has a layer", async () => {
  for await (const folder of Deno.readDir(lib)) {
    if (folder.isDirectory) {
      assert.ok(folder.name in LAYERS, `lib/${folder.name}/ has no layer in tests/layers_test.ts`);
    }
  }
});

Deno.test("imports between folders of lib/ run one way", async () => {
  const backwards: string[] = [];
  for await (const { folder, name, url, text } of modules()) {
    for (const match of text.matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g)) {
      const resolved = new URL(match[1]!, url).href;
      if (!resolved.startsWith(lib.href)) continue;
      const target = resolved.slice(lib.href.length).split("/")[0]!;
      if (target === folder) continue;
      if ((LAYERS[target] ?? Infinity) >= (LAYERS[folder] ?? -1)) backwards.push(`lib/${name} imports lib/${target}/`);
    }
  }
  assert.deepEqual(backwards, []);
});

Deno.test("the pure folders use no I/O globals", async () => {
  const found: string[] = [];
  for await (const { folder, name, text } of modules()) {
    if (!PURE.includes(folder)) continue;
    code(text).split("\n").forEach((line, i) => {
      const hit = IO_GLOBALS.exec(line);
      if (hit) found.push(`lib/${name}:${i + 1}: ${hit[0]}`);
    });
  }
  assert.deepEqual(found, []);
});
