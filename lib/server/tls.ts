// The HTTPS listener: serves from tls.crt/tls.key and swaps to a new listener on the same port when they change.

import { createHash } from "node:crypto";
import type { Logger } from "@logtape/logtape";
import { certificateNotAfter } from "./certs.ts";
import type { Metrics } from "./metrics.ts";

/** A certificate and key, PEM. */
export interface KeyPair {
  readonly cert: string;
  readonly key: string;
}

/** Settings of {@linkcode ReloadingTlsServer}. */
export interface TlsServerOptions {
  readonly hostname: string;
  readonly port: number;
  /** Directory holding tls.crt and tls.key (a cert-manager Secret mount); watched. */
  readonly certDir?: string;
  /** A fixed pair instead of a directory (--dev). */
  readonly pair?: KeyPair;
  readonly handler: (request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) => Response | Promise<Response>;
  readonly logger: Logger;
  readonly metrics?: Metrics;
  readonly pollIntervalMs?: number;
  readonly debounceMs?: number;
}

interface Listener {
  readonly server: Deno.HttpServer<Deno.NetAddr>;
  readonly fingerprint: string;
  readonly notAfter: Date;
}

/** Names of the files in the certificate directory, as cert-manager and kubernetes.io/tls Secrets use them. */
export const CERT_FILE = "tls.crt";
export const KEY_FILE = "tls.key";

/**
 * HTTPS with certificate rotation and no gap: `Deno.serve` takes its certificate once, so a change starts a
 * second listener on the same port (`reusePort`) and then shuts the old one down gracefully, letting its
 * in-flight requests finish. A bad new pair is refused and the old listener stays.
 */
export class ReloadingTlsServer {
  #options: TlsServerOptions;
  #current: Listener | undefined;
  #port = 0;
  #retiring = new Set<Promise<void>>();
  #watcher: Deno.FsWatcher | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #debounce: ReturnType<typeof setTimeout> | undefined;
  #reloading: Promise<boolean> | undefined;
  #stopped = false;

  constructor(options: TlsServerOptions) {
    this.#options = options;
  }

  /** Starts listening; throws with a clear message when the certificate cannot be used. */
  async start(): Promise<void> {
    const pair = await this.#readPair();
    this.#current = this.#listen(pair, this.#options.port);
    this.#port = this.#current.server.addr.port;
    this.#options.metrics?.certificateExpiry.set(this.#current.notAfter.getTime() / 1000);
    if (this.#options.certDir !== undefined) {
      this.#watch(this.#options.certDir);
      this.#timer = setInterval(() => void this.reload("poll"), this.#options.pollIntervalMs ?? 5000);
    }
  }

  /** The bound port (useful with port 0). */
  get port(): number {
    return this.#port;
  }

  /** notAfter of the certificate in force. */
  get notAfter(): Date | undefined {
    return this.#current?.notAfter;
  }

  /** Re-reads the pair; resolves true when a new certificate went into service. */
  reload(trigger: string): Promise<boolean> {
    if (this.#stopped || this.#options.certDir === undefined) return Promise.resolve(false);
    this.#reloading ??= this.#reload(trigger).finally(() => {
      this.#reloading = undefined;
    });
    return this.#reloading;
  }

  async #reload(trigger: string): Promise<boolean> {
    const { logger, metrics } = this.#options;
    let pair: KeyPair;
    try {
      pair = await this.#readPair();
    } catch (error) {
      metrics?.certificateReloads.inc({ result: "error" });
      logger.error("Cannot reload the serving certificate; keeping the current one: {message}", {
        trigger,
        message: error instanceof Error ? error.message : String(error),
      });
      return false;
    }
    const old = this.#current;
    if (old !== undefined && fingerprint(pair) === old.fingerprint) return false;
    let next: Listener;
    try {
      next = this.#listen(pair, this.#port);
    } catch (error) {
      // Typically a half-written pair (key and certificate do not match yet); the next event or poll retries.
      metrics?.certificateReloads.inc({ result: "error" });
      logger.error("Cannot serve the new certificate; keeping the current one: {message}", {
        trigger,
        message: error instanceof Error ? error.message : String(error),
      });
      return false;
    }
    this.#current = next;
    metrics?.certificateReloads.inc({ result: "success" });
    metrics?.certificateExpiry.set(next.notAfter.getTime() / 1000);
    logger.info("Serving a new certificate, valid until {notAfter}", {
      trigger,
      notAfter: next.notAfter.toISOString(),
    });
    if (old !== undefined) this.#retire(old);
    return true;
  }

  /** Stops accepting, lets in-flight requests finish, and resolves when every listener has closed. */
  async shutdown(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    if (this.#debounce !== undefined) clearTimeout(this.#debounce);
    try {
      this.#watcher?.close();
    } catch {
      // already closed
    }
    await this.#reloading;
    if (this.#current !== undefined) this.#retire(this.#current);
    this.#current = undefined;
    await Promise.all([...this.#retiring]);
  }

  #retire(listener: Listener): void {
    const done = listener.server.shutdown().catch(() => {});
    this.#retiring.add(done);
    void done.finally(() => this.#retiring.delete(done));
  }

  #listen(pair: KeyPair, port: number): Listener {
    const notAfter = certificateNotAfter(pair.cert);
    const server = Deno.serve({
      hostname: this.#options.hostname,
      port,
      cert: pair.cert,
      key: pair.key,
      reusePort: true,
      onListen: () => {},
    }, this.#options.handler);
    return { server, fingerprint: fingerprint(pair), notAfter };
  }

  async #readPair(): Promise<KeyPair> {
    if (this.#options.pair !== undefined) return this.#options.pair;
    const dir = this.#options.certDir;
    if (dir === undefined) throw new Error("Cannot start TLS: give --tls-dir (or --dev for a throwaway certificate)");
    const read = async (name: string) => {
      try {
        return await Deno.readTextFile(`${dir}/${name}`);
      } catch (error) {
        throw new Error(`Cannot read ${dir}/${name}: ${error instanceof Error ? error.message : String(error)}`);
      }
    };
    const [cert, key] = await Promise.all([read(CERT_FILE), read(KEY_FILE)]);
    return { cert, key };
  }

  #watch(dir: string): void {
    try {
      this.#watcher = Deno.watchFs(dir, { recursive: false });
    } catch (error) {
      this.#options.logger.warn("Cannot watch {dir}; relying on the poll: {message}", {
        dir,
        message: error instanceof Error ? error.message : String(error),
      });
      return;
    }
    (async () => {
      for await (const _event of this.#watcher ?? []) {
        if (this.#debounce !== undefined) clearTimeout(this.#debounce);
        this.#debounce = setTimeout(() => void this.reload("watch"), this.#options.debounceMs ?? 100);
      }
    })().catch(() => {});
  }
}

function fingerprint(pair: KeyPair): string {
  return createHash("sha256").update(pair.cert).update("\u0000").update(pair.key).digest("hex");
}
