// `mirrorhook rewrite IMAGE...`: what the rules do to each image, optionally with the reason.

import { normalizeReference } from "../image/reference.ts";
import type { CompiledRule, ImageContext, RuleSet } from "../rules/compile.ts";
import { decide, type Decision, decisionTargets, describeRule } from "../rules/engine.ts";
import { mutatePod, OPT_OUT_LABEL, type SkipReason } from "../mutate/pod.ts";
import { explainLosers } from "../rules/explain.ts";
import { Verifier, type VerifyResult } from "../verify/verifier.ts";
import { chooseTarget } from "../mutate/targets.ts";
import { withPlatforms } from "../rules/platforms.ts";
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
function resultingImage(decision: Decision): string {
  return decision.action === "rewrite" || decision.action === "bypass" ? decision.output : decision.input;
}

/** `match "^docker\.io/(.*)$" -> "cache/$1"`: patterns and replacements as written in the file, not JSON-escaped. */
function describeSpec(rule: CompiledRule): string {
  const spec = rule.object.source.spec.rules[rule.index];
  const what = `${rule.type} "${rule.type === "match" ? spec?.match ?? "" : rule.key}"`;
  return rule.keep ? `${what}, keep` : `${what} \u2192 "${spec?.replace ?? ""}"`;
}

/** Human explanation lines for one decision. */
function explainDecision(decision: Decision): string[] {
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

/** Why the webhook would leave a Pod with these labels, in this namespace, alone; undefined when it would not. */
function skipReason(ruleSet: RuleSet, options: RewriteOptions): string | undefined {
  const podLabels = options.podLabels ?? {};
  const skipped: SkipReason | undefined = mutatePod(
    { apiVersion: "v1", kind: "Pod", metadata: { labels: { ...podLabels } }, spec: { containers: [] } },
    {
      ruleSet,
      ...(options.namespace === undefined ? {} : { namespace: options.namespace }),
      ...(options.namespaceLabels === undefined ? {} : { namespaceLabels: options.namespaceLabels }),
    },
  ).skipped;
  if (skipped === undefined) return undefined;
  if (skipped === "excluded-namespace") return `namespace ${options.namespace} is excluded`;
  if (podLabels[OPT_OUT_LABEL] === "disabled") return `Pod label ${OPT_OUT_LABEL}=disabled`;
  const imported = (ruleSet.optOuts ?? []).find((optOut) =>
    optOut.kind === "label" && podLabels[optOut.key] === optOut.value
  );
  if (imported !== undefined) return `Pod label ${imported.key}=${imported.value} (an imported opt-out)`;
  if (options.namespaceLabels?.[OPT_OUT_LABEL] === "disabled") return `namespace label ${OPT_OUT_LABEL}=disabled`;
  return skipped;
}

/** Prints every image unchanged because the whole Pod is left alone, as the webhook would. */
function printSkipped(images: readonly string[], why: string, options: RewriteOptions, io: CliIo): number {
  if (options.output === "json") {
    const rows = images.map((image) => ({ input: image, output: image, action: "skipped", reason: why }));
    io.stdout(`${JSON.stringify(rows, null, 2)}\n`);
    return EXIT.ok;
  }
  for (const image of images) {
    io.stdout(`${image}\n`);
    if (options.explain === true) io.stdout(`  # ${image}\n  # unchanged: the Pod is left alone: ${why}\n`);
  }
  return EXIT.ok;
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
    // Every target of each rule (`to`), keyed with the rule's required platforms, as the webhook asks them.
    const targets = decisions.flatMap((decision) =>
      decision.action === "rewrite"
        ? decisionTargets(decision).map((target) => withPlatforms(target, decision.rule.platforms))
        : []
    );
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
  const skipped = skipReason(ruleSet, options);
  if (skipped !== undefined) return printSkipped(images, skipped, options, io);
  const decisions = images.map((image) =>
    decide(ruleSet, image, {
      context,
      explain: options.explain === true,
      ...(options.bypassPrefix === undefined ? {} : { bypassPrefix: options.bypassPrefix }),
    })
  );
  const checks = options.verify === undefined ? undefined : await verifyTargets(decisions, options.verify, io);
  if (checks === null) return EXIT.failed;
  // With --verify, the first target the registry confirms wins; none confirmed -> the rule's onMissing (default keep).
  const choiceOf = (decision: Decision) =>
    decision.action === "rewrite" && checks !== undefined
      ? chooseTarget(decisionTargets(decision), decision.rule, (key) => checks.get(key))
      : undefined;
  const final = (decision: Decision): string => {
    const choice = choiceOf(decision);
    if (decision.action !== "rewrite" || choice === undefined) return resultingImage(decision);
    if (choice.chosen !== undefined) return choice.chosen;
    return decision.rule.onMissing === "rewrite" ? decision.output : decision.input;
  };
  const verifyLine = (decision: Decision): string | undefined => {
    const choice = choiceOf(decision);
    if (choice === undefined || decision.action !== "rewrite") return undefined;
    const shown = choice.chosen ?? decision.output;
    const check = checks?.get(withPlatforms(shown, decision.rule.platforms));
    if (check === undefined) return undefined;
    const what = check.status === "present"
      ? "present in the registry"
      : check.status === "missing"
      ? "not in the registry"
      : `could not be checked (${check.status}${check.detail === undefined ? "" : `: ${check.detail}`})`;
    const skipped = choice.chosen === undefined || choice.skipped.length === 0
      ? ""
      : `; skipped ${choice.skipped.join("; ")}`;
    return `verify: ${shown} is ${what}${check.cached ? " (cached)" : ""}${skipped}`;
  };
  // With --explain and --verify, the last line says what finally happened and why.
  const finalLine = (decision: Decision): string | undefined => {
    const choice = choiceOf(decision);
    if (choice === undefined || decision.action !== "rewrite") return undefined;
    if (choice.chosen !== undefined) {
      return `final: rewrote ${decision.input} to ${choice.chosen}: present in the registry${
        choice.skipped.length === 0 ? "" : `; skipped ${choice.skipped.join("; ")}`
      }`;
    }
    const why = choice.skipped.length === 1 ? choice.skipped[0] : `no target has it: ${choice.skipped.join("; ")}`;
    return decision.rule.onMissing === "rewrite"
      ? `final: rewrote ${decision.input} to ${decision.output} although ${why}, onMissing: rewrite`
      : `final: kept ${decision.input}: ${why}, onMissing: keep`;
  };
  if (options.output === "json") {
    const rows = decisions.map((decision) => {
      const choice = choiceOf(decision);
      return {
        ...toJson(decision),
        output: final(decision),
        ...(choice === undefined ? {} : { verified: choice.chosen === undefined ? choice.status : "present" }),
        ...(choice?.chosen === undefined ? {} : { targetPosition: choice.position }),
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
        for (const line of [verifyLine(decision), finalLine(decision)]) {
          if (line !== undefined) io.stdout(`  # ${line}\n`);
        }
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
