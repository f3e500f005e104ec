import assert from "node:assert/strict";
import { parse } from "yaml";
import type { CliIo } from "./io.ts";
import { run } from "./program.ts";

const HUB = `apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: docker-hub-cache
spec:
  rules:
    - exact: ghcr.io/fantasy/coolstuff:v1.0
      replace: my-registry.com/patched-coolstuff:latest
    - prefix: docker.io/library
      replace: harbor.example.com/dockerhub/library
    - prefix: docker.io
      replace: harbor.example.com/dockerhub
    - match: '^(gcr\\.io|quay\\.io|ghcr\\.io)/(.*)$'
      replace: cache.internal.com/$1/$2
    - prefix: internal-registry.company.com
      keep: true
---
apiVersion: mirrorhook.dev/v1alpha1
kind: ImageRewrite
metadata:
  name: canary-migration
  namespace: canary
spec:
  priority: 10
  rules:
    - prefix: old-registry.company.com
      replace: new-registry.company.com
`;

const BROKEN = `apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: broken
spec:
  rules:
    - prefix: docker.io
      replace: harbor.example.com/dockerhub
    - match: '^(unclosed'
      replace: x.io/y
`;

const POD = `apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: default
spec:
  containers:
    - name: web
      image: nginx:1.27
    - name: internal
      image: internal-registry.company.com/tools/app:2
`;

interface Captured {
  code: number;
  out: string;
  err: string;
}

async function cli(args: string[], files: Record<string, string> = {}): Promise<Captured> {
  const dir = await Deno.makeTempDir({ prefix: "mirrorhook-cli-" });
  try {
    for (const [name, text] of Object.entries(files)) await Deno.writeTextFile(`${dir}/${name}`, text);
    let out = "";
    let err = "";
    const io: CliIo = {
      stdout: (text) => void (out += text),
      stderr: (text) => void (err += text),
      readText: (path) => Deno.readTextFile(path),
    };
    const code = await run(args.map((arg) => arg.replaceAll("$DIR", dir)), io);
    return { code, out, err: err.replaceAll(dir, "$DIR") };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("rewrite prints one resulting reference per input, in order", async () => {
  const result = await cli(
    [
      "rewrite",
      "--rules",
      "$DIR/hub.yaml",
      "nginx",
      "bitnami/redis:7",
      "quay.io/a/b:1",
      "internal-registry.company.com/x:1",
    ],
    { "hub.yaml": HUB },
  );
  assert.equal(result.code, 0, result.err);
  assert.deepEqual(result.out.trimEnd().split("\n"), [
    "harbor.example.com/dockerhub/library/nginx:latest",
    "harbor.example.com/dockerhub/bitnami/redis:7",
    "cache.internal.com/quay.io/a/b:1",
    "internal-registry.company.com/x:1",
  ]);
});

Deno.test("rewrite uses the namespace for namespaced rules", async (t) => {
  const rows: [string, string][] = [["canary", "new-registry.company.com/app:1"], [
    "prod",
    "old-registry.company.com/app:1",
  ]];
  for (const [namespace, expected] of rows) {
    await t.step(namespace, async () => {
      const result = await cli(
        ["rewrite", "-r", "$DIR/hub.yaml", "-n", namespace, "old-registry.company.com/app:1"],
        { "hub.yaml": HUB },
      );
      assert.equal(result.code, 0);
      assert.equal(result.out, `${expected}\n`);
    });
  }
});

Deno.test("rewrite --explain names the deciding object and rule, or why nothing matched", async () => {
  const result = await cli(
    [
      "rewrite",
      "-r",
      "$DIR/hub.yaml",
      "--explain",
      "nginx",
      "registry.k8s.io/pause:3.9",
      "old-registry.company.com/a:1",
    ],
    { "hub.yaml": HUB },
  );
  assert.equal(result.code, 0);
  const blocks = result.out.split(/\n(?=\S)/);
  assert.equal(blocks.length, 3);
  assert.match(blocks[0] ?? "", /ClusterImageRewrite docker-hub-cache, rule 1/);
  assert.match(blocks[1] ?? "", /no rule matched/);
  assert.match(blocks[2] ?? "", /ImageRewrite canary\/canary-migration, rule 0 matched but/);
});

Deno.test("rewrite -o json reports action and rule", async () => {
  const result = await cli(["rewrite", "-r", "$DIR/hub.yaml", "-o", "json", "nginx", "Nginx"], { "hub.yaml": HUB });
  assert.equal(result.code, 1, "an invalid image makes the exit status 1");
  const decisions = JSON.parse(result.out);
  assert.equal(decisions[0].action, "rewrite");
  assert.deepEqual(decisions[0].rule, {
    kind: "ClusterImageRewrite",
    name: "docker-hub-cache",
    index: 1,
    type: "prefix",
  });
  assert.equal(decisions[1].action, "invalid-input");
  assert.equal(decisions[1].output, "Nginx");
});

Deno.test("rewrite accepts a directory and several --rules", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/rules`);
    await Deno.writeTextFile(`${dir}/rules/hub.yaml`, HUB);
    await Deno.writeTextFile(
      `${dir}/extra.yaml`,
      HUB.replaceAll("docker-hub-cache", "other").replaceAll("canary-migration", "x"),
    );
    const result = await cli(["rewrite", "-r", `${dir}/rules`, "-r", `${dir}/extra.yaml`, "nginx"]);
    assert.equal(result.code, 0, result.err);
    assert.equal(result.out, "harbor.example.com/dockerhub/library/nginx:latest\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bad usage exits 2 with a one-line reason", async (t) => {
  const cases: [string, string[]][] = [
    ["no arguments", []],
    ["unknown command", ["frobnicate"]],
    ["rewrite without --rules", ["rewrite", "nginx"]],
    ["rewrite without images", ["rewrite", "-r", "x.yaml"]],
    ["unknown option", ["rewrite", "-r", "x.yaml", "--frob", "nginx"]],
    ["bad output format", ["rewrite", "-r", "x.yaml", "-o", "xml", "nginx"]],
    ["bad pod label", ["rewrite", "-r", "$DIR/hub.yaml", "--pod-label", "novalue", "nginx"]],
    ["mutate without -f", ["mutate", "-r", "x.yaml"]],
    ["validate without files", ["validate"]],
  ];
  for (const [name, args] of cases) {
    await t.step(name, async () => {
      const result = await cli(args, { "hub.yaml": HUB });
      assert.equal(result.code, 2, result.err);
      assert.notEqual(result.err.trim(), "");
    });
  }
});

Deno.test("every command has --help with examples", async (t) => {
  for (const command of ["rewrite", "mutate", "validate", "demo"]) {
    await t.step(command, async () => {
      const result = await cli([command, "--help"]);
      assert.equal(result.code, 0);
      assert.match(result.out, /Example/);
    });
  }
});

Deno.test("missing or broken rules exit 1 with every problem positioned", async () => {
  const missing = await cli(["rewrite", "-r", "$DIR/nope.yaml", "nginx"]);
  assert.equal(missing.code, 1);
  assert.match(missing.err, /nope\.yaml/);
  const broken = await cli(["validate", "$DIR/broken.yaml"], { "broken.yaml": BROKEN });
  assert.equal(broken.code, 1);
  assert.match(broken.out, /broken\.yaml:9:7: error: /);
  assert.match(broken.out, /1 error\(s\)/);
});

Deno.test("validate passes a good file and reports warnings without failing", async () => {
  const good = await cli(["validate", "$DIR/hub.yaml"], { "hub.yaml": HUB });
  assert.equal(good.code, 0);
  assert.match(good.out, /2 object\(s\), 6 rule\(s\): 0 error\(s\)/);
  const warned = await cli(["validate", "-o", "json", "$DIR/w.yaml"], {
    "w.yaml": HUB.replace("replace: harbor.example.com/dockerhub\n", "replace: docker.io/mirror\n"),
  });
  assert.equal(warned.code, 0);
  const report = JSON.parse(warned.out);
  assert.equal(report.errors, 0);
  assert.ok(report.problems.some((p: { code: string }) => p.code === "self-match"));
});

Deno.test("mutate prints the admitted Pod", async (t) => {
  await t.step("yaml", async () => {
    const result = await cli(["mutate", "-f", "$DIR/pod.yaml", "-r", "$DIR/hub.yaml"], {
      "pod.yaml": POD,
      "hub.yaml": HUB,
    });
    assert.equal(result.code, 0, result.err);
    const pod = parse(result.out);
    assert.equal(pod.spec.containers[0].image, "harbor.example.com/dockerhub/library/nginx:1.27");
    assert.equal(pod.spec.containers[1].image, "internal-registry.company.com/tools/app:2");
    assert.equal(pod.metadata.labels["mirrorhook.dev/rewritten"], "true");
    assert.deepEqual(JSON.parse(pod.metadata.annotations["mirrorhook.dev/original-images"]), { web: "nginx:1.27" });
    assert.match(result.err, /mirrorhook: rewrote nginx:1\.27 to /);
  });
  await t.step("json, again on its own output: nothing more changes", async () => {
    const first = await cli(["mutate", "-f", "$DIR/pod.yaml", "-r", "$DIR/hub.yaml", "-o", "json"], {
      "pod.yaml": POD,
      "hub.yaml": HUB,
    });
    const second = await cli(["mutate", "-f", "$DIR/pod.json", "-r", "$DIR/hub.yaml", "-o", "json"], {
      "pod.json": first.out,
      "hub.yaml": HUB,
    });
    assert.equal(second.code, 0);
    assert.deepEqual(JSON.parse(second.out), JSON.parse(first.out));
    assert.equal(second.err, "");
  });
  await t.step("no Pod and no Pod template: printed unchanged, with a note", async () => {
    const result = await cli(["mutate", "-f", "$DIR/d.yaml", "-r", "$DIR/hub.yaml"], {
      "d.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x # kept\n",
      "hub.yaml": HUB,
    });
    assert.equal(result.code, 0, result.err);
    assert.equal(result.out, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x # kept\n");
    assert.match(result.err, /no Pod or Pod template found/);
  });
  await t.step("broken YAML", async () => {
    const result = await cli(["mutate", "-f", "$DIR/p.yaml", "-r", "$DIR/hub.yaml"], {
      "p.yaml": "kind: [",
      "hub.yaml": HUB,
    });
    assert.equal(result.code, 1);
    assert.match(result.err, /Cannot parse/);
  });
});

Deno.test("demo rewrites the sample Pod with the bundled preset", async () => {
  const result = await cli(["demo"]);
  assert.equal(result.code, 0, result.err);
  assert.match(result.out, /"op": "replace"/);
  assert.match(result.out, /mirrorhook\.dev\/original-images/);
});
