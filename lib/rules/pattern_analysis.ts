// The full pattern screen (regexpp's parse, what V8's linear engine refuses, scslre's analysis of exponential
// backtracking); importing this module installs it into lib/rules/pattern.ts.

import { type AST, RegExpParser, visitRegExpAST } from "@eslint-community/regexpp";
import { analyse } from "scslre";
import { installJudge, type PatternVerdict } from "./pattern.ts";

/**
 * V8's linear-time engine is bounded by how often counted repetitions copy their body: V8 refuses
 * patterns whose nested bounds multiply past 16, so mirrorhook refuses them too, before V8 is asked.
 */
const MAX_REPLICATION = 16;

/** How a pattern's nested or adjacent quantifiers can match one text in exponentially many ways, or undefined. */
function exponentialIn(pattern: AST.Pattern, flags: AST.Flags): string | undefined {
  const result = analyse({ pattern, flags }, { assumeRejectingSuffix: false });
  const report = result.reports.find((found) => found.exponential);
  if (report === undefined) return undefined;
  const at = report.type === "Trade"
    ? `${report.startQuant.raw} and ${report.endQuant.raw}`
    : report.type === "Self"
    ? `${report.quant.raw} inside ${report.parentQuant.raw}`
    : report.quant.raw;
  return `${at} can match ${JSON.stringify(report.character.pick.repeat(8))}\u2026 in exponentially many ways`;
}

/** The full screen of a pattern within the length limit (see `PatternJudge` in pattern.ts). */
function screenParsed(source: string): PatternVerdict {
  let pattern: AST.Pattern;
  try {
    // Annex B syntax, as `new RegExp(source)` reads it.
    pattern = new RegExpParser({ strict: false, ecmaVersion: 2025 }).parsePattern(source, 0, source.length, {
      unicode: false,
      unicodeSets: false,
    });
  } catch (error) {
    return { status: "invalid", reason: error instanceof Error ? error.message : String(error) };
  }
  const unsupported = linearObstacle(pattern);
  if (unsupported !== undefined) {
    return { status: "unbounded", reason: unsupported };
  }
  // Exponential backtracking needs a repeated part that itself repeats or chooses: without such nesting the
  // analysis can only find polynomial cases, which the linear engine makes harmless. Skip it (same verdict).
  if (!hasNestedRepetition(pattern)) return { status: "safe" };
  let exponential: string | undefined;
  try {
    exponential = exponentialIn(pattern, flagsOf(pattern));
  } catch (error) {
    // The analysis gives up on some patterns (too many automaton states): not proven safe.
    return {
      status: "catastrophic",
      reason: `the pattern could not be proven safe: ${error instanceof Error ? error.message : String(error)}`,
    };
  }
  if (exponential !== undefined) return { status: "catastrophic", reason: exponential };
  return { status: "safe" };
}

/** Whether a quantifier that repeats (max over 1) contains another quantifier or an alternation. */
function hasNestedRepetition(pattern: AST.Pattern): boolean {
  let nested = false;
  const repeats = (node: AST.Node) => node.type === "Quantifier" && node.max > 1;
  const insideRepetition = (node: AST.Node): boolean => {
    for (let at = node.parent; at !== null; at = at.parent) if (repeats(at)) return true;
    return false;
  };
  visitRegExpAST(pattern, {
    onQuantifierEnter(node) {
      if (!nested && insideRepetition(node)) nested = true;
    },
    onAlternativeEnter(node) {
      const parent = node.parent;
      if (!nested && parent.type !== "Pattern" && parent.alternatives.length > 1 && insideRepetition(node)) {
        nested = true;
      }
    },
  });
  return nested;
}

function flagsOf(pattern: AST.Pattern): AST.Flags {
  return {
    type: "Flags",
    parent: null,
    start: pattern.end,
    end: pattern.end,
    raw: "",
    dotAll: false,
    global: false,
    hasIndices: false,
    ignoreCase: false,
    multiline: false,
    sticky: false,
    unicode: false,
    unicodeSets: false,
  };
}

/** The first construct that V8's linear engine refuses, described, or undefined. */
function linearObstacle(pattern: AST.Pattern): string | undefined {
  let found: string | undefined;
  const factors = new Map<AST.Node, number>();
  const factorOf = (node: AST.Node): number => {
    for (let at: AST.Node | null = node.parent; at !== null; at = at.parent) {
      const factor = factors.get(at);
      if (factor !== undefined) return factor;
    }
    return 1;
  };
  visitRegExpAST(pattern, {
    onBackreferenceEnter(node) {
      found ??= `the back-reference ${node.raw}`;
    },
    onAssertionEnter(node) {
      if (node.kind === "lookahead") found ??= `the look-ahead ${node.raw}`;
      else if (node.kind === "lookbehind") found ??= `the look-behind ${node.raw}`;
    },
    onModifiersEnter(node) {
      found ??= `the modifiers ${JSON.stringify(node.raw)}`;
    },
    onQuantifierEnter(node) {
      const { min, max } = node;
      if (min > MAX_REPLICATION || (max !== Infinity && max > MAX_REPLICATION)) {
        found ??= `the counted repetition ${JSON.stringify(quantifierText(node))} (more than ${MAX_REPLICATION})`;
        return;
      }
      // V8 copies the body `max` times, or for an open bound `min` times (once more when the body can be empty).
      const copies = max !== Infinity ? max : min > 0 && minLength(node.element) > 0 ? min : min + 1;
      const factor = factorOf(node) * copies;
      factors.set(node, factor);
      if (factor > MAX_REPLICATION) {
        found ??= `the nested counted repetitions ending in ${
          JSON.stringify(quantifierText(node))
        } (they repeat their body ${factor} times, more than ${MAX_REPLICATION})`;
      }
    },
  });
  return found;
}

/** The fewest characters `node` can match, as V8 counts them (assertions and back-references none). */
function minLength(node: AST.Node): number {
  switch (node.type) {
    case "Character":
    case "CharacterClass":
    case "ExpressionCharacterClass":
    case "CharacterSet":
      return 1;
    case "Quantifier":
      return node.min === 0 ? 0 : node.min * minLength(node.element);
    case "Group":
    case "CapturingGroup":
    case "Pattern":
      return Math.min(...node.alternatives.map(minLength));
    case "Alternative":
      return node.elements.reduce((sum, element) => sum + minLength(element), 0);
    default:
      return 0;
  }
}

function quantifierText(node: AST.Quantifier): string {
  return node.raw.slice(node.element.raw.length);
}

installJudge(screenParsed);
