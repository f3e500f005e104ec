// Compares another tool's result with mirrorhook's on sample images, and names each difference found.

import { normalizeReference, sameImage } from "../image/reference.ts";
import { compileRuleSet, type ImageContext, type RuleSet } from "../rules/compile.ts";
import { decide } from "../rules/engine.ts";
import { hasErrors } from "../rules/problem.ts";
import { type RewriteObject, validateObject } from "../rules/schema.ts";
import {
  type Behaviour,
  type CompatProblem,
  compatProblem,
  type ForeignFormat,
  type Position,
  q,
  TOOL_NAMES,
  type TranslatedObject,
} from "./common.ts";

/** What the other tool does with one image. */
export interface ToolResult {
  readonly output: string;
  /** Where in the source the deciding entry is. */
  readonly at?: Position | undefined;
  /** The tool fails the admission request instead of answering. */
  readonly failure?: string;
}

/** An image to try, and the behaviour a difference on it shows. */
export interface Sample {
  readonly image: string;
  readonly behaviour: Behaviour;
  readonly context?: ImageContext;
}

/** Options of {@linkcode compareWithTool}. */
export interface CompareOptions {
  readonly format: ForeignFormat;
  readonly source: string;
  readonly objects: readonly TranslatedObject[];
  readonly samples: readonly Sample[];
  readonly tool: (image: string, context: ImageContext) => ToolResult;
  /** Lines already warned about: differences the tool decides there are not reported again. */
  readonly explained?: ReadonlySet<number>;
  /** One sentence per behaviour saying what the tool does and what mirrorhook does instead. */
  readonly explain: Partial<Record<Behaviour, string>>;
}

/** Compiles translated objects on their own, for probing; undefined when they have errors. */
export function compileTranslation(objects: readonly TranslatedObject[]): RuleSet | undefined {
  const valid: RewriteObject[] = [];
  for (const entry of objects) {
    const result = validateObject(entry.raw);
    if (result.object === undefined || hasErrors(result.problems)) return undefined;
    valid.push(result.object);
  }
  const compiled = compileRuleSet(valid);
  return hasErrors(compiled.problems) ? undefined : compiled.ruleSet;
}

/**
 * Runs every sample through the other tool and through the translated rules; each difference becomes one
 * warning per behaviour and line, with the sample as its example. Also reports outputs the other tool
 * rewrites again when the Pod is admitted a second time.
 */
export function compareWithTool(options: CompareOptions): CompatProblem[] {
  const ruleSet = compileTranslation(options.objects);
  if (ruleSet === undefined) return [];
  const tool = TOOL_NAMES[options.format];
  const locateRule = (object: RewriteObject, index: number): Position | undefined => {
    const entry = options.objects.find((candidate) =>
      (candidate.raw["metadata"] as { name?: unknown } | undefined)?.name === object.metadata.name &&
      candidate.raw["kind"] === object.kind
    );
    return entry?.locate(["spec", "rules", index]);
  };
  const problems: CompatProblem[] = [];
  const seen = new Set<string>();
  const report = (behaviour: Behaviour, at: Position | undefined, detail: string) => {
    const key = `${behaviour}:${at?.line ?? 0}`;
    if (seen.has(key)) return;
    seen.add(key);
    const why = options.explain[behaviour];
    problems.push(
      compatProblem(`${detail}${why === undefined ? "" : `: ${why}`}`, {
        source: options.source,
        at,
        behaviour,
      }),
    );
  };
  for (const sample of options.samples) {
    const context = sample.context ?? {};
    const theirs = options.tool(sample.image, context);
    const decision = decide(ruleSet, sample.image, { context, bypassPrefix: "" });
    const ours = decision.action === "rewrite" ? decision.output : decision.input;
    const ourAt = "rule" in decision && decision.rule !== undefined
      ? locateRule(decision.rule.object.source, decision.rule.index)
      : undefined;
    const at = ourAt ?? theirs.at;
    if (theirs.at !== undefined && options.explained?.has(theirs.at.line) === true) continue;
    if (theirs.failure !== undefined) {
      report(
        sample.behaviour,
        theirs.at ?? at,
        `${tool} fails the admission of ${q(sample.image)} (${theirs.failure}); mirrorhook gives ${q(ours)}`,
      );
      continue;
    }
    if (!sameImage(theirs.output, ours)) {
      const invalid = normalizeReference(theirs.output) === undefined ? " (not a valid reference)" : "";
      const there = theirs.at !== undefined && theirs.at.line !== at?.line ? ` (by line ${theirs.at.line})` : "";
      const what = theirs.output === sample.image
        ? `${tool} leaves ${q(sample.image)} unchanged${there}`
        : `${tool} turns ${q(sample.image)} into ${q(theirs.output)}${invalid}${there}`;
      const mine = ours === sample.image ? "mirrorhook leaves it unchanged" : `mirrorhook turns it into ${q(ours)}`;
      report(sample.behaviour, at, `${what}, ${mine}`);
    }
    if (theirs.output !== sample.image && normalizeReference(theirs.output) !== undefined) {
      const again = options.tool(theirs.output, context);
      if (again.failure === undefined && !sameImage(again.output, theirs.output)) {
        report(
          "prefix-stacking",
          again.at ?? theirs.at,
          `when a Pod is admitted again, ${tool} turns its own output ${q(theirs.output)} into ${
            q(again.output)
          }; mirrorhook leaves a rewritten image alone`,
        );
      }
    }
  }
  return problems;
}
