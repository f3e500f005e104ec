// Reads ImageSwap map files (phenixblue/imageswap-webhook, MAPS mode) into rule objects, and models what ImageSwap does.

import { formatName, isRegistryComponent, normalizeReference, parseReference } from "../image/reference.ts";
import type { FieldPath } from "../rules/problem.ts";
import { API_VERSION } from "../rules/schema.ts";
import {
  type Behaviour,
  type CompatProblem,
  compatProblem,
  escapePattern,
  nameFromSource,
  type Position,
  q,
  type TranslatedObject,
  type Translation,
} from "./common.ts";
import { fnmatchPattern, replaceGlobRule } from "./imageswap_patterns.ts";
import { compareWithTool, type Sample, type ToolResult } from "./compare.ts";

export { fnmatchPattern };

/** The key of the fallback map. */
const DEFAULT_KEY = "default";
/** The key of the substring exclusions. */
const NOSWAP_KEY = "noswap_wildcards";
const EXACT_KEYWORD = "[EXACT]";
const REPLACE_KEYWORD = "[REPLACE]";
/** The label ImageSwap reads (unless IMAGESWAP_DISABLE_LABEL changes it); value `disabled` skips the workload. */
const IMAGESWAP_DISABLE_LABEL = "k8s.twr.io/imageswap";
const LIBRARY_KEY = "docker.io/library";

/** One `key::value` line as ImageSwap reads it (spaces removed, comment cut). */
export interface MapEntry {
  readonly key: string;
  readonly value: string;
  readonly line: number;
  readonly keyColumn: number;
  readonly valueColumn: number;
  /** The line as written, trimmed. */
  readonly text: string;
}

/** A parsed map file: ImageSwap's three dictionaries, in insertion order (a repeated key keeps its first place). */
export interface SwapMaps {
  readonly maps: ReadonlyMap<string, MapEntry>;
  readonly exact: ReadonlyMap<string, MapEntry>;
  readonly replace: ReadonlyMap<string, MapEntry>;
}

/** Where ImageSwap would cut a trailing comment: before the last `#` that follows a character other than `#`. */
function imageSwapCommentCut(line: string): string {
  for (let i = line.length - 1; i > 0; i--) {
    if (line[i] === "#" && line[i - 1] !== "#") return line.slice(0, i);
  }
  return line;
}

/** Parses a map file; every line ImageSwap would skip or read oddly is a positioned warning. */
export function parseMapFile(text: string, source: string): { maps: SwapMaps; problems: CompatProblem[] } {
  const problems: CompatProblem[] = [];
  const maps = new Map<string, MapEntry>();
  const exact = new Map<string, MapEntry>();
  const replace = new Map<string, MapEntry>();
  const lines = text.split("\n");
  lines.forEach((rawLine, index) => {
    const line = rawLine.replace(/\r$/, "");
    const number = index + 1;
    if (line.startsWith("#")) return;
    const hash = line.indexOf("#");
    const ours = hash < 0 ? line : line.slice(0, hash);
    const body = ours.replace(/\s+/g, "");
    const theirs = imageSwapCommentCut(line).trimEnd().replaceAll(" ", "");
    const indent = line.length - line.trimStart().length;
    const at = { line: number, column: indent + 1 };
    if (body !== theirs && hash >= 0) {
      problems.push(compatProblem(
        `ImageSwap cuts this comment at its last "#", reading ${q(theirs)}; mirrorhook cuts at the first "#"`,
        { source, at, behaviour: "trailing-comment" },
      ));
    }
    if (body === "") return;
    let key: string;
    let value: string;
    if (body.includes("::") && body.split("::").length === 2) {
      [key, value] = body.split("::") as [string, string];
    } else if (body.includes(":") && body.split(":").length === 2) {
      [key, value] = body.split(":") as [string, string];
      problems.push(compatProblem(
        `a single ":" between key and value is deprecated in ImageSwap; write ${q(`${key}::${value}`)}`,
        { source, at, behaviour: "deprecated-separator" },
      ));
    } else {
      const detail = (body.match(/:/g)?.length ?? 0) > 1 && !body.includes("::")
        ? `a port in the key or value needs "::" between key and value`
        : `expected key::value`;
      problems.push(compatProblem(`ImageSwap skips this line, and so does mirrorhook: ${detail}`, {
        source,
        at,
        behaviour: "invalid-line",
      }));
      return;
    }
    const separator = body.includes("::") ? "::" : ":";
    let valueIndex = line.indexOf(separator) + separator.length;
    while (line[valueIndex] === " " || line[valueIndex] === "\t") valueIndex++;
    const entry = (k: string): MapEntry => ({
      key: k,
      value,
      line: number,
      keyColumn: at.column,
      valueColumn: valueIndex + 1,
      text: line.trim(),
    });
    let table: Map<string, MapEntry> = maps;
    let name = key;
    if (key.startsWith(EXACT_KEYWORD)) {
      table = exact;
      name = key.slice(EXACT_KEYWORD.length);
    } else if (key.startsWith(REPLACE_KEYWORD)) {
      table = replace;
      name = key.slice(REPLACE_KEYWORD.length);
    }
    const earlier = table.get(name);
    if (earlier !== undefined) {
      problems.push(compatProblem(
        `${q(name)} is already mapped on line ${earlier.line}; as in ImageSwap, this later line wins`,
        { source, at, behaviour: "duplicate-key", code: "duplicate" },
      ));
    }
    table.set(name, entry(name));
  });
  return { maps: { maps, exact, replace }, problems };
}

/** `os.path.join(a, b)` for the two-argument case ImageSwap uses. */
function pathJoin(a: string, b: string): string {
  if (b.startsWith("/")) return b;
  if (a === "" || a.endsWith("/")) return a + b;
  return `${a}/${b}`;
}

/** Python's `re.sub(pattern, repl, text)` with a literal replacement. */
function pySub(pattern: string, replacement: string, text: string): string | undefined {
  try {
    return text.replace(new RegExp(pattern, "g"), () => replacement);
  } catch {
    return undefined;
  }
}

/**
 * What ImageSwap (MAPS mode) does to one image, modelled on its documented behaviour and tests: the registry
 * is the first component only when it has a dot, `[EXACT]` compares the text as written, a `-`-suffixed
 * target prepends instead of replacing, and so on. Used to name where mirrorhook differs.
 */
export function simulateImageSwap(config: SwapMaps, image: string): ToolResult {
  const at = (entry: MapEntry | undefined): Position | undefined =>
    entry === undefined ? undefined : { line: entry.line, column: entry.keyColumn };
  const slash = image.indexOf("/");
  const first = slash < 0 ? image : image.slice(0, slash);
  const rest = slash < 0 ? "" : image.slice(slash + 1);
  const explicit = first.includes(".") && slash >= 0 && rest !== "";
  const registry = explicit ? first : "docker.io";
  const exact = config.exact.get(image);
  if (exact !== undefined) return { output: exact.value, at: at(exact) };
  const last = image.split("/").at(-1) ?? image;
  for (const [glob, entry] of config.replace) {
    if (new RegExp(`^(?:${fnmatchPattern(glob)})$`, "s").test(image)) {
      return { output: pathJoin(entry.value, last), at: at(entry) };
    }
  }
  const noPort = registry.split(":")[0] ?? registry;
  let key = registry;
  if (!config.maps.has(registry) && config.maps.has(noPort)) key = noPort;
  const fallback = config.maps.get(DEFAULT_KEY);
  if (fallback === undefined) return { output: image };
  const noswap = config.maps.get(NOSWAP_KEY);
  const wildcards = noswap === undefined || noswap.value === "" ? [] : noswap.value.split(",");
  if (config.maps.has(key) || config.maps.has(`${key}/library`)) {
    if (slash < 0 && config.maps.has(`${key}/library`)) key = `${key}/library`;
    const entry = config.maps.get(key);
    if (entry === undefined) {
      return { output: image, failure: `KeyError: ${q(key)}`, at: at(config.maps.get(`${key}/library`)) };
    }
    const value = entry.value;
    if (value === "") return { output: image, at: at(entry) };
    let output: string | undefined;
    if (value.endsWith("-")) {
      const stripped = image.replace(/:.*\//, "/");
      output = explicit ? value + stripped : `${value}${noPort}/${stripped}`;
    } else if (image.includes(key)) output = pySub(key, value, image);
    else output = `${value}/${image}`;
    return output === undefined
      ? { output: image, failure: "invalid pattern", at: at(entry) }
      : { output, at: at(entry) };
  }
  if (wildcards.length > 0 && wildcards.some((wildcard) => image.includes(wildcard))) {
    return { output: image, at: at(noswap) };
  }
  const value = fallback.value;
  if (value === "") return { output: image, at: at(fallback) };
  let output: string | undefined;
  if (value.endsWith("-")) output = `${value}${noPort}/${image}`;
  else if (image.includes(key)) output = pySub(registry, value, image);
  else output = `${value}/${image}`;
  return output === undefined
    ? { output: image, failure: "invalid pattern", at: at(fallback) }
    : { output, at: at(fallback) };
}

/** A target's canonical name prefix (`Harbor.example.com/x/` stays as is; `index.docker.io` becomes `docker.io`). */
function canonicalPrefix(target: string): string {
  const trimmed = target.replace(/\/+$/, "");
  const parsed = parseReference(`${trimmed}/x`);
  return parsed.ok ? formatName(parsed.reference).slice(0, -2) : trimmed;
}

const EXPLAIN: Partial<Record<Behaviour, string>> = {
  "library-dropped":
    "ImageSwap drops library/ from official images written without a registry; mirrorhook rewrites the full name, as the runtime pulls it",
  "library-map-short-names-only":
    "ImageSwap applies docker.io/library only to images written without a registry (nginx), not to docker.io/nginx or docker.io/library/nginx; mirrorhook applies it to every official image",
  "library-map-without-registry-map":
    "with docker.io/library but no docker.io line, ImageSwap fails on other Docker Hub images; mirrorhook sends them to default",
  "registry-read-as-docker-hub":
    "ImageSwap reads a first component without a dot (localhost, host:port) as a Docker Hub namespace; mirrorhook reads it as the registry it is",
  "registry-duplicated":
    "a default ending in - makes ImageSwap repeat the registry (prefix + registry + the whole image); mirrorhook writes prefix + registry + path",
  "path-dropped":
    "with a port in the image's registry and a target ending in -, ImageSwap cuts everything from the port to the last / (registry:8443/team/app becomes \u2026registry/app); mirrorhook keeps the path",
  "port-fallback":
    "ImageSwap applies a host's line to that host on any port, keeping the port after the target; mirrorhook treats host:port as another registry (add a host:port:: line to map it)",
  "index-docker-io": "ImageSwap treats index.docker.io as its own registry; mirrorhook reads it as docker.io",
  "exact-as-written":
    "ImageSwap compares [EXACT] keys with the image as written; mirrorhook compares the normalized reference, so every spelling of the image matches",
};

interface RuleSource {
  readonly entry: MapEntry;
  readonly field?: "key" | "value";
  /** Why the rule is there, for `mirrorhook import`, when the line alone does not say. */
  readonly note?: string;
}

interface TranslatedRule {
  readonly rule: Record<string, unknown>;
  readonly from: RuleSource;
}

/** A target written by a line: an image, a registry/path prefix, or a `-` prefix glued to the registry. */
interface Output {
  readonly kind: "exact" | "prefix" | "dash";
  readonly value: string;
  readonly entry: MapEntry;
}

const KEEP_NOTE =
  "kept: this line sends images here, and a Pod admitted again must keep them (ImageSwap would pass them through default again); images written with this prefix are kept too";

/**
 * Keep rules for the outputs of the other lines, so that the default line does not rewrite them when a Pod
 * is admitted again. Skipped where a line of the file already decides the same name.
 */
function keepOutputs(
  outputs: readonly Output[],
  options: { fallback: string; maps: ReadonlyMap<string, MapEntry>; exact: ReadonlyMap<string, MapEntry> },
): TranslatedRule[] {
  const rules: TranslatedRule[] = [];
  const seen = new Set<string>();
  const own = options.fallback.endsWith("-") ? options.fallback : canonicalPrefix(options.fallback);
  const prefixes = outputs.filter((output) => output.kind === "prefix").map((output) => canonicalPrefix(output.value));
  for (const output of outputs) {
    let rule: Record<string, unknown> | undefined;
    if (output.kind === "exact") {
      const target = normalizeReference(output.value);
      if (target === undefined || options.exact.has(target)) continue;
      rule = { exact: target, keep: true };
    } else if (output.kind === "dash") {
      if (output.value === own) continue;
      rule = { match: `^${escapePattern(output.value)}`, keep: true };
    } else {
      const prefix = canonicalPrefix(output.value);
      const parsed = parseReference(`${prefix}/x`);
      if (!parsed.ok || prefix === own || options.maps.has(prefix)) continue;
      // A prefix under the default's own target, or under another output, is covered already.
      const covers = (other: string) => prefix.startsWith(`${other}/`);
      if ((!own.endsWith("-") && covers(own)) || prefixes.some(covers)) continue;
      rule = { prefix, keep: true };
    }
    const key = JSON.stringify(rule);
    if (seen.has(key)) continue;
    seen.add(key);
    rules.push({ rule, from: { entry: output.entry, field: "value", note: KEEP_NOTE } });
  }
  return rules;
}

/** Reads an ImageSwap map file into rule objects named after the file, with every difference named. */
export function translateImageSwap(text: string, source: string): Translation {
  const parsed = parseMapFile(text, source);
  const problems: CompatProblem[] = [...parsed.problems];
  const { maps, exact, replace } = parsed.maps;
  const name = nameFromSource("imageswap", source);
  const atEntry = (entry: MapEntry, field: "key" | "value" = "key"): Position => ({
    line: entry.line,
    column: field === "key" ? entry.keyColumn : entry.valueColumn,
  });
  const warn = (entry: MapEntry, detail: string, behaviour: Behaviour) =>
    problems.push(compatProblem(detail, { source, at: atEntry(entry), behaviour }));

  const explained = new Set<number>();
  const fallback = maps.get(DEFAULT_KEY);
  const registryEntries = [...maps.values()].filter((entry) => entry.key !== DEFAULT_KEY && entry.key !== NOSWAP_KEY);
  if (fallback === undefined && (registryEntries.length > 0 || maps.has(NOSWAP_KEY))) {
    problems.push(compatProblem(
      `there is no ${
        q(`${DEFAULT_KEY}::`)
      } line, so ImageSwap swaps nothing but [EXACT] and [REPLACE] images and ignores ${
        registryEntries.length + (maps.has(NOSWAP_KEY) ? 1 : 0)
      } other line(s); mirrorhook does the same (add "default::" to use them and leave other registries alone)`,
      { source, at: { line: 1, column: 1 }, behaviour: "no-default" },
    ));
  }
  // Exact and [REPLACE] rules come first; [REPLACE] is a match rule, so with it they move to their own object.
  const firstRules: TranslatedRule[] = [];
  // What this file writes into Pods: kept as they are when a Pod is admitted again (see below).
  const outputs: Output[] = [];
  const exactByReference = new Map<string, MapEntry>();
  for (const entry of exact.values()) {
    const normalized = normalizeReference(entry.key);
    const earlier = normalized === undefined ? undefined : exactByReference.get(normalized);
    if (earlier !== undefined && normalized !== undefined) {
      problems.push(compatProblem(
        `${q(entry.key)} and ${
          q(earlier.key)
        } (line ${earlier.line}) are the same image; ImageSwap keeps the two spellings apart, mirrorhook uses the later line for both`,
        { source, at: atEntry(entry), behaviour: "duplicate-key", code: "duplicate" },
      ));
    }
    if (normalized !== undefined) exactByReference.set(normalized, entry);
  }
  for (const entry of exact.values()) {
    const normalized = normalizeReference(entry.key);
    if (normalized !== undefined && exactByReference.get(normalized) !== entry) continue;
    if (entry.value === "") {
      warn(
        entry,
        "an empty [EXACT] target makes ImageSwap set the image to an empty string; mirrorhook leaves the image unchanged",
        "empty-target",
      );
      firstRules.push({ rule: { exact: entry.key, keep: true }, from: { entry } });
      continue;
    }
    firstRules.push({ rule: { exact: entry.key, replace: entry.value }, from: { entry } });
    outputs.push({ kind: "exact", value: entry.value, entry });
  }
  for (const entry of replace.values()) {
    firstRules.push({ rule: { ...replaceGlobRule(entry.key, entry.value), on: "original" }, from: { entry } });
    if (entry.value !== "") outputs.push({ kind: "prefix", value: entry.value, entry });
  }

  const mainRules: TranslatedRule[] = [];
  if (fallback !== undefined) {
    for (const entry of registryEntries) {
      const key = entry.key;
      const registry = key.split("/")[0] ?? key;
      if (key.includes("/") && key !== LIBRARY_KEY) {
        warn(
          entry,
          `ImageSwap looks up registries (and docker.io/library) only, so it never uses ${
            q(key)
          }; mirrorhook ignores it too (write a prefix rule instead)`,
          "key-never-used",
        );
        continue;
      }
      if (!isRegistryComponent(registry) || parseReference(`${registry}/x`).ok === false) {
        warn(
          entry,
          `${q(key)} is not a registry name, so no image ever uses this line; mirrorhook ignores it too`,
          "key-never-used",
        );
        continue;
      }
      const noPort = key === LIBRARY_KEY
        ? "docker.io"
        : (registry.startsWith("[") ? registry : registry.split(":")[0] ?? registry);
      if (entry.value === "") {
        mainRules.push({ rule: { prefix: key, keep: true }, from: { entry } });
      } else if (entry.value.endsWith("-")) {
        mainRules.push({ rule: { prefix: key, replace: `${entry.value}${noPort}` }, from: { entry } });
        outputs.push({ kind: "dash", value: entry.value, entry });
      } else {
        mainRules.push({ rule: { prefix: key, replace: entry.value }, from: { entry } });
        outputs.push({ kind: "prefix", value: entry.value, entry });
      }
    }
    const noswap = maps.get(NOSWAP_KEY);
    if (noswap !== undefined && noswap.value !== "") {
      for (const item of noswap.value.split(",")) {
        if (item === "") {
          explained.add(noswap.line);
          warn(
            noswap,
            "an empty item (a stray comma) matches every image in ImageSwap, which turns default off; mirrorhook ignores the empty item",
            "empty-noswap-item",
          );
          continue;
        }
        mainRules.push({ rule: { match: escapePattern(item), keep: true, on: "original" }, from: { entry: noswap } });
      }
    }
    if (fallback.value !== "") {
      const value = fallback.value.replaceAll("$", "$$$$");
      // ImageSwap swaps its own outputs again when a Pod is admitted a second time (default replaces their
      // registry); mirrorhook keeps them: keep rules for the other lines' targets and the default's own, first.
      mainRules.push(...keepOutputs(outputs, { fallback: fallback.value, maps, exact: exactByReference }));
      const dash = fallback.value.endsWith("-");
      const own = dash ? fallback.value : `${canonicalPrefix(fallback.value)}/`;
      mainRules.push({
        rule: { match: `^${escapePattern(own)}`, keep: true },
        from: {
          entry: fallback,
          field: "value",
          note:
            "kept: default sends images here, and a Pod admitted again must keep them (ImageSwap would swap them again)",
        },
      });
      mainRules.push({
        rule: dash
          ? { match: "^([^/:]+)(?::[0-9]+)?/(.*)$", replace: `${value}$1/$2` }
          : { match: "^[^/]+/(.*)$", replace: `${value.replace(/\/+$/, "")}/$1` },
        from: { entry: fallback, field: "value" },
      });
    }
  }

  const objects: TranslatedObject[] = [];
  const build = (objectName: string, priority: number, rules: typeof mainRules, note: string[]) => {
    if (rules.length === 0) return;
    const locate = (path: FieldPath) => {
      const index = path[0] === "spec" && path[1] === "rules" && typeof path[2] === "number" ? path[2] : 0;
      const from = rules[index]?.from ?? rules[0]?.from;
      if (from === undefined) return undefined;
      const field = path[3] === "replace" ? "value" : from.field ?? "key";
      return atEntry(from.entry, field);
    };
    const ruleComments = new Map<number, string[]>();
    rules.forEach(({ from }, index) =>
      ruleComments.set(index, [
        `line ${from.entry.line}: ${from.entry.text}`,
        ...(from.note === undefined ? [] : [from.note]),
      ])
    );
    objects.push({
      raw: {
        apiVersion: API_VERSION,
        kind: "ClusterImageRewrite",
        metadata: { name: objectName },
        spec: { priority, rules: rules.map(({ rule }) => rule) },
      },
      locate,
      comments: { object: note, rules: ruleComments },
    });
  };
  if (replace.size > 0) {
    build(`${name}-replace`, 1, firstRules, [
      "[EXACT] and [REPLACE] lines: ImageSwap checks them before everything else, hence the higher priority.",
    ]);
    build(name, 0, mainRules, []);
  } else build(name, 0, [...firstRules, ...mainRules], []);

  problems.push(...compareWithTool({
    format: "imageswap",
    source,
    objects,
    samples: samplesFor(parsed.maps),
    explained,
    tool: (image) => simulateImageSwap(parsed.maps, image),
    explain: EXPLAIN,
  }));
  return {
    format: "imageswap",
    objects,
    problems,
    optOuts: [{ format: "imageswap", kind: "label", key: IMAGESWAP_DISABLE_LABEL, value: "disabled", source }],
  };
}

/** Images that show each known difference when the file's lines reach them. */
function samplesFor(config: SwapMaps): Sample[] {
  const hasLibrary = config.maps.has(LIBRARY_KEY);
  const samples: Sample[] = [
    { image: "nginx:1.25", behaviour: "library-dropped" },
    { image: "docker.io/nginx:1.25", behaviour: hasLibrary ? "library-map-short-names-only" : "library-dropped" },
    { image: "docker.io/library/nginx:1.25", behaviour: "library-map-short-names-only" },
    { image: "bitnami/redis:7", behaviour: "library-map-without-registry-map" },
    { image: "index.docker.io/library/nginx:1.25", behaviour: "index-docker-io" },
    { image: "localhost:5000/team/app:1.0", behaviour: "registry-read-as-docker-hub" },
    { image: "registry:5000/team/app:1.0", behaviour: "registry-read-as-docker-hub" },
  ];
  let unmapped = "unmapped.example.org";
  while (config.maps.has(unmapped)) unmapped = `x.${unmapped}`;
  samples.push({ image: `${unmapped}/team/app:1.0`, behaviour: "registry-duplicated" });
  for (const key of config.maps.keys()) {
    if (key === DEFAULT_KEY || key === NOSWAP_KEY || key.includes("/")) continue;
    samples.push({
      image: `${key}/team/app:1.0`,
      behaviour: key.includes(".") ? "path-dropped" : "registry-read-as-docker-hub",
    });
    if (!key.includes(":") && key.includes(".") && key !== "docker.io") {
      samples.push({ image: `${key}:5000/team/app:1.0`, behaviour: "port-fallback" });
    }
  }
  for (const key of config.exact.keys()) {
    const normalized = normalizeReference(key);
    if (normalized !== undefined && normalized !== key) {
      samples.push({ image: normalized, behaviour: "exact-as-written" });
    }
  }
  return samples.filter((sample) => normalizeReference(sample.image) !== undefined);
}
