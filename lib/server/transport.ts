// The transports of the webhook core: node:https requests (body reading, limits, draining) and fetch-API Requests.

import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Logger } from "@logtape/logtape";
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

/** Settings of {@linkcode NodeTransport}. */
export interface NodeTransportOptions {
  readonly core: WebhookCore;
  readonly logger: Logger;
}

/** Per-connection state the TLS server keeps for graceful shutdown. */
export interface ConnectionState {
  active: number;
  served: number;
}

/** Serves node:http requests with the webhook core. */
export class NodeTransport {
  #options: NodeTransportOptions;

  constructor(options: NodeTransportOptions) {
    this.#options = options;
  }

  /** Answers one request; `draining` asks for `connection: close`; `done` runs when the answer is out. */
  serve(
    request: IncomingMessage,
    response: ServerResponse,
    context: { draining: () => boolean; state: ConnectionState | undefined },
  ): void {
    const socket = request.socket as Socket;
    const { state } = context;
    if (state !== undefined) state.active++;
    const declaredHeader = request.headers["content-length"];
    const declared = typeof declaredHeader === "string" ? Number(declaredHeader) : undefined;
    let tooLarge = false;
    const webhookRequest: WebhookRequest = {
      method: request.method ?? "GET",
      path: (request.url ?? "/").split("?")[0] ?? "/",
      contentType: request.headers["content-type"],
      readBody: (limit) =>
        new Promise((resolve, reject) => {
          if (declared !== undefined && declared > limit) {
            tooLarge = true;
            resolve(undefined);
            return;
          }
          const chunks: Uint8Array[] = [];
          let size = 0;
          let settled = false;
          request.on("data", (chunk: Uint8Array) => {
            if (settled) return;
            size += chunk.byteLength;
            if (size > limit) {
              settled = true;
              tooLarge = true;
              resolve(undefined);
              return;
            }
            chunks.push(chunk);
          });
          request.on("end", () => {
            if (!settled) {
              settled = true;
              resolve(concat(chunks, size));
            }
          });
          request.on("error", (error: Error) => {
            if (!settled) {
              settled = true;
              reject(error);
            }
          });
        }),
    };
    const finish = () => {
      if (state !== undefined) {
        state.active--;
        state.served++;
      }
      // During shutdown an HTTP/1.1 connection closes once its last response is out.
      if (state !== undefined && state.active === 0 && context.draining()) socket.end();
    };
    this.#options.core(webhookRequest).then((answer) => {
      const body = new TextEncoder().encode(answer.body);
      const headers: Record<string, string | number> = {
        "content-type": answer.contentType,
        "content-length": body.byteLength,
        ...answer.headers,
      };
      if (tooLarge || context.draining()) headers["connection"] = "close";
      response.writeHead(answer.status, headers);
      response.end(body);
      if (tooLarge) {
        // Do not read the rest of an oversized body: the connection closes after the answer.
        request.resume();
      }
    }).catch((error: unknown) => {
      this.#options.logger.error("Cannot answer a request: {message}", {
        message: error instanceof Error ? error.message : String(error),
      });
      if (!response.headersSent) response.writeHead(500, { "content-type": "text/plain" });
      response.end("internal error\n");
    }).finally(finish);
  }
}
