// The imagePullSecrets a Pod needs for the targets it was rewritten to: appended once, the list created when absent.

import { isRecord } from "../util/json.ts";
import type { PatchOperation } from "./pod.ts";

/**
 * RFC 6902 operations that give `pod` every Secret of `wanted` in `spec.imagePullSecrets`: one `add` creating the
 * list when the Pod has none, else one `add ... /-` per name it lacks, in the order given. Names already listed are
 * never added again, so applying the result and asking again yields nothing.
 */
export function pullSecretsPatch(
  pod: unknown,
  wanted: readonly string[],
): { patch: PatchOperation[]; added: string[] } {
  if (wanted.length === 0 || !isRecord(pod) || !isRecord(pod["spec"])) return { patch: [], added: [] };
  const current = pod["spec"]["imagePullSecrets"];
  const names = [...new Set(wanted)];
  if (!Array.isArray(current)) {
    return {
      patch: [{ op: "add", path: "/spec/imagePullSecrets", value: names.map((name) => ({ name })) }],
      added: names,
    };
  }
  const present = new Set(current.map((entry) => isRecord(entry) ? entry["name"] : undefined));
  const added = names.filter((name) => !present.has(name));
  return {
    patch: added.map((name) => ({ op: "add", path: "/spec/imagePullSecrets/-", value: { name } })),
    added,
  };
}
