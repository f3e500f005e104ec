// Tests for checking a rule object against the objects in force, alone and as POST /validate answers it.

import assert from "node:assert/strict";
import { validateRewriteReview } from "../admission/validate.ts";
import type { AdmissionRequest } from "../admission/review.ts";
import { createMetrics } from "../server/metrics.ts";
import { createWebhookCore } from "../server/handler.ts";
import { memoryLogger } from "../../tests/support/webhook.ts";
import { checkCandidate } from "./candidate.ts";
import { compileRuleSet } from "./compile.ts";
import { API_VERSION, type RewriteObject, type RuleSpec, validateObject } from "./schema.ts";

type Kind = "ClusterImageRewrite" | "ImageRewrite";

function raw(kind: Kind, name: string, spec: Record<string, unknown>): Record<string, unknown> {
  return {
    apiVersion: API_VERSION,
    kind,
    metadata: { name, ...(kind === "ImageRewrite" ? { namespace: "team-a" } : {}) },
    spec,
  };
}

function object(kind: Kind, name: string, rules: RuleSpec[], spec: Record<string, unknown> = {}): RewriteObject {
  const result = validateObject(raw(kind, name, { ...spec, rules }));
  assert.ok(result.object !== undefined);
  return result.object;
}

const HARBOR = { prefix: "docker.io", replace: "harbor.example.com/dockerhub" };
const ECR = { prefix: "docker.io", replace: "ecr.example.com/docker-hub" };
const IN_FORCE = compileRuleSet([
  object("ClusterImageRewrite", "platform", [HARBOR]),
  object("ClusterImageRewrite", "quay", [{ match: "^quay\\.io/(.*)$", replace: "cache.example.com/quay/$1" }]),
]).ruleSet;

Deno.test("checkCandidate() compares a new object with the objects in force", async (t) => {
  const rows: { name: string; candidate: RewriteObject; found: [string, string, string | undefined][] }[] = [
    {
      name: "a cluster object deciding Docker Hub otherwise: a conflict, the object in force stays",
      candidate: object("ClusterImageRewrite", "ecr", [ECR]),
      found: [["error", "conflict", 'ClusterImageRewrite "platform"']],
    },
    {
      name: "a tenant's object deciding Docker Hub otherwise: an override in its namespace",
      candidate: object("ImageRewrite", "mine", [ECR]),
      found: [["warning", "override", 'ClusterImageRewrite "platform"']],
    },
    {
      name: "the same pattern with the same replacement: never decides",
      candidate: object("ClusterImageRewrite", "quay2", [{
        match: "^quay\\.io/(.*)$",
        replace: "cache.example.com/quay/$1",
      }]),
      found: [["warning", "never-decides", 'ClusterImageRewrite "quay"']],
    },
    {
      name: "a new version of an object in force is not compared with its old self",
      candidate: object("ClusterImageRewrite", "platform", [ECR]),
      found: [],
    },
    {
      name: "an enforced object silences nothing in force, but is compared at its own level",
      candidate: object("ClusterImageRewrite", "enforced", [ECR], { enforced: true }),
      found: [],
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      const problems = checkCandidate(IN_FORCE, row.candidate);
      assert.deepEqual(problems.map((p) => [p.severity, p.code, p.related?.object]), row.found);
    });
  }
});

function request(kind: Kind, object: Record<string, unknown>): AdmissionRequest {
  return {
    uid: "b2a4c0de-6393-11e8-b7cc-42010a800002",
    kind: { group: "mirrorhook.dev", version: "v1alpha1", kind },
    resource: {
      group: "mirrorhook.dev",
      version: "v1alpha1",
      resource: kind === "ImageRewrite" ? "imagerewrites" : "clusterimagerewrites",
    },
    name: String((object["metadata"] as Record<string, unknown>)["name"]),
    ...(kind === "ImageRewrite" ? { namespace: "team-a" } : {}),
    operation: "CREATE",
    dryRun: false,
    username: "alice",
    object,
  };
}

Deno.test("validateRewriteReview() denies a conflict with an object in force and warns of an override", async (t) => {
  await t.step("a conflicting ClusterImageRewrite is denied, naming the object in force", () => {
    const outcome = validateRewriteReview(
      request("ClusterImageRewrite", raw("ClusterImageRewrite", "ecr", { rules: [ECR] })),
      IN_FORCE,
    );
    assert.equal(outcome.allowed, false);
    const response = outcome.review["response"] as { status?: { code?: number; message?: string } };
    assert.equal(response.status?.code, 422);
    assert.match(response.status?.message ?? "", /ClusterImageRewrite "platform"/);
  });
  await t.step("without the rules in force, it is checked alone", () => {
    const outcome = validateRewriteReview(
      request("ClusterImageRewrite", raw("ClusterImageRewrite", "ecr", { rules: [ECR] })),
    );
    assert.equal(outcome.allowed, true);
  });
  await t.step("a tenant's override is allowed with a warning naming the object in force", () => {
    const outcome = validateRewriteReview(
      request("ImageRewrite", raw("ImageRewrite", "mine", { rules: [ECR] })),
      IN_FORCE,
    );
    assert.equal(outcome.allowed, true);
    const response = outcome.review["response"] as { warnings?: string[] };
    assert.equal(response.warnings?.length, 1);
    assert.match(
      response.warnings?.[0] ?? "",
      /overrides .*ClusterImageRewrite "platform".* in namespace "team-a" only/,
    );
  });
});

Deno.test("POST /validate denies a conflict with an object in force, with patterns screened elsewhere or not", async (t) => {
  const body = new TextEncoder().encode(JSON.stringify({
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: request("ClusterImageRewrite", raw("ClusterImageRewrite", "ecr", { rules: [ECR] })),
  }));
  for (const screened of [false, true]) {
    await t.step(screened ? "screened elsewhere" : "screened here", async () => {
      const screenedSources: string[][] = [];
      const handle = createWebhookCore({
        rules: () => IN_FORCE,
        metrics: createMetrics(),
        logger: memoryLogger().logger,
        ...(screened ? { screenPatterns: (sources) => Promise.resolve(void screenedSources.push([...sources])) } : {}),
      });
      const answer = await handle({
        method: "POST",
        path: "/validate",
        contentType: "application/json",
        readBody: () => Promise.resolve(body),
      });
      const response = JSON.parse(answer.body).response;
      assert.equal(response.allowed, false);
      assert.equal(response.status.code, 422);
      assert.match(response.status.message, /ClusterImageRewrite "platform"/);
      assert.equal(screenedSources.length, screened ? 1 : 0);
    });
  }
});
