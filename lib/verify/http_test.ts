// Tests for the guarded registry fetch: refused address ranges, checked after name resolution, listed hosts exempt.

import assert from "node:assert/strict";
import { AddressRefusedError, checkedFetch, guardedFetch, isRefusedAddress } from "./http.ts";

Deno.test("isRefusedAddress() refuses loopback, link-local and metadata addresses, in every spelling", async (t) => {
  const rows: [string, boolean][] = [
    ["127.0.0.1", true],
    ["127.255.0.9", true],
    ["0.0.0.0", true],
    ["169.254.169.254", true],
    ["169.254.0.1", true],
    ["100.100.100.200", true],
    ["::1", true],
    ["0:0:0:0:0:0:0:1", true],
    ["::", true],
    ["fe80::1", true],
    ["febf::1", true],
    ["fd00:ec2::254", true],
    ["fd00:0ec2:0:0:0:0:0:254", true],
    ["::ffff:127.0.0.1", true],
    ["::ffff:169.254.169.254", true],
    ["::ffff:7f00:1", true],
    ["[::1]", true],
    ["10.0.0.1", false],
    ["192.168.1.10", false],
    ["172.16.0.1", false],
    ["8.8.8.8", false],
    ["169.255.0.1", false],
    ["2001:db8::1", false],
    ["fd00:ec2::253", false],
    ["::ffff:10.0.0.1", false],
    ["registry.example.com", false],
  ];
  for (const [address, refused] of rows) {
    await t.step(address, () => assert.equal(isRefusedAddress(address), refused));
  }
});

Deno.test("guardedFetch() checks the address a name resolves to, not just the name", async (t) => {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) =>
      new Response(request.method === "HEAD" ? null : "body", {
        status: 200,
        headers: { "x-seen": new URL(request.url).pathname },
      }),
  );
  const port = server.addr.port;
  let hits = 0;
  const counting = (listed: readonly string[]) => guardedFetch({ isListed: (host) => listed.includes(host) });
  try {
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`]) {
      await t.step(`${host}, not listed: refused before connecting`, async () => {
        await assert.rejects(counting([])(`http://${host}/v2/`), (error: unknown) => {
          assert.ok(error instanceof AddressRefusedError, String(error));
          assert.equal(error.address, "127.0.0.1");
          return true;
        });
      });
    }
    await t.step("listed: any address is fine, the body streams", async () => {
      const response = await counting([`localhost:${port}`])(`http://localhost:${port}/v2/x`);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("x-seen"), "/v2/x");
      assert.equal(await response.text(), "body");
      hits++;
    });
    await t.step("HEAD has no body; the request method and headers go through", async () => {
      const response = await counting([`127.0.0.1:${port}`])(`http://127.0.0.1:${port}/v2/y`, {
        method: "HEAD",
        headers: { accept: "application/json" },
      });
      assert.equal(response.status, 200);
      assert.equal(response.body, null);
      hits++;
    });
    await t.step("an aborted signal ends the request", async () => {
      const controller = new AbortController();
      controller.abort(new Error("gave up"));
      await assert.rejects(
        counting([`127.0.0.1:${port}`])(`http://127.0.0.1:${port}/`, { signal: controller.signal }),
        /gave up/,
      );
    });
    assert.equal(hits, 2);
  } finally {
    await server.shutdown();
  }
});

Deno.test("checkedFetch: unlisted loopback refused before any request; redirects checked hop by hop", async () => {
  const seen: { port: number; authorization: string | null }[] = [];
  const target = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    seen.push({ port: target.addr.port, authorization: request.headers.get("authorization") });
    return new Response("ok");
  });
  const redirecting = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    seen.push({ port: redirecting.addr.port, authorization: request.headers.get("authorization") });
    const to = new URL(request.url).searchParams.get("to") ?? "";
    return new Response(null, { status: 307, headers: { location: to } });
  });
  try {
    const a = `127.0.0.1:${redirecting.addr.port}`;
    const b = `127.0.0.1:${target.addr.port}`;
    const headers = { authorization: "Bearer secret" };
    // Nothing listed: a loopback address is refused and never contacted.
    const closed = checkedFetch({ isListed: () => false });
    await assert.rejects(closed(`http://${b}/v2/`), AddressRefusedError);
    assert.equal(seen.length, 0);
    // The first host listed, the redirect's host not: refused at the second hop (localhost resolves to loopback).
    const first = checkedFetch({ isListed: (host) => host === a });
    await assert.rejects(
      first(`http://${a}/?to=${encodeURIComponent(`http://localhost:${target.addr.port}/v2/`)}`, { headers }),
      AddressRefusedError,
    );
    assert.deepEqual(seen.map((entry) => entry.port), [redirecting.addr.port]);
    // Both listed: followed, and the credentials stay on the host they were meant for.
    const both = checkedFetch({ isListed: (host) => host === a || host === b });
    const response = await both(`http://${a}/?to=${encodeURIComponent(`http://${b}/v2/`)}`, { headers });
    assert.equal(await response.text(), "ok");
    assert.deepEqual(seen.slice(1), [
      { port: redirecting.addr.port, authorization: "Bearer secret" },
      { port: target.addr.port, authorization: null },
    ]);
  } finally {
    await target.shutdown();
    await redirecting.shutdown();
  }
});
