// Decides whether a `match` pattern may be used: a pure, deterministic verdict (length, linear engine, static analysis).

/** Longest accepted pattern, in UTF-16 code units: image references are at most a few hundred characters. */
export const MAX_PATTERN_LENGTH = 1024;

/**
 * V8 flags every process that evaluates rules must run with (set once in deno.json's tasks and in
 * `deno compile`): the `l` flag's linear engine, and for any other regular expression a fallback to it
 * after a few backtracks.
 */
export const V8_FLAGS: readonly string[] = [
  "--enable-experimental-regexp-engine",
  "--enable-experimental-regexp-engine-on-excessive-backtracks",
  "--regexp-backtracks-before-fallback=10000",
];

/** `--v8-flags=...` as one argument for `deno run`, `deno test` and `deno compile`. */
export const V8_FLAGS_ARGUMENT = `--v8-flags=${V8_FLAGS.join(",")}`;

/** What the screen found; a pure function of the pattern source. */
export type PatternVerdict =
  | { readonly status: "safe" }
  | { readonly status: "invalid"; readonly reason: string }
  | { readonly status: "too-long"; readonly reason: string }
  | { readonly status: "unbounded"; readonly reason: string }
  | { readonly status: "catastrophic"; readonly reason: string };

/** Verdicts kept by pattern source; least recently used first out, one at a time (no emptying cliff). */
export const VERDICT_CACHE_LIMIT = 100_000;
const cache = new Map<string, PatternVerdict>();
const compiled = new Map<string, RegExp>();

/**
 * Screens `source` (compiled without flags): refused when longer than {@linkcode MAX_PATTERN_LENGTH}, when
 * V8's linear engine cannot run it (back-references, look-arounds, modifiers, counted repetition over
 * 16), or when static analysis finds that nested or adjacent quantifiers can
 * match the same text in exponentially many ways. Never depends on time or load. Patterns that are not plain (see
 * {@linkcode quickVerdict}) need the full screen of lib/rules/pattern_analysis.ts loaded; without it they are refused
 * as not screened.
 */
export function screenPattern(source: string): PatternVerdict {
  // Plain patterns are judged on the spot, and not kept: a cache of 10,000 of them took ~1 MB.
  const quick = quickVerdict(source);
  if (quick !== undefined) return quick;
  const cached = cache.get(source);
  if (cached !== undefined) {
    cache.delete(source);
    cache.set(source, cached);
    return cached;
  }
  const verdict = judge(source);
  // Without the analysis "catastrophic" only means "not analysed here": not a verdict to keep.
  if (fullScreen !== undefined || verdict.status !== "catastrophic") rememberVerdict(source, verdict);
  return verdict;
}

/** The verdict of every safe pattern: one object, not one per pattern (each verdict from the worker is a copy). */
const SAFE: PatternVerdict = Object.freeze({ status: "safe" });

/** Stores a verdict found elsewhere (the screening worker), so that compiling the pattern does not screen again. */
export function rememberVerdict(source: string, verdict: PatternVerdict): void {
  cache.delete(source);
  cache.set(source, verdict.status === "safe" ? SAFE : verdict);
  if (cache.size > VERDICT_CACHE_LIMIT) {
    const oldest = cache.keys().next();
    if (oldest.done !== true) cache.delete(oldest.value);
  }
}

/** The cached verdict of `source`, if any, without screening it. */
export function cachedVerdict(source: string): PatternVerdict | undefined {
  return cache.get(source);
}

const LINEAR_FLAG = "l";
let linear: boolean | undefined;

/** Whether this process runs with V8's linear engine (the `l` flag), i.e. with {@linkcode V8_FLAGS}. */
export function hasLinearEngine(): boolean {
  if (linear === undefined) {
    try {
      // The flag comes from a variable: the linter knows no `l` flag.
      new RegExp("", LINEAR_FLAG);
      linear = true;
    } catch {
      linear = false;
    }
  }
  return linear;
}

/** Why V8 refuses a pattern as rules run it; see {@linkcode patternRefusal}. */
export interface PatternRefusal {
  /** `invalid`: not a regular expression; `linear`: one, but V8's linear engine cannot run it. */
  readonly kind: "invalid" | "linear";
  /** V8's message, without its "Invalid regular expression: " opening. */
  readonly message: string;
}

/**
 * Whether V8 compiles `source` as a rule would run it ({@linkcode compilePattern}: with the `l` flag where the process
 * has the linear engine), else why not. The screen predicts the linear engine's refusals; asking V8 itself when the
 * rule is compiled makes sure that a pattern the screen let through by mistake (a verdict from another isolate, a V8
 * that refuses more) is refused when the rules load, never when the first Pod would run it. The RegExp is dropped:
 * a rule compiles its own at first use.
 */
export function patternRefusal(source: string): PatternRefusal | undefined {
  if (compiled.has(source)) return undefined;
  try {
    if (hasLinearEngine()) new RegExp(source, LINEAR_FLAG);
    else new RegExp(source);
    return undefined;
  } catch (linearError) {
    const message = (error: unknown) =>
      (error instanceof Error ? error.message : String(error)).replace(/^Invalid regular expression: /, "");
    if (!hasLinearEngine()) return { kind: "invalid", message: message(linearError) };
    try {
      new RegExp(source);
    } catch (error) {
      return { kind: "invalid", message: message(error) };
    }
    return { kind: "linear", message: message(linearError) };
  }
}

/**
 * Compiles a screened pattern for matching: with the `l` flag when the process has V8's linear engine
 * (matching time then grows linearly with the image, whatever the pattern), else as written.
 */
export function compilePattern(source: string): RegExp {
  // Without the g and y flags a RegExp keeps no state between uses, so rules with the same pattern share one
  // (and V8 compiles it once, not again on every reload).
  const known = compiled.get(source);
  if (known !== undefined) return known;
  const pattern = hasLinearEngine() ? new RegExp(source, LINEAR_FLAG) : new RegExp(source);
  compiled.set(source, pattern);
  if (compiled.size > VERDICT_CACHE_LIMIT) {
    const oldest = compiled.keys().next();
    if (oldest.done !== true) compiled.delete(oldest.value);
  }
  return pattern;
}

/** Escapes that stand for one character or one class of characters (never a back-reference, octal or assertion). */
const PLAIN_ESCAPES = new Set([..."./-:@_$^*+?()[]{}|\\dDwWsS"]);
const GROUP_NAME = /^[A-Za-z_$][\w$]*$/;

/**
 * The verdict of a pattern of the plain kind most rules use, read in one pass over its text, or undefined when the
 * pattern needs the full screen: literal characters, `.`, character classes and escapes of one character or class,
 * each optionally repeated by `*`, `+` or `?`; groups (capturing, named or not) and alternatives, no group repeated.
 * No repetition can then nest and nothing V8's linear engine refuses can occur, so {@linkcode screenPattern} would
 * find it safe too (a property test checks it): such patterns need no worker, no parser and no analysis. The
 * pattern must compile (`new RegExp(source)`, as compiling the rule checks anyway).
 */
export function quickVerdict(source: string): PatternVerdict | undefined {
  if (source.length > MAX_PATTERN_LENGTH) return undefined;
  let depth = 0;
  /** Whether the previous token is a character, class or escape (which a quantifier may follow). */
  let atom = false;
  /** Whether the previous token is a quantifier (which `?` may follow, making it lazy). */
  let quantified = false;
  let names: Set<string> | undefined;
  for (let i = 0; i < source.length; i++) {
    const c = source[i] ?? "";
    if (c === "*" || c === "+" || c === "?") {
      if (atom) {
        atom = false;
        quantified = true;
      } else if (c === "?" && quantified) quantified = false;
      else return undefined;
      continue;
    }
    quantified = false;
    atom = true;
    if (c === "\\") {
      if (!PLAIN_ESCAPES.has(source[++i] ?? "")) return undefined;
    } else if (c === "[") {
      i = classEnd(source, i + 1);
      if (i < 0) return undefined;
    } else if (c === "(") {
      atom = false;
      depth++;
      if (source[i + 1] !== "?") continue;
      if (source[i + 2] === ":") {
        i += 2;
        continue;
      }
      const end = source.indexOf(">", i + 3);
      const name = source.slice(i + 3, end);
      if (source[i + 2] !== "<" || end < 0 || !GROUP_NAME.test(name) || names?.has(name) === true) return undefined;
      (names ??= new Set()).add(name);
      i = end;
    } else if (c === ")") {
      // A group followed by a quantifier is left to the full screen (nested repetition is what it looks for).
      if (--depth < 0 || "*+?{".includes(source[i + 1] ?? "-")) return undefined;
      atom = false;
    } else if (c === "|" || c === "^" || c === "$") {
      atom = false;
    } else if (c === "{" || c === "}" || c === "]" || c.charCodeAt(0) >= 0xd800 && c.charCodeAt(0) <= 0xdfff) {
      return undefined;
    }
  }
  if (depth !== 0) return undefined;
  try {
    new RegExp(source);
  } catch {
    return undefined;
  }
  return SAFE;
}

/** The index of the `]` that closes a character class whose text starts at `start`, or -1 (also for escapes that
 * are not plain). */
function classEnd(source: string, start: number): number {
  for (let i = start; i < source.length; i++) {
    const c = source[i];
    if (c === "]") return i;
    if (c === "\\" && !PLAIN_ESCAPES.has(source[++i] ?? "")) return -1;
  }
  return -1;
}

/** Characters with a meaning of their own in a pattern (outside a character class). */
const SYNTAX = new Set(["\\", "^", "$", ".", "|", "?", "*", "+", "(", ")", "[", "]", "{", "}"]);

/** Characters that a backslash turns into themselves in a pattern without the `u` flag, as image references hold them. */
const ESCAPED_LITERALLY = new Set([
  ...SYNTAX,
  "/",
  "-",
  ":",
  "@",
  "_",
  "#",
  "=",
  "!",
  "~",
  "%",
  ",",
  "'",
  '"',
  "<",
  ">",
]);

/**
 * The text at the start of every string `source` matches, when the pattern opens with `^` and plain characters and
 * has no alternative at its top level (`^quay\.io/team/(.*)$` -> `quay.io/team/`); else undefined. Patterns are
 * compiled without the `m` flag, so `^` holds only at the start: a subject that does not start with the anchor cannot
 * match, and the pattern need not run, nor be compiled (V8 compiles a pattern when it first runs: ~500 bytes each).
 */
export function patternAnchor(source: string): string | undefined {
  if (!source.startsWith("^") || hasTopLevelAlternative(source)) return undefined;
  let anchor = "";
  let i = 1;
  while (i < source.length) {
    const c = source[i] ?? "";
    let literal: string;
    let next: number;
    if (c === "\\") {
      const escaped = source[i + 1] ?? "";
      if (!ESCAPED_LITERALLY.has(escaped)) break;
      literal = escaped;
      next = i + 2;
    } else if (SYNTAX.has(c) || c.charCodeAt(0) >= 0xd800 && c.charCodeAt(0) <= 0xdfff) {
      break;
    } else {
      literal = c;
      next = i + 1;
    }
    // A quantifier applies to the last character: it is not certain to be there.
    const after = source[next];
    if (after === "?" || after === "*" || after === "+" || after === "{") break;
    anchor += literal;
    i = next;
  }
  return anchor === "" ? undefined : anchor;
}

/** Whether `|` separates alternatives of the whole pattern (outside groups and character classes). */
function hasTopLevelAlternative(source: string): boolean {
  let depth = 0;
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (c === "\\") i++;
    else if (inClass) inClass = c !== "]";
    else if (c === "[") inClass = true;
    else if (c === "(") depth++;
    else if (c === ")") depth--;
    else if (c === "|" && depth === 0) return true;
  }
  return false;
}

/** The capture groups of a screened pattern: how many, and their names. */
export interface PatternGroups {
  readonly count: number;
  readonly names: ReadonlySet<string>;
}

const NO_NAMES: ReadonlySet<string> = new Set();
const UNNAMED: PatternGroups[] = [];

/**
 * The groups of a pattern that compiles without flags, read from its text: every `(` that is not escaped, not in a
 * character class and not `(?:`, `(?=`, `(?!`, `(?<=`, `(?<!` (or modifiers) opens a group, `(?<name>` a named one.
 * No RegExp is compiled (V8 would keep ~500 bytes of each of 10,000 patterns until the next collection, and a cache
 * of the answers took 0.5 MB); the property test checks it against V8's own count.
 */
export function patternGroups(source: string): PatternGroups {
  let count = 0;
  let names: Set<string> | undefined;
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (c === "\\") i++;
    else if (inClass) inClass = c !== "]";
    else if (c === "[") inClass = true;
    else if (c === "(") {
      if (source[i + 1] !== "?") count++;
      else if (source[i + 2] === "<" && source[i + 3] !== "=" && source[i + 3] !== "!") {
        const end = source.indexOf(">", i + 3);
        if (end < 0) continue;
        count++;
        (names ??= new Set()).add(source.slice(i + 3, end));
      }
    }
  }
  // A name may hold escapes (`(?<\u0061b>`), which V8 decodes: ask V8 for those names, from `source|` matching "".
  if (names !== undefined && [...names].some((name) => name.includes("\\"))) {
    try {
      names = new Set(Object.keys(new RegExp(`${source}|`).exec("")?.groups ?? {}));
    } catch {
      // Not a pattern V8 takes: it is refused where it is compiled; the names as written stand until then.
    }
  }
  // Most patterns have no named group: they share one answer per count (an empty Set alone takes ~230 bytes).
  return names !== undefined ? { count, names } : (UNNAMED[count] ??= Object.freeze({ count, names: NO_NAMES }));
}

/**
 * A screened pattern compiled at its first use (with {@linkcode compilePattern}): a rule whose pattern never runs
 * (most of 10,000 anchored rules, see {@linkcode patternAnchor}) holds its source only, not a RegExp (~250 bytes).
 */
export class LazyPattern {
  #regexp: RegExp | undefined;

  constructor(readonly source: string) {}

  /** The compiled pattern (compiled now if it was not yet). */
  get regexp(): RegExp {
    return this.#regexp ??= compilePattern(this.source);
  }

  /** Whether the pattern matches `subject`. */
  test(subject: string): boolean {
    return this.regexp.test(subject);
  }
}

/**
 * The full screen of a pattern within the length limit (parse, what V8's linear engine refuses, nested repetition and
 * its analysis), installed by lib/rules/pattern_analysis.ts. Not imported here: its libraries (regexpp, scslre) cost
 * several MB resident, and `serve` screens on a worker that loads them (plain patterns need neither, see
 * {@linkcode quickVerdict}), never on the thread that answers admissions.
 */
export type PatternJudge = (source: string) => PatternVerdict;

let fullScreen: PatternJudge | undefined;

/** Makes {@linkcode screenPattern} screen patterns fully in this isolate (pattern_analysis.ts calls it). */
export function installJudge(judge: PatternJudge): void {
  fullScreen = judge;
}

function judge(source: string): PatternVerdict {
  if (source.length > MAX_PATTERN_LENGTH) {
    return {
      status: "too-long",
      reason: `the pattern is ${source.length} characters long, over the limit of ${MAX_PATTERN_LENGTH}`,
    };
  }
  if (fullScreen === undefined) {
    // Only a process that screened every pattern first gets here without the screen (serve: the worker screens).
    return {
      status: "catastrophic",
      reason: "the pattern could not be proven safe: it was not screened (no screening here)",
    };
  }
  return fullScreen(source);
}
