// `mirrorhook rewrite IMAGE...`: what the rules do to each image, optionally with the reason.

import { normalizeReference } from "../image/reference.ts";
import type { CompiledRule, ImageContext } from "../rules/compile.ts";
import { decide, type Decision, describeRule } from "../rules/engine.ts";
import { type CliIo, EXIT } from "./io.ts";
import { loadRulesForCli } from "./rules.ts";

/** Options of `rewrite`, as parsed. */
export interface RewriteOptions {
  readonly rules: readonly string[];
  readonly namespace?: string;
  readonly podLabels?: Readonly<Record<string, string>>;
  readonly namespaceLabels?: Readonly<Record<string, string>>;
  readonly explain?: boolean;
  readonly output: "text" | "json";
  readonly bypassPrefix?: string;
}

/** The image a decision leaves in the Pod. */
export function resultingImage(decision: Decision): string {
  return decision.action === "rewrite" || decision.action === "bypass" ? decision.output : decision.input;
}

function describeSpec(rule: CompiledRule): string {
  const spec = rule.object.source.spec.rules[rule.index];
  const what = `${rule.type} ${JSON.stringify(rule.type === "match" ? spec?.match : rule.key)}`;
  return rule.keep ? `${what}, keep` : `${what} → ${JSON.stringify(spec?.replace ?? "")}`;
}

/** Human explanation lines for one decision. */
export function explainDecision(decision: Decision): string[] {
  const lines: string[] = [];
  const normalized = normalizeReference(decision.input);
  if (normalized !== undefined && normalized !== decision.input) lines.push(`normalized: ${normalized}`);
  switch (decision.action) {
    case "rewrite":
      lines.push(`rewritten by ${describeRule(decision.rule)}: ${describeSpec(decision.rule)}`);
      break;
    case "keep":
      lines.push(`kept by ${describeRule(decision.rule)}: ${describeSpec(decision.rule)}`);
      break;
    case "bypass":
      lines.push("bypass prefix: no rule applied");
      break;
    case "none":
      lines.push("unchanged: no rule matched");
      break;
    case "invalid-input":
      lines.push(`unchanged: invalid reference: ${decision.error.message}`);
      break;
    case "invalid-output":
      lines.push(
        `unchanged: ${decision.rule === undefined ? "the bypass prefix" : describeRule(decision.rule)} would produce ${
          JSON.stringify(decision.output)
        }, which is invalid: ${decision.error.message}`,
      );
      break;
  }
  lines.push(...decision.notes);
  return lines;
}

function toJson(decision: Decision): Record<string, unknown> {
  const rule = "rule" in decision && decision.rule !== undefined
    ? {
      kind: decision.rule.object.kind,
      name: decision.rule.object.name,
      ...(decision.rule.object.namespace === undefined ? {} : { namespace: decision.rule.object.namespace }),
      index: decision.rule.index,
      type: decision.rule.type,
    }
    : undefined;
  return {
    input: decision.input,
    output: resultingImage(decision),
    action: decision.action,
    ...(normalizeReference(decision.input) === undefined ? {} : { normalized: normalizeReference(decision.input) }),
    ...(rule === undefined ? {} : { rule }),
    ...("error" in decision ? { error: decision.error.message } : {}),
    ...(decision.notes.length === 0 ? {} : { notes: decision.notes }),
  };
}

/** Runs `rewrite`; exit 1 when rules fail to load or any image is invalid or would become invalid. */
export async function runRewrite(images: readonly string[], options: RewriteOptions, io: CliIo): Promise<number> {
  const ruleSet = await loadRulesForCli(options.rules, io);
  if (ruleSet === undefined) return EXIT.failed;
  const context: ImageContext = {
    ...(options.namespace === undefined ? {} : { namespace: options.namespace }),
    podLabels: options.podLabels ?? {},
    ...(options.namespaceLabels === undefined ? {} : { namespaceLabels: options.namespaceLabels }),
  };
  const decisions = images.map((image) =>
    decide(ruleSet, image, context, {
      explain: options.explain === true,
      ...(options.bypassPrefix === undefined ? {} : { bypassPrefix: options.bypassPrefix }),
    })
  );
  if (options.output === "json") {
    io.stdout(`${JSON.stringify(decisions.map(toJson), null, 2)}\n`);
  } else {
    for (const decision of decisions) {
      io.stdout(`${resultingImage(decision)}\n`);
      if (options.explain === true) {
        io.stdout(`  # ${decision.input}\n`);
        for (const line of explainDecision(decision)) io.stdout(`  # ${line}\n`);
      }
    }
  }
  let failed = false;
  for (const decision of decisions) {
    if (decision.action === "invalid-input" || decision.action === "invalid-output") {
      failed = true;
      io.stderr(`mirrorhook: left ${JSON.stringify(decision.input)} unchanged: ${decision.error.message}\n`);
    }
  }
  return failed ? EXIT.failed : EXIT.ok;
}
