// Tests for the registry client with an injected fetch: URLs, Accept, status mapping, Bearer and Basic flows.

import assert from "node:assert/strict";
import { parseReferenceOrThrow } from "../image/reference.ts";
import { CredentialStore } from "./auth.ts";
import { MANIFEST_MEDIA_TYPES, parseChallenges, RegistryClient, type RequestEvent } from "./registry.ts";
import { VerifyPolicy } from "./policy.ts";
import { Transport } from "./transport.ts";

interface Seen {
  readonly method: string;
  readonly url: URL;
  readonly headers: Headers;
  readonly body: string;
}

/** A fetch answering from `handler`, recording every request; never touches the network. */
function fakeFetch(handler: (request: Seen) => Response | Promise<Response>): { fetch: typeof fetch; seen: Seen[] } {
  const seen: Seen[] = [];
  const fake: typeof fetch = async (input, init) => {
    const request = new Request(input, init);
    const entry = {
      method: request.method,
      url: new URL(request.url),
      headers: request.headers,
      body: request.body === null ? "" : await request.text(),
    };
    seen.push(entry);
    return await handler(entry);
  };
  return { fetch: fake, seen };
}

const OCI = "application/vnd.oci.image.manifest.v1+json";
const ref = (text: string) => parseReferenceOrThrow(text);

Deno.test("parseChallenges() reads WWW-Authenticate", async (t) => {
  const rows: [string, { scheme: string; params: Record<string, string> }[]][] = [
    [
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"',
      [{
        scheme: "bearer",
        params: {
          realm: "https://auth.docker.io/token",
          service: "registry.docker.io",
          scope: "repository:library/nginx:pull",
        },
      }],
    ],
    ['Basic realm="Registry Realm"', [{ scheme: "basic", params: { realm: "Registry Realm" } }]],
    [
      'Basic realm="a, b", Bearer realm="https://x/token", error="invalid_token"',
      [
        { scheme: "basic", params: { realm: "a, b" } },
        { scheme: "bearer", params: { realm: "https://x/token", error: "invalid_token" } },
      ],
    ],
    ['bearer Realm=https://x/token , scope="a:b:pull,push"', [{
      scheme: "bearer",
      params: { realm: "https://x/token", scope: "a:b:pull,push" },
    }]],
    ['Bearer realm="q\\"uote"', [{ scheme: "bearer", params: { realm: 'q"uote' } }]],
    ["", []],
  ];
  for (const [header, want] of rows) {
    await t.step(header === "" ? "(empty)" : header, () => {
      assert.deepEqual(
        parseChallenges(header).map((c) => ({ scheme: c.scheme, params: { ...c.params } })),
        want,
      );
    });
  }
});

Deno.test("RegistryClient sends HEAD /v2/<name>/manifests/<ref> with every manifest media type", async (t) => {
  const rows: [string, string][] = [
    ["nginx:1.27", "https://registry-1.docker.io/v2/library/nginx/manifests/1.27"],
    ["index.docker.io/bitnami/redis", "https://registry-1.docker.io/v2/bitnami/redis/manifests/latest"],
    ["ghcr.io/a/b/c:v1", "https://ghcr.io/v2/a/b/c/manifests/v1"],
    [`quay.io/a/b:v1@sha256:${"a".repeat(64)}`, `https://quay.io/v2/a/b/manifests/sha256:${"a".repeat(64)}`],
    ["localhost:5000/app:1", "https://localhost:5000/v2/app/manifests/1"],
    ["[2001:db8::1]:5000/app:1", "https://[2001:db8::1]:5000/v2/app/manifests/1"],
  ];
  for (const [image, url] of rows) {
    await t.step(image, async () => {
      const { fetch, seen } = fakeFetch(() => new Response(null, { status: 200, headers: { "content-type": OCI } }));
      const client = new RegistryClient({ fetch });
      assert.equal((await client.check(ref(image))).status, "present");
      assert.deepEqual(seen.map((s) => [s.method, s.url.href]), [["HEAD", url]]);
      const accept = seen[0]?.headers.get("accept")?.split(/,\s*/) ?? [];
      assert.deepEqual(accept, MANIFEST_MEDIA_TYPES);
      assert.equal(seen[0]?.headers.get("authorization"), null);
    });
  }
  await t.step("http only for hosts listed as insecure", async () => {
    const { fetch, seen } = fakeFetch(() => new Response(null, { status: 404 }));
    const transport = await Transport.create({ insecure: ["localhost:5000", "index.docker.io"] });
    const client = new RegistryClient({ fetch, transport });
    await client.check(ref("localhost:5000/app:1"));
    await client.check(ref("localhost:5001/app:1"));
    await client.check(ref("nginx:1"));
    assert.deepEqual(seen.map((s) => s.url.origin), [
      "http://localhost:5000",
      "https://localhost:5001",
      "http://registry-1.docker.io",
    ]);
  });
});

Deno.test("RegistryClient maps answers to present, missing and error", async (t) => {
  const digest = `sha256:${"b".repeat(64)}`;
  const rows: { name: string; respond: () => Response | Promise<Response>; want: Record<string, unknown> }[] = [
    {
      name: "200 OCI index",
      respond: () =>
        new Response(null, {
          status: 200,
          headers: { "content-type": "application/vnd.oci.image.index.v1+json", "docker-content-digest": digest },
        }),
      want: {
        status: "present",
        httpStatus: 200,
        mediaType: "application/vnd.oci.image.index.v1+json",
        detail: "application/vnd.oci.image.index.v1+json",
        digest,
      },
    },
    {
      name: "200 without headers",
      respond: () => new Response(null, { status: 200 }),
      want: { status: "present", httpStatus: 200 },
    },
    { name: "404", respond: () => new Response(null, { status: 404 }), want: { status: "missing", httpStatus: 404 } },
    { name: "403", respond: () => new Response(null, { status: 403 }), want: { status: "error", httpStatus: 403 } },
    { name: "429", respond: () => new Response(null, { status: 429 }), want: { status: "error", httpStatus: 429 } },
    { name: "500", respond: () => new Response(null, { status: 500 }), want: { status: "error", httpStatus: 500 } },
    {
      name: "200 text/html",
      respond: () => new Response(null, { status: 200, headers: { "content-type": "text/html; charset=utf-8" } }),
      want: { status: "error", httpStatus: 200 },
    },
    {
      name: "401 without a challenge",
      respond: () => new Response(null, { status: 401 }),
      want: { status: "error", httpStatus: 401 },
    },
    {
      name: "network error",
      respond: () => Promise.reject(new TypeError("connection refused")),
      want: { status: "error" },
    },
  ];
  for (const row of rows) {
    await t.step(row.name, async () => {
      const { fetch } = fakeFetch(row.respond);
      const answer = await new RegistryClient({ fetch }).check(ref("reg.example.com/team/app:v1"));
      const { detail, ...rest } = answer;
      const { detail: wantDetail, ...wantRest } = row.want;
      assert.deepEqual(rest, wantRest);
      if (wantDetail !== undefined) assert.equal(detail, wantDetail);
      else assert.equal(typeof detail, row.want["status"] === "present" ? "undefined" : "string");
    });
  }
  await t.step("no answer within the request timeout", async () => {
    const hang: typeof fetch = (_input, init) =>
      new Promise((_resolve, reject) => init?.signal?.addEventListener("abort", () => reject(init.signal?.reason)));
    const events: RequestEvent[] = [];
    const client = new RegistryClient({ fetch: hang, requestTimeoutMs: 30, onRequest: (event) => events.push(event) });
    const answer = await client.check(ref("reg.example.com/team/app:v1"));
    assert.equal(answer.status, "error");
    assert.match(answer.detail ?? "", /no answer within 30 ms/);
    assert.deepEqual(events.map((e) => [e.host, e.kind, e.code]), [["reg.example.com", "manifest", "timeout"]]);
  });
  await t.step("aborted by the caller", async () => {
    const hang: typeof fetch = (_input, init) =>
      new Promise((_resolve, reject) => init?.signal?.addEventListener("abort", () => reject(init.signal?.reason)));
    const controller = new AbortController();
    const pending = new RegistryClient({ fetch: hang }).check(ref("reg.example.com/team/app:v1"), {
      signal: controller.signal,
    });
    controller.abort();
    assert.match((await pending).detail ?? "", /aborted/);
  });
});

/** A registry behind a token server, as Docker Hub, Harbor and GHCR run them. */
function bearerRegistry(options: { user?: string; expiresIn?: number; tokenField?: string } = {}) {
  let issued = 0;
  const valid = new Set<string>();
  const challenge =
    'Bearer realm="https://auth.example.com/token",service="reg.example.com",scope="repository:team/app:pull"';
  const fake = fakeFetch((request) => {
    if (request.url.host === "auth.example.com") {
      const basic = request.headers.get("authorization");
      if (options.user !== undefined && basic !== `Basic ${btoa(options.user)}`) {
        return new Response('{"details":"incorrect username or password"}', { status: 401 });
      }
      const token = `tok-${++issued}`;
      valid.add(token);
      return Response.json({
        [options.tokenField ?? "token"]: token,
        ...(options.expiresIn === undefined ? {} : { expires_in: options.expiresIn }),
      });
    }
    const auth = request.headers.get("authorization") ?? "";
    if (!valid.has(auth.replace(/^Bearer /, "")) && auth !== "Bearer registry-token") {
      return new Response(null, { status: 401, headers: { "www-authenticate": challenge } });
    }
    return new Response(null, { status: request.url.pathname.endsWith("/v1") ? 200 : 404 });
  });
  return { ...fake, issued: () => issued, revoke: () => valid.clear() };
}

const describeSeen = (seen: readonly Seen[]) =>
  seen.map((s) => `${s.method} ${s.url.host}${s.url.pathname}${s.headers.has("authorization") ? " +auth" : ""}`);

Deno.test("RegistryClient: anonymous Bearer token, cached until expires_in", async () => {
  let now = 0;
  const registry = bearerRegistry({ expiresIn: 60 });
  const client = new RegistryClient({ fetch: registry.fetch, now: () => now });
  assert.equal((await client.check(ref("reg.example.com/team/app:v1"))).status, "present");
  assert.deepEqual(describeSeen(registry.seen), [
    "HEAD reg.example.com/v2/team/app/manifests/v1",
    "GET auth.example.com/token",
    "HEAD reg.example.com/v2/team/app/manifests/v1 +auth",
  ]);
  const token = registry.seen[1]?.url.searchParams;
  assert.deepEqual([token?.get("service"), token?.get("scope"), token?.has("account")], [
    "reg.example.com",
    "repository:team/app:pull",
    false,
  ]);
  assert.equal(registry.seen[1]?.headers.get("authorization"), null);

  registry.seen.length = 0;
  assert.equal((await client.check(ref("reg.example.com/team/app:v2"))).status, "missing");
  assert.deepEqual(describeSeen(registry.seen), ["HEAD reg.example.com/v2/team/app/manifests/v2 +auth"]);

  registry.seen.length = 0;
  now = 56_000;
  await client.check(ref("reg.example.com/team/app:v1"));
  assert.equal(registry.issued(), 2, "renewed 5 s before expiry");
  assert.equal(registry.seen.length, 3);

  registry.revoke();
  registry.seen.length = 0;
  assert.equal((await client.check(ref("reg.example.com/team/app:v1"))).status, "present");
  assert.equal(registry.seen.length, 3, "a revoked token is replaced once");
});

Deno.test("RegistryClient: Bearer token with credentials from the Docker config", async (t) => {
  await t.step("basic credentials go to the token server, never to the registry", async () => {
    const registry = bearerRegistry({ user: "u:p" });
    const credentials = new CredentialStore().add({ auths: { "reg.example.com": { auth: btoa("u:p") } } });
    const client = new RegistryClient({ fetch: registry.fetch, credentials });
    assert.equal((await client.check(ref("reg.example.com/team/app:v1"))).status, "present");
    const token = registry.seen[1];
    assert.equal(token?.headers.get("authorization"), `Basic ${btoa("u:p")}`);
    assert.equal(token?.url.searchParams.get("account"), "u");
    assert.equal(registry.seen[2]?.headers.get("authorization"), "Bearer tok-1");
  });
  await t.step("rejected credentials: a clean error", async () => {
    const registry = bearerRegistry({ user: "u:p" });
    const credentials = new CredentialStore().add({ auths: { "reg.example.com": { auth: btoa("u:wrong") } } });
    const answer = await new RegistryClient({ fetch: registry.fetch, credentials }).check(
      ref("reg.example.com/team/app:v1"),
    );
    assert.equal(answer.status, "error");
    assert.match(answer.detail ?? "", /token request .* failed with HTTP 401 \(credentials rejected\)/);
  });
  await t.step("an identity token is exchanged as an OAuth2 refresh token", async () => {
    const registry = bearerRegistry({ tokenField: "access_token" });
    const credentials = new CredentialStore().add({
      auths: { "reg.example.com": { auth: btoa("<token>:"), identitytoken: "refresh-me" } },
    });
    const answer = await new RegistryClient({ fetch: registry.fetch, credentials }).check(
      ref("reg.example.com/team/app:v1"),
    );
    assert.equal(answer.status, "present");
    const token = registry.seen[1];
    assert.equal(token?.method, "POST");
    const form = new URLSearchParams(token?.body);
    assert.deepEqual(
      [form.get("grant_type"), form.get("refresh_token"), form.get("service"), form.get("scope")],
      ["refresh_token", "refresh-me", "reg.example.com", "repository:team/app:pull"],
    );
  });
  await t.step("a registry token is sent as the bearer token", async () => {
    const registry = bearerRegistry();
    const credentials = new CredentialStore().add({
      auths: { "reg.example.com": { registrytoken: "registry-token" } },
    });
    const answer = await new RegistryClient({ fetch: registry.fetch, credentials }).check(
      ref("reg.example.com/team/app:v1"),
    );
    assert.equal(answer.status, "present");
    assert.deepEqual(describeSeen(registry.seen), ["HEAD reg.example.com/v2/team/app/manifests/v1 +auth"]);
  });
});

Deno.test("RegistryClient: broken token servers are clean errors", async (t) => {
  const rows: { name: string; challenge: string; token?: () => Response; detail: RegExp; credentials?: boolean }[] = [
    { name: "realm not a URL", challenge: 'Bearer realm="nope"', detail: /valid realm/ },
    { name: "realm ftp://", challenge: 'Bearer realm="ftp://auth.example.com/"', detail: /not an HTTP URL/ },
    {
      name: "credentials to a plain-HTTP realm",
      challenge: 'Bearer realm="http://auth.example.com/token"',
      credentials: true,
      detail: /refusing the plain-HTTP token realm/,
    },
    {
      name: "token response not JSON",
      challenge: 'Bearer realm="https://auth.example.com/token"',
      token: () => new Response("<html>"),
      detail: /not JSON/,
    },
    {
      name: "token response without a token",
      challenge: 'Bearer realm="https://auth.example.com/token"',
      token: () => Response.json({ expires_in: 60 }),
      detail: /holds no token/,
    },
    {
      name: "token server 500",
      challenge: 'Bearer realm="https://auth.example.com/token"',
      token: () => new Response("", { status: 500 }),
      detail: /failed with HTTP 500/,
    },
    {
      name: "an oversized token response",
      challenge: 'Bearer realm="https://auth.example.com/token"',
      token: () => new Response("x".repeat(2 << 20)),
      detail: /not JSON/,
    },
  ];
  for (const row of rows) {
    await t.step(row.name, async () => {
      const { fetch } = fakeFetch((request) =>
        request.url.host === "auth.example.com"
          ? (row.token ?? (() => Response.json({ token: "t" })))()
          : new Response(null, { status: 401, headers: { "www-authenticate": row.challenge } })
      );
      const credentials = row.credentials === true
        ? new CredentialStore().add({ auths: { "reg.example.com": { auth: btoa("u:p") } } })
        : undefined;
      const answer = await new RegistryClient({ fetch, ...(credentials === undefined ? {} : { credentials }) })
        .check(ref("reg.example.com/team/app:v1"));
      assert.equal(answer.status, "error");
      assert.match(answer.detail ?? "", row.detail);
    });
  }
});

Deno.test("RegistryClient: Basic challenge", async (t) => {
  const registry = () =>
    fakeFetch((request) =>
      request.headers.get("authorization") === `Basic ${btoa("u:p")}`
        ? new Response(null, { status: 200 })
        : new Response(null, { status: 401, headers: { "www-authenticate": 'Basic realm="r"' } })
    );
  await t.step("retries with the configured password, then sends it up front", async () => {
    const { fetch, seen } = registry();
    const credentials = new CredentialStore().add({ auths: { "reg.example.com": { username: "u", password: "p" } } });
    const client = new RegistryClient({ fetch, credentials });
    assert.equal((await client.check(ref("reg.example.com/team/app:v1"))).status, "present");
    assert.equal((await client.check(ref("reg.example.com/team/app:v2"))).status, "present");
    assert.deepEqual(seen.map((s) => s.headers.has("authorization")), [false, true, true]);
  });
  await t.step("without credentials: error", async () => {
    const { fetch } = registry();
    const answer = await new RegistryClient({ fetch }).check(ref("reg.example.com/team/app:v1"));
    assert.deepEqual([answer.status, answer.httpStatus], ["error", 401]);
  });
  await t.step("with only a token: error", async () => {
    const { fetch } = registry();
    const credentials = new CredentialStore().add({
      auths: { "reg.example.com": { auth: btoa("x:"), identitytoken: "t" } },
    });
    const answer = await new RegistryClient({ fetch, credentials }).check(ref("reg.example.com/team/app:v1"));
    assert.match(answer.detail ?? "", /holds a token/);
  });
});

Deno.test("RegistryClient with a policy: token realms, redirects and credentials stay with listed hosts", async (t) => {
  const credentials = new CredentialStore().add({
    auths: { "reg.example.com": { auth: btoa("u:p") }, "evil.example.com": { auth: btoa("u:p") } },
  });
  await t.step("a token realm on a host that is not listed is never asked", async () => {
    const registry = bearerRegistry();
    const policy = VerifyPolicy.create({ registries: ["reg.example.com"] });
    const answer = await new RegistryClient({ fetch: registry.fetch, policy }).check(
      ref("reg.example.com/team/app:v1"),
    );
    assert.equal(answer.status, "error");
    assert.match(answer.detail ?? "", /refusing the token realm https:\/\/auth\.example\.com/);
    assert.deepEqual(describeSeen(registry.seen), ["HEAD reg.example.com/v2/team/app/manifests/v1"]);
  });
  await t.step("listed, it is", async () => {
    const registry = bearerRegistry();
    const policy = VerifyPolicy.create({ registries: ["reg.example.com", "auth.example.com"] });
    const answer = await new RegistryClient({ fetch: registry.fetch, policy }).check(
      ref("reg.example.com/team/app:v1"),
    );
    assert.equal(answer.status, "present");
  });
  await t.step("under any, an unlisted registry is asked anonymously: its credentials stay home", async () => {
    const { fetch, seen } = fakeFetch(() =>
      new Response(null, { status: 401, headers: { "www-authenticate": 'Basic realm="r"' } })
    );
    const policy = VerifyPolicy.create({ registries: ["reg.example.com"], clusterRules: "any" });
    const answer = await new RegistryClient({ fetch, policy, credentials }).check(ref("evil.example.com/team/app:v1"));
    assert.equal(answer.status, "error");
    assert.deepEqual(describeSeen(seen), ["HEAD evil.example.com/v2/team/app/manifests/v1"]);
  });
  await t.step("not allowed at all: no request", async () => {
    const { fetch, seen } = fakeFetch(() => new Response(null, { status: 200 }));
    const policy = VerifyPolicy.create({ registries: ["reg.example.com"] });
    const answer = await new RegistryClient({ fetch, policy }).check(ref("evil.example.com/team/app:v1"));
    assert.deepEqual([answer.status, answer.reason], ["error", "registry not allowed"]);
    assert.deepEqual(seen, []);
  });
  const redirects: { name: string; location: string; listed?: string[]; followed: boolean }[] = [
    { name: "same host, relative", location: "/v2/moved/manifests/v1", followed: true },
    { name: "same host, absolute", location: "https://reg.example.com/v2/moved/manifests/v1", followed: true },
    {
      name: "same host, down to plain HTTP",
      location: "http://reg.example.com/v2/moved/manifests/v1",
      followed: false,
    },
    { name: "another host", location: "https://cdn.example.com/v2/moved/manifests/v1", followed: false },
    {
      name: "another host, listed",
      location: "https://cdn.example.com/v2/moved/manifests/v1",
      listed: ["cdn.example.com"],
      followed: true,
    },
    { name: "the metadata service", location: "http://169.254.169.254/latest/meta-data/", followed: false },
    { name: "not HTTP", location: "file:///etc/passwd", followed: false },
  ];
  for (const row of redirects) {
    await t.step(`redirect: ${row.name}`, async () => {
      const { fetch, seen } = fakeFetch((request) =>
        request.url.pathname.includes("/moved/")
          ? new Response(null, { status: 200, headers: { "content-type": OCI } })
          : new Response(null, { status: 302, headers: { location: row.location } })
      );
      const policy = VerifyPolicy.create({ registries: ["reg.example.com", ...(row.listed ?? [])] });
      const client = new RegistryClient({ fetch, policy, credentials });
      const answer = await client.check(ref("reg.example.com/team/app:v1"));
      assert.equal(answer.status, row.followed ? "present" : "error");
      assert.equal(seen.length, row.followed ? 2 : 1);
    });
  }
  await t.step("a redirect to another host drops the Authorization header", async () => {
    const { fetch, seen } = fakeFetch((request) =>
      request.url.host === "cdn.example.com"
        ? new Response(null, { status: 200, headers: { "content-type": OCI } })
        : request.headers.has("authorization")
        ? new Response(null, { status: 302, headers: { location: "https://cdn.example.com/v2/x/manifests/v1" } })
        : new Response(null, { status: 401, headers: { "www-authenticate": 'Basic realm="r"' } })
    );
    const policy = VerifyPolicy.create({ registries: ["reg.example.com", "cdn.example.com"] });
    const answer = await new RegistryClient({ fetch, policy, credentials }).check(ref("reg.example.com/team/app:v1"));
    assert.equal(answer.status, "present");
    assert.deepEqual(describeSeen(seen), [
      "HEAD reg.example.com/v2/team/app/manifests/v1",
      "HEAD reg.example.com/v2/team/app/manifests/v1 +auth",
      "HEAD cdn.example.com/v2/x/manifests/v1",
    ]);
  });
  await t.step("a redirect loop ends", async () => {
    const { fetch, seen } = fakeFetch(() => new Response(null, { status: 302, headers: { location: "/v2/a" } }));
    const answer = await new RegistryClient({ fetch }).check(ref("reg.example.com/team/app:v1"));
    assert.match(answer.detail ?? "", /more than 5 redirects/);
    assert.equal(seen.length, 6);
  });
});
