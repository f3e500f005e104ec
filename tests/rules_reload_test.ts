// End-to-end: rule files reload from a ConfigMap mount or a plain file; bad versions never replace the rules in force.

import { V8_FLAGS_ARGUMENT } from "../lib/rules/pattern.ts";
import assert from "node:assert/strict";
import { decide } from "../lib/rules/engine.ts";
import { type RunningServer, startServer, StartupError } from "../lib/server/app.ts";
import { mintCertificates } from "../lib/server/certs.ts";
import { KubeMount } from "./support/kube_mount.ts";
import {
  checkAnswer,
  HARBOR_NGINX,
  HARBOR_RULES,
  memoryLogger,
  metricValue,
  postReview,
  readyz,
  REPO_ROOT,
  scrapeMetrics,
  tempDir,
  testConfig,
  waitFor,
} from "./support/webhook.ts";

const RELOADS = "mirrorhook_rule_reloads_total";
const FILE_ERRORS = { source: "file", result: "error" } as const;
const FILE_SUCCESSES = { source: "file", result: "success" } as const;

/** YAML that does not parse: line 8, `replace: a: b` is a nested mapping in a compact mapping. */
const YAML_SYNTAX_ERROR = `apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: dockerhub-harbor
spec:
  rules:
    - prefix: docker.io
      replace: harbor.example.com: dockerhub
`;
const YAML_SYNTAX_ERROR_LINE = 8;

/** Valid YAML, invalid rules: the second rule's pattern (line 9) can backtrack catastrophically. */
const CATASTROPHIC_REGEX = `apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: dockerhub-harbor
spec:
  rules:
    - prefix: docker.io
      replace: mirror.example.org/hub
    - match: '^(a+)+$'
      replace: cache.io/x
`;
const CATASTROPHIC_REGEX_LINE = 9;

/** A fixed, different version: Docker Hub goes to another mirror. */
const MIRROR_RULES = `apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: dockerhub-mirror
spec:
  rules:
    - prefix: docker.io
      replace: mirror.example.org/hub
`;
const MIRROR_NGINX = "mirror.example.org/hub/library/nginx:1.27";

/** What the rules in force do to `nginx:1.27` in namespace default. */
function rewriteOfNginx(server: RunningServer): string | undefined {
  const decision = decide(server.store.current, "nginx:1.27", { context: { namespace: "default" } });
  return decision.action === "rewrite" ? decision.output : undefined;
}

interface Fixture extends AsyncDisposable {
  readonly server: RunningServer;
  readonly client: Deno.HttpClient;
  readonly dir: string;
}

/** Starts the server in-process on `rules` with a Secret-style TLS mount; disposing stops and cleans up. */
async function serve(rules: string, dir: string): Promise<Fixture> {
  const chain = await mintCertificates();
  const tls = await KubeMount.create(`${dir}/tls`, { "tls.crt": chain.cert, "tls.key": chain.key });
  const { logger } = memoryLogger();
  const server = await startServer(testConfig({ rules: [rules], tlsDir: tls.dir }), { logger });
  const client = Deno.createHttpClient({ caCerts: [chain.caCert] });
  return {
    server,
    client,
    dir,
    [Symbol.asyncDispose]: async () => {
      client.close();
      await server.shutdown("test");
    },
  };
}

/** The image the HTTPS webhook gives nginx:1.27 now. */
async function servedImage(fixture: Fixture, expected: string): Promise<void> {
  const answer = await postReview(fixture.client, fixture.server.webhookPort);
  assert.equal(checkAnswer(answer.status, answer.text, answer.uid, expected), undefined);
}

async function reloads(fixture: Fixture, labels: Record<string, string>): Promise<number> {
  return metricValue(await scrapeMetrics(fixture.server.probePort), RELOADS, labels);
}

/** Writes a bad version, waits for the error to be counted, and checks that nothing changed. */
async function assertRejected(fixture: Fixture, write: () => Promise<void>, image: string): Promise<void> {
  const before = await readyz(fixture.server.probePort);
  const errors = await reloads(fixture, FILE_ERRORS);
  const successes = await reloads(fixture, FILE_SUCCESSES);
  await write();
  const counted = await waitFor(
    async () => (await reloads(fixture, FILE_ERRORS)) > errors ? true : undefined,
    { timeoutMs: 3000 },
  );
  assert.ok(counted !== undefined, `${RELOADS}{source="file",result="error"} did not increase`);
  assert.equal(rewriteOfNginx(fixture.server), image);
  await servedImage(fixture, image);
  const after = await readyz(fixture.server.probePort);
  assert.equal(after.status, 200);
  assert.equal(after.body.rulesHash, before.body.rulesHash);
  assert.equal(await reloads(fixture, FILE_SUCCESSES), successes);
  const source = fixture.server.store.status().find((status) => status.name === "file");
  assert.ok(source?.lastError !== undefined, "the failed reload is reported on the source");
}

/** Writes a good version and polls every 50 ms until it decides; asserts it took under 2 s. */
async function assertPickedUp(fixture: Fixture, write: () => Promise<void>, image: string): Promise<void> {
  const before = await readyz(fixture.server.probePort);
  await write();
  const changed = await waitFor(() => rewriteOfNginx(fixture.server) === image ? true : undefined, {
    timeoutMs: 2000,
    intervalMs: 50,
  });
  assert.ok(changed !== undefined, `the new rules were not in force after 2000 ms`);
  assert.ok(changed.elapsedMs < 2000, `took ${changed.elapsedMs} ms`);
  await servedImage(fixture, image);
  const after = await readyz(fixture.server.probePort);
  assert.equal(after.status, 200);
  assert.notEqual(after.body.rulesHash, before.body.rulesHash);
  assert.equal(after.body.rulesHash, fixture.server.store.current.hash);
  const source = fixture.server.store.status().find((status) => status.name === "file");
  assert.equal(source?.lastError, undefined);
}

Deno.test("rules reload: a ConfigMap mount swapped through ..data", async (t) => {
  await using dir = await tempDir("mirrorhook-rules-");
  const mount = await KubeMount.create(`${dir.path}/rules`, { "rules.yaml": HARBOR_RULES });
  await using fixture = await serve(mount.dir, dir.path);

  await t.step("the mounted rules are in force", async () => {
    assert.equal(rewriteOfNginx(fixture.server), HARBOR_NGINX);
    await servedImage(fixture, HARBOR_NGINX);
    const ready = await readyz(fixture.server.probePort);
    assert.equal(ready.status, 200);
    assert.equal(ready.body.rulesHash, fixture.server.store.current.hash);
  });
  await t.step("a YAML syntax error is rejected, the last good rules stay", async () => {
    await assertRejected(fixture, () => mount.update({ "rules.yaml": YAML_SYNTAX_ERROR }), HARBOR_NGINX);
  });
  await t.step("a catastrophic regular expression is rejected, the last good rules stay", async () => {
    await assertRejected(fixture, () => mount.update({ "rules.yaml": CATASTROPHIC_REGEX }), HARBOR_NGINX);
  });
  await t.step("a fixed, different version is in force within 2 s", async () => {
    await assertPickedUp(fixture, () => mount.update({ "rules.yaml": MIRROR_RULES }), MIRROR_NGINX);
  });
  await t.step("an emptied ConfigMap is rejected, the last good rules stay", async () => {
    await assertRejected(fixture, () => mount.update({ "rules.yaml": "" }), MIRROR_NGINX);
    await assertRejected(fixture, () => mount.update({}), MIRROR_NGINX);
  });
  await t.step("a second key added to the ConfigMap is read too", async () => {
    const extra = HARBOR_RULES.replace("name: dockerhub-harbor", "name: dockerhub-harbor-high")
      .replace("spec:\n", "spec:\n  priority: 10\n");
    await assertPickedUp(
      fixture,
      () => mount.update({ "rules.yaml": MIRROR_RULES, "zz-priority.yaml": extra }),
      HARBOR_NGINX,
    );
  });
  await t.step("a key that the next ..data turns into a dangling link is rejected, its rules stay", async () => {
    await assertRejected(fixture, async () => {
      // What the kubelet's swap leaves when a key's file is missing behind its link.
      const next = `..broken_${crypto.randomUUID()}`;
      await Deno.mkdir(`${mount.dir}/${next}`);
      await Deno.writeTextFile(`${mount.dir}/${next}/rules.yaml`, MIRROR_RULES);
      await Deno.symlink(`${mount.dir}/${next}/gone.yaml`, `${mount.dir}/${next}/zz-priority.yaml`);
      await Deno.symlink(next, `${mount.dir}/..data_tmp`);
      await Deno.rename(`${mount.dir}/..data_tmp`, `${mount.dir}/..data`);
    }, HARBOR_NGINX);
  });
  await t.step("the key removed from the ConfigMap for good: its rules leave", async () => {
    await assertPickedUp(fixture, () => mount.update({ "rules.yaml": MIRROR_RULES }), MIRROR_NGINX);
  });
});

Deno.test("rules reload: one key of a ConfigMap mount named as the rules file", async (t) => {
  await using dir = await tempDir("mirrorhook-rules-");
  const mount = await KubeMount.create(`${dir.path}/rules`, { "rules.yaml": HARBOR_RULES });
  await using fixture = await serve(`${mount.dir}/rules.yaml`, dir.path);

  await t.step("the key's rules are in force", () => {
    assert.equal(rewriteOfNginx(fixture.server), HARBOR_NGINX);
  });
  await t.step("a broken version is rejected", async () => {
    await assertRejected(fixture, () => mount.update({ "rules.yaml": YAML_SYNTAX_ERROR }), HARBOR_NGINX);
  });
  await t.step("a fixed, different version is in force within 2 s", async () => {
    await assertPickedUp(fixture, () => mount.update({ "rules.yaml": MIRROR_RULES }), MIRROR_NGINX);
  });
});

Deno.test("rules reload: a plain file edited in place", async (t) => {
  await using dir = await tempDir("mirrorhook-rules-");
  const file = `${dir.path}/rules.yaml`;
  await Deno.writeTextFile(file, HARBOR_RULES);
  const inode = (await Deno.stat(file)).ino;
  await using fixture = await serve(file, dir.path);
  const edit = (text: string) => async () => {
    await Deno.writeTextFile(file, text);
    assert.equal((await Deno.stat(file)).ino, inode, "edited in place, not replaced");
  };

  await t.step("the file's rules are in force", async () => {
    assert.equal(rewriteOfNginx(fixture.server), HARBOR_NGINX);
    await servedImage(fixture, HARBOR_NGINX);
  });
  await t.step("a YAML syntax error is rejected", async () => {
    await assertRejected(fixture, edit(YAML_SYNTAX_ERROR), HARBOR_NGINX);
  });
  await t.step("a catastrophic regular expression is rejected", async () => {
    await assertRejected(fixture, edit(CATASTROPHIC_REGEX), HARBOR_NGINX);
  });
  await t.step("a fixed, different version is in force within 2 s", async () => {
    await assertPickedUp(fixture, edit(MIRROR_RULES), MIRROR_NGINX);
  });
  await t.step("and back again", async () => {
    await assertPickedUp(fixture, edit(HARBOR_RULES), HARBOR_NGINX);
  });
});

Deno.test("rules reload: a bad first load stops startServer with every problem located", async (t) => {
  await using dir = await tempDir("mirrorhook-rules-");
  const chain = await mintCertificates();
  const tls = await KubeMount.create(`${dir.path}/tls`, { "tls.crt": chain.cert, "tls.key": chain.key });
  const rules = await KubeMount.create(`${dir.path}/rules`, {
    "a-syntax.yaml": YAML_SYNTAX_ERROR,
    "b-regex.yaml": CATASTROPHIC_REGEX,
  });
  const { logger } = memoryLogger();
  const error = await startServer(testConfig({ rules: [rules.dir], tlsDir: tls.dir }), { logger }).then(
    async (server) => {
      await server.shutdown("test");
      return undefined;
    },
    (error: unknown) => error,
  );
  assert.ok(error instanceof StartupError, `expected StartupError, got ${String(error)}`);
  const errors = error.problems.filter((problem) => problem.severity === "error");
  const rows: [string, string, string, number][] = [
    ["yaml syntax", "a-syntax.yaml", "yaml-syntax", YAML_SYNTAX_ERROR_LINE],
    ["catastrophic regex", "b-regex.yaml", "catastrophic-pattern", CATASTROPHIC_REGEX_LINE],
  ];
  for (const [name, file, code, line] of rows) {
    await t.step(name, () => {
      const problem = errors.find((p) => p.source === `${rules.dir}/${file}`);
      assert.ok(problem !== undefined, `no problem for ${file}: ${JSON.stringify(errors)}`);
      assert.equal(problem.code, code);
      assert.equal(problem.line, line);
      assert.equal(typeof problem.column, "number");
      assert.ok(error.message.includes(`${rules.dir}/${file}:${line}:${problem.column}`), error.message);
    });
  }
  assert.equal(errors.length, 2);
});

Deno.test("rules reload: `mirrorhook serve` with bad rules exits non-zero and prints file:line:column", async (t) => {
  await using dir = await tempDir("mirrorhook-rules-");
  const chain = await mintCertificates();
  const tls = await KubeMount.create(`${dir.path}/tls`, { "tls.crt": chain.cert, "tls.key": chain.key });
  const rows: [string, string, number][] = [
    ["yaml syntax", YAML_SYNTAX_ERROR, YAML_SYNTAX_ERROR_LINE],
    ["catastrophic regex", CATASTROPHIC_REGEX, CATASTROPHIC_REGEX_LINE],
  ];
  for (const [name, text, line] of rows) {
    await t.step(name, async () => {
      const bad = `${dir.path}/${name.replaceAll(" ", "-")}.yaml`;
      await Deno.writeTextFile(bad, text);
      const command = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-P=mirrorhook",
          V8_FLAGS_ARGUMENT,
          "main.ts",
          "serve",
          "--rules",
          bad,
          "--tls-dir",
          tls.dir,
          "--host",
          "127.0.0.1",
          "--port",
          "0",
          "--probe-port",
          "0",
        ],
        cwd: REPO_ROOT,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        env: { NO_COLOR: "1" },
      });
      const child = command.spawn();
      const killer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      const output = await child.output();
      clearTimeout(killer);
      const stderr = new TextDecoder().decode(output.stderr);
      assert.equal(output.code, 1, stderr);
      assert.match(stderr, new RegExp(`${RegExp.escape(bad)}:${line}:\\d+: error: `));
    });
  }
});
