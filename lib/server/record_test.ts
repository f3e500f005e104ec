// Metric label values of the record: only values the operator wrote or a fixed set, never ones a client chooses.

import assert from "node:assert/strict";
import { admit } from "../admission/admit.ts";
import { decodeReview } from "../admission/review.ts";
import { loadRuleTexts } from "../compat/load.ts";
import { operationLabel, registryLabel } from "./record.ts";
import { admissionReview } from "../../tests/support/admission_review.ts";

const RULES = loadRuleTexts([{
  name: "test.yaml",
  text: `apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: hub
spec:
  rules:
    - prefix: docker.io/library
      replace: harbor.example.com/dockerhub/library
    - match: '^quay\\.io/([a-z]+)/(.*)$'
      replace: $1.mirror.example/$2
`,
}]).ruleSet;

function changesOf(image: string) {
  const review = decodeReview(admissionReview({
    uid: "u",
    namespace: "shop",
    object: { kind: "Pod", metadata: {}, spec: { containers: [{ name: "c", image }] } },
  }));
  return admit(review, { ruleSet: RULES, bypassPrefix: "direct.to/" }).changes;
}

Deno.test("registryLabel() names the registry a rule writes, never one from the Pod", () => {
  assert.deepEqual(changesOf("nginx:1.27").map(registryLabel), ["harbor.example.com"]);
  assert.deepEqual(changesOf("direct.to/evil-123.example/x:1").map(registryLabel), ["bypass"]);
  assert.deepEqual(changesOf("quay.io/tenantchosen/x:1").map(registryLabel), ["templated"]);
});

Deno.test("operationLabel() keeps known operations and folds the rest into other", () => {
  for (const operation of ["CREATE", "UPDATE", "DELETE", "CONNECT", "unknown"]) {
    assert.equal(operationLabel(operation), operation);
  }
  for (const operation of ["create", "PATCH", "x".repeat(1_000_000), ""]) {
    assert.equal(operationLabel(operation), "other");
  }
});
