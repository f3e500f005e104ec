// The real CLI as a subprocess: validate names both sides of a conflict, rewrite --explain lists the rules that lost.

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { V8_FLAGS_ARGUMENT } from "../lib/rules/pattern.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

async function mirrorhook(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-P=mirrorhook", V8_FLAGS_ARGUMENT, "main.ts", ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code: output.code, out: decoder.decode(output.stdout), err: decoder.decode(output.stderr) };
}

const RULES = `apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata: {name: hub}
spec:
  rules:
    - prefix: docker.io
      replace: harbor.example.com/dockerhub
    - prefix: docker.io/library
      replace: harbor.example.com/official
---
apiVersion: mirrorhook.dev/v1alpha1
kind: ImageRewrite
metadata: {name: mine, namespace: team-a}
spec:
  rules:
    - prefix: docker.io
      replace: ecr.example.com/hub
`;

Deno.test("mirrorhook validate rules/: the two Docker Hub presets conflict, each error names both files", async () => {
  const result = await mirrorhook("validate", "rules/");
  assert.equal(result.code, 1);
  const errors = result.out.split("\n").filter((line) => line.includes(": error: "));
  assert.equal(errors.length, 2);
  for (const line of errors) {
    assert.match(
      line,
      /^rules\/dockerhub-harbor\.yaml:\d+:7: error: .*conflicts with .*"dockerhub-ecr".*\(see rules\/dockerhub-ecr\.yaml:\d+:7\)$/,
    );
  }
});

Deno.test("mirrorhook rewrite --explain: the deciding rule, then each rule that lost and why", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mirrorhook-explain-" });
  try {
    await Deno.writeTextFile(`${dir}/rules.yaml`, RULES);
    const result = await mirrorhook(
      "rewrite",
      "--rules",
      `${dir}/rules.yaml`,
      "--namespace",
      "team-a",
      "--explain",
      "nginx:2",
      "bitnami/redis",
    );
    assert.equal(result.code, 0, result.err);
    assert.match(result.err, /warning: .*overrides rule 0 of ClusterImageRewrite "hub" in namespace "team-a" only/);
    const lines = result.out.split("\n");
    assert.deepEqual(lines.filter((line) => !line.startsWith("  #") && line !== ""), [
      "harbor.example.com/official/nginx:2",
      "ecr.example.com/hub/bitnami/redis:latest",
    ]);
    assert.deepEqual(lines.filter((line) => line.includes("also matched")), [
      '  # also matched: ImageRewrite team-a/mine, rule 0, which lost: shorter prefix ("docker.io" is shorter than "docker.io/library")',
      '  # also matched: ClusterImageRewrite hub, rule 0, which lost: shorter prefix ("docker.io" is shorter than "docker.io/library")',
      "  # also matched: ClusterImageRewrite hub, rule 0, which lost: namespaced objects come before cluster-wide ones at one priority",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
