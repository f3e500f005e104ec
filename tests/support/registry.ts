// Test support: runs Debian's docker-registry (CNCF distribution) on 127.0.0.1 and pushes images through its API.
//
// Installs nothing: CI installs the binary (`apt-get install -y docker-registry`). Images are built from scratch
// blobs and uploaded with the registry API, so no docker, skopeo or network is needed.

/** The registry binary; `DOCKER_REGISTRY_BIN` overrides it. */
export const REGISTRY_BIN: string = Deno.env.get("DOCKER_REGISTRY_BIN") ?? "/usr/bin/docker-registry";

/** The htpasswd user of {@linkcode startRegistry}'s `auth` option when `htpasswd` is not installed. */
export const TEST_USER = { username: "mirror", password: "mirror-pass" } as const;
/** `htpasswd -Bbn -C 5 mirror mirror-pass`: distribution accepts bcrypt entries only. */
const TEST_USER_BCRYPT = "$2y$05$FP7o7N1gg7.BohONwIoIbunJnrCnO2.aTZsCalGI10YYwMMC6knAm";

const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX = "application/vnd.oci.image.index.v1+json";

/** Options of {@linkcode startRegistry}. */
export interface RegistryOptions {
  /** htpasswd Basic authentication with this user. */
  readonly auth?: { readonly username: string; readonly password: string };
  /** Serve HTTPS with this certificate and key (PEM). */
  readonly tls?: { readonly cert: string; readonly key: string; readonly ca: string };
}

/** A registry process; stop it (or `await using` it) before the test ends. */
export interface RunningRegistry extends AsyncDisposable {
  /** `127.0.0.1:PORT`, as it appears in image references. */
  readonly host: string;
  /** `http://127.0.0.1:PORT` or `https://…`. */
  readonly url: string;
  /** For HTTPS registries: a client trusting the test CA. */
  readonly client?: Deno.HttpClient;
  /** What the registry logged (bounded), for failure messages. */
  logs(): string;
  /** Stops the process and removes its storage; safe to call twice. */
  stop(): Promise<void>;
}

/** Skips with a clear message when the binary is missing. */
export function registryInstalled(): boolean {
  try {
    return Deno.statSync(REGISTRY_BIN).isFile;
  } catch {
    return false;
  }
}

/** A TCP port that was free a moment ago. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function htpasswdLine(username: string, password: string): Promise<string> {
  try {
    const output = await new Deno.Command("htpasswd", { args: ["-Bbn", "-C", "5", username, password] }).output();
    const line = new TextDecoder().decode(output.stdout).trim();
    if (output.success && line.startsWith(`${username}:$2`)) return line;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  if (username === TEST_USER.username && password === TEST_USER.password) return `${username}:${TEST_USER_BCRYPT}`;
  throw new Error(`Cannot make an htpasswd entry for ${JSON.stringify(username)}: htpasswd is not installed`);
}

/** Starts `docker-registry serve` on 127.0.0.1 with filesystem storage in a temp dir; waits until /v2/ answers. */
export async function startRegistry(options: RegistryOptions = {}): Promise<RunningRegistry> {
  if (!registryInstalled()) {
    throw new Error(`Cannot start the registry: ${REGISTRY_BIN} is missing (apt-get install -y docker-registry)`);
  }
  const dir = await Deno.makeTempDir({ prefix: "mirrorhook-registry-" });
  const port = freePort();
  const host = `127.0.0.1:${port}`;
  const lines = [
    "version: 0.1",
    "log:",
    "  level: warn",
    "  accesslog:",
    "    disabled: true",
    "storage:",
    "  filesystem:",
    `    rootdirectory: ${JSON.stringify(`${dir}/data`)}`,
    "  delete:",
    "    enabled: true",
    "http:",
    `  addr: ${JSON.stringify(host)}`,
    `  secret: ${JSON.stringify(crypto.randomUUID())}`,
  ];
  let client: Deno.HttpClient | undefined;
  if (options.tls !== undefined) {
    await Deno.writeTextFile(`${dir}/tls.crt`, options.tls.cert);
    await Deno.writeTextFile(`${dir}/tls.key`, options.tls.key);
    lines.push(
      "  tls:",
      `    certificate: ${JSON.stringify(`${dir}/tls.crt`)}`,
      `    key: ${JSON.stringify(`${dir}/tls.key`)}`,
    );
    client = Deno.createHttpClient({ caCerts: [options.tls.ca] });
  }
  if (options.auth !== undefined) {
    await Deno.writeTextFile(
      `${dir}/htpasswd`,
      `${await htpasswdLine(options.auth.username, options.auth.password)}\n`,
    );
    lines.push("auth:", "  htpasswd:", "    realm: mirrorhook-test", `    path: ${JSON.stringify(`${dir}/htpasswd`)}`);
  }
  await Deno.writeTextFile(`${dir}/config.yml`, `${lines.join("\n")}\n`);

  const child = new Deno.Command(REGISTRY_BIN, {
    args: ["serve", `${dir}/config.yml`],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    // The registry reads REGISTRY_* variables as config overrides; keep the environment clean.
    clearEnv: true,
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", HOME: dir },
  }).spawn();
  let logs = "";
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      logs = (logs + text).slice(-20_000);
    }
  };
  const drained = Promise.all([collect(child.stdout), collect(child.stderr)]);
  let exited = false;
  const status = child.status.then((value) => {
    exited = true;
    return value;
  });
  const url = `${options.tls === undefined ? "http" : "https"}://${host}`;

  let stopped = false;
  const stop = async () => {
    if (!stopped) {
      stopped = true;
      if (!exited) {
        try {
          child.kill("SIGTERM");
        } catch {
          // Already gone.
        }
      }
      await status;
      await drained;
      client?.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  };

  const deadline = Date.now() + 15_000;
  for (;;) {
    if (exited) {
      await stop();
      throw new Error(`Cannot start the registry: it exited; its log:\n${logs}`);
    }
    try {
      const response = await fetch(`${url}/v2/`, {
        signal: AbortSignal.timeout(1_000),
        ...(client === undefined ? {} : { client }),
      } as RequestInit);
      await response.body?.cancel();
      if (response.status === 200 || response.status === 401) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`Cannot start the registry: /v2/ did not answer within 15 s; its log:\n${logs}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return {
    host,
    url,
    ...(client === undefined ? {} : { client }),
    logs: () => logs,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/** Digests of what {@linkcode pushImage} uploaded. */
export interface PushedImage {
  /** What the tag points at: the index digest with `index: true`, else the image manifest digest. */
  readonly digest: string;
  readonly manifestDigest: string;
  readonly indexDigest?: string;
  readonly configDigest: string;
  readonly layerDigest: string;
}

/** Options of {@linkcode pushImage}. */
export interface PushOptions {
  /** Also push an OCI index (multi-arch) referencing the image, and tag the index instead. */
  readonly index?: boolean;
  /** Basic credentials for a registry with htpasswd auth. */
  readonly auth?: { readonly username: string; readonly password: string };
  /** HTTP client for an HTTPS registry with a test CA. */
  readonly client?: Deno.HttpClient;
}

/** `sha256:<hex>` of `bytes`. */
export async function sha256(bytes: Uint8Array): Promise<string> {
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return `sha256:${Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/**
 * Uploads a config blob and a layer blob (monolithic: POST an upload, then PUT its location with the digest) and
 * PUTs an OCI image manifest under `tag`; with `index`, the manifest goes in by digest and an OCI index
 * referencing it gets the tag.
 */
export async function pushImage(
  registryUrl: string,
  name: string,
  tag: string,
  options: PushOptions = {},
): Promise<PushedImage> {
  const base = registryUrl.replace(/\/+$/, "");
  const headers = (extra: Record<string, string> = {}): Headers => {
    const out = new Headers(extra);
    if (options.auth !== undefined) {
      out.set("authorization", `Basic ${btoa(`${options.auth.username}:${options.auth.password}`)}`);
    }
    return out;
  };
  const send = async (url: string, init: RequestInit, expect: number, what: string): Promise<Response> => {
    const response = await fetch(url, {
      ...init,
      ...(options.client === undefined ? {} : { client: options.client }),
    } as RequestInit);
    if (response.status !== expect) {
      const body = await response.text();
      throw new Error(`Cannot push ${name}:${tag}: ${what} answered HTTP ${response.status}: ${body.slice(0, 500)}`);
    }
    return response;
  };
  const uploadBlob = async (bytes: Uint8Array): Promise<string> => {
    const digest = await sha256(bytes);
    const started = await send(
      `${base}/v2/${name}/blobs/uploads/`,
      { method: "POST", headers: headers() },
      202,
      "POST upload",
    );
    await started.body?.cancel();
    const location = started.headers.get("location");
    if (location === null) throw new Error(`Cannot push ${name}:${tag}: the upload has no Location`);
    const target = new URL(location, `${base}/`);
    target.searchParams.set("digest", digest);
    const done = await send(
      target.href,
      {
        method: "PUT",
        headers: headers({ "content-type": "application/octet-stream" }),
        body: bytes as Uint8Array<ArrayBuffer>,
      },
      201,
      "PUT blob",
    );
    await done.body?.cancel();
    return digest;
  };
  const putManifest = async (reference: string, mediaType: string, body: Uint8Array): Promise<void> => {
    const response = await send(
      `${base}/v2/${name}/manifests/${reference}`,
      { method: "PUT", headers: headers({ "content-type": mediaType }), body: body as Uint8Array<ArrayBuffer> },
      201,
      `PUT manifest ${reference}`,
    );
    await response.body?.cancel();
  };

  const encoder = new TextEncoder();
  const layer = crypto.getRandomValues(new Uint8Array(256));
  const layerDigest = await uploadBlob(layer);
  const config = encoder.encode(JSON.stringify({
    architecture: "amd64",
    os: "linux",
    config: {},
    rootfs: { type: "layers", diff_ids: [layerDigest] },
  }));
  const configDigest = await uploadBlob(config);
  const manifest = encoder.encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: configDigest, size: config.byteLength },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: layerDigest, size: layer.byteLength }],
  }));
  const manifestDigest = await sha256(manifest);
  if (options.index !== true) {
    await putManifest(tag, OCI_MANIFEST, manifest);
    return { digest: manifestDigest, manifestDigest, configDigest, layerDigest };
  }
  await putManifest(manifestDigest, OCI_MANIFEST, manifest);
  const index = encoder.encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: [{
      mediaType: OCI_MANIFEST,
      digest: manifestDigest,
      size: manifest.byteLength,
      platform: { architecture: "amd64", os: "linux" },
    }],
  }));
  const indexDigest = await sha256(index);
  await putManifest(tag, OCI_INDEX, index);
  return { digest: indexDigest, manifestDigest, indexDigest, configDigest, layerDigest };
}

/** A TCP server on 127.0.0.1 that accepts connections and never answers: the registry that hangs. */
export interface SilentServer extends AsyncDisposable {
  readonly host: string;
  /** Connections accepted so far. */
  readonly accepted: () => number;
  close(): Promise<void>;
}

/** Starts a {@linkcode SilentServer}. */
export function startSilentServer(): SilentServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const connections = new Set<Deno.Conn>();
  let accepted = 0;
  const loop = (async () => {
    try {
      for await (const conn of listener) {
        accepted++;
        connections.add(conn);
      }
    } catch {
      // Listener closed.
    }
  })();
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    listener.close();
    await loop;
    for (const conn of connections) {
      try {
        conn.close();
      } catch {
        // Closed by the peer.
      }
    }
  };
  return {
    host: `127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    accepted: () => accepted,
    close,
    [Symbol.asyncDispose]: close,
  };
}
