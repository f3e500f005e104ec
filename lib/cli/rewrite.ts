// `mirrorhook rewrite IMAGE...`: what the rules do to each image, optionally with the reason.

import { normalizeReference } from "../image/reference.ts";
import type { CompiledRule, ImageContext } from "../rules/compile.ts";
import { decide, type Decision, describeRule } from "../rules/engine.ts";
import { explainLosers } from "../rules/explain.ts";
import { Verifier, type VerifyResult } from "../verify/verifier.ts";
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
  /** Ask each rewrite's target registry whether the image exists, as the server does for `verify: true` rules. */
  readonly verify?: {
    readonly deadlineMs: number;
    readonly dockerConfigs: readonly string[];
    readonly insecureRegistries: readonly string[];
    readonly caFiles: Readonly<Record<string, string>>;
  };
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

/** Checks every rewrite target; null (after a message) when the verifier cannot be set up. */
async function verifyTargets(
  decisions: readonly Decision[],
  setup: NonNullable<RewriteOptions["verify"]>,
  io: CliIo,
): Promise<Map<string, VerifyResult> | null> {
  let verifier: Verifier;
  try {
    verifier = await Verifier.create({
      dockerConfigs: setup.dockerConfigs,
      insecureRegistries: setup.insecureRegistries,
      caFiles: setup.caFiles,
    });
  } catch (error) {
    io.stderr(`mirrorhook: Cannot set up registry checks: ${error instanceof Error ? error.message : String(error)}\n`);
    return null;
  }
  try {
    const targets = decisions.flatMap((decision) => decision.action === "rewrite" ? [decision.output] : []);
    return await verifier.checkAll(targets, setup.deadlineMs);
  } finally {
    await verifier.close();
  }
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
  const checks = options.verify === undefined ? undefined : await verifyTargets(decisions, options.verify, io);
  if (checks === null) return EXIT.failed;
  // With --verify, a rewrite whose target is not confirmed follows its rule's onMissing (default keep).
  const final = (decision: Decision): string => {
    const check = checks?.get(resultingImage(decision));
    if (decision.action !== "rewrite" || check === undefined || check.status === "present") {
      return resultingImage(decision);
    }
    return decision.rule.onMissing === "rewrite" ? decision.output : decision.input;
  };
  const verifyLine = (decision: Decision): string | undefined => {
    const check = decision.action === "rewrite" ? checks?.get(decision.output) : undefined;
    if (check === undefined) return undefined;
    const what = check.status === "present"
      ? "present in the registry"
      : check.status === "missing"
      ? "not in the registry"
      : `could not be checked (${check.status}${check.detail === undefined ? "" : `: ${check.detail}`})`;
    return `verify: ${resultingImage(decision)} is ${what}${check.cached ? " (cached)" : ""}`;
  };
  if (options.output === "json") {
    const rows = decisions.map((decision) => {
      const check = decision.action === "rewrite" ? checks?.get(decision.output) : undefined;
      return {
        ...toJson(decision),
        output: final(decision),
        ...(check === undefined ? {} : { verified: check.status }),
      };
    });
    io.stdout(`${JSON.stringify(rows, null, 2)}\n`);
  } else {
    for (const decision of decisions) {
      io.stdout(`${final(decision)}\n`);
      if (options.explain === true) {
        io.stdout(`  # ${decision.input}\n`);
        for (const line of explainDecision(decision)) io.stdout(`  # ${line}\n`);
        for (const line of explainLosers(ruleSet, decision, { context })) io.stdout(`  # ${line}\n`);
        const line = verifyLine(decision);
        if (line !== undefined) io.stdout(`  # ${line}\n`);
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
