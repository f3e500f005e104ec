// Registry credentials from Docker config files (a mounted `.dockerconfigjson` Secret), matched per registry host.

import { jsonErrorPlace } from "../util/json_error.ts";
import { DOCKER_HUB } from "../image/reference.ts";
import { isRecord } from "../util/json.ts";

/** Credentials for one registry, as a Docker config entry gives them. */
export type RegistryCredential =
  | { readonly kind: "basic"; readonly username: string; readonly password: string }
  /** An OAuth2 refresh token (`identitytoken`), exchanged at the token endpoint. */
  | { readonly kind: "identity-token"; readonly username?: string; readonly token: string }
  /** A bearer token sent to the registry as is (`registrytoken`). */
  | { readonly kind: "registry-token"; readonly token: string };

/** A Docker config that cannot be used: where and why. */
export class DockerConfigError extends Error {
  override name = "DockerConfigError";
  /** File name or description of the config. */
  readonly source: string;
  /** The `auths` key concerned, when the problem is about one entry. */
  readonly key?: string;
  constructor(source: string, message: string, key?: string) {
    super(
      `Cannot read Docker config ${JSON.stringify(source)}: ${
        key === undefined ? "" : `auths[${JSON.stringify(key)}]: `
      }${message}`,
    );
    this.source = source;
    if (key !== undefined) this.key = key;
  }
}

/** Names of Docker Hub that configs use as keys (`https://index.docker.io/v1/` is what `docker login` writes). */
const DOCKER_HUB_ALIASES = new Set([DOCKER_HUB, "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"]);

interface Entry {
  /** Lowercase host with port; `*` label wildcards allowed, as the kubelet allows them. */
  readonly host: string;
  readonly wildcard: boolean;
  /** Repository path prefix, without slashes at either end; empty for the whole registry. */
  readonly path: string;
  readonly credential: RegistryCredential;
  readonly key: string;
}

/** `https://index.docker.io/v1/` -> docker.io; `https://Host:5000/team/` -> host:5000 + team. */
export function normalizeConfigKey(key: string): { host: string; path: string } {
  let rest = key.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, "");
  const slash = rest.indexOf("/");
  let path = "";
  if (slash >= 0) {
    path = rest.slice(slash + 1).replace(/^\/+|\/+$/g, "");
    rest = rest.slice(0, slash);
  }
  let host = rest.toLowerCase();
  // `https://host/v1/` and `/v2/` name the API, not a repository.
  path = path.replace(/^v[12](\/|$)/, "");
  if (DOCKER_HUB_ALIASES.has(host)) host = DOCKER_HUB;
  return { host, path };
}

function decodeBase64(text: string): string | undefined {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(Uint8Array.from(atob(text.trim()), (c) => c.charCodeAt(0)));
  } catch {
    return undefined;
  }
}

function readEntry(source: string, key: string, value: unknown): RegistryCredential | undefined {
  if (!isRecord(value)) throw new DockerConfigError(source, "expected an object", key);
  const str = (name: string) => (typeof value[name] === "string" && value[name] !== "" ? value[name] : undefined);
  const registryToken = str("registrytoken");
  if (registryToken !== undefined) return { kind: "registry-token", token: registryToken };
  let username = str("username");
  let password = str("password");
  const auth = str("auth");
  if (auth !== undefined) {
    const decoded = decodeBase64(auth);
    const colon = decoded?.indexOf(":") ?? -1;
    if (decoded === undefined || colon < 0) {
      throw new DockerConfigError(source, "auth is not base64 of username:password", key);
    }
    username = decoded.slice(0, colon);
    password = decoded.slice(colon + 1);
  }
  const identityToken = str("identitytoken");
  if (identityToken !== undefined) {
    return { kind: "identity-token", token: identityToken, ...(username === undefined ? {} : { username }) };
  }
  if (username !== undefined && password !== undefined) return { kind: "basic", username, password };
  // An entry with neither (e.g. only "email") gives no credentials; docker ignores it too.
  return undefined;
}

/** Credentials by registry, from one or more Docker configs; the most specific key wins. */
export class CredentialStore {
  readonly #entries: Entry[] = [];

  /** An empty store: every registry is accessed anonymously. */
  static empty(): CredentialStore {
    return new CredentialStore();
  }

  /**
   * Adds the entries of a parsed Docker config: `{"auths": {...}}` (config.json, `.dockerconfigjson`) or the
   * legacy `.dockercfg` map of hosts. Throws {@linkcode DockerConfigError}. Later configs win over earlier ones
   * for the same key.
   */
  add(config: unknown, source = "config"): this {
    if (!isRecord(config)) throw new DockerConfigError(source, "expected a JSON object");
    const auths = config["auths"] === undefined ? config : config["auths"];
    if (!isRecord(auths)) throw new DockerConfigError(source, "auths must be an object");
    const added: Entry[] = [];
    for (const [key, value] of Object.entries(auths)) {
      const credential = readEntry(source, key, value);
      if (credential === undefined) continue;
      const { host, path } = normalizeConfigKey(key);
      if (host === "") throw new DockerConfigError(source, "the key names no registry host", key);
      added.push({ host, wildcard: host.includes("*"), path, credential, key });
    }
    this.#entries.unshift(...added);
    return this;
  }

  /** Number of usable entries. */
  get size(): number {
    return this.#entries.length;
  }

  /**
   * Credentials for `registry` (as in a normalized reference: `docker.io`, `localhost:5000`) and repository
   * `path`: an exact host beats a wildcard, then the longest matching path prefix wins.
   */
  find(registry: string, path = ""): RegistryCredential | undefined {
    const host = DOCKER_HUB_ALIASES.has(registry.toLowerCase()) ? DOCKER_HUB : registry.toLowerCase();
    let best: Entry | undefined;
    let bestScore = -1;
    for (const entry of this.#entries) {
      if (!(entry.wildcard ? matchesWildcard(entry.host, host) : entry.host === host)) continue;
      if (entry.path !== "" && path !== entry.path && !path.startsWith(`${entry.path}/`)) continue;
      const score = (entry.wildcard ? 0 : 1_000_000) + entry.path.length;
      if (score > bestScore) {
        best = entry;
        bestScore = score;
      }
    }
    return best?.credential;
  }
}

/** `*.example.com` matches `a.example.com` (one label per `*`, as the kubelet does), ports must be equal. */
function matchesWildcard(pattern: string, host: string): boolean {
  const [patternName = "", patternPort] = splitPort(pattern);
  const [name = "", port] = splitPort(host);
  if (patternPort !== port) return false;
  const want = patternName.split(".");
  const have = name.split(".");
  if (want.length !== have.length) return false;
  return want.every((label, index) => {
    if (!label.includes("*")) return label === have[index];
    const source = label.split("*").map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("[^.]*");
    return new RegExp(`^${source}$`).test(have[index] ?? "");
  });
}

function splitPort(host: string): [string, string | undefined] {
  const close = host.lastIndexOf("]");
  const colon = host.lastIndexOf(":");
  return colon > close ? [host.slice(0, colon), host.slice(colon + 1)] : [host, undefined];
}

/** Names Kubernetes and docker give the config inside a mounted Secret or a config directory. */
const CONFIG_FILE_NAMES = [".dockerconfigjson", "config.json", ".dockercfg"];

/**
 * Reads Docker configs from files or directories (a mounted `kubernetes.io/dockerconfigjson` Secret holds
 * `.dockerconfigjson`); throws {@linkcode DockerConfigError} when a file is missing or invalid.
 */
export async function readDockerConfigs(paths: readonly string[]): Promise<CredentialStore> {
  const store = new CredentialStore();
  for (const path of paths) {
    let file = path;
    try {
      if ((await Deno.stat(path)).isDirectory) {
        const found = await firstExisting(CONFIG_FILE_NAMES.map((name) => `${path.replace(/\/+$/, "")}/${name}`));
        // An optional Secret that does not exist is mounted as an empty directory: no credentials, not an error.
        if (found === undefined && (await isEmptyDirectory(path))) continue;
        if (found === undefined) {
          throw new DockerConfigError(path, `the directory holds none of ${CONFIG_FILE_NAMES.join(", ")}`);
        }
        file = found;
      }
      const text = await Deno.readTextFile(file);
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch (error) {
        // Never the parser's message: it quotes the file around the error, and the file holds credentials.
        throw new DockerConfigError(file, `invalid JSON (${jsonErrorPlace(error)})`);
      }
      store.add(parsed, file);
    } catch (error) {
      if (error instanceof DockerConfigError) throw error;
      throw new DockerConfigError(file, error instanceof Error ? error.message : String(error));
    }
  }
  return store;
}

async function isEmptyDirectory(path: string): Promise<boolean> {
  for await (const _entry of Deno.readDir(path)) return false;
  return true;
}

async function firstExisting(files: readonly string[]): Promise<string | undefined> {
  for (const file of files) {
    try {
      if ((await Deno.stat(file)).isFile) return file;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  return undefined;
}
