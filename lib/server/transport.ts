// The transports of the webhook core: node:https requests (body reading, limits, draining) and fetch-API Requests.

import type { IncomingMessage, ServerResponse } from "node:http";
import v8 from "node:v8";
import vm from "node:vm";
import type { Socket } from "node:net";
import type { Logger } from "@logtape/logtape";
import { ReviewError } from "../admission/review.ts";
import { concat, readStreamLimited } from "../util/body.ts";
import type { WebhookRequest, WebhookResponse } from "./handler.ts";

/** The webhook core, whatever builds it. */
export type WebhookCore = (request: WebhookRequest) => Promise<WebhookResponse>;

/** The fetch-API form of a webhook core (tests call it with `new Request(...)`). */
export function toFetchHandler(core: WebhookCore): (request: Request) => Promise<Response> {
  return async (request) => {
    const declared = request.headers.get("content-length");
    const answer = await core({
      method: request.method,
      path: new URL(request.url).pathname,
      contentType: request.headers.get("content-type") ?? undefined,
      readBody: (limit) => readStreamLimited(request.body, declared === null ? undefined : Number(declared), limit),
    });
    return new Response(answer.body, {
      status: answer.status,
      headers: { "content-type": answer.contentType, ...answer.headers },
    });
  };
}

/** Limits of the HTTPS port against slow or greedy clients (flags --body-timeout, --headers-timeout, ...). */
export interface TransportLimits {
  /** A request body must be complete this long after its headers (else 408 and the connection closes). */
  readonly bodyTimeoutMs: number;
  /** The TLS handshake, and then each request's headers, must be complete within this. */
  readonly headersTimeoutMs: number;
  /** Request bytes held in memory across all connections; a request that would go over is answered 503. */
  readonly maxBufferedBytes: number;
  /** The largest body read or discarded on a connection that stays open (the core's body limit). */
  readonly maxBodyBytes: number;
}

/** Defaults: far below the API server's 30 s webhook timeout, and far below the 512 Mi Deployment limit. */
export const DEFAULT_TRANSPORT_LIMITS: TransportLimits = {
  bodyTimeoutMs: 10_000,
  headersTimeoutMs: 10_000,
  maxBufferedBytes: 32 * 1024 * 1024,
  maxBodyBytes: 8 * 1024 * 1024,
};

/** After an answer with `connection: close`, how long the socket may linger for the client to read it. */
const LINGER_MS = 1000;

/** Settings of {@linkcode NodeTransport}. */
export interface NodeTransportOptions {
  readonly core: WebhookCore;
  readonly logger: Logger;
  readonly limits?: Partial<TransportLimits>;
}

/** After this many request bytes were read and dropped, memory is collected (at most every MIN_GC_INTERVAL_MS). */
const GC_AFTER_BYTES = 16 * 1024 * 1024;
const MIN_GC_INTERVAL_MS = 250;

/**
 * V8's collector, exposed at run time: bodies read and dropped (a flood of large or abandoned requests) are external
 * buffers the heap does not see, so without a collection the process keeps hundreds of MiB it no longer uses.
 * Undefined where the runtime refuses.
 */
const collectGarbage: (() => void) | undefined = (() => {
  try {
    v8.setFlagsFromString("--expose-gc");
    const gc: unknown = vm.runInNewContext("gc");
    return typeof gc === "function" ? () => gc() : undefined;
  } catch {
    return undefined;
  }
})();

/** Per-connection state the TLS server keeps for graceful shutdown. */
export interface ConnectionState {
  active: number;
  served: number;
}

/** Serves node:http requests with the webhook core, within {@linkcode TransportLimits}. */
export class NodeTransport {
  #options: NodeTransportOptions;
  readonly limits: TransportLimits;
  #buffered = 0;
  #dropped = 0;
  #lastGc = 0;
  #gcTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: NodeTransportOptions) {
    this.#options = options;
    this.limits = { ...DEFAULT_TRANSPORT_LIMITS, ...options.limits };
  }

  /** Counts bytes read and let go; collects garbage once enough accumulated (never twice within 500 ms). */
  #dropBytes(bytes: number): void {
    this.#dropped += bytes;
    if (this.#dropped < GC_AFTER_BYTES || collectGarbage === undefined || this.#gcTimer !== undefined) return;
    const wait = Math.max(0, this.#lastGc + MIN_GC_INTERVAL_MS - performance.now());
    this.#gcTimer = setTimeout(() => {
      this.#gcTimer = undefined;
      this.#dropped = 0;
      this.#lastGc = performance.now();
      collectGarbage?.();
    }, wait);
  }

  /** Request body bytes held in memory now, across all connections. */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  /** The node:https server options these limits need (handshake timeout, and how often timeouts are checked). */
  serverOptions(): { handshakeTimeout: number; connectionsCheckingInterval: number } {
    return {
      handshakeTimeout: this.limits.headersTimeoutMs,
      connectionsCheckingInterval: Math.min(1000, this.limits.headersTimeoutMs),
    };
  }

  /** Sets the timeouts node:http enforces itself: headers, and a whole-request backstop behind the body deadline. */
  configure(server: { headersTimeout: number; requestTimeout: number; keepAliveTimeout: number }): void {
    server.headersTimeout = this.limits.headersTimeoutMs;
    server.requestTimeout = this.limits.headersTimeoutMs + this.limits.bodyTimeoutMs + 5000;
  }

  /** Answers one request; `draining` asks for `connection: close`. */
  serve(
    request: IncomingMessage,
    response: ServerResponse,
    context: { draining: () => boolean; state: ConnectionState | undefined },
  ): void {
    const socket = request.socket as Socket;
    const { state } = context;
    const { limits } = this;
    if (state !== undefined) state.active++;
    const started = performance.now();
    const declaredHeader = request.headers["content-length"];
    const declared = typeof declaredHeader === "string" ? Number(declaredHeader) : undefined;
    /** The connection closes after this answer: the rest of the body is not worth reading. */
    let closeAfter = false;
    let bodyRead = false;
    let held = 0;
    // Bytes of a body that was read in full and answered are young garbage like any other: the collector's own pace
    // handles them. Only bodies cut off (too large, too slow, refused, abandoned) count towards a forced collection.
    let completed = false;
    const release = (dropped: boolean) => {
      if (held === 0) return;
      this.#buffered -= held;
      if (dropped) this.#dropBytes(held);
      held = 0;
    };
    const webhookRequest: WebhookRequest = {
      method: request.method ?? "GET",
      path: (request.url ?? "/").split("?")[0] ?? "/",
      contentType: request.headers["content-type"],
      readBody: (limit) =>
        new Promise((resolve, reject) => {
          bodyRead = true;
          if (declared !== undefined && declared > limit) {
            closeAfter = true;
            resolve(undefined);
            return;
          }
          let chunks: Uint8Array[] = [];
          let size = 0;
          let settled = false;
          const settle = (then: () => void) => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            then();
          };
          const fail = (error: ReviewError) =>
            settle(() => {
              closeAfter = true;
              chunks = [];
              release(true);
              reject(error);
            });
          const timer = setTimeout(
            () =>
              fail(
                new ReviewError(
                  408,
                  `Cannot decode AdmissionReview: the body was not complete within ${limits.bodyTimeoutMs / 1000} s`,
                ),
              ),
            Math.max(0, limits.bodyTimeoutMs - (performance.now() - started)),
          );
          request.on("data", (chunk: Uint8Array) => {
            if (settled) return;
            size += chunk.byteLength;
            if (size > limit) {
              settle(() => {
                closeAfter = true;
                chunks = [];
                release(true);
                resolve(undefined);
              });
              return;
            }
            if (this.#buffered + chunk.byteLength > limits.maxBufferedBytes) {
              fail(
                new ReviewError(
                  503,
                  `Cannot read the AdmissionReview now: over ${limits.maxBufferedBytes} bytes of requests are being read; retry`,
                ),
              );
              return;
            }
            this.#buffered += chunk.byteLength;
            held += chunk.byteLength;
            // A copy when the chunk is a view of a larger read buffer, which holding it would keep alive whole.
            chunks.push(chunk.byteLength === chunk.buffer.byteLength ? chunk : chunk.slice());
          });
          request.on("end", () =>
            settle(() => {
              completed = true;
              resolve(concat(chunks, size));
            }));
          const gone = () =>
            fail(
              new ReviewError(400, "Cannot decode AdmissionReview: the connection closed before the body was complete"),
            );
          request.on("error", gone);
          request.on("aborted", gone);
          request.on("close", () => {
            if (!request.complete) gone();
          });
        }),
    };
    const finish = () => {
      release(!completed);
      if (state !== undefined) {
        state.active--;
        state.served++;
      }
      // During shutdown an HTTP/1.1 connection closes once its last response is out.
      if (state !== undefined && state.active === 0 && context.draining()) socket.end();
    };
    this.#options.core(webhookRequest).then((answer) => {
      const body = new TextEncoder().encode(answer.body);
      // An early answer (404, 405, 415) leaves the body unread: read and discard it so the next request on this
      // connection is seen, unless it is larger than any body would be read.
      if (!bodyRead && !request.complete && declared !== undefined && declared > limits.maxBodyBytes) {
        closeAfter = true;
      }
      const headers: Record<string, string | number> = {
        "content-type": answer.contentType,
        "content-length": body.byteLength,
        ...answer.headers,
      };
      if (closeAfter || context.draining()) headers["connection"] = "close";
      response.writeHead(answer.status, headers);
      response.end(body);
      if (closeAfter) this.#closeAfterAnswer(request, response, socket);
      else if (!request.complete) this.#discard(request, socket, started);
    }).catch((error: unknown) => {
      this.#options.logger.error("Cannot answer a request: {message}", {
        message: error instanceof Error ? error.message : String(error),
      });
      if (!response.headersSent) response.writeHead(500, { "content-type": "text/plain", connection: "close" });
      response.end("internal error\n");
      this.#closeAfterAnswer(request, response, socket);
    }).finally(finish);
  }

  /** Discards the rest of an unread body, at most the body limit and until the body deadline; else closes. */
  #discard(request: IncomingMessage, socket: Socket, started: number): void {
    let size = 0;
    const timer = setTimeout(
      () => lingerClose(socket),
      Math.max(0, this.limits.bodyTimeoutMs - (performance.now() - started)),
    );
    request.on("data", (chunk: Uint8Array) => {
      size += chunk.byteLength;
      this.#dropBytes(chunk.byteLength);
      if (size > this.limits.maxBodyBytes) {
        clearTimeout(timer);
        lingerClose(socket);
      }
    });
    request.on("end", () => clearTimeout(timer));
    request.on("close", () => clearTimeout(timer));
    request.resume();
  }

  /** Ends the connection once the answer is out; the unread rest of the body is discarded while it lingers. */
  #closeAfterAnswer(request: IncomingMessage, response: ServerResponse, socket: Socket): void {
    response.once("finish", () => lingerClose(socket));
    request.on("data", (chunk: Uint8Array) => this.#dropBytes(chunk.byteLength));
    request.resume();
  }
}

/**
 * Closes a connection without losing the answer already written: FIN first, while what the client still sends is read
 * and dropped (closing with unread data would send a reset, and the client's TCP discards the answer it has not read
 * yet), then destroyed after a short linger whatever the client does.
 */
function lingerClose(socket: Socket): void {
  if (socket.destroyed) return;
  const linger = setTimeout(() => socket.destroy(), LINGER_MS);
  socket.once("close", () => clearTimeout(linger));
  socket.end();
}
