// `mirrorhook mutate -f pod.yaml`: prints the Pod as the webhook would admit it.

import jsonpatch from "fast-json-patch";
import { parseAllDocuments, stringify } from "yaml";
import { mutatePod } from "../mutate/pod.ts";
import { type CliIo, EXIT } from "./io.ts";
import { loadRulesForCli } from "./rules.ts";

/** Options of `mutate`, as parsed. */
export interface MutateCliOptions {
  readonly file: string;
  readonly rules: readonly string[];
  readonly namespace?: string;
  readonly namespaceLabels?: Readonly<Record<string, string>>;
  readonly output: "yaml" | "json";
  readonly bypassPrefix?: string;
}

/** Reads one Pod from YAML or JSON text; a message when it is not one. */
export function readPodText(text: string, file: string): { pod: Record<string, unknown> } | { error: string } {
  const documents = parseAllDocuments(text, { prettyErrors: false }).filter((doc) => doc.contents !== null);
  if (documents.length !== 1) {
    return { error: `Cannot read ${file}: expected one Pod, found ${documents.length} documents` };
  }
  const doc = documents[0];
  if (doc === undefined) return { error: `Cannot read ${file}: empty` };
  if (doc.errors.length > 0) return { error: `Cannot parse ${file}: ${doc.errors[0]?.message.split("\n")[0]}` };
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (error) {
    return { error: `Cannot read ${file}: ${error instanceof Error ? error.message : String(error)}` };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { error: `Cannot read ${file}: expected a Pod object` };
  }
  const kind = (value as Record<string, unknown>)["kind"];
  if (kind !== "Pod") return { error: `Cannot mutate ${file}: expected kind Pod, got ${JSON.stringify(kind ?? null)}` };
  return { pod: value as Record<string, unknown> };
}

/** Runs `mutate`: the patched Pod on stdout, warnings on stderr. */
export async function runMutate(options: MutateCliOptions, io: CliIo): Promise<number> {
  let text: string;
  try {
    text = await io.readText(options.file);
  } catch (error) {
    io.stderr(`mirrorhook: Cannot read ${options.file}: ${error instanceof Error ? error.message : String(error)}\n`);
    return EXIT.failed;
  }
  const read = readPodText(text, options.file);
  if ("error" in read) {
    io.stderr(`mirrorhook: ${read.error}\n`);
    return EXIT.failed;
  }
  const ruleSet = await loadRulesForCli(options.rules, io);
  if (ruleSet === undefined) return EXIT.failed;
  const result = mutatePod(read.pod, {
    ruleSet,
    ...(options.namespace === undefined ? {} : { namespace: options.namespace }),
    ...(options.namespaceLabels === undefined ? {} : { namespaceLabels: options.namespaceLabels }),
    ...(options.bypassPrefix === undefined ? {} : { bypassPrefix: options.bypassPrefix }),
  });
  for (const warning of result.warnings) io.stderr(`${warning}\n`);
  if (result.skipped !== undefined) io.stderr(`mirrorhook: Pod left alone: ${result.skipped}\n`);
  const mutated =
    jsonpatch.applyPatch(structuredClone(read.pod), jsonpatch.deepClone(result.patch), true, false).newDocument;
  io.stdout(options.output === "json" ? `${JSON.stringify(mutated, null, 2)}\n` : stringify(mutated));
  return EXIT.ok;
}
