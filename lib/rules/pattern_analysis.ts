// Static analysis of exponential backtracking (scslre) for pattern screening; importing this module installs it.

import type { AST } from "@eslint-community/regexpp";
import { analyse } from "scslre";
import { installAnalyser } from "./pattern.ts";

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

installAnalyser(exponentialIn);
