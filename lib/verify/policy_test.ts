// Tests for the verification policy: which registries a rule of each scope may ask, and which hosts are listed.

import assert from "node:assert/strict";
import { loadRuleTexts } from "../compat/load.ts";
import { normalizeRegistryHost, refusedTargets, VerifyPolicy, VerifyPolicyError } from "./policy.ts";

Deno.test("normalizeRegistryHost() names one registry one way", async (t) => {
  const rows: [string, string][] = [
    ["Harbor.Example.com", "harbor.example.com"],
    ["harbor.example.com:443", "harbor.example.com"],
    ["https://harbor.example.com/v2/", "harbor.example.com"],
    ["registry.local:5000", "registry.local:5000"],
    ["index.docker.io", "docker.io"],
    ["registry-1.docker.io", "docker.io"],
    ["auth.docker.io", "docker.io"],
  ];
  for (const [input, want] of rows) await t.step(input, () => assert.equal(normalizeRegistryHost(input), want));
});

Deno.test("VerifyPolicy: namespaced rules reach only listed registries; cluster-wide ones per --verify-cluster-rules", async (t) => {
  const rows: {
    name: string;
    clusterRules: "listed" | "any";
    registry: string;
    namespaced: boolean;
    cluster: boolean;
  }[] = [
    {
      name: "listed, listed registry",
      clusterRules: "listed",
      registry: "harbor.example.com",
      namespaced: true,
      cluster: true,
    },
    {
      name: "listed, other registry",
      clusterRules: "listed",
      registry: "evil.example.com",
      namespaced: false,
      cluster: false,
    },
    {
      name: "listed, listed host on another port",
      clusterRules: "listed",
      registry: "harbor.example.com:22",
      namespaced: false,
      cluster: false,
    },
    {
      name: "any, listed registry",
      clusterRules: "any",
      registry: "harbor.example.com",
      namespaced: true,
      cluster: true,
    },
    {
      name: "any, other registry",
      clusterRules: "any",
      registry: "evil.example.com",
      namespaced: false,
      cluster: true,
    },
    {
      name: "any, the metadata address",
      clusterRules: "any",
      registry: "169.254.169.254",
      namespaced: false,
      cluster: true,
    },
    {
      name: "docker.io listed by an alias",
      clusterRules: "listed",
      registry: "docker.io",
      namespaced: true,
      cluster: true,
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      const policy = VerifyPolicy.create({
        registries: ["harbor.example.com", "index.docker.io"],
        clusterRules: row.clusterRules,
      });
      assert.equal(policy.allows(row.registry, "namespaced"), row.namespaced);
      assert.equal(policy.allows(row.registry, "cluster"), row.cluster);
    });
  }
  await t.step("credentials and other hosts: listed ones only, even under any", () => {
    const policy = VerifyPolicy.create({ registries: ["harbor.example.com"], clusterRules: "any" });
    assert.equal(policy.holdsCredentials("harbor.example.com"), true);
    assert.equal(policy.holdsCredentials("evil.example.com"), false);
    assert.equal(policy.allowsElsewhere("evil.example.com"), false);
    assert.equal(policy.allowsElsewhere("HARBOR.example.com:443"), true);
  });
  await t.step("the open policy (command line) allows every registry but lists only what it was given", () => {
    const policy = VerifyPolicy.open(["localhost:5000"]);
    assert.equal(policy.allows("evil.example.com", "namespaced"), true);
    assert.equal(policy.isListed("localhost:5000"), true);
    assert.equal(policy.isListed("evil.example.com"), false);
  });
  await t.step("insecure and CA-file hosts count as listed", () => {
    const policy = VerifyPolicy.create().withListed(["localhost:5000"]);
    assert.equal(policy.allows("localhost:5000", "namespaced"), true);
    assert.equal(policy.allows("localhost:5001", "cluster"), false);
  });
});

Deno.test("VerifyPolicy.create() refuses values that are not HOST[:PORT]", async (t) => {
  for (const value of ["harbor example", "harbor.example.com:port", "-bad.example.com", "a/b c"]) {
    await t.step(value, () => {
      assert.throws(() => VerifyPolicy.create({ registries: [value] }), (error: unknown) => {
        assert.ok(error instanceof VerifyPolicyError);
        assert.equal(error.value, value);
        return true;
      });
    });
  }
  await t.step(
    "empty values are skipped",
    () => assert.deepEqual(VerifyPolicy.create({ registries: [""] }).listed, []),
  );
});

Deno.test("refusedTargets() names verified rules whose registry their scope may not ask", () => {
  const loaded = loadRuleTexts([{
    name: "r.yaml",
    text: `apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata: {name: platform}
spec:
  verify: true
  rules:
    - prefix: docker.io
      replace: harbor.example.com/hub
    - prefix: quay.io
      replace: quay-cache.example.com/q
    - match: '^gcr\\.io/(.*)$'
      replace: 'gcr-$1'
---
apiVersion: mirrorhook.dev/v1alpha1
kind: ImageRewrite
metadata: {name: tenant, namespace: team-a}
spec:
  verify: true
  rules:
    - prefix: ghcr.io/team-a
      replace: evil.example.com:22/x
    - exact: team-a/app:v1
      replace: harbor.example.com/team-a/app:v1
`,
  }]);
  assert.deepEqual(loaded.problems.filter((problem) => problem.severity === "error"), []);
  const policy = VerifyPolicy.create({ registries: ["harbor.example.com"], clusterRules: "listed" });
  const refused = refusedTargets(loaded.ruleSet, policy).map((target) => `${target.scope} ${target.registry}`).sort();
  assert.deepEqual(refused, ["cluster quay-cache.example.com", "namespaced evil.example.com:22"]);
  const any = VerifyPolicy.create({ registries: ["harbor.example.com"], clusterRules: "any" });
  assert.deepEqual(refusedTargets(loaded.ruleSet, any).map((target) => target.registry), ["evil.example.com:22"]);
});
