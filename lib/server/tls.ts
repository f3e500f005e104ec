// The HTTPS listener (HTTP/1.1): serves from tls.crt/tls.key and swaps the certificate in place when they change.

import { createHash, createPrivateKey, X509Certificate } from "node:crypto";
import type { Socket } from "node:net";
import tls, { type TLSSocket } from "node:tls";
import type { Logger } from "@logtape/logtape";
import { certificateNotAfter, certificateValidity } from "./certs.ts";
import type { Metrics } from "./metrics.ts";
import { fileSignature, type FileWatch, watchFiles } from "../util/watch.ts";
import { type ConnectionState, Http1Transport, type TransportLimits, type WebhookCore } from "./transport.ts";

/** A certificate and key, PEM. */
export interface KeyPair {
  readonly cert: string;
  readonly key: string;
}

/** Settings of {@linkcode ReloadingTlsServer}. */
export interface TlsServerOptions {
  readonly hostname: string;
  readonly port: number;
  /** Directory holding tls.crt and tls.key (a cert-manager Secret mount); watched and polled. */
  readonly certDir?: string;
  /** A fixed pair instead of a directory (--dev). */
  readonly pair?: KeyPair;
  readonly handler: WebhookCore;
  readonly logger: Logger;
  readonly metrics?: Metrics;
  readonly pollIntervalMs?: number;
  readonly debounceMs?: number;
  /** Timeouts and memory bounds of the port (defaults: DEFAULT_TRANSPORT_LIMITS). */
  readonly limits?: Partial<TransportLimits>;
}

/** A pair refused because of its validity period, as /readyz reports it. */
export interface RejectedCertificate {
  readonly fingerprint: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly reason: string;
}

/** A certificate outside its validity period: never served, since every client would refuse it. */
class CertificateValidityError extends Error {
  override name = "CertificateValidityError";
  readonly validity: { notBefore: Date; notAfter: Date };
  constructor(reason: string, validity: { notBefore: Date; notAfter: Date }) {
    super(`Cannot use the certificate and key: ${reason}`);
    this.validity = validity;
  }
}

/** Names of the files in the certificate directory, as cert-manager and kubernetes.io/tls Secrets use them. */
export const CERT_FILE = "tls.crt";
export const KEY_FILE = "tls.key";

/** At shutdown, how long a connection accepted before the listener closed may take to send its first request. */
const FIRST_REQUEST_GRACE_MS = 1000;

/**
 * HTTPS for the webhook: a node:tls server offering HTTP/1.1 alone by ALPN, with our own HTTP/1.1 framing
 * (transport.ts, http1.ts). Not Deno.serve: Deno's TLS connections keep Nagle's algorithm on and expose no
 * setNoDelay, so every response over ~400 bytes (any patch) waited ~40 ms for the client's delayed ACK. Not
 * node:https: the same floor answers ~1.6x more requests/s on node:tls with one write per answer
 * (bench/transports.md). Not node:http2: Deno 2.9's nghttp2 binding aborts the process (assertion in
 * find_stream_on_goaway_func, or SIGSEGV) when clients close HTTP/2 connections (denoland/deno#36788). A
 * changed certificate goes into service through setSecureContext: new handshakes get it, open connections
 * finish undisturbed, and a pair that does not load is refused while the old one stays.
 */
export class ReloadingTlsServer {
  #options: TlsServerOptions;
  #server: tls.Server | undefined;
  #fingerprint: string | undefined;
  #notAfter: Date | undefined;
  #rejected: RejectedCertificate | undefined;
  #port = 0;
  #sockets = new Map<Socket, ConnectionState>();
  #transport: Http1Transport;
  #watch: FileWatch | undefined;
  #reloading: Promise<boolean> | undefined;
  #stopping = false;
  #draining = false;

  constructor(options: TlsServerOptions) {
    this.#options = options;
    this.#transport = new Http1Transport({
      core: options.handler,
      logger: options.logger,
      ...(options.limits === undefined ? {} : { limits: options.limits }),
    });
  }

  /** Starts listening; throws with a clear message when the certificate cannot be used or the port is taken. */
  async start(): Promise<void> {
    const certDir = this.#options.certDir;
    // Taken before the first read, so that a pair written meanwhile is picked up by the first poll.
    const signature = certDir === undefined ? undefined : await fileSignature([
      `${certDir}/${CERT_FILE}`,
      `${certDir}/${KEY_FILE}`,
    ]);
    const pair = await this.#readPair();
    this.#check(pair);
    const server = tls.createServer({ cert: pair.cert, key: pair.key, ...this.#transport.serverOptions() });
    // Deno's node:tls ignores handshakeTimeout: a connection that has not completed its handshake in time is dropped.
    // (Off if a runtime no longer links a TLS socket to its TCP socket: a timer could then not be told apart.)
    const handshakes = new Map<Socket, ReturnType<typeof setTimeout>>();
    let linked = true;
    server.on("connection", (raw: Socket) => {
      if (!linked) return;
      handshakes.set(raw, setTimeout(() => raw.destroy(), this.#transport.limits.headersTimeoutMs));
      raw.once("close", () => {
        clearTimeout(handshakes.get(raw));
        handshakes.delete(raw);
      });
    });
    server.on("secureConnection", (socket: TLSSocket) => {
      const raw = (socket as TLSSocket & { _parent?: Socket })._parent;
      if (raw !== undefined) {
        clearTimeout(handshakes.get(raw));
        handshakes.delete(raw);
      } else if (linked) {
        linked = false;
        for (const timer of handshakes.values()) clearTimeout(timer);
        handshakes.clear();
      }
      const state: ConnectionState = { active: 0, served: 0 };
      this.#sockets.set(socket, state);
      socket.on("close", () => this.#sockets.delete(socket));
      this.#transport.serve(socket, { draining: () => this.#draining, state });
    });
    server.on("tlsClientError", () => {}); // handshake failures are the client's business, not a crash
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.#options.port, this.#options.hostname, () => {
        server.off("error", reject);
        resolve();
      });
    });
    server.on(
      "error",
      (error: Error) => this.#options.logger.error("HTTPS server error: {message}", { message: error.message }),
    );
    this.#server = server;
    const address = server.address();
    this.#port = typeof address === "object" && address !== null ? address.port : this.#options.port;
    this.#accept(pair);
    const dir = this.#options.certDir;
    if (dir !== undefined) {
      this.#watch = watchFiles({
        dirs: [dir],
        paths: [`${dir}/${CERT_FILE}`, `${dir}/${KEY_FILE}`],
        onChange: (trigger) => void this.reload(trigger),
        pollIntervalMs: this.#options.pollIntervalMs ?? 5000,
        debounceMs: this.#options.debounceMs ?? 100,
        ...(signature === undefined ? {} : { initialSignature: signature }),
        logger: this.#options.logger,
      });
    }
  }

  /** The bound port (useful with port 0). */
  get port(): number {
    return this.#port;
  }

  /** notAfter of the certificate in force. */
  get notAfter(): Date | undefined {
    return this.#notAfter;
  }

  /** The last pair refused because of its validity period, until a newer pair goes into service. */
  get rejected(): RejectedCertificate | undefined {
    return this.#rejected;
  }

  /** Re-reads the pair; resolves true when a new certificate went into service. */
  reload(trigger: string): Promise<boolean> {
    if (this.#stopping || this.#options.certDir === undefined || this.#server === undefined) {
      return Promise.resolve(false);
    }
    this.#reloading ??= this.#reload(trigger).finally(() => {
      this.#reloading = undefined;
    });
    return this.#reloading;
  }

  async #reload(trigger: string): Promise<boolean> {
    const { logger, metrics } = this.#options;
    let print: string | undefined;
    try {
      const pair = await this.#readPair();
      print = fingerprint(pair);
      if (print === this.#fingerprint) return false;
      // A refused pair is looked at again only once it would be valid (a notBefore a little ahead of this clock).
      if (print === this.#rejected?.fingerprint && !withinValidity(this.#rejected, Date.now())) return false;
      this.#check(pair);
      this.#server?.setSecureContext({ cert: pair.cert, key: pair.key });
      this.#accept(pair);
      this.#rejected = undefined;
      metrics?.certificateReloads.inc({ result: "success" });
      logger.info("Serving a new certificate, valid until {notAfter}", {
        trigger,
        notAfter: this.#notAfter?.toISOString(),
      });
      return true;
    } catch (error) {
      // Whatever failed, the next poll reads the pair again (the metadata poll alone would wait for a change).
      this.#watch?.invalidate();
      if (error instanceof CertificateValidityError && print !== undefined) {
        // Not a half-written pair: an expired one never becomes usable, a future one only at its notBefore (the
        // poll looks again then). Logged and counted once per pair.
        this.#rejected = { fingerprint: print, ...error.validity, reason: error.message };
        metrics?.certificateReloads.inc({ result: "rejected" });
        logger.error("Refused the new certificate; keeping the current one (valid until {current}): {message}", {
          trigger,
          current: this.#notAfter?.toISOString(),
          notBefore: error.validity.notBefore.toISOString(),
          notAfter: error.validity.notAfter.toISOString(),
          message: error.message,
        });
        return false;
      }
      // Typically a half-written pair (key and certificate do not match yet); the next event or poll retries.
      metrics?.certificateReloads.inc({ result: "error" });
      logger.error("Cannot use the new certificate; keeping the current one: {message}", {
        trigger,
        message: error instanceof Error ? error.message : String(error),
      });
      return false;
    }
  }

  /**
   * Keeps serving but ends keep-alive: each response carries `connection: close`, so clients move to other
   * replicas while this one is not ready, and few idle connections are left to close when the listener stops.
   */
  drain(): void {
    this.#draining = true;
  }

  /** Stops accepting, lets in-flight requests finish, closes idle connections, and resolves when all are closed. */
  async shutdown(): Promise<void> {
    this.#stopping = true;
    this.#draining = true;
    this.#watch?.stop();
    await this.#reloading;
    const server = this.#server;
    if (server === undefined) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const [socket, state] of this.#sockets) {
      // Idle after a response: close now (HTTP/1.1 has no gentler way). Accepted but no request yet: its request
      // may be on the wire, so give it a moment to arrive; it is then answered with `connection: close`.
      if (state.active === 0 && state.served > 0) socket.destroy();
      else if (state.active === 0) setTimeout(() => state.active === 0 && socket.destroy(), FIRST_REQUEST_GRACE_MS);
    }
    await closed;
  }

  #check(pair: KeyPair): void {
    const validity = certificateValidity(pair.cert);
    if (Date.now() >= validity.notAfter.getTime()) {
      throw new CertificateValidityError(`the certificate expired at ${validity.notAfter.toISOString()}`, validity);
    }
    if (Date.now() < validity.notBefore.getTime()) {
      throw new CertificateValidityError(
        `the certificate is not valid before ${validity.notBefore.toISOString()}`,
        validity,
      );
    }
    // Deno's createSecureContext accepts a key that does not match the certificate (and garbage), and
    // setSecureContext would then fail every new handshake; check the pair explicitly.
    let matches: boolean;
    try {
      matches = new X509Certificate(pair.cert).checkPrivateKey(createPrivateKey(pair.key));
    } catch (error) {
      throw new Error(`Cannot use the certificate and key: ${error instanceof Error ? error.message : String(error)}`);
    }
    if (!matches) throw new Error("Cannot use the certificate and key: the key does not match the certificate");
  }

  #accept(pair: KeyPair): void {
    this.#fingerprint = fingerprint(pair);
    this.#notAfter = certificateNotAfter(pair.cert);
    this.#options.metrics?.certificateExpiry.set(this.#notAfter.getTime() / 1000);
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
}

function withinValidity(validity: { notBefore: Date; notAfter: Date }, now: number): boolean {
  return now >= validity.notBefore.getTime() && now < validity.notAfter.getTime();
}

function fingerprint(pair: KeyPair): string {
  return createHash("sha256").update(pair.cert).update("\u0000").update(pair.key).digest("hex");
}
