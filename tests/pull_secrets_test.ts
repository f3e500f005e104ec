// `imagePullSecrets` on rules: a Pod created with a rewritten image gets the rule's Secrets, applied with
// fast-json-patch: the list created when absent, appended once, never on UPDATE, and idempotent on reinvocation.

import assert from "node:assert/strict";
import jsonpatch from "fast-json-patch";
import { admit } from "../lib/admission/admit.ts";
import type { AdmissionRequest } from "../lib/admission/review.ts";
import { loadRuleTexts } from "../lib/compat/load.ts";
import type { RuleSet } from "../lib/rules/compile.ts";

const RULES = `apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: private-mirror
spec:
  imagePullSecrets: [mirror-pull]
  rules:
    - prefix: docker.io/team
      replace: mirror.example/team
    - prefix: quay.io/team
      replace: mirror.example/quay
      imagePullSecrets: [mirror-pull, quay-pull]
    - prefix: ghcr.io/public
      replace: public.example/ghcr
      imagePullSecrets: [public-pull]
    - exact: docker.io/team/pinned:1
      keep: true
---
apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: verified
spec:
  priority: 5
  verify: true
  imagePullSecrets: [verified-pull]
  rules:
    - prefix: gcr.io/team
      replace: verified.example/team
`;

function ruleSet(): RuleSet {
  const loaded = loadRuleTexts([{ name: "r.yaml", text: RULES }]);
  assert.deepEqual(loaded.problems.filter((p) => p.severity === "error"), []);
  return loaded.ruleSet;
}

type Pod = { metadata: Record<string, unknown>; spec: Record<string, unknown> };

function pod(images: string[], secrets?: string[]): Pod {
  return {
    metadata: { name: "p", namespace: "default" },
    spec: {
      containers: images.map((image, i) => ({ name: `c${i}`, image })),
      ...(secrets === undefined ? {} : { imagePullSecrets: secrets.map((name) => ({ name })) }),
    },
  };
}

function request(object: Pod, operation = "CREATE", oldObject?: Pod): AdmissionRequest {
  return {
    uid: crypto.randomUUID(),
    kind: { group: "", version: "v1", kind: "Pod" },
    resource: { group: "", version: "v1", resource: "pods" },
    namespace: "default",
    operation,
    object,
    ...(oldObject === undefined ? {} : { oldObject }),
    dryRun: false,
  };
}

/** Admits and applies the patch as the API server would; returns the Pod and the warnings. */
function apply(
  object: Pod,
  options: { operation?: string; oldObject?: Pod; dryRun?: boolean; verified?: "present" | "missing" } = {},
): { pod: Pod; warnings: string[]; patched: boolean } {
  const verified = options.verified;
  const outcome = admit(request(object, options.operation, options.oldObject), {
    ruleSet: ruleSet(),
    ...(options.dryRun === true ? { dryRun: true } : {}),
    ...(verified === undefined ? {} : { verified: () => ({ status: verified }) }),
  });
  const response = outcome.review.response;
  const ops = response.patch === undefined ? [] : JSON.parse(atob(response.patch));
  const patched = jsonpatch.applyPatch(structuredClone(object), ops, true, false).newDocument as Pod;
  return { pod: patched, warnings: [...(response.warnings ?? [])], patched: response.patch !== undefined };
}

const secretsOf = (p: Pod) => (p.spec["imagePullSecrets"] as { name: string }[] | undefined)?.map((s) => s.name);

Deno.test("imagePullSecrets: the list is created when the Pod has none, each name once", () => {
  const { pod: out, warnings } = apply(pod(["team/app:1", "team/tool:2", "quay.io/team/x:3"]));
  assert.deepEqual(secretsOf(out), ["mirror-pull", "quay-pull"]);
  assert.ok(warnings.includes("mirrorhook: added imagePullSecrets mirror-pull, quay-pull for the rewritten images"));
});

Deno.test("imagePullSecrets: appended after the Pod's own, never duplicated", () => {
  assert.deepEqual(secretsOf(apply(pod(["team/app:1"], ["own"])).pod), ["own", "mirror-pull"]);
  assert.deepEqual(secretsOf(apply(pod(["quay.io/team/x:3"], ["quay-pull"])).pod), ["quay-pull", "mirror-pull"]);
  const already = apply(pod(["team/app:1"], ["mirror-pull"]));
  assert.deepEqual(secretsOf(already.pod), ["mirror-pull"]);
  assert.ok(!already.warnings.some((w) => w.includes("imagePullSecrets")));
});

Deno.test("imagePullSecrets: admitting the patched Pod again changes nothing", () => {
  const first = apply(pod(["team/app:1", "ghcr.io/public/y:1"])).pod;
  assert.deepEqual(secretsOf(first), ["mirror-pull", "public-pull"]);
  const again = apply(first);
  assert.equal(again.patched, false);
  assert.deepEqual(again.pod, first);
});

Deno.test("imagePullSecrets: only for images a rule rewrote, never on UPDATE", () => {
  // No rule, or a keep rule: nothing to add.
  assert.equal(secretsOf(apply(pod(["nginx:1", "team/pinned:1"])).pod), undefined);
  // UPDATE of an image (ephemeral containers, image changes): rewritten, but the list is immutable.
  const old = pod(["team/app:1"]);
  const updated = apply(pod(["team/app:2"]), { operation: "UPDATE", oldObject: old });
  assert.equal((updated.pod.spec["containers"] as { image: string }[])[0]?.image, "mirror.example/team/app:2");
  assert.equal(secretsOf(updated.pod), undefined);
});

Deno.test("imagePullSecrets: a verified rule adds them only when its target is used", () => {
  assert.deepEqual(secretsOf(apply(pod(["gcr.io/team/a:1"]), { verified: "present" }).pod), ["verified-pull"]);
  const kept = apply(pod(["gcr.io/team/a:1"]), { verified: "missing" });
  assert.equal(secretsOf(kept.pod), undefined);
  assert.equal(kept.patched, false);
});

Deno.test("imagePullSecrets: a dry run says what it would add and patches nothing", () => {
  const result = apply(pod(["team/app:1"]), { dryRun: true });
  assert.equal(result.patched, false);
  assert.ok(
    result.warnings.some((w) =>
      w === "mirrorhook: dry-run, would add imagePullSecrets mirror-pull for the rewritten images"
    ),
  );
});

Deno.test("imagePullSecrets: an UPDATE that needs Secrets the Pod lacks says so (the list cannot change any more)", () => {
  const old = pod(["team/app:1"]);
  const updated = apply(pod(["team/app:2"]), { operation: "UPDATE", oldObject: old });
  assert.ok(
    updated.warnings.some((w) =>
      w.includes("mirror-pull") && w.includes("lacks") && w.includes("imagePullSecrets cannot change")
    ),
    updated.warnings.join("\n"),
  );
  // The Pod holds them already (it was created through the same rule): nothing to say.
  const held = apply(pod(["team/app:2"], ["mirror-pull"]), { operation: "UPDATE", oldObject: pod(["team/app:1"]) });
  assert.ok(!held.warnings.some((w) => w.includes("imagePullSecrets")), held.warnings.join("\n"));
});

Deno.test("imagePullSecrets: a dry-run UPDATE that would need Secrets the Pod lacks says would, not rewritten", () => {
  const updated = apply(pod(["team/app:2"]), { operation: "UPDATE", oldObject: pod(["team/app:1"]), dryRun: true });
  assert.equal(updated.patched, false);
  const warning = updated.warnings.find((w) => w.includes("imagePullSecrets cannot change"));
  assert.equal(
    warning,
    "mirrorhook: dry-run, would rewrite images whose rules name imagePullSecrets mirror-pull, which the Pod lacks and spec.imagePullSecrets cannot change after creation: the new images may fail to pull",
  );
});
