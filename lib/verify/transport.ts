// How to reach a registry host: HTTPS with the default roots plus an optional CA per host; HTTP only when listed.

import { DOCKER_HUB } from "../image/reference.ts";

/** Where Docker Hub's registry API is served; `docker.io` itself only redirects browsers. */
const DOCKER_HUB_API_HOST = "registry-1.docker.io";

/** Options of {@linkcode Transport.create}. */
export interface TransportOptions {
  /** Registry hosts (`host` or `host:port`, as in image references) spoken to over plain HTTP. */
  readonly insecure?: Iterable<string>;
  /** PEM CA bundle file by registry host, trusted in addition to the default roots for that host. */
  readonly caFiles?: Readonly<Record<string, string>>;
  /** Reads a CA file (tests); defaults to `Deno.readTextFile`. */
  readonly readTextFile?: (path: string) => Promise<string>;
}

/** A registry host with a CA file that cannot be used. */
export class TransportError extends Error {
  override name = "TransportError";
  readonly host: string;
  constructor(host: string, message: string) {
    super(`Cannot set up TLS for registry ${JSON.stringify(host)}: ${message}`);
    this.host = host;
  }
}

/** The API host for a registry name: Docker Hub's is `registry-1.docker.io`, every other registry is its own. */
export function apiHost(registry: string): string {
  return registry === DOCKER_HUB ? DOCKER_HUB_API_HOST : registry;
}

function normalizeHost(host: string): string {
  const lower = host.trim().toLowerCase().replace(/^[a-z][a-z0-9+.-]*:\/\//, "").replace(/\/.*$/, "");
  return lower === "index.docker.io" ? DOCKER_HUB : lower;
}

/** Scheme and TLS client per registry host; one HTTP client per host with its own CA, shared by all lookups. */
export class Transport {
  readonly #insecure: ReadonlySet<string>;
  readonly #clients: ReadonlyMap<string, Deno.HttpClient>;
  readonly #pems: ReadonlyMap<string, string>;

  private constructor(
    insecure: ReadonlySet<string>,
    clients: ReadonlyMap<string, Deno.HttpClient>,
    pems: ReadonlyMap<string, string>,
  ) {
    this.#insecure = insecure;
    this.#clients = clients;
    this.#pems = pems;
  }

  /** Reads every CA file now, so a bad one fails at start-up; throws {@linkcode TransportError}. */
  static async create(options: TransportOptions = {}): Promise<Transport> {
    const insecure = new Set([...(options.insecure ?? [])].map(normalizeHost));
    const clients = new Map<string, Deno.HttpClient>();
    const pems = new Map<string, string>();
    const read = options.readTextFile ?? Deno.readTextFile;
    try {
      for (const [host, file] of Object.entries(options.caFiles ?? {})) {
        const name = normalizeHost(host);
        let pem: string;
        try {
          pem = await read(file);
        } catch (error) {
          throw new TransportError(name, `cannot read CA file ${JSON.stringify(file)}: ${describe(error)}`);
        }
        if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
          throw new TransportError(name, `CA file ${JSON.stringify(file)} holds no PEM certificate`);
        }
        try {
          clients.set(name, Deno.createHttpClient({ caCerts: [pem] }));
          pems.set(name, pem);
        } catch (error) {
          throw new TransportError(name, `CA file ${JSON.stringify(file)}: ${describe(error)}`);
        }
      }
    } catch (error) {
      for (const client of clients.values()) client.close();
      throw error;
    }
    return new Transport(insecure, clients, pems);
  }

  /** A transport with no insecure hosts and no extra CAs. */
  static default(): Transport {
    return new Transport(new Set(), new Map(), new Map());
  }

  /** `http` only for a host listed as insecure (by registry name or API host). */
  scheme(registry: string): "http" | "https" {
    const host = normalizeHost(registry);
    return this.#insecure.has(host) || this.#insecure.has(apiHost(host)) ? "http" : "https";
  }

  /** Base URL of the registry API, e.g. `https://registry-1.docker.io`. */
  baseUrl(registry: string): string {
    return `${this.scheme(registry)}://${apiHost(normalizeHost(registry))}`;
  }

  /** The HTTP client carrying the host's CA, if one was configured; undefined means the default client. */
  client(host: string): Deno.HttpClient | undefined {
    const name = normalizeHost(host);
    return this.#clients.get(name) ?? this.#clients.get(apiHost(name)) ??
      (name === DOCKER_HUB_API_HOST ? this.#clients.get(DOCKER_HUB) : undefined);
  }

  /** The extra CA (PEM) configured for a host, by registry name or API host. */
  ca(host: string): string | undefined {
    const name = normalizeHost(host);
    return this.#pems.get(name) ?? this.#pems.get(apiHost(name)) ??
      (name === DOCKER_HUB_API_HOST ? this.#pems.get(DOCKER_HUB) : undefined);
  }

  /** Hosts named as insecure or with a CA file: the platform named them, so they count as listed. */
  get namedHosts(): readonly string[] {
    return [...this.#insecure, ...this.#pems.keys()];
  }

  /** True when `url` uses plain HTTP to a host not listed as insecure, or is not HTTP(S) at all. */
  refusesScheme(url: URL): boolean {
    if (url.protocol === "https:") return false;
    return !(url.protocol === "http:" && this.#insecure.has(normalizeHost(url.host)));
  }

  /** True when `url` may carry credentials: HTTPS, or HTTP to a host listed as insecure. */
  allowsCredentials(url: URL): boolean {
    return url.protocol === "https:" || (url.protocol === "http:" && this.#insecure.has(normalizeHost(url.host)));
  }

  /** Closes the per-host clients. */
  close(): void {
    for (const client of this.#clients.values()) client.close();
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
