// Target verification against a real OCI distribution registry (Debian's docker-registry) on 127.0.0.1.

import assert from "node:assert/strict";
import { mintCertificates } from "../lib/server/certs.ts";
import { CredentialStore } from "../lib/verify/auth.ts";
import { VerifyPolicy } from "../lib/verify/policy.ts";
import { Transport } from "../lib/verify/transport.ts";
import { Verifier, type VerifierOptions } from "../lib/verify/verifier.ts";
import {
  pushImage,
  registryInstalled,
  type RunningRegistry,
  startRegistry,
  startSilentServer,
  TEST_USER,
} from "./support/registry.ts";

// CI installs docker-registry (.ci/run), so a missing binary fails the suite; MIRRORHOOK_SKIP_REGISTRY=1 skips it
// on machines without it.
const ignore = Deno.env.get("MIRRORHOOK_SKIP_REGISTRY") === "1" && !registryInstalled();

/** A fetch that records every request it passes on. */
function countingFetch(): { fetch: typeof fetch; calls: { method: string; url: string }[] } {
  const calls: { method: string; url: string }[] = [];
  const counted: typeof fetch = (input, init) => {
    calls.push({ method: init?.method ?? "GET", url: input instanceof Request ? input.url : String(input) });
    return fetch(input, init);
  };
  return { fetch: counted, calls };
}

const manifestCalls = (calls: { url: string }[]) => calls.filter((call) => call.url.includes("/manifests/")).length;

/** A verifier for a plain-HTTP registry, with a counting fetch; close it at the end of the test. */
async function verifierFor(
  registry: { host: string },
  options: Omit<VerifierOptions, "transport" | "fetch"> = {},
): Promise<{ verifier: Verifier; calls: { method: string; url: string }[]; close: () => Promise<void> }> {
  const { fetch, calls } = countingFetch();
  const transport = await Transport.create({ insecure: [registry.host] });
  const verifier = new Verifier({ ...options, fetch, transport });
  return {
    verifier,
    calls,
    close: async () => {
      await verifier.close();
      transport.close();
    },
  };
}

const ABSENT_DIGEST = `sha256:${"0".repeat(64)}`;

Deno.test({
  name: "Verifier asks an anonymous registry by tag and by digest",
  ignore,
  sanitizeResources: true,
  fn: async (t) => {
    await using registry = await startRegistry();
    const app = await pushImage(registry.url, "team/app", "v1");
    const multi = await pushImage(registry.url, "team/multi", "v2", { index: true });
    const { verifier, calls, close } = await verifierFor(registry);
    const at = (rest: string) => `${registry.host}/${rest}`;
    try {
      const rows: { name: string; reference: string; status: string; path: string }[] = [
        { name: "present tag", reference: at("team/app:v1"), status: "present", path: "/v2/team/app/manifests/v1" },
        { name: "missing tag", reference: at("team/app:v9"), status: "missing", path: "/v2/team/app/manifests/v9" },
        {
          name: "missing repository",
          reference: at("team/nothing:v1"),
          status: "missing",
          path: "/v2/team/nothing/manifests/v1",
        },
        {
          name: "present digest",
          reference: at(`team/app@${app.digest}`),
          status: "present",
          path: `/v2/team/app/manifests/${app.digest}`,
        },
        {
          name: "missing digest",
          reference: at(`team/app@${ABSENT_DIGEST}`),
          status: "missing",
          path: `/v2/team/app/manifests/${ABSENT_DIGEST}`,
        },
        {
          name: "missing tag with a present digest is checked by digest",
          reference: at(`team/app:v9@${app.digest}`),
          status: "present",
          path: `/v2/team/app/manifests/${app.digest}`,
        },
        {
          name: "present tag with a missing digest is checked by digest",
          reference: at(`team/app:v1@${ABSENT_DIGEST}`),
          status: "missing",
          path: `/v2/team/app/manifests/${ABSENT_DIGEST}`,
        },
        {
          name: "index (multi-arch) tag",
          reference: at("team/multi:v2"),
          status: "present",
          path: "/v2/team/multi/manifests/v2",
        },
        {
          name: "image manifest inside the index, by digest",
          reference: at(`team/multi@${multi.manifestDigest}`),
          status: "present",
          path: `/v2/team/multi/manifests/${multi.manifestDigest}`,
        },
      ];
      for (const row of rows) {
        await t.step(row.name, async () => {
          // Rows share manifests (a tag@digest is cached as the digest), so each starts cold.
          verifier.clearCache();
          const before = calls.length;
          const result = await verifier.check(row.reference);
          assert.equal(result.status, row.status, result.detail ?? "");
          assert.equal(result.cached, false);
          const made = calls.slice(before);
          assert.deepEqual(made.map((call) => [call.method, new URL(call.url).pathname]), [["HEAD", row.path]]);
        });
      }
      await t.step("index answers with the OCI index media type", async () => {
        verifier.clearCache();
        const result = await verifier.check(at("team/multi:v2"));
        assert.equal(result.detail, "application/vnd.oci.image.index.v1+json");
      });
      await t.step("all lookups of one Pod in one call", async () => {
        verifier.clearCache();
        const references = [at("team/app:v1"), at("team/app:v9"), at("team/multi:v2"), "Not A Reference"];
        const results = await verifier.checkAll(references, 2_000);
        assert.deepEqual(references.map((reference) => results.get(reference)?.status), [
          "present",
          "missing",
          "present",
          "error",
        ]);
        assert.equal(results.get("Not A Reference")?.source, "invalid");
      });
    } finally {
      await close();
    }
  },
});

Deno.test({
  name: "Verifier cache answers repeats without network calls, and one lookup serves concurrent admissions",
  ignore,
  fn: async (t) => {
    await using registry = await startRegistry();
    await pushImage(registry.url, "team/app", "v1");
    let now = 1_000_000;
    const { verifier, calls, close } = await verifierFor(registry, {
      now: () => now,
      cache: { ttls: { presentMs: 60_000, missingMs: 5_000, errorMs: 1_000 } },
    });
    const present = `${registry.host}/team/app:v1`;
    const missing = `${registry.host}/team/app:v404`;
    try {
      await t.step("first check goes to the registry", async () => {
        const results = await verifier.checkAll([present, missing]);
        assert.deepEqual([results.get(present)?.cached, results.get(missing)?.cached], [false, false]);
        assert.equal(manifestCalls(calls), 2);
      });
      await t.step("repeats come from the cache, present and missing alike", async () => {
        for (let i = 0; i < 5; i++) {
          const results = await verifier.checkAll([present, missing]);
          assert.deepEqual(results.get(present), {
            status: "present",
            cached: true,
            source: "hit",
            detail: results.get(present)?.detail,
          });
          assert.equal(results.get(missing)?.status, "missing");
          assert.equal(results.get(missing)?.cached, true);
        }
        assert.equal(calls.length, 2);
      });
      await t.step("a missing answer expires before a present one", async () => {
        now += 6_000;
        const results = await verifier.checkAll([present, missing]);
        assert.equal(results.get(present)?.cached, true);
        assert.equal(results.get(missing)?.cached, false);
        assert.equal(calls.length, 3);
        now += 60_000;
        assert.equal((await verifier.check(present)).cached, false);
        assert.equal(calls.length, 4);
      });
      await t.step("20 concurrent admissions for one new image make one registry request", async () => {
        await pushImage(registry.url, "team/fresh", "v1");
        const fresh = `${registry.host}/team/fresh:v1`;
        const before = calls.length;
        const all = await Promise.all(Array.from({ length: 20 }, () => verifier.checkAll([fresh, present])));
        assert.equal(calls.length - before, 1);
        for (const results of all) assert.equal(results.get(fresh)?.status, "present");
        assert.deepEqual(
          [...new Set(all.map((results) => results.get(fresh)?.source))].sort(),
          ["coalesced", "miss"],
        );
      });
      await t.step("one image written twice in a Pod is looked up once", async () => {
        const again = `${registry.host}/team/again:v1`;
        const before = calls.length;
        const results = await verifier.checkAll([again, again, `${registry.host}/team/again:v1`]);
        assert.equal(results.size, 1);
        assert.equal(calls.length - before, 1);
      });
    } finally {
      await close();
    }
  },
});

Deno.test({
  name: "Verifier authenticates to an htpasswd registry with credentials from a Docker config",
  ignore,
  fn: async (t) => {
    await using registry = await startRegistry({ auth: TEST_USER });
    await pushImage(registry.url, "team/app", "v1", { auth: TEST_USER });
    const present = `${registry.host}/team/app:v1`;
    const basic = btoa(`${TEST_USER.username}:${TEST_USER.password}`);
    const configs: { name: string; config: unknown }[] = [
      { name: "auth under host:port", config: { auths: { [registry.host]: { auth: basic } } } },
      {
        name: "username and password under https://host:port",
        config: {
          auths: { [`https://${registry.host}`]: { username: TEST_USER.username, password: TEST_USER.password } },
        },
      },
      {
        name: "auth under http://host:port/v2/",
        config: { auths: { [`http://${registry.host}/v2/`]: { auth: basic } } },
      },
    ];
    for (const { name, config } of configs) {
      await t.step(`${name}: present, missing`, async () => {
        const { verifier, calls, close } = await verifierFor(registry, {
          credentials: new CredentialStore().add(config),
        });
        try {
          const results = await verifier.checkAll([present, `${registry.host}/team/app:v2`]);
          assert.equal(results.get(present)?.status, "present", results.get(present)?.detail ?? "");
          assert.equal(results.get(`${registry.host}/team/app:v2`)?.status, "missing");
          // First request anonymous, answered 401; then credentials are sent up front.
          const statuses = calls.length;
          verifier.clearCache();
          await verifier.check(present);
          assert.equal(calls.length - statuses, 1);
        } finally {
          await close();
        }
      });
    }
    await t.step("a mounted .dockerconfigjson Secret, through Verifier.create", async () => {
      const dir = await Deno.makeTempDir();
      try {
        await Deno.writeTextFile(
          `${dir}/.dockerconfigjson`,
          JSON.stringify({ auths: { [registry.host]: { auth: basic } } }),
        );
        const verifier = await Verifier.create({ dockerConfigs: [dir], insecureRegistries: [registry.host] });
        try {
          assert.equal((await verifier.check(present)).status, "present");
        } finally {
          await verifier.close();
        }
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
    const failures: { name: string; credentials: CredentialStore; detail: RegExp }[] = [
      { name: "no credentials", credentials: CredentialStore.empty(), detail: /401.*no credentials/ },
      {
        name: "credentials for another registry",
        credentials: new CredentialStore().add({ auths: { "127.0.0.1:1": { auth: basic } } }),
        detail: /401.*no credentials/,
      },
      {
        name: "a wrong password",
        credentials: new CredentialStore().add({ auths: { [registry.host]: { auth: btoa("mirror:wrong") } } }),
        detail: /401.*rejected/,
      },
    ];
    for (const row of failures) {
      await t.step(`${row.name}: a clean error`, async () => {
        const { verifier, close } = await verifierFor(registry, { credentials: row.credentials });
        try {
          const result = await verifier.check(present);
          assert.equal(result.status, "error");
          assert.match(result.detail ?? "", row.detail);
        } finally {
          await close();
        }
      });
    }
  },
});

Deno.test({
  name: "Verifier speaks HTTPS with a per-registry CA file, and plain HTTP only to listed hosts",
  ignore,
  fn: async (t) => {
    const chain = await mintCertificates();
    await using registry = await startRegistry({ tls: { cert: chain.cert, key: chain.key, ca: chain.caCert } });
    const pushOptions = registry.client === undefined ? {} : { client: registry.client };
    await pushImage(registry.url, "team/app", "v1", pushOptions);
    const present = `${registry.host}/team/app:v1`;
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(`${dir}/ca.crt`, chain.caCert);
      await t.step("with the CA file: present", async () => {
        const transport = await Transport.create({ caFiles: { [registry.host]: `${dir}/ca.crt` } });
        const verifier = new Verifier({ transport });
        try {
          const result = await verifier.check(present);
          assert.equal(result.status, "present", result.detail ?? "");
        } finally {
          await verifier.close();
          transport.close();
        }
      });
      await t.step("without it: error (unknown issuer)", async () => {
        const verifier = new Verifier({ policy: VerifyPolicy.create({ registries: [registry.host] }) });
        try {
          const result = await verifier.check(present);
          assert.equal(result.status, "error");
          assert.match(result.cause ?? "", /certificate|issuer|tls/i);
        } finally {
          await verifier.close();
        }
      });
      await t.step("listed as insecure: plain HTTP to a TLS port fails cleanly", async () => {
        const transport = await Transport.create({ insecure: [registry.host] });
        const verifier = new Verifier({ transport });
        try {
          const result = await verifier.check(present);
          assert.notEqual(result.status, "present");
        } finally {
          await verifier.close();
          transport.close();
        }
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "Verifier: a plain-HTTP registry not listed as insecure is an error",
  ignore,
  fn: async () => {
    await using registry = await startRegistry();
    const verifier = new Verifier();
    try {
      const result = await verifier.check(`${registry.host}/team/app:v1`);
      assert.equal(result.status, "error");
    } finally {
      await verifier.close();
    }
  },
});

const DEADLINE_MS = 400;
const MARGIN_MS = 250;

Deno.test({
  name: "Verifier falls back within the deadline when the registry is down or never answers",
  ignore,
  fn: async (t) => {
    await t.step("a stopped registry: error", async () => {
      let stopped: RunningRegistry | undefined = await startRegistry();
      const host = stopped.host;
      await stopped.stop();
      stopped = undefined;
      const { verifier, close } = await verifierFor({ host });
      try {
        const started = performance.now();
        const result = await verifier.check(`${host}/team/app:v1`, DEADLINE_MS);
        const elapsed = performance.now() - started;
        assert.equal(result.status, "error");
        assert.ok(elapsed < DEADLINE_MS + MARGIN_MS, `took ${elapsed} ms`);
      } finally {
        await close();
      }
    });
    await t.step("a server that accepts and never answers: timeout, then the lookup ends by itself", async () => {
      await using silent = startSilentServer();
      const { verifier, close } = await verifierFor(silent, { requestTimeoutMs: 800 });
      const image = `${silent.host}/team/app:v1`;
      try {
        const started = performance.now();
        const results = await verifier.checkAll([image, `${silent.host}/team/other:v1`], DEADLINE_MS);
        const elapsed = performance.now() - started;
        assert.deepEqual([...results.values()].map((result) => result.status), ["timeout", "timeout"]);
        assert.ok(elapsed >= DEADLINE_MS - 5 && elapsed < DEADLINE_MS + MARGIN_MS, `took ${elapsed} ms`);
        assert.equal(verifier.inFlight, 2);
        // The lookups go on in the background, bounded by the request timeout, and cache an error.
        const waitUntil = performance.now() + 800 + MARGIN_MS * 2;
        while (verifier.inFlight > 0 && performance.now() < waitUntil) {
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        assert.equal(verifier.inFlight, 0);
        const again = await verifier.check(image, DEADLINE_MS);
        assert.deepEqual([again.status, again.cached], ["error", true]);
        assert.match(again.detail ?? "", /no answer within 800 ms/);
      } finally {
        await close();
      }
    });
    await t.step("close() ends lookups still under way", async () => {
      await using silent = startSilentServer();
      const { verifier, close } = await verifierFor(silent, { requestTimeoutMs: 60_000 });
      const results = await verifier.checkAll([`${silent.host}/team/app:v1`], 100);
      assert.equal(results.get(`${silent.host}/team/app:v1`)?.status, "timeout");
      assert.equal(verifier.inFlight, 1);
      const started = performance.now();
      await close();
      assert.equal(verifier.inFlight, 0);
      assert.ok(performance.now() - started < MARGIN_MS);
    });
  },
});
