// `mirrorhook mutate -f FILE`: prints Pods, workloads, Lists and multi-document streams as the cluster would run them.

import { type Document, isCollection, isScalar, parseAllDocuments, stringify } from "yaml";
import { describeRule } from "../rules/engine.ts";
import { applyEdits, mutateWorkload, type PodSpecResult } from "../mutate/workload.ts";
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
  /** Print a table of the changes (object, container, from -> to, rule) instead of the objects. */
  readonly summary?: boolean;
}

/** The documents of a YAML or JSON stream; a message naming the file and line when one does not parse. */
function readDocumentsText(text: string, file: string): { documents: Document[] } | { error: string } {
  const documents = parseAllDocuments(text, { prettyErrors: false });
  if (!Array.isArray(documents)) return { documents: [] };
  for (const [index, doc] of documents.entries()) {
    const error = doc.errors[0];
    if (error === undefined) continue;
    const line = error.linePos?.[0].line;
    return {
      error: `Cannot parse ${file}${line === undefined ? "" : `:${line}`} (document ${index + 1}): ${
        error.message.split("\n")[0]
      }`,
    };
  }
  return { documents };
}

function toJs(doc: Document, file: string, index: number): { value: unknown } | { error: string } {
  try {
    return { value: doc.toJS({ maxAliasCount: 100 }) };
  } catch (error) {
    return {
      error: `Cannot read ${file} (document ${index + 1}): ${error instanceof Error ? error.message : String(error)}`,
    };
  }
}

function pad(text: string, width: number): string {
  return text + " ".repeat(Math.max(0, width - text.length));
}

/** The `--summary` table: one line per changed image. */
function formatSummary(pods: readonly PodSpecResult[]): string {
  const rows = pods.flatMap((pod) =>
    pod.changes.map((change) => [
      pod.object,
      change.slot.key,
      `${change.from} \u2192 ${change.to}`,
      change.decision.action === "rewrite" ? describeRule(change.decision.rule) : "bypass prefix",
    ])
  );
  const skipped = pods.filter((pod) => pod.skipped !== undefined);
  const lines: string[] = [];
  if (rows.length > 0) {
    const header = ["OBJECT", "CONTAINER", "FROM \u2192 TO", "RULE"];
    const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
    for (const row of [header, ...rows]) {
      lines.push(row.map((cell, column) => column === row.length - 1 ? cell : pad(cell, widths[column]!)).join("  "));
    }
  }
  for (const pod of skipped) lines.push(`${pod.object}: left alone (${pod.skipped})`);
  const images = pods.reduce((sum, pod) => sum + pod.changes.length, 0);
  lines.push(`${pods.length} Pod(s) or Pod template(s), ${images} image(s) rewritten`);
  return `${lines.join("\n")}\n`;
}

/** Runs `mutate`: the objects (or a summary) on stdout, warnings on stderr. */
export async function runMutate(options: MutateCliOptions, io: CliIo): Promise<number> {
  let text: string;
  try {
    text = await io.readText(options.file);
  } catch (error) {
    io.stderr(`mirrorhook: Cannot read ${options.file}: ${error instanceof Error ? error.message : String(error)}\n`);
    return EXIT.failed;
  }
  const file = options.file === "-" ? "stdin" : options.file;
  const read = readDocumentsText(text, file);
  if ("error" in read) {
    io.stderr(`mirrorhook: ${read.error}\n`);
    return EXIT.failed;
  }
  const ruleSet = await loadRulesForCli(options.rules, io);
  if (ruleSet === undefined) return EXIT.failed;

  const workloadOptions = {
    ruleSet,
    ...(options.namespace === undefined ? {} : { namespace: options.namespace }),
    ...(options.namespaceLabels === undefined ? {} : { namespaceLabels: options.namespaceLabels }),
    ...(options.bypassPrefix === undefined ? {} : { bypassPrefix: options.bypassPrefix }),
  };
  const pods: PodSpecResult[] = [];
  const yamlParts: string[] = [];
  const jsonValues: unknown[] = [];
  for (const [index, doc] of read.documents.entries()) {
    const js = toJs(doc, file, index);
    if ("error" in js) {
      io.stderr(`mirrorhook: ${js.error}\n`);
      return EXIT.failed;
    }
    const result = mutateWorkload(js.value, workloadOptions);
    pods.push(...result.pods);
    applyEdits(js.value, result.edits);
    if (js.value !== null && js.value !== undefined) jsonValues.push(js.value);
    // Block YAML (helm template output) is edited in place, so comments, quotes and key order stay as written;
    // JSON and flow-style documents are printed again as block YAML.
    const flow = isCollection(doc.contents) && doc.contents.flow === true;
    let part: string;
    if (flow) part = `${doc.directives?.docStart === true ? "---\n" : ""}${stringify(js.value)}`;
    else {
      for (const edit of result.edits) {
        const node = doc.getIn(edit.path, true);
        // Change the scalar itself, so an image keeps the quotes it was written with.
        if (isScalar(node) && typeof edit.value === "string") node.value = edit.value;
        else doc.setIn(edit.path, doc.createNode(edit.value));
      }
      part = doc.toString({ flowCollectionPadding: false });
    }
    if (index > 0 && !part.startsWith("---")) part = `---\n${part}`;
    yamlParts.push(part);
  }
  for (const pod of pods) {
    for (const warning of pod.warnings) {
      if (options.summary === true && warning.startsWith("mirrorhook: rewrote ")) continue;
      io.stderr(`${pod.object}: ${warning}\n`);
    }
    if (pod.skipped !== undefined && options.summary !== true) {
      io.stderr(`mirrorhook: ${pod.object} left alone: ${pod.skipped}\n`);
    }
  }
  if (pods.length === 0) io.stderr(`mirrorhook: no Pod or Pod template found in ${file}; printed unchanged\n`);
  if (options.summary === true) io.stdout(formatSummary(pods));
  else if (options.output === "json") {
    const value = jsonValues.length === 1 ? jsonValues[0] : { apiVersion: "v1", kind: "List", items: jsonValues };
    io.stdout(`${JSON.stringify(value, null, 2)}\n`);
  } else io.stdout(yamlParts.join(""));
  return EXIT.ok;
}
