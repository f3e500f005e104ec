// The HTTPS port against hostile clients, on real TLS sockets: early answers, pipelining, timeouts, memory bounds.

import assert from "node:assert/strict";
import type { RunningServer } from "../lib/server/app.ts";
import { rawRequest, RawTlsConnection } from "./support/raw_tls.ts";
import { answerUid, podReview, sleep, startDevServer, tempDir, waitFor } from "./support/webhook.ts";

const JSON_TYPE = { "content-type": "application/json" };

function start(
  dir: string,
  overrides: Parameters<typeof startDevServer>[2] = {},
): ReturnType<typeof startDevServer> {
  return startDevServer(dir, 1000, overrides);
}

function mutate(uid: string, padding = 0): Uint8Array {
  const review = podReview(uid) as { request: { object: { metadata: Record<string, unknown> } } };
  if (padding > 0) review.request.object.metadata["annotations"] = { pad: "p".repeat(padding) };
  return rawRequest("POST", "/mutate", JSON.stringify(review), JSON_TYPE);
}

async function inFlight(server: RunningServer): Promise<number> {
  return (await server.metrics.inFlight.get()).values[0]?.value ?? 0;
}

/** TCP connections of the server's port in CLOSE-WAIT (the client left, the server never closed). */
async function closeWait(port: number): Promise<number> {
  const output = await new Deno.Command("ss", { args: ["-Htn", "state", "close-wait", `( sport = :${port} )`] })
    .output();
  return new TextDecoder().decode(output.stdout).split("\n").filter((line) => line.trim() !== "").length;
}

Deno.test("http: an early answer (404, 405, 415) reads the body away; the next request on the connection is answered", async (t) => {
  await using dir = await tempDir("mirrorhook-http-");
  await using running = await start(dir.path, { limits: { bodyTimeoutMs: 10_000, headersTimeoutMs: 10_000 } });
  const { server, ca } = running;
  const rows = [
    { name: "404", request: (body: string) => rawRequest("POST", "/nope", body), status: 404 },
    { name: "405", request: (body: string) => rawRequest("PUT", "/mutate", body, JSON_TYPE), status: 405 },
    {
      name: "415",
      request: (body: string) => rawRequest("POST", "/mutate", body, { "content-type": "text/plain" }),
      status: 415,
    },
  ];
  for (const row of rows) {
    for (const size of [96 * 1024, 1024 * 1024]) {
      await t.step(`${row.name} with a ${size / 1024} KiB body`, async () => {
        const connection = await RawTlsConnection.open(server.webhookPort, ca);
        try {
          await connection.write(new Uint8Array([...row.request("x".repeat(size)), ...mutate("second")]));
          const first = await connection.response(5000);
          assert.equal(first?.status, row.status);
          const second = await connection.response(5000);
          assert.ok(second !== undefined, "the second request on the connection was never answered");
          assert.equal(second.status, 200);
          assert.equal(answerUid(second.body), "second");
        } finally {
          connection.close();
        }
      });
    }
  }
});

Deno.test("http: a body over the limit is answered 413 and its connection closed, never wedged", async () => {
  await using dir = await tempDir("mirrorhook-http-");
  await using running = await start(dir.path, { maxBodyBytes: 64 * 1024 });
  const { server, ca } = running;
  for (const path of ["/mutate", "/nope"]) {
    const connection = await RawTlsConnection.open(server.webhookPort, ca);
    try {
      // The whole body is sent: a client that then waits must see an answer and the connection end.
      await connection.write(rawRequest("POST", path, "x".repeat(1024 * 1024), JSON_TYPE)).catch(() => {});
      const answer = await connection.response(5000);
      assert.equal(answer?.status, path === "/mutate" ? 413 : 404);
      assert.equal(answer?.headers["connection"], "close");
      assert.ok(await connection.waitClosed(5000), "the connection stayed open");
    } finally {
      connection.close();
    }
  }
});

Deno.test("http: 100 pipelined requests (118 KB) on one connection are all answered, in order", async () => {
  await using dir = await tempDir("mirrorhook-http-");
  await using running = await start(dir.path);
  const { server, ca } = running;
  const connection = await RawTlsConnection.open(server.webhookPort, ca);
  try {
    const requests = Array.from({ length: 100 }, (_, i) => mutate(`p${i}`, 600));
    const total = requests.reduce((sum, r) => sum + r.byteLength, 0);
    assert.ok(total >= 118_000, `${total} bytes`);
    const all = new Uint8Array(total);
    let offset = 0;
    for (const r of requests) {
      all.set(r, offset);
      offset += r.byteLength;
    }
    const writing = connection.write(all);
    const uids: unknown[] = [];
    for (let i = 0; i < 100; i++) {
      const answer = await connection.response(10_000);
      if (answer === undefined) break;
      assert.equal(answer.status, 200);
      uids.push(answerUid(answer.body));
    }
    await writing;
    assert.deepEqual(uids, Array.from({ length: 100 }, (_, i) => `p${i}`));
  } finally {
    connection.close();
  }
});

Deno.test("http: slow clients are timed out: body (408 AdmissionReview), headers, TLS handshake", async (t) => {
  await using dir = await tempDir("mirrorhook-http-");
  await using running = await start(dir.path);
  const { server, ca } = running;

  await t.step("a body that stops: 408 after --body-timeout, connection closed, nothing left in flight", async () => {
    const connection = await RawTlsConnection.open(server.webhookPort, ca);
    try {
      const head = new TextDecoder().decode(rawRequest("POST", "/mutate", "", JSON_TYPE)).replace(
        "content-length: 0",
        "content-length: 100000",
      );
      await connection.write(head + '{"apiVersion":');
      const answer = await connection.response(5000);
      assert.equal(answer?.status, 408);
      const review = JSON.parse(answer!.body) as { response: { allowed: boolean; status: { code: number } } };
      assert.equal(review.response.allowed, false);
      assert.equal(review.response.status.code, 408);
      assert.ok(await connection.waitClosed(3000), "the connection stayed open after the 408");
      assert.equal(await inFlight(server), 0);
    } finally {
      connection.close();
    }
  });

  await t.step("headers that never end: the connection is closed after --headers-timeout", async () => {
    const connection = await RawTlsConnection.open(server.webhookPort, ca);
    try {
      await connection.write("POST /mutate HTTP/1.1\r\nhost: localhost\r\n");
      assert.ok(await connection.waitClosed(5000), "the connection stayed open");
    } finally {
      connection.close();
    }
  });

  await t.step("a TCP connection that never starts TLS is closed after --headers-timeout", async () => {
    const tcp = await Deno.connect({ hostname: "127.0.0.1", port: server.webhookPort });
    try {
      const read = await Promise.race([tcp.read(new Uint8Array(16)).catch(() => null), sleep(5000).then(() => "open")]);
      assert.notEqual(read, "open", "the connection stayed open");
    } finally {
      tcp.close();
    }
  });
});

Deno.test("http: clients that leave mid-body leave no CLOSE-WAIT socket and nothing in flight", async () => {
  await using dir = await tempDir("mirrorhook-http-");
  // A long body deadline: the server must notice the client left, not wait for the deadline.
  await using running = await start(dir.path, { limits: { bodyTimeoutMs: 60_000, headersTimeoutMs: 60_000 } });
  const { server, ca } = running;
  const connections: RawTlsConnection[] = [];
  for (let i = 0; i < 20; i++) {
    const connection = await RawTlsConnection.open(server.webhookPort, ca);
    const head = new TextDecoder().decode(rawRequest("POST", i % 2 === 0 ? "/mutate" : "/nope", "", JSON_TYPE))
      .replace("content-length: 0", "content-length: 50000");
    await connection.write(head + "x".repeat(1000));
    connections.push(connection);
  }
  await waitFor(async () => (await inFlight(server)) >= 10 ? true : undefined, { timeoutMs: 3000 });
  for (const connection of connections) connection.close();
  const settled = await waitFor(
    async () => (await closeWait(server.webhookPort)) === 0 && (await inFlight(server)) === 0 ? true : undefined,
    { timeoutMs: 5000, intervalMs: 100 },
  );
  assert.ok(
    settled !== undefined,
    `${await closeWait(server.webhookPort)} socket(s) in CLOSE-WAIT, ${await inFlight(server)} in flight`,
  );
});

Deno.test("http: bytes buffered across connections are capped; over the cap is 503, and the server recovers", async () => {
  await using dir = await tempDir("mirrorhook-http-");
  await using running = await start(dir.path, {
    limits: { bodyTimeoutMs: 2000, headersTimeoutMs: 2000, maxBufferedBytes: 256 * 1024 },
  });
  const { server, ca } = running;
  const connections: RawTlsConnection[] = [];
  try {
    for (let i = 0; i < 4; i++) {
      const connection = await RawTlsConnection.open(server.webhookPort, ca);
      const head = new TextDecoder().decode(rawRequest("POST", "/mutate", "", JSON_TYPE))
        .replace("content-length: 0", "content-length: 200000");
      await connection.write(head + "x".repeat(150_000));
      connections.push(connection);
    }
    const statuses = await Promise.all(connections.map(async (c) => (await c.response(5000))?.status));
    assert.ok(statuses.includes(503), `statuses ${statuses.join(", ")}`);
    assert.ok(statuses.every((status) => status === 503 || status === 408), `statuses ${statuses.join(", ")}`);
    const after = await RawTlsConnection.open(server.webhookPort, ca);
    connections.push(after);
    await after.write(mutate("after"));
    const answer = await after.response(5000);
    assert.equal(answer?.status, 200);
    assert.equal(answerUid(answer!.body), "after");
  } finally {
    for (const connection of connections) connection.close();
  }
});
