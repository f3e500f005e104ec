// Linear regular expressions for ImageSwap's globs and its default line's guard: no look-around, no back-reference.

import { MAX_PATTERN_LENGTH } from "../rules/pattern.ts";
import { escapePattern } from "./common.ts";

/** One piece of a Python fnmatch glob. */
type GlobToken =
  | { readonly kind: "star" }
  | { readonly kind: "any" }
  | { readonly kind: "class"; readonly source: string }
  | { readonly kind: "literal"; readonly char: string };

function tokenize(glob: string): GlobToken[] {
  const tokens: GlobToken[] = [];
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] ?? "";
    if (c === "*") tokens.push({ kind: "star" });
    else if (c === "?") tokens.push({ kind: "any" });
    else if (c === "[") {
      const close = glob.indexOf("]", glob[i + 1] === "!" ? i + 3 : i + 2);
      if (close < 0) tokens.push({ kind: "literal", char: c });
      else {
        let inner = glob.slice(i + 1, close);
        if (inner.startsWith("!")) inner = `^${inner.slice(1)}`;
        tokens.push({ kind: "class", source: `[${inner.replaceAll("\\", "\\\\")}]` });
        i = close;
      }
    } else tokens.push({ kind: "literal", char: c });
  }
  return tokens;
}

/** Python's fnmatch pattern as a JavaScript pattern (without anchors). */
export function fnmatchPattern(glob: string): string {
  return tokenize(glob).map((token) => tokenPattern(token, false)).join("");
}

/** Image references are printable ASCII: a class without `/` is spelled out over that alphabet. */
const PRINTABLE = Array.from({ length: 0x7f - 0x21 }, (_, i) => String.fromCharCode(0x21 + i));

function canMatchSlash(token: GlobToken): boolean {
  switch (token.kind) {
    case "star":
    case "any":
      return true;
    case "literal":
      return token.char === "/";
    case "class":
      return safeTest(token.source, "/");
  }
}

function safeTest(source: string, text: string): boolean {
  try {
    return new RegExp(`^${source}$`).test(text);
  } catch {
    return false;
  }
}

function tokenPattern(token: GlobToken, noSlash: boolean): string {
  switch (token.kind) {
    case "star":
      return noSlash ? "[^/]*" : ".*";
    case "any":
      return noSlash ? "[^/]" : ".";
    case "literal":
      return escapePattern(token.char);
    case "class": {
      if (!noSlash || !safeTest(token.source, "/")) return token.source;
      const members = PRINTABLE.filter((c) => c !== "/" && safeTest(token.source, c));
      return members.length === 0 ? "[^\\s\\S]" : `[${members.map(classChar).join("")}]`;
    }
  }
}

function classChar(c: string): string {
  return /[\\\]^-]/.test(c) ? `\\${c}` : c;
}

/**
 * A `[REPLACE]` glob as a linear pattern over the whole image that captures its last path component, with the
 * replacement template that puts `target` before that component. One alternative per place the image's last
 * `/` can fall (a `/` of the glob, or inside a wildcard): exactly one group takes part in a match, and
 * unmatched groups expand to nothing, so `$1$2…` is the last component whichever alternative matched.
 */
export function replaceGlobRule(glob: string, target: string): { match: string; replace: string } {
  const tokens = tokenize(glob);
  const full = (from: number, to: number) => tokens.slice(from, to).map((token) => tokenPattern(token, false)).join("");
  const last = (from: number) => tokens.slice(from).map((token) => tokenPattern(token, true)).join("");
  const slashFree = (from: number) =>
    tokens.slice(from).every((token) => token.kind !== "literal" || token.char !== "/");
  const alternatives: string[] = [];
  for (let k = tokens.length - 1; k >= 0; k--) {
    const token = tokens[k];
    if (token === undefined || !canMatchSlash(token) || !slashFree(k + 1)) continue;
    alternatives.push(
      token.kind === "star" ? `${full(0, k)}.*/([^/]*${last(k + 1)})` : `${full(0, k)}/(${last(k + 1)})`,
    );
  }
  if (slashFree(0)) alternatives.push(`(${last(0)})`);
  const prefix = target === "" || target.endsWith("/") ? target : `${target}/`;
  const groups = alternatives.map((_, i) => `$${i + 1}`).join("");
  return {
    match: alternatives.length === 0 ? "^[^\\s\\S]" : `^(?:${alternatives.join("|")})$`,
    replace: `${prefix.replaceAll("$", "$$$$")}${groups}`,
  };
}

/**
 * Texts over the characters outside `excluded` that differ from `literal` (`mode: "exact"`), or that do not
 * start with it (`mode: "prefix"`), as a linear pattern: at each position either the text ends, or the next
 * character differs, or it is the literal's and the rest follows. `nonEmpty` leaves out the empty text.
 */
export function unlike(literal: string, excluded: string, mode: "exact" | "prefix", nonEmpty: boolean): string {
  const other = excluded === "" ? "." : `[^${[...excluded].map(classChar).join("")}]`;
  let tail: string | undefined = mode === "exact" ? `${other}+` : undefined;
  for (let i = literal.length - 1; i >= 0; i--) {
    const c = literal[i] ?? "";
    const alternatives: string[] = [];
    if (i > 0 || !nonEmpty) alternatives.push("");
    alternatives.push(`[^${[...excluded, c].map(classChar).join("")}]${other}*`);
    if (tail !== undefined && !excluded.includes(c)) alternatives.push(`${escapePattern(c)}${tail}`);
    tail = `(?:${alternatives.join("|")})`;
  }
  return tail ?? (nonEmpty ? `${other}+` : `${other}*`);
}

/**
 * The default line's rule: every normalized reference except those under `own` (the default's own target,
 * `registry/path/` or a `-`-ended text), which a Pod admitted again must keep. Undefined when no linear
 * pattern can say it (a port in the target's registry) within the length limit.
 */
export function defaultRule(
  value: string,
  own: string,
  dash: boolean,
): { match: string; replace: string } | undefined {
  const rule = guardedDefault(value, own, dash);
  return rule === undefined || rule.match.length > MAX_PATTERN_LENGTH ? undefined : rule;
}

function guardedDefault(value: string, own: string, dash: boolean): { match: string; replace: string } | undefined {
  const slash = own.indexOf("/");
  const registry = slash < 0 ? own : own.slice(0, slash);
  const rest = slash < 0 ? undefined : own.slice(slash + 1);
  if (registry.includes(":") || registry === "") return undefined;
  const escaped = value.replaceAll("$", "$$$$");
  if (!dash) {
    // own is `registry/path/`: another registry, or the same registry and a path elsewhere.
    const alternatives = [`${unlike(registry, "/", "exact", true)}/(.*)`];
    if (rest !== undefined && rest !== "") {
      alternatives.push(`${escapePattern(registry)}/(${unlike(rest, "", "prefix", false)})`);
    }
    return {
      match: `^(?:${alternatives.join("|")})$`,
      replace: `${escaped.replace(/\/+$/, "")}/${alternatives.map((_, i) => `$${i + 1}`).join("")}`,
    };
  }
  if (rest === undefined) {
    // own is the start of a registry host.
    return {
      match: `^(${unlike(registry, "/:", "prefix", true)})(?::[0-9]+)?/(.*)$`,
      replace: `${escaped}$1/$2`,
    };
  }
  const host = escapePattern(registry);
  return {
    match: `^(?:(${unlike(registry, "/:", "exact", true)})(?::[0-9]+)?/(.*)|(${host}):[0-9]+/(.*)|(${host})/(${
      unlike(rest, "", "prefix", false)
    }))$`,
    replace: `${escaped}$1$3$5/$2$4$6`,
  };
}
