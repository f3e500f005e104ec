// `mirrorhook test` run as a subprocess against real cases and rules files.

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { runCli } from "./support/cli.ts";

const RULES_DIR = fileURLToPath(new URL("../rules/", import.meta.url));

const HUB = `apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: hub
spec:
  rules:
    - prefix: docker.io
      replace: harbor.example.com/dockerhub
`;

const ECR = `apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: ecr
spec:
  rules:
    - prefix: docker.io
      replace: 1234.dkr.ecr.us-east-1.amazonaws.com/docker-hub
`;

async function tempTree(files: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "mirrorhook-cli-test-" });
  for (const [path, text] of Object.entries(files)) {
    const full = `${dir}/${path}`;
    await Deno.mkdir(full.slice(0, full.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(full, text);
  }
  return dir;
}

Deno.test("mirrorhook test rules/ runs every preset against its own cases and passes", async () => {
  const presets = [...Deno.readDirSync(RULES_DIR)].filter((e) => e.isFile && e.name.endsWith(".yaml")).length;
  const result = await runCli(["test", "rules/"]);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(
    result.stdout,
    new RegExp(`^${presets} cases file\\(s\\), \\d+ case\\(s\\): \\d+ passed, 0 failed$`, "m"),
  );
  assert.match(result.stdout, /^rules\/cases\/dockerhub-harbor\.yaml \(rules: rules\/dockerhub-harbor\.yaml\)$/m);
  assert.doesNotMatch(result.stdout, /FAIL/);
});

Deno.test("mirrorhook test: each cases file runs against its own rules, failures name the line and deciding rule", async () => {
  // hub.yaml and ecr.yaml conflict; each cases file must see only its own preset.
  const dir = await tempTree({
    "hub.yaml": HUB,
    "ecr.yaml": ECR,
    "cases/hub.yaml": `- image: nginx:1.27
  namespace: web
  expected: harbor.example.com/dockerhub/library/nginx:1.27
- image: bitnami/redis:7
  expected: docker.io/bitnami/redis:7
`,
    "cases/ecr.yaml": `- image: nginx
  expected: 1234.dkr.ecr.us-east-1.amazonaws.com/docker-hub/library/nginx:latest
`,
  });
  try {
    const result = await runCli(["test", dir]);
    assert.equal(result.code, 1, result.stdout + result.stderr);
    const lines = result.stdout.split("\n");
    assert.ok(lines.some((line) => /^\s+pass\s+1\s+nginx\s+-\s+1234\.dkr/.test(line)), result.stdout);
    assert.ok(
      lines.some((line) => /^\s+pass\s+1\s+nginx:1\.27\s+web\s+harbor\.example\.com/.test(line)),
      result.stdout,
    );
    assert.ok(lines.some((line) => /^\s+FAIL\s+4\s+bitnami\/redis:7\s+-\s+harbor\.example\.com\//.test(line)));
    assert.match(
      result.stdout,
      /expected docker\.io\/bitnami\/redis:7, got harbor\.example\.com\/dockerhub\/bitnami\/redis:7\n\s+decided by ClusterImageRewrite hub, rule 0\n/,
    );
    assert.match(result.stdout, /^2 cases file\(s\), 3 case\(s\): 2 passed, 1 failed$/m);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("mirrorhook test: rules: field, mirrorhook-test.yaml, warnings and opt-out labels", async () => {
  const dir = await tempTree({
    "platform/hub.yaml": HUB,
    "mine.yaml": `rules: platform/hub.yaml
cases:
  - image: Nginx
    expected: Nginx
    warnings: ["must be lowercase"]
  - image: nginx
    podLabels: {mirrorhook.dev/rewrite: disabled}
    expected: nginx
    warnings: []
`,
    "suite/mirrorhook-test.yaml": `rules: [../platform/hub.yaml]
cases:
  - image: Nginx
    expected: Nginx
    warnings: []
`,
  });
  try {
    const mine = await runCli(["test", `${dir}/mine.yaml`, "-o", "json"]);
    assert.equal(mine.code, 0, mine.stdout + mine.stderr);
    const report = JSON.parse(mine.stdout);
    assert.equal(report.passed, true);
    const [invalid, optedOut] = report.suites[0].results;
    assert.equal(invalid.passed, true);
    assert.match(invalid.decidedBy, /^Cannot parse image reference "Nginx": .*lowercase/);
    assert.deepEqual([optedOut.passed, optedOut.decidedBy], [true, "Pod left alone (opted-out)"]);

    const suite = await runCli(["test", `${dir}/suite`]);
    assert.equal(suite.code, 1, suite.stdout + suite.stderr);
    assert.match(suite.stdout, /FAIL\s+3\s+Nginx/);
    assert.match(suite.stdout, /unexpected warning: mirrorhook: left image "Nginx" of case unchanged/);

    // --rules replaces the rules a file names.
    const other = await runCli(["test", `${dir}/mine.yaml`, "--rules", `${dir}/platform/hub.yaml`]);
    assert.equal(other.code, 0, other.stdout + other.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("mirrorhook test: broken cases, broken rules and no cases are failures with a place", async () => {
  const dir = await tempTree({
    "bad-cases/hub.yaml": HUB,
    "bad-cases/cases/hub.yaml": `- image: nginx
  expected: harbor.example.com/dockerhub/library/nginx:latest
- image: nginx
  expectd: nginx
`,
    "bad-rules/hub.yaml": HUB.replace("prefix: docker.io", "prefix: ''"),
    "bad-rules/cases/hub.yaml": "- image: nginx\n  expected: nginx\n",
    "empty/readme.txt": "nothing here",
    "orphan.yaml": "- image: nginx\n  expected: nginx\n",
  });
  try {
    const badCases = await runCli(["test", `${dir}/bad-cases`]);
    assert.equal(badCases.code, 1, badCases.stdout + badCases.stderr);
    assert.match(badCases.stdout, /ERROR .*bad-cases\/cases\/hub\.yaml:3: case 2: unknown field\(s\) "expectd"/);
    assert.match(badCases.stdout, /file\(s\) not run/);

    const badRules = await runCli(["test", `${dir}/bad-rules`]);
    assert.equal(badRules.code, 1, badRules.stdout + badRules.stderr);
    assert.match(badRules.stdout, /ERROR .*bad-rules\/hub\.yaml:7:/);

    const empty = await runCli(["test", `${dir}/empty`]);
    assert.equal(empty.code, 1);
    assert.match(empty.stdout, /No cases found in .*empty: expected cases\/<name>\.yaml next to <name>\.yaml/);

    const orphan = await runCli(["test", `${dir}/orphan.yaml`]);
    assert.equal(orphan.code, 1);
    assert.match(orphan.stdout, /No rules for .*orphan\.yaml: name them with a rules: field/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
