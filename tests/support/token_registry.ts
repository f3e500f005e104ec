// Test support: docker-registry with bearer-token auth and the token server it trusts (ES256 JWTs), on 127.0.0.1.

import { freePort, REGISTRY_BIN, type RunningRegistry } from "./registry.ts";

/** A registry that answers 401 with a Bearer challenge, and its token server. */
export interface TokenRegistry extends RunningRegistry {
  /** `127.0.0.1:PORT` of the token server (plain HTTP, so it must be listed as insecure). */
  readonly tokenHost: string;
  /** Every token request: the account and the scopes asked for. */
  readonly tokenRequests: readonly { account: string | null; scopes: readonly string[] }[];
}

const SERVICE = "mirrorhook-test";
const ISSUER = "mirrorhook-test-issuer";

function base64url(bytes: Uint8Array | string): string {
  const raw = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
  return btoa(String.fromCharCode(...raw)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function pemBody(pem: string): Uint8Array {
  const text = pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

/**
 * Starts a token server (grants what is asked to `user` with `password`, nothing to anyone else) and a registry
 * configured to trust its self-signed ES256 certificate.
 */
export async function startTokenRegistry(
  user: { readonly username: string; readonly password: string },
): Promise<TokenRegistry> {
  const dir = await Deno.makeTempDir({ prefix: "mirrorhook-token-registry-" });
  const made = await new Deno.Command("openssl", {
    args: [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      `${dir}/token.key`,
      "-out",
      `${dir}/token.crt`,
      "-subj",
      "/CN=mirrorhook-test-token",
      "-days",
      "1",
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!made.success) throw new Error(`Cannot make the token certificate: ${new TextDecoder().decode(made.stderr)}`);
  const certPem = await Deno.readTextFile(`${dir}/token.crt`);
  const key = await crypto.subtle.importKey(
    "pkcs8",
    pemBody(await Deno.readTextFile(`${dir}/token.key`)) as Uint8Array<ArrayBuffer>,
    { name: "ECDSA", namedCurve: "P-256" },
    false,
    ["sign"],
  );
  const x5c = btoa(String.fromCharCode(...pemBody(certPem)));
  const tokenRequests: { account: string | null; scopes: string[] }[] = [];
  const expected = `Basic ${btoa(`${user.username}:${user.password}`)}`;

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    const url = new URL(request.url);
    const scopes = url.searchParams.getAll("scope").flatMap((scope) => scope.split(" ")).filter((s) => s !== "");
    tokenRequests.push({ account: url.searchParams.get("account"), scopes });
    if (request.headers.get("authorization") !== expected) {
      return Response.json({ errors: [{ code: "UNAUTHORIZED" }] }, { status: 401 });
    }
    const now = Math.floor(Date.now() / 1000);
    const access = scopes.map((scope) => {
      const [type = "", ...rest] = scope.split(":");
      const actions = rest.pop() ?? "";
      return { type, name: rest.join(":"), actions: actions.split(",") };
    });
    const header = base64url(JSON.stringify({ typ: "JWT", alg: "ES256", x5c: [x5c] }));
    const claims = base64url(JSON.stringify({
      iss: ISSUER,
      sub: user.username,
      aud: url.searchParams.get("service") ?? SERVICE,
      exp: now + 300,
      nbf: now - 10,
      iat: now,
      jti: crypto.randomUUID(),
      access,
    }));
    const signature = new Uint8Array(
      await crypto.subtle.sign(
        { name: "ECDSA", hash: "SHA-256" },
        key,
        new TextEncoder().encode(`${header}.${claims}`),
      ),
    );
    return Response.json({ token: `${header}.${claims}.${base64url(signature)}`, expires_in: 300 });
  });
  const tokenHost = `127.0.0.1:${server.addr.port}`;

  const port = freePort();
  const host = `127.0.0.1:${port}`;
  await Deno.writeTextFile(`${dir}/token-root.crt`, certPem);
  await Deno.writeTextFile(
    `${dir}/config.yml`,
    [
      "version: 0.1",
      "log:",
      "  level: warn",
      "  accesslog:",
      "    disabled: true",
      "storage:",
      "  filesystem:",
      `    rootdirectory: ${JSON.stringify(`${dir}/data`)}`,
      "http:",
      `  addr: ${JSON.stringify(host)}`,
      `  secret: ${JSON.stringify(crypto.randomUUID())}`,
      "auth:",
      "  token:",
      `    realm: ${JSON.stringify(`http://${tokenHost}/token`)}`,
      `    service: ${SERVICE}`,
      `    issuer: ${ISSUER}`,
      `    rootcertbundle: ${JSON.stringify(`${dir}/token-root.crt`)}`,
      "",
    ].join("\n"),
  );
  const child = new Deno.Command(REGISTRY_BIN, {
    args: ["serve", `${dir}/config.yml`],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    clearEnv: true,
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", HOME: dir },
  }).spawn();
  let logs = "";
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) logs = (logs + text).slice(-20_000);
  };
  const drained = Promise.all([collect(child.stdout), collect(child.stderr)]);
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    try {
      child.kill("SIGTERM");
    } catch {
      // Already gone.
    }
    await child.status;
    await drained;
    await server.shutdown();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  const url = `http://${host}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      const response = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1_000) });
      await response.body?.cancel();
      if (response.status === 401) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`Cannot start the token registry: /v2/ did not answer within 15 s; its log:\n${logs}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return { host, url, tokenHost, tokenRequests, logs: () => logs, stop, [Symbol.asyncDispose]: stop };
}

/** A bearer token for `scopes` from the registry's token server, for a test's own pushes and checks. */
export async function fetchToken(
  registry: TokenRegistry,
  user: { readonly username: string; readonly password: string },
  scopes: readonly string[],
): Promise<string> {
  const url = new URL(`http://${registry.tokenHost}/token`);
  url.searchParams.set("service", SERVICE);
  for (const scope of scopes) url.searchParams.append("scope", scope);
  const response = await fetch(url, {
    headers: { authorization: `Basic ${btoa(`${user.username}:${user.password}`)}` },
  });
  const body = await response.json() as { token: string };
  return body.token;
}
