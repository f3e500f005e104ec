// Tests for Docker config parsing and matching credentials to registry hosts.

import assert from "node:assert/strict";
import { CredentialStore, DockerConfigError, normalizeConfigKey, readDockerConfigs } from "./auth.ts";

const BASIC = btoa("user:pa:ss");

Deno.test("normalizeConfigKey() reads the key forms docker and kubectl write", async (t) => {
  const rows: [string, string, string][] = [
    ["https://index.docker.io/v1/", "docker.io", ""],
    ["index.docker.io", "docker.io", ""],
    ["registry-1.docker.io", "docker.io", ""],
    ["docker.io", "docker.io", ""],
    ["https://docker.io", "docker.io", ""],
    ["harbor.example.com", "harbor.example.com", ""],
    ["Harbor.Example.com", "harbor.example.com", ""],
    ["harbor.example.com:8443", "harbor.example.com:8443", ""],
    ["https://harbor.example.com", "harbor.example.com", ""],
    ["http://localhost:5000/", "localhost:5000", ""],
    ["https://harbor.example.com/v2/", "harbor.example.com", ""],
    ["harbor.example.com/team/", "harbor.example.com", "team"],
    ["https://harbor.example.com/v2/team/app", "harbor.example.com", "team/app"],
    ["[2001:db8::1]:5000", "[2001:db8::1]:5000", ""],
    ["*.example.com", "*.example.com", ""],
  ];
  for (const [key, host, path] of rows) {
    await t.step(key, () => assert.deepEqual(normalizeConfigKey(key), { host, path }));
  }
});

Deno.test("CredentialStore reads every entry form", async (t) => {
  const rows: { name: string; entry: unknown; want: unknown }[] = [
    {
      name: "auth (password with a colon)",
      entry: { auth: BASIC },
      want: { kind: "basic", username: "user", password: "pa:ss" },
    },
    {
      name: "username and password",
      entry: { username: "u", password: "p" },
      want: { kind: "basic", username: "u", password: "p" },
    },
    {
      name: "auth wins over username and password",
      entry: { auth: BASIC, username: "u", password: "p" },
      want: { kind: "basic", username: "user", password: "pa:ss" },
    },
    {
      name: "identitytoken",
      entry: { auth: btoa("<token>:"), identitytoken: "refresh" },
      want: { kind: "identity-token", username: "<token>", token: "refresh" },
    },
    { name: "registrytoken", entry: { registrytoken: "bearer" }, want: { kind: "registry-token", token: "bearer" } },
    { name: "email only", entry: { email: "a@b.c" }, want: undefined },
    { name: "empty auth", entry: { auth: "" }, want: undefined },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      const store = new CredentialStore().add({ auths: { "reg.example.com": row.entry } });
      assert.deepEqual(store.find("reg.example.com"), row.want);
    });
  }
  await t.step("legacy .dockercfg (no auths wrapper)", () => {
    const store = new CredentialStore().add({ "https://reg.example.com": { auth: BASIC, email: "x" } });
    assert.equal(store.find("reg.example.com")?.kind, "basic");
  });
});

Deno.test("CredentialStore rejects broken configs with the key named", async (t) => {
  const rows: { name: string; config: unknown; key?: string }[] = [
    { name: "a list", config: [] },
    { name: "auths a string", config: { auths: "x" } },
    { name: "entry a string", config: { auths: { "reg.example.com": "x" } }, key: "reg.example.com" },
    { name: "auth not base64", config: { auths: { "reg.example.com": { auth: "%%%" } } }, key: "reg.example.com" },
    {
      name: "auth without a colon",
      config: { auths: { "reg.example.com": { auth: btoa("user") } } },
      key: "reg.example.com",
    },
    { name: "empty key", config: { auths: { "https://": { auth: BASIC } } }, key: "https://" },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      assert.throws(() => new CredentialStore().add(row.config, "secret.json"), (error: unknown) => {
        assert.ok(error instanceof DockerConfigError);
        assert.equal(error.source, "secret.json");
        assert.equal(error.key, row.key);
        return true;
      });
    });
  }
});

Deno.test("CredentialStore.find() matches per registry host", async (t) => {
  const cred = (name: string) => ({ username: name, password: "p" });
  const store = new CredentialStore().add({
    auths: {
      "https://index.docker.io/v1/": cred("hub"),
      "harbor.example.com": cred("harbor"),
      "harbor.example.com/team": cred("team"),
      "harbor.example.com/team/app": cred("app"),
      "harbor.example.com:8443": cred("port"),
      "*.cache.example.com": cred("wild"),
      "direct.cache.example.com": cred("direct"),
      "localhost:5000": cred("local"),
    },
  });
  const rows: [string, string, string | undefined][] = [
    ["docker.io", "library/nginx", "hub"],
    ["harbor.example.com", "other/app", "harbor"],
    ["HARBOR.example.com", "other/app", "harbor"],
    ["harbor.example.com", "team/web", "team"],
    ["harbor.example.com", "team/app", "app"],
    ["harbor.example.com", "team/application", "team"],
    ["harbor.example.com", "teamx/app", "harbor"],
    ["harbor.example.com:8443", "team/app", "port"],
    ["harbor.example.com:9443", "team/app", undefined],
    ["eu.cache.example.com", "x", "wild"],
    ["direct.cache.example.com", "x", "direct"],
    ["a.b.cache.example.com", "x", undefined],
    ["cache.example.com", "x", undefined],
    ["localhost:5000", "x", "local"],
    ["localhost", "x", undefined],
    ["quay.io", "x", undefined],
  ];
  for (const [registry, path, want] of rows) {
    await t.step(`${registry}/${path}`, () => {
      const found = store.find(registry, path);
      assert.equal(found?.kind === "basic" ? found.username : found, want);
    });
  }
  await t.step("a later config wins for the same key", () => {
    const both = new CredentialStore().add({ auths: { "r.io": cred("first") } }).add({
      auths: { "r.io": cred("second") },
    });
    const found = both.find("r.io");
    assert.equal(found?.kind === "basic" ? found.username : undefined, "second");
  });
});

Deno.test("readDockerConfigs() reads files and mounted Secret directories", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/secret`);
    await Deno.writeTextFile(`${dir}/secret/.dockerconfigjson`, JSON.stringify({ auths: { "a.io": { auth: BASIC } } }));
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({ auths: { "b.io": { auth: BASIC } } }));
    await Deno.writeTextFile(`${dir}/bad.json`, "{");
    await t.step("a directory and a file", async () => {
      const store = await readDockerConfigs([`${dir}/secret`, `${dir}/config.json`]);
      assert.equal(store.size, 2);
      assert.equal(store.find("a.io")?.kind, "basic");
      assert.equal(store.find("b.io")?.kind, "basic");
    });
    await t.step("an empty directory (an optional Secret that does not exist) means no credentials", async () => {
      await Deno.mkdir(`${dir}/empty`);
      const store = await readDockerConfigs([`${dir}/empty`]);
      assert.equal(store.size, 0);
    });
    const failures: [string, string][] = [
      ["invalid JSON", "bad.json"],
      ["a missing file", "nope.json"],
      ["a directory with other files only", "other"],
    ];
    await Deno.mkdir(`${dir}/other`);
    await Deno.writeTextFile(`${dir}/other/readme.txt`, "not a docker config");
    for (const [name, path] of failures) {
      await t.step(name, async () => {
        await assert.rejects(readDockerConfigs([`${dir}/${path}`]), DockerConfigError);
      });
    }
    await t.step("a malformed config is reported without any of its text", async () => {
      await Deno.writeTextFile(`${dir}/leaky.json`, '{"auths": {"r.io": {"password": S3cr3t-Password}}}');
      const error = await readDockerConfigs([`${dir}/leaky.json`]).then(() => undefined, (error: unknown) => error);
      assert.ok(error instanceof DockerConfigError);
      assert.match(error.message, /invalid JSON \(syntax error/);
      assert.equal(error.message.includes("S3cr3t"), false, error.message);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
