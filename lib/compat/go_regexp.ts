// Go (RE2) patterns and regexp.Expand templates in JavaScript: conversion, and Go's ReplaceAllString for comparison.

/** Result of converting a Go pattern. */
export type PatternConversion =
  | { readonly ok: true; readonly source: string }
  | { readonly ok: false; readonly error: string };

const ALLOWED_LETTER_ESCAPES = new Set("afnrtvdDsSwWbB");
const CONTROL_ESCAPES: Readonly<Record<string, string>> = {
  a: "\\x07",
  f: "\\f",
  t: "\\t",
  n: "\\n",
  r: "\\r",
  v: "\\v",
};
const POSIX_CLASSES: Readonly<Record<string, string>> = {
  alnum: "0-9A-Za-z",
  alpha: "A-Za-z",
  ascii: "\\x00-\\x7F",
  blank: "\\t ",
  cntrl: "\\x00-\\x1F\\x7F",
  digit: "0-9",
  lower: "a-z",
  space: "\\t\\n\\v\\f\\r ",
  upper: "A-Z",
  word: "0-9A-Za-z_",
  xdigit: "0-9A-Fa-f",
};
const GO_NAME = /^[A-Za-z0-9_]+$/;
const JS_GROUP_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function escapeLiteral(text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|/-]/g, "\\$&");
}

/** `\x{41}` -> `\x41`; JavaScript without the `u` flag has no braces form. */
function hexEscape(code: number): string | undefined {
  if (code <= 0xff) return `\\x${code.toString(16).padStart(2, "0")}`;
  if (code <= 0xffff) return `\\u${code.toString(16).padStart(4, "0")}`;
  return undefined;
}

/**
 * Converts a Go regular expression to a JavaScript one with the same matches on image references:
 * `(?P<name>...)` -> `(?<name>...)`, `\A`/`\z` -> `^`/`$`, `\Q...\E` -> escaped text, `(?i)` -> `(?i:...)`,
 * POSIX classes -> ranges. Syntax Go rejects (lookaround, backreferences) or JavaScript cannot express
 * without flags (`\pL`, ungreedy mode) is an error.
 */
export function convertGoPattern(pattern: string): PatternConversion {
  let out = "";
  // For each open group: how many `(?flags:` wrappers were opened inside it by a bare `(?flags)`.
  const wrappers: number[] = [0];
  let i = 0;
  const fail = (error: string): PatternConversion => ({ ok: false, error });
  while (i < pattern.length) {
    const c = pattern[i] ?? "";
    if (c === "\\") {
      const next = pattern[i + 1];
      if (next === undefined) return fail("trailing backslash");
      if (next === "Q") {
        const end = pattern.indexOf("\\E", i + 2);
        const literal = end < 0 ? pattern.slice(i + 2) : pattern.slice(i + 2, end);
        out += escapeLiteral(literal);
        i = end < 0 ? pattern.length : end + 2;
        continue;
      }
      if (next === "A") out += "^";
      else if (next === "z") out += "$";
      else if (next === "x") {
        const braced = /^\{([0-9A-Fa-f]{1,6})\}/.exec(pattern.slice(i + 2));
        if (braced !== null) {
          const escaped = hexEscape(parseInt(braced[1] ?? "0", 16));
          if (escaped === undefined) return fail(`\\x{${braced[1]}} is outside the range JavaScript patterns can hold`);
          out += escaped;
          i += 2 + braced[0].length;
          continue;
        }
        if (!/^[0-9A-Fa-f]{2}/.test(pattern.slice(i + 2))) return fail("\\x needs two hex digits or {hex}");
        out += pattern.slice(i, i + 4);
        i += 4;
        continue;
      } else if (next === "p" || next === "P") {
        return fail(`Unicode classes (\\${next}) are not supported; use an explicit character class`);
      } else if (next === "C") return fail("\\C (any byte) is not supported");
      else if (/[1-9]/.test(next)) return fail(`\\${next}: Go has no backreferences`);
      else if (next === "0") out += "\\x00";
      else if (CONTROL_ESCAPES[next] !== undefined) out += CONTROL_ESCAPES[next];
      else if (/[A-Za-z]/.test(next) && !ALLOWED_LETTER_ESCAPES.has(next)) {
        return fail(`invalid escape sequence \\${next}`);
      } else out += `\\${next}`;
      i += 2;
      continue;
    }
    if (c === "[") {
      const converted = convertClass(pattern, i);
      if (!converted.ok) return fail(converted.error);
      out += converted.source;
      i = converted.end;
      continue;
    }
    if (c === "(") {
      if (pattern[i + 1] !== "?") {
        wrappers.push(0);
        out += "(";
        i++;
        continue;
      }
      const rest = pattern.slice(i + 2);
      const named = /^(?:P?<)([^>]*)>/.exec(rest);
      if (named !== null && !rest.startsWith("<=") && !rest.startsWith("<!")) {
        const name = named[1] ?? "";
        if (!GO_NAME.test(name)) return fail(`invalid group name ${JSON.stringify(name)}`);
        if (!JS_GROUP_NAME.test(name)) {
          return fail(`group name ${JSON.stringify(name)} must start with a letter or _ in mirrorhook`);
        }
        wrappers.push(0);
        out += `(?<${name}>`;
        i += 2 + named[0].length;
        continue;
      }
      if (rest.startsWith(":")) {
        wrappers.push(0);
        out += "(?:";
        i += 3;
        continue;
      }
      if (/^(?:=|!|<=|<!)/.test(rest)) return fail("lookaround assertions are not valid in Go (RE2)");
      if (/^P[=>]/.test(rest)) return fail("named backreferences are not valid in Go (RE2)");
      const flags = /^([imsU]*)(?:-([imsU]*))?([:)])/.exec(rest);
      if (flags === null) return fail(`invalid group syntax ${JSON.stringify(pattern.slice(i, i + 6))}`);
      const on = flags[1] ?? "";
      const off = flags[2] ?? "";
      if (`${on}${off}`.includes("U")) return fail("ungreedy mode (?U) is not supported");
      if (on === "" && off === "") return fail("empty flag group");
      const modifiers = `${on}${off === "" ? "" : `-${off}`}`;
      if (flags[3] === ":") {
        wrappers.push(0);
        out += `(?${modifiers}:`;
      } else {
        // A bare (?i) applies to the rest of the enclosing group: wrap that rest.
        out += `(?${modifiers}:`;
        wrappers[wrappers.length - 1] = (wrappers.at(-1) ?? 0) + 1;
      }
      i += 2 + flags[0].length;
      continue;
    }
    if (c === ")") {
      if (wrappers.length <= 1) return fail("unexpected )");
      out += ")".repeat(wrappers.pop() ?? 0) + ")";
      i++;
      continue;
    }
    out += c;
    i++;
  }
  if (wrappers.length > 1) return fail("missing closing )");
  out += ")".repeat(wrappers[0] ?? 0);
  try {
    new RegExp(out);
  } catch (error) {
    return fail(error instanceof Error ? error.message : String(error));
  }
  return { ok: true, source: out };
}

function convertClass(
  pattern: string,
  start: number,
): { ok: true; source: string; end: number } | { ok: false; error: string } {
  let out = "[";
  let i = start + 1;
  if (pattern[i] === "^") {
    out += "^";
    i++;
  }
  // In Go a `]` right after `[` or `[^` is a literal; in JavaScript `[]` is an empty class.
  if (pattern[i] === "]") {
    out += "\\]";
    i++;
  }
  while (i < pattern.length) {
    const c = pattern[i] ?? "";
    if (c === "]") return { ok: true, source: `${out}]`, end: i + 1 };
    if (c === "[" && pattern[i + 1] === ":") {
      const close = pattern.indexOf(":]", i + 2);
      if (close < 0) return { ok: false, error: "unterminated [: class" };
      const name = pattern.slice(i + 2, close);
      if (name.startsWith("^")) return { ok: false, error: `negated POSIX class [:${name}:] is not supported` };
      const range = POSIX_CLASSES[name];
      if (range === undefined) return { ok: false, error: `unknown POSIX class [:${name}:]` };
      out += range;
      i = close + 2;
      continue;
    }
    if (c === "\\") {
      const next = pattern[i + 1];
      if (next === undefined) return { ok: false, error: "trailing backslash" };
      if (next === "p" || next === "P") {
        return { ok: false, error: `Unicode classes (\\${next}) are not supported; use an explicit character class` };
      }
      if (CONTROL_ESCAPES[next] !== undefined) out += CONTROL_ESCAPES[next];
      else if (/[A-Za-z]/.test(next) && !ALLOWED_LETTER_ESCAPES.has(next) && next !== "x") {
        return { ok: false, error: `invalid escape sequence \\${next}` };
      } else out += `\\${next}`;
      i += 2;
      continue;
    }
    if (c === "[") out += "\\[";
    else out += c;
    i++;
  }
  return { ok: false, error: "missing closing ]" };
}

/** Groups a pattern defines: their count and names. */
export interface PatternGroups {
  readonly count: number;
  readonly names: ReadonlySet<string>;
}

/** The groups of a JavaScript pattern. */
export function patternGroups(source: string): PatternGroups {
  const match = new RegExp(`${source}|`).exec("");
  return { count: (match?.length ?? 1) - 1, names: new Set(Object.keys(match?.groups ?? {})) };
}

/** Why a Go template reference expands to nothing. */
export interface TemplateNote {
  /** The reference as written, e.g. `$1_suffix`, `${ECR_REGISTRY}`. */
  readonly token: string;
  readonly reason: "no-such-group" | "name-swallows-text";
}

/** A Go template as a JavaScript replacement string. */
export interface TemplateConversion {
  readonly replace: string;
  readonly notes: readonly TemplateNote[];
}

type Piece = { literal: string } | { group: number | string; token: string; braced: boolean };

/** Splits a Go template the way regexp.Expand reads it: `$$`, `${name}`, `$name` (longest word), else a literal `$`. */
function parseTemplate(template: string): Piece[] {
  const pieces: Piece[] = [];
  let literal = "";
  let i = 0;
  while (i < template.length) {
    const c = template[i] ?? "";
    if (c !== "$") {
      literal += c;
      i++;
      continue;
    }
    if (template[i + 1] === "$") {
      literal += "$";
      i += 2;
      continue;
    }
    let name: string | undefined;
    let length = 0;
    let braced = false;
    if (template[i + 1] === "{") {
      const close = template.indexOf("}", i + 2);
      const inner = close < 0 ? "" : template.slice(i + 2, close);
      if (close >= 0 && GO_NAME.test(inner)) {
        name = inner;
        length = close + 1 - i;
        braced = true;
      }
    } else {
      const word = /^[A-Za-z0-9_]+/.exec(template.slice(i + 1));
      if (word !== null) {
        name = word[0];
        length = 1 + word[0].length;
      }
    }
    if (name === undefined) {
      // Malformed: Go writes the `$` as it is.
      literal += "$";
      i++;
      continue;
    }
    if (literal !== "") pieces.push({ literal });
    literal = "";
    // A number without a leading zero is a group index; anything else is a group name.
    const index = /^(?:0|[1-9][0-9]*)$/.test(name) ? Number(name) : undefined;
    pieces.push({ group: index ?? name, token: template.slice(i, i + length), braced });
    i += length;
  }
  if (literal !== "") pieces.push({ literal });
  return pieces;
}

/**
 * Converts a Go regexp.Expand template to a JavaScript replacement with the same output: group references
 * Go leaves empty (unknown names, indexes past the last group, `$1x` read as the group `1x`) become nothing
 * and are returned as notes; literal `$` becomes `$$`.
 */
export function convertGoTemplate(template: string, groups: PatternGroups): TemplateConversion {
  let replace = "";
  const notes: TemplateNote[] = [];
  const pieces = parseTemplate(template);
  pieces.forEach((piece, position) => {
    if ("literal" in piece) {
      replace += piece.literal.replaceAll("$", "$$$$");
      return;
    }
    const { group, token } = piece;
    if (typeof group === "number") {
      if (group > groups.count) {
        notes.push({ token, reason: "no-such-group" });
        return;
      }
      if (group > 99) {
        // JavaScript replacements reach groups 1-99 only; name the group to go further.
        notes.push({ token, reason: "no-such-group" });
        return;
      }
      if (group === 0) {
        replace += "$&";
        return;
      }
      const next = pieces[position + 1];
      const digitFollows = next !== undefined && "literal" in next && /^[0-9]/.test(next.literal);
      replace += `$${digitFollows ? String(group).padStart(2, "0") : group}`;
      return;
    }
    if (groups.names.has(group)) {
      replace += `$<${group}>`;
      return;
    }
    notes.push({
      token,
      reason: !piece.braced && /^[0-9]+[A-Za-z_]/.test(group) ? "name-swallows-text" : "no-such-group",
    });
  });
  return { replace, notes };
}

/** Go's regexp.Expand of `template` for one match. */
export function expandGo(template: string, match: RegExpExecArray): string {
  let out = "";
  for (const piece of parseTemplate(template)) {
    if ("literal" in piece) out += piece.literal;
    else if (typeof piece.group === "number") out += match[piece.group] ?? "";
    else out += match.groups?.[piece.group] ?? "";
  }
  return out;
}

/**
 * Go's `Regexp.ReplaceAllString`: every non-overlapping match is replaced, an empty match right after a
 * match is skipped, and `^` anchors only at the start of the text.
 */
export function goReplaceAll(pattern: RegExp, text: string, template: string): string {
  const search = new RegExp(pattern.source, pattern.flags.includes("g") ? pattern.flags : `${pattern.flags}g`);
  let out = "";
  let lastMatchEnd = 0;
  let searchPos = 0;
  while (searchPos <= text.length) {
    search.lastIndex = searchPos;
    const match = search.exec(text);
    if (match === null) break;
    const start = match.index;
    const end = start + match[0].length;
    out += text.slice(lastMatchEnd, start);
    if (end > lastMatchEnd || start === 0) out += expandGo(template, match);
    lastMatchEnd = end;
    // Always advance at least one character past the search position.
    searchPos = searchPos + 1 > end ? searchPos + 1 : end;
  }
  return out + text.slice(lastMatchEnd);
}

/**
 * The literal text a pattern must start with, e.g. `gcr.io/` for `^gcr\.io/([^/]+)/(.+)`; empty when the
 * pattern is not anchored or starts with a metacharacter. Used to make sample images that reach a rule.
 */
export function literalPrefix(source: string): string {
  if (!source.startsWith("^")) return "";
  let out = "";
  let i = 1;
  while (i < source.length) {
    const c = source[i] ?? "";
    if (c === "\\") {
      const next = source[i + 1] ?? "";
      if (/[A-Za-z0-9]/.test(next)) break;
      out += next;
      i += 2;
      continue;
    }
    if (/[[\](){}|.*+?^$]/.test(c)) {
      // A quantifier makes the last character optional or repeated: drop it.
      if (/[*?{]/.test(c)) out = out.slice(0, -1);
      break;
    }
    out += c;
    i++;
  }
  return out;
}
