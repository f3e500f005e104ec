// A stalled connection on the HTTPS port is caught: many TLS connections at once, pipelining, slow readers, churn, aborts.

import assert from "node:assert/strict";
import { getLogger } from "@logtape/logtape";
import { mintCertificates } from "../lib/server/certs.ts";
import { ReloadingTlsServer } from "../lib/server/tls.ts";
import type { WebhookCore } from "../lib/server/transport.ts";
import { rawRequest, RawTlsConnection } from "./support/raw_tls.ts";
import { sleep } from "./support/webhook.ts";

/** No answer within this is a stall (every answer here takes milliseconds, even on a loaded machine). */
const STALL_MS = 15_000;

/**
 * The core: `/echo/ID/ANSWER_SIZE/DELAY_MS` waits DELAY_MS before reading the body (so request bytes pile up unread
 * and the socket pauses), then answers `ID:BODY_SIZE:` padded to ANSWER_SIZE bytes (large answers fill the write
 * buffers).
 */
const core: WebhookCore = async (request) => {
  const [, , id = "", size = "0", delay = "0"] = request.path.split("/");
  if (Number(delay) > 0) await sleep(Number(delay));
  else await Promise.resolve();
  const body = await request.readBody(8 * 1024 * 1024);
  const head = `${id}:${body?.byteLength ?? -1}:`;
  return { status: 200, contentType: "text/plain", body: head + "x".repeat(Math.max(0, Number(size) - head.length)) };
};

function join(parts: Uint8Array[]): Uint8Array {
  const all = new Uint8Array(parts.reduce((sum, p) => sum + p.byteLength, 0));
  let offset = 0;
  for (const p of parts) {
    all.set(p, offset);
    offset += p.byteLength;
  }
  return all;
}

/** A deterministic pseudo-random sequence (the same run every time). */
function seeded(seed: number): () => number {
  let x = seed || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x1_0000_0000;
  };
}

interface Plan {
  readonly id: string;
  readonly bodySize: number;
  readonly answerSize: number;
  readonly delayMs: number;
}

function requestOf(plan: Plan, headers: Record<string, string> = {}): Uint8Array {
  return rawRequest(
    "POST",
    `/echo/${plan.id}/${plan.answerSize}/${plan.delayMs}`,
    "b".repeat(plan.bodySize),
    { "content-type": "application/json", ...headers },
  );
}

/** Sends `plans` pipelined, in pieces of random sizes (TLS records cut anywhere), and checks every answer in order. */
async function pipelined(
  port: number,
  ca: string,
  plans: readonly Plan[],
  random: () => number,
  readerPauseMs: number,
  readEveryMs: number,
): Promise<void> {
  const connection = await RawTlsConnection.open(port, ca);
  try {
    const bytes = join(plans.map((plan) => requestOf(plan)));
    const writing = (async () => {
      for (let offset = 0; offset < bytes.byteLength;) {
        const piece = 1 + Math.floor(random() * 5000);
        await connection.write(bytes.subarray(offset, offset + piece));
        offset += piece;
      }
    })();
    if (readerPauseMs > 0) await sleep(readerPauseMs);
    for (const plan of plans) {
      const answer = await connection.response(STALL_MS);
      assert.ok(answer !== undefined, `no answer to ${plan.id} within ${STALL_MS} ms: the connection stalled`);
      assert.equal(answer.status, 200);
      assert.equal(answer.body.slice(0, answer.body.indexOf(":", plan.id.length + 1)), `${plan.id}:${plan.bodySize}`);
      assert.equal(answer.body.length, Math.max(plan.answerSize, `${plan.id}:${plan.bodySize}:`.length));
      if (readEveryMs > 0) await sleep(readEveryMs);
    }
    await writing;
  } finally {
    connection.close();
  }
}

/** One request per connection with `connection: close`, many times over: the answer always arrives whole. */
async function churn(port: number, ca: string, name: string, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const plan = { id: `${name}c${i}`, bodySize: 2000, answerSize: 20_000, delayMs: 0 };
    const connection = await RawTlsConnection.open(port, ca);
    try {
      await connection.write(requestOf(plan, { connection: "close" }));
      const answer = await connection.response(STALL_MS);
      assert.ok(answer !== undefined, `no answer to ${plan.id} within ${STALL_MS} ms`);
      assert.equal(answer.body.length, plan.answerSize);
      assert.ok(await connection.waitClosed(STALL_MS), `${plan.id}: the connection was not closed after the answer`);
    } finally {
      connection.close();
    }
  }
}

/** Pipelines requests with large answers and closes after reading a few bytes: the server must not mind. */
async function abort(port: number, ca: string, name: string): Promise<void> {
  const connection = await RawTlsConnection.open(port, ca);
  const plans = Array.from(
    { length: 6 },
    (_, i) => ({ id: `${name}a${i}`, bodySize: 30_000, answerSize: 200_000, delayMs: 0 }),
  );
  await connection.write(join(plans.map((plan) => requestOf(plan))));
  await connection.conn.read(new Uint8Array(100));
  connection.close();
}

Deno.test("transport: 32 connections pipelining, reading slowly, churning and aborting are all answered, none stalls", async () => {
  const certificates = await mintCertificates();
  const server = new ReloadingTlsServer({
    hostname: "127.0.0.1",
    port: 0,
    pair: { cert: certificates.cert, key: certificates.key },
    handler: core,
    logger: getLogger(["mirrorhook-test", "stall"]),
    limits: { bodyTimeoutMs: STALL_MS, headersTimeoutMs: STALL_MS },
  });
  await server.start();
  try {
    const { port } = server;
    const ca = certificates.caCert;
    const clients: Promise<void>[] = [];
    for (let c = 0; c < 32; c++) {
      const random = seeded(c + 1);
      const name = `k${c}`;
      const plans = (count: number, large: number) =>
        Array.from({ length: count }, (_, i) => ({
          id: `${name}r${i}`,
          bodySize: random() < large ? 100_000 : 1 + Math.floor(random() * 12_000),
          answerSize: random() < 0.5 ? 64 * 1024 : 1 + Math.floor(random() * 20_000),
          delayMs: random() < 0.2 ? 1 + Math.floor(random() * 20) : 0,
        }));
      switch (c % 4) {
        case 0: // large bodies and answers, a reader that waits, then reads slowly: both directions fill up
          clients.push(pipelined(port, ca, plans(16, 0.5), random, 300, 3));
          break;
        case 1: // many small pipelined requests cut into odd TLS records, read at once
          clients.push(pipelined(port, ca, plans(40, 0.05), random, 0, 0));
          break;
        case 2: // connections opened and closed one request at a time
          clients.push(churn(port, ca, name, 8));
          break;
        default: // a client gone mid-answer, then the same client pipelining again
          clients.push(abort(port, ca, name).then(() => pipelined(port, ca, plans(10, 0.3), random, 100, 0)));
      }
    }
    const results = await Promise.allSettled(clients);
    const failed = results.flatMap((result, i) =>
      result.status === "rejected" ? [`client ${i}: ${result.reason}`] : []
    );
    assert.deepEqual(failed, []);
    // The port still answers afterwards.
    await pipelined(port, ca, [{ id: "after", bodySize: 10, answerSize: 10, delayMs: 0 }], seeded(99), 0, 0);
  } finally {
    await server.shutdown();
  }
});
