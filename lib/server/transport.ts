// The webhook core's transports: HTTP/1.1 connections on node:tls sockets (limits, draining), and fetch-API Requests.
//
// Why node:tls with our own framing (lib/server/http1.ts) rather than node:https: measured on Deno 2.9.6 (one pinned
// core, 16 connections, bench/transports.sh), a floor on node:tls + own framing + setNoDelay + one write per answer
// answers ~6,800 requests/s on the typical Pod where the same floor on node:https answers 3,900-4,500. Raw
// Deno.listenTls is faster still but stalls 40 ms on answers over 16 KB (TlsConn has no setNoDelay); Deno.serve
// offers h2 and stalls there; node:http2 aborts the process on client resets.

import { Buffer } from "node:buffer";
import v8 from "node:v8";
import vm from "node:vm";
import type { Socket } from "node:net";
import type { Logger } from "@logtape/logtape";
import { ReviewError } from "../admission/review.ts";
import { concat, readStreamLimited } from "../util/body.ts";
import type { WebhookRequest, WebhookResponse } from "./handler.ts";
import { encodeAnswer, errorAnswer, type RequestHead, RequestParser } from "./http1.ts";

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
/** An idle keep-alive connection (no byte of a next request) is closed after this. */
const KEEP_ALIVE_MS = 5000;
/** Unparsed bytes (pipelined requests behind the one being answered) above which the socket stops being read. */
const PAUSE_BYTES = 64 * 1024;

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

/** What the TLS server tells a connection: whether to end keep-alive, and its shutdown bookkeeping. */
export interface ConnectionContext {
  readonly draining: () => boolean;
  readonly state: ConnectionState;
}

/** Settings of {@linkcode Http1Transport}. */
export interface Http1TransportOptions {
  readonly core: WebhookCore;
  readonly logger: Logger;
  readonly limits?: Partial<TransportLimits>;
}

/** Serves HTTP/1.1 connections with the webhook core, within {@linkcode TransportLimits}. */
export class Http1Transport {
  readonly core: WebhookCore;
  readonly logger: Logger;
  readonly limits: TransportLimits;
  #buffered = 0;
  #dropped = 0;
  #lastGc = 0;
  #gcTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: Http1TransportOptions) {
    this.core = options.core;
    this.logger = options.logger;
    this.limits = { ...DEFAULT_TRANSPORT_LIMITS, ...options.limits };
  }

  /** The node:tls server options these limits need: HTTP/1.1 by ALPN only, and the handshake deadline. */
  serverOptions(): { ALPNProtocols: string[]; handshakeTimeout: number } {
    return { ALPNProtocols: ["http/1.1"], handshakeTimeout: this.limits.headersTimeoutMs };
  }

  /** Request body bytes held in memory now, across all connections. */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  /** Reserves `bytes` of the shared budget; false when that would go over it. */
  reserve(bytes: number): boolean {
    if (this.#buffered + bytes > this.limits.maxBufferedBytes) return false;
    this.#buffered += bytes;
    return true;
  }

  /** Returns `bytes` to the budget; `dropped` when they were read and thrown away (counts towards a collection). */
  release(bytes: number, dropped: boolean): void {
    this.#buffered -= bytes;
    if (dropped) this.dropBytes(bytes);
  }

  /** Counts bytes read and let go; collects garbage once enough accumulated (never twice within 250 ms). */
  dropBytes(bytes: number): void {
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

  /** Serves the requests of one secured connection until it closes. */
  serve(socket: Socket, context: ConnectionContext): void {
    new Connection(this, socket, context);
  }
}

/** One request being served: its head, its body as far as read, and its answer. */
interface Exchange {
  readonly head: RequestHead;
  readonly started: number;
  /** pending: nobody asked for the body yet; reading: the core reads it; discarding: answered, the rest dropped; stopped: nothing more is read. */
  phase: "pending" | "reading" | "discarding" | "stopped";
  ended: boolean;
  answered: boolean;
  closeAfter: boolean;
  limit: number;
  size: number;
  /** Bytes reserved in the shared budget. */
  held: number;
  completed: boolean;
  /** The whole body, as one view of the received bytes (the common case) or a buffer it was copied into. */
  whole: Buffer | undefined;
  filled: number;
  pieces: Buffer[];
  settle: ((body: Uint8Array | undefined) => void) | undefined;
  fail: ((error: ReviewError) => void) | undefined;
}

const NO_BODY = new Uint8Array(0);
const CONTINUE = Buffer.from("HTTP/1.1 100 Continue\r\n\r\n", "latin1");

/** The requests of one connection, answered one at a time and in order. */
class Connection {
  readonly #transport: Http1Transport;
  readonly #socket: Socket;
  readonly #context: ConnectionContext;
  readonly #parser = new RequestParser();
  #current: Exchange | undefined;
  /**
   * One timer per connection, for whichever deadline is in force (head, keep-alive, body, discard): moving a deadline
   * later costs no timer; the timer, when it fires early, waits again for the rest.
   */
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = 0;
  #deadline = 0;
  #onDeadline: (() => void) | undefined;
  /** The deadline in force is the keep-alive idle time (no byte of a next request yet). */
  #idle = false;
  #pumping = false;
  #waitingDrain = false;
  /** No further request is parsed: the connection ends after the current answer, or already lingers. */
  #closing = false;
  #gone = false;

  constructor(transport: Http1Transport, socket: Socket, context: ConnectionContext) {
    this.#transport = transport;
    this.#socket = socket;
    this.#context = context;
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.#guard(() => this.#onData(chunk)));
    socket.on("drain", () =>
      this.#guard(() => {
        if (!this.#waitingDrain) return;
        this.#waitingDrain = false;
        this.#pump();
      }));
    socket.on("end", () => this.#onGone());
    socket.on("close", () => this.#onGone());
    socket.on("error", () => this.#onGone());
    this.#headDeadline(transport.limits.headersTimeoutMs, false);
  }

  /** Runs `step`; a fault of this file (never of the input, which the parser refuses) ends the connection, not the process. */
  #guard(step: () => void): void {
    try {
      step();
    } catch (error) {
      this.#transport.logger.error("Cannot serve a connection: {message}", {
        message: error instanceof Error ? error.message : String(error),
      });
      this.#socket.destroy();
    }
  }

  #onData(chunk: Buffer): void {
    if (this.#closing && this.#current === undefined) {
      this.#transport.dropBytes(chunk.length);
      return;
    }
    this.#parser.push(chunk);
    // The first bytes of a next request: from now on its head must be complete within the headers deadline.
    if (this.#idle && this.#current === undefined) {
      this.#headDeadline(this.#transport.limits.headersTimeoutMs, false);
    }
    this.#pump();
  }

  /** Pulls parser events as far as the current request allows, then pauses or resumes reading. */
  #pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (!this.#gone) {
        const exchange = this.#current;
        if (exchange !== undefined) {
          if (exchange.phase === "pending" || exchange.phase === "stopped" || exchange.ended) break;
        } else if (this.#closing || this.#waitingDrain) break;
        const event = this.#parser.read();
        if (event === undefined) break;
        if (event.type === "head") this.#begin(event.head);
        else if (event.type === "body") this.#body(exchange!, event.data);
        else if (event.type === "end") this.#end(exchange!);
        else this.#malformed(event.status, event.reason);
      }
    } finally {
      this.#pumping = false;
    }
    const socket = this.#socket;
    if (this.#parser.pendingBytes > PAUSE_BYTES && !this.#closing) socket.pause();
    else if (socket.isPaused()) socket.resume();
  }

  /** Runs `action` in `ms` unless another deadline (or none) is set before. */
  #deadlineIn(ms: number, action: () => void): void {
    const now = performance.now();
    this.#deadline = now + ms;
    this.#onDeadline = action;
    if (this.#timer !== undefined && this.#timerAt <= this.#deadline) return;
    clearTimeout(this.#timer);
    this.#timerAt = this.#deadline;
    this.#timer = setTimeout(this.#tick, ms);
  }

  #stopTimer(): void {
    this.#onDeadline = undefined;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #noDeadline(): void {
    this.#onDeadline = undefined;
    this.#idle = false;
  }

  #tick = (): void => {
    this.#timer = undefined;
    const action = this.#onDeadline;
    if (action === undefined) return;
    const left = this.#deadline - performance.now();
    if (left > 0) {
      this.#timerAt = this.#deadline;
      this.#timer = setTimeout(this.#tick, left);
      return;
    }
    this.#onDeadline = undefined;
    this.#guard(action);
  };

  /** The next request's head must be complete within `ms` (`idle`: no byte of it yet, the keep-alive time). */
  #headDeadline(ms: number, idle: boolean): void {
    this.#deadlineIn(ms, () => {
      if (this.#current !== undefined) return;
      this.#closing = true;
      if (idle || this.#parser.pendingBytes === 0) this.#socket.destroy();
      else this.#write(errorAnswer(408, "request headers not complete in time"), true);
    });
    this.#idle = idle;
  }

  #begin(head: RequestHead): void {
    this.#noDeadline();
    const exchange: Exchange = {
      head,
      started: performance.now(),
      phase: "pending",
      ended: false,
      answered: false,
      closeAfter: false,
      limit: 0,
      size: 0,
      held: 0,
      completed: false,
      whole: undefined,
      filled: 0,
      pieces: [],
      settle: undefined,
      fail: undefined,
    };
    this.#current = exchange;
    this.#context.state.active++;
    const query = head.target.indexOf("?");
    const request: WebhookRequest = {
      method: head.method,
      path: query < 0 ? head.target : head.target.slice(0, query),
      contentType: head.contentType,
      readBody: (limit) => this.#readBody(exchange, limit),
    };
    let answering: Promise<WebhookResponse>;
    try {
      answering = this.#transport.core(request);
    } catch (error) {
      answering = Promise.reject(error);
    }
    answering.then(
      (answer) => this.#answer(exchange, answer),
      (error: unknown) => {
        this.#transport.logger.error("Cannot answer a request: {message}", {
          message: error instanceof Error ? error.message : String(error),
        });
        exchange.closeAfter = true;
        this.#answer(exchange, { status: 500, contentType: "text/plain", body: "internal error\n" });
      },
    ).catch((error: unknown) => {
      // A fault of this file, not of the request: the connection goes, the process stays.
      this.#transport.logger.error("Cannot write an answer: {message}", {
        message: error instanceof Error ? error.message : String(error),
      });
      this.#socket.destroy();
    });
  }

  #readBody(exchange: Exchange, limit: number): Promise<Uint8Array | undefined> {
    if (exchange.phase !== "pending") {
      return Promise.reject(new ReviewError(500, "Cannot decode AdmissionReview: the body was already read"));
    }
    const { head } = exchange;
    const limits = this.#transport.limits;
    const declared = head.contentLength;
    if (declared !== undefined && declared > limit) {
      exchange.closeAfter = true;
      exchange.phase = "stopped";
      return Promise.resolve(undefined);
    }
    if (this.#gone) return Promise.reject(gone());
    // The whole body already received is handed over as one view, without a copy; else it is copied as it comes into
    // one buffer of the declared size (whose pages the kernel maps only as they are written).
    if (declared !== undefined && declared > 0 && this.#parser.pendingBytes < declared) {
      exchange.whole = Buffer.allocUnsafeSlow(declared);
    }
    exchange.limit = limit;
    exchange.phase = "reading";
    if (head.expectContinue && this.#parser.pendingBytes === 0) this.#write(CONTINUE, false);
    return new Promise((resolve, reject) => {
      exchange.settle = resolve;
      exchange.fail = reject;
      this.#deadlineIn(
        Math.max(0, limits.bodyTimeoutMs - (performance.now() - exchange.started)),
        () => this.#bodyFailed(exchange, bodyTimeout(limits.bodyTimeoutMs)),
      );
      queueMicrotask(() => this.#pump());
    });
  }

  #body(exchange: Exchange, data: Buffer): void {
    exchange.size += data.length;
    if (exchange.phase === "discarding") {
      this.#transport.dropBytes(data.length);
      if (exchange.size > this.#transport.limits.maxBodyBytes) this.#lingerClose();
      return;
    }
    const chunked = exchange.head.contentLength === undefined;
    // A chunked body has no declared size: it is held to the limit as it comes.
    if (chunked && exchange.size > exchange.limit) {
      this.#bodyDone(exchange, undefined);
      exchange.closeAfter = true;
      exchange.phase = "stopped";
      return;
    }
    // Counted against the shared budget as it arrives: a client that stops half-way holds only what it sent.
    if (!this.#transport.reserve(data.length)) {
      this.#bodyFailed(exchange, overBudget(this.#transport.limits.maxBufferedBytes));
      return;
    }
    exchange.held += data.length;
    if (chunked) {
      // A copy when the piece is a view of a larger read buffer, which holding it would keep alive whole.
      exchange.pieces.push(data.length === data.buffer.byteLength ? data : Buffer.from(data));
    } else if (exchange.whole === undefined) {
      exchange.whole = data; // the whole body, since it was all there when the core asked for it
    } else {
      data.copy(exchange.whole, exchange.filled);
      exchange.filled += data.length;
    }
  }

  #end(exchange: Exchange): void {
    exchange.ended = true;
    if (exchange.phase === "reading") {
      exchange.completed = true;
      const body = exchange.head.contentLength === undefined
        ? (exchange.pieces.length === 0 ? NO_BODY : concat(exchange.pieces, exchange.size))
        : (exchange.whole ?? NO_BODY);
      exchange.pieces = [];
      this.#bodyDone(exchange, body);
    } else if (exchange.phase === "discarding") {
      this.#noDeadline();
      this.#next(exchange);
    }
  }

  #bodyDone(exchange: Exchange, body: Uint8Array | undefined): void {
    this.#noDeadline();
    const settle = exchange.settle;
    exchange.settle = undefined;
    exchange.fail = undefined;
    exchange.whole = undefined;
    settle?.(body);
  }

  /** The body cannot be had (too slow, over budget, client gone, malformed): the core's read rejects. */
  #bodyFailed(exchange: Exchange, error: ReviewError): void {
    this.#noDeadline();
    exchange.closeAfter = true;
    exchange.phase = "stopped";
    exchange.pieces = [];
    exchange.whole = undefined;
    this.#releaseOf(exchange);
    const fail = exchange.fail;
    exchange.settle = undefined;
    exchange.fail = undefined;
    fail?.(error);
  }

  #releaseOf(exchange: Exchange): void {
    if (exchange.held === 0) return;
    this.#transport.release(exchange.held, !exchange.completed);
    exchange.held = 0;
  }

  #answer(exchange: Exchange, answer: WebhookResponse): void {
    exchange.answered = true;
    this.#releaseOf(exchange);
    const { state } = this.#context;
    state.active--;
    state.served++;
    if (this.#gone) return;
    const limits = this.#transport.limits;
    const { head } = exchange;
    if (!exchange.ended && exchange.phase === "pending") {
      // An early answer (404, 405, 415) leaves the body unread: it is read and dropped so the next request on this
      // connection is seen, unless it is larger than any body would be read, or a client waiting for 100 Continue
      // may or may not send it.
      const declared = head.contentLength;
      if (head.expectContinue || (declared !== undefined && declared > limits.maxBodyBytes)) {
        exchange.closeAfter = true;
      } else {
        exchange.phase = "discarding";
        this.#deadlineIn(
          Math.max(0, limits.bodyTimeoutMs - (performance.now() - exchange.started)),
          () => this.#lingerClose(),
        );
      }
    }
    // An answer before the body the core was reading is complete: the rest of it cannot be told from a next request.
    if (!exchange.ended && exchange.phase === "reading") exchange.closeAfter = true;
    const close = exchange.closeAfter || !head.keepAlive || this.#context.draining() || exchange.phase === "stopped";
    const bytes = encodeAnswer(answer, close, head.minor, head.method === "HEAD");
    if (close) {
      this.#closing = true;
      this.#write(bytes, true);
      return;
    }
    const flushed = this.#write(bytes, false);
    if (!flushed) this.#waitingDrain = true;
    if (exchange.ended) this.#next(exchange);
    else this.#pump(); // go on discarding the body
  }

  /** The exchange is over (answered, body read or dropped): the next pipelined request may be parsed. */
  #next(exchange: Exchange): void {
    if (this.#current !== exchange) return;
    this.#current = undefined;
    if (this.#closing || this.#gone) return;
    if (this.#parser.pendingBytes > 0) this.#headDeadline(this.#transport.limits.headersTimeoutMs, false);
    else this.#headDeadline(KEEP_ALIVE_MS, true);
    this.#pump();
  }

  /** A request the parser refuses: a bare error answer when nothing is being served, and the connection ends. */
  #malformed(status: number, reason: string): void {
    this.#closing = true;
    const exchange = this.#current;
    if (exchange === undefined) {
      this.#write(errorAnswer(status, reason), true);
    } else if (exchange.phase === "reading") {
      this.#bodyFailed(exchange, new ReviewError(400, `Cannot decode AdmissionReview: ${reason}`));
    } else {
      this.#lingerClose();
    }
  }

  /** Writes one answer in one write; `end` closes the connection after it. False when the socket buffer is full. */
  #write(bytes: Buffer, end: boolean): boolean {
    const socket = this.#socket;
    if (socket.destroyed || !socket.writable) return true;
    const flushed = socket.write(bytes);
    if (end) this.#lingerClose();
    return flushed;
  }

  /**
   * Closes without losing the answer already written: FIN first, while what the client still sends is read and
   * dropped (closing with unread data would send a reset, and the client's TCP discards the answer it has not read
   * yet), then destroyed after a short linger whatever the client does.
   */
  #lingerClose(): void {
    this.#closing = true;
    const exchange = this.#current;
    if (exchange !== undefined && exchange.answered) this.#current = undefined;
    this.#stopTimer();
    const socket = this.#socket;
    if (socket.destroyed || socket.writableEnded) return;
    socket.resume();
    const linger = setTimeout(() => socket.destroy(), LINGER_MS);
    socket.once("close", () => clearTimeout(linger));
    socket.end();
  }

  /** The client ended or the socket failed: what is being read fails, nothing more is written. */
  #onGone(): void {
    if (this.#gone) return;
    this.#gone = true;
    this.#stopTimer();
    const exchange = this.#current;
    if (exchange !== undefined && !exchange.ended && exchange.phase === "reading") this.#bodyFailed(exchange, gone());
    if (!this.#socket.destroyed) this.#socket.destroy();
  }
}

const gone = () =>
  new ReviewError(400, "Cannot decode AdmissionReview: the connection closed before the body was complete");
const overBudget = (max: number) =>
  new ReviewError(503, `Cannot read the AdmissionReview now: over ${max} bytes of requests are being read; retry`);
const bodyTimeout = (ms: number) =>
  new ReviewError(408, `Cannot decode AdmissionReview: the body was not complete within ${ms / 1000} s`);
