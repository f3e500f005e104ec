// Linear regular expressions for ImageSwap's [REPLACE] globs: no look-around, no back-reference.

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
 * unmatched groups expand to nothing, so `$1$2...` is the last component whichever alternative matched.
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
