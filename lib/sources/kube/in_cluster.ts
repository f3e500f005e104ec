// The in-cluster service account as API server access, without @kubernetes/client-node (which costs ~80 MB resident).

import https from "node:https";
import net from "node:net";

/** What the cluster source needs of a kubeconfig: the API server, and per request its TLS material and token. */
export interface KubeAccess {
  getCurrentCluster(): { readonly server: string } | null;
  /** Fills `options` (CA, client certificate, headers, agent) for one request; re-reads rotated credentials. */
  applyToHTTPSOptions(options: https.RequestOptions): Promise<void>;
}

/** Where Kubernetes mounts the service account into every container. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** How long a token read from its file is used before the file is read again (client-go's and client-node's 60 s). */
const TOKEN_MAX_AGE_MS = 60_000;

/** Options of {@linkcode InClusterAccess}: tests give another directory and environment. */
export interface InClusterOptions {
  /** Holds `token` and `ca.crt`; default {@linkcode SERVICE_ACCOUNT_DIR}. */
  readonly dir?: string;
  readonly env?: (name: string) => string | undefined;
  /** Reuse of a token read from its file; default 60 s. */
  readonly tokenMaxAgeMs?: number;
}

/**
 * The API server at https://KUBERNETES_SERVICE_HOST:KUBERNETES_SERVICE_PORT (IPv6 hosts in brackets), trusted through
 * the mounted `ca.crt` and called with the mounted (projected, rotating) token, as client-go's `InClusterConfig` and
 * client-node's `loadFromCluster` do: the CA file read per request, the token re-read after 60 s.
 */
export class InClusterAccess implements KubeAccess {
  readonly #server: string;
  readonly #tokenFile: string;
  readonly #caFile: string;
  readonly #tokenMaxAgeMs: number;
  #token: string | undefined;
  #readAt = 0;
  #agent: { readonly ca: string; readonly agent: https.Agent } | undefined;

  constructor(options: InClusterOptions = {}) {
    const env = options.env ?? ((name: string) => Deno.env.get(name));
    const host = env("KUBERNETES_SERVICE_HOST");
    const port = env("KUBERNETES_SERVICE_PORT");
    if (!host || !port) {
      throw new Error(
        "Cannot connect to the Kubernetes API: not running in a cluster (KUBERNETES_SERVICE_HOST is unset) and no --kubeconfig given",
      );
    }
    this.#server = `https://${net.isIPv6(host) ? `[${host}]` : host}:${port}`;
    const dir = options.dir ?? SERVICE_ACCOUNT_DIR;
    this.#tokenFile = `${dir}/token`;
    this.#caFile = `${dir}/ca.crt`;
    this.#tokenMaxAgeMs = options.tokenMaxAgeMs ?? TOKEN_MAX_AGE_MS;
  }

  getCurrentCluster(): { readonly server: string } {
    return { server: this.#server };
  }

  async applyToHTTPSOptions(options: https.RequestOptions): Promise<void> {
    const ca = await Deno.readTextFile(this.#caFile);
    const now = performance.now();
    if (this.#token === undefined || now - this.#readAt > this.#tokenMaxAgeMs) {
      this.#token = (await Deno.readTextFile(this.#tokenFile)).trim();
      this.#readAt = now;
    }
    options.ca = ca;
    options.headers = { ...options.headers, Authorization: `Bearer ${this.#token}` };
    // One agent per CA (as client-node keeps one per cluster): a rotated CA gets a new one.
    if (this.#agent?.ca !== ca) this.#agent = { ca, agent: new https.Agent({ ca }) };
    options.agent = this.#agent.agent;
  }
}
