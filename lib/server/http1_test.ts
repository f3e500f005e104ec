// Tests of the HTTP/1.1 request parser: any split of a pipelined stream parses the same, malformed input is a 4xx.

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import fc from "fast-check";
import { encodeAnswer, type ParseEvent, type RequestHead, RequestParser } from "./http1.ts";

interface Parsed {
  readonly method: string;
  readonly target: string;
  readonly headers: readonly (readonly [string, string])[];
  readonly body: string;
}

/** Feeds `pieces` one at a time, pulling every event; the requests seen and the error, if any. */
function parseAll(pieces: readonly Buffer[]): { requests: Parsed[]; error?: { status: number; reason: string } } {
  const parser = new RequestParser();
  const requests: Parsed[] = [];
  let head: RequestHead | undefined;
  let body: Buffer[] = [];
  for (const piece of pieces) {
    parser.push(piece);
    for (let event: ParseEvent | undefined; (event = parser.read()) !== undefined;) {
      switch (event.type) {
        case "head":
          assert.equal(head, undefined, "a head before the previous request ended");
          head = event.head;
          body = [];
          break;
        case "body":
          assert.ok(head !== undefined);
          body.push(Buffer.from(event.data));
          break;
        case "end":
          assert.ok(head !== undefined);
          requests.push({
            method: head.method,
            target: head.target,
            headers: head.headers,
            body: Buffer.concat(body).toString("latin1"),
          });
          head = undefined;
          break;
        case "error":
          return { requests, error: { status: event.status, reason: event.reason } };
      }
    }
  }
  return { requests };
}

function splitAt(stream: Buffer, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts.map((cut) => cut % (stream.length + 1)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let from = 0;
  for (const point of points) {
    pieces.push(stream.subarray(from, point));
    from = point;
  }
  pieces.push(stream.subarray(from));
  return pieces;
}

function chunked(body: string, sizes: readonly number[]): string {
  let out = "";
  let from = 0;
  for (const size of sizes) {
    if (from >= body.length) break;
    const piece = body.slice(from, from + size);
    out += `${piece.length.toString(16)}${size % 3 === 0 ? ";ext=1" : ""}\r\n${piece}\r\n`;
    from += piece.length;
  }
  if (from < body.length) out += `${(body.length - from).toString(16)}\r\n${body.slice(from)}\r\n`;
  return `${out}0\r\n${sizes.length % 2 === 0 ? "x-trailer: 1\r\n" : ""}\r\n`;
}

const requestArbitrary = fc.record({
  method: fc.constantFrom("POST", "GET", "PUT"),
  target: fc.constantFrom("/mutate", "/validate", "/x?y=1", "*"),
  body: fc.string({ unit: fc.constantFrom("a", "{", "\r", "\n", "0", " ", "\u00e9"), maxLength: 300 }),
  chunkSizes: fc.option(fc.array(fc.integer({ min: 1, max: 40 }), { maxLength: 10 })),
  extra: fc.array(fc.tuple(fc.constantFrom("x-a", "X-B", "accept"), fc.constantFrom("1", "a b", "\u00e9")), {
    maxLength: 3,
  }),
});

Deno.test("http1: any split of a pipelined stream (Content-Length and chunked bodies) yields the same requests", () => {
  fc.assert(
    fc.property(
      fc.array(requestArbitrary, { minLength: 1, maxLength: 6 }),
      fc.array(fc.nat(), { maxLength: 30 }),
      (requests, cuts) => {
        let text = "";
        const expected: Parsed[] = [];
        for (const r of requests) {
          const headers: [string, string][] = [["host", "localhost"], ...r.extra];
          const framing: [string, string] = r.chunkSizes === null
            ? ["content-length", String(Buffer.byteLength(r.body, "latin1"))]
            : ["transfer-encoding", "chunked"];
          headers.push(framing);
          text += `${r.method} ${r.target} HTTP/1.1\r\n${headers.map(([n, v]) => `${n}: ${v}\r\n`).join("")}\r\n`;
          text += r.chunkSizes === null ? r.body : chunked(r.body, r.chunkSizes);
          expected.push({
            method: r.method,
            target: r.target,
            headers: headers.map(([n, v]) => [n.toLowerCase(), v] as const),
            body: r.body,
          });
        }
        const stream = Buffer.from(text, "latin1");
        const whole = parseAll([stream]);
        assert.equal(whole.error, undefined);
        assert.deepEqual(whole.requests, expected);
        const split = parseAll(splitAt(stream, cuts));
        assert.equal(split.error, undefined);
        assert.deepEqual(split.requests, expected);
        // Byte by byte too, for the first requests (every boundary at once).
        const bytes = parseAll(Array.from(stream.subarray(0, 2000), (b) => Buffer.from([b])));
        assert.deepEqual(bytes.requests, expected.slice(0, bytes.requests.length));
      },
    ),
    { numRuns: 300 },
  );
});

function errorOf(text: string | Buffer): { status: number; reason: string } | undefined {
  return parseAll([typeof text === "string" ? Buffer.from(text, "latin1") : text]).error;
}

Deno.test("http1: malformed requests are a 4xx or 5xx error event, never an exception", () => {
  const rows: [string, string, number][] = [
    ["no version", "POST /mutate\r\n\r\n", 400],
    ["two spaces", "POST  /mutate HTTP/1.1\r\n\r\n", 400],
    ["extra part", "POST /mutate HTTP/1.1 x\r\n\r\n", 400],
    ["lower-case version", "POST /mutate http/1.1\r\n\r\n", 400],
    ["HTTP/2.0", "POST /mutate HTTP/2.0\r\n\r\n", 505],
    ["bad method", "PO(ST /mutate HTTP/1.1\r\n\r\n", 400],
    ["NUL in target", "POST /mu\0tate HTTP/1.1\r\n\r\n", 400],
    ["NUL in a value", "POST / HTTP/1.1\r\nhost: h\r\nx-a: a\0b\r\n\r\n", 400],
    ["bad header name", "POST / HTTP/1.1\r\nhost: h\r\nx a: b\r\n\r\n", 400],
    ["space before colon", "POST / HTTP/1.1\r\nhost: h\r\nx-a : b\r\n\r\n", 400],
    ["no colon", "POST / HTTP/1.1\r\nhost: h\r\nx-a\r\n\r\n", 400],
    ["empty name", "POST / HTTP/1.1\r\nhost: h\r\n: b\r\n\r\n", 400],
    ["obs-fold", "POST / HTTP/1.1\r\nhost: h\r\nx-a: b\r\n c\r\n\r\n", 400],
    ["bare LF inside a head", "POST / HTTP/1.1\r\nhost: h\r\nx-a: b\nx-b: c\r\n\r\n", 400],
    ["bare CR inside a value", "POST / HTTP/1.1\r\nhost: h\r\nx-a: b\rc\r\n\r\n", 400],
    ["CL and TE", "POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n", 400],
    ["TE and CL", "POST / HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n", 400],
    ["differing CLs", "POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\n", 400],
    ["CL list", "POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 3, 3\r\n\r\n", 400],
    ["negative CL", "POST / HTTP/1.1\r\nhost: h\r\ncontent-length: -1\r\n\r\n", 400],
    ["signed CL", "POST / HTTP/1.1\r\nhost: h\r\ncontent-length: +1\r\n\r\n", 400],
    ["hex CL", "POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 0x10\r\n\r\n", 400],
    ["empty CL", "POST / HTTP/1.1\r\nhost: h\r\ncontent-length:\r\n\r\n", 400],
    ["overflowing CL", "POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 99999999999999999999999\r\n\r\n", 400],
    ["gzip coding", "POST / HTTP/1.1\r\nhost: h\r\ntransfer-encoding: gzip\r\n\r\n", 501],
    ["gzip, chunked", "POST / HTTP/1.1\r\nhost: h\r\ntransfer-encoding: gzip, chunked\r\n\r\n", 501],
    [
      "chunked twice",
      "POST / HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n",
      501,
    ],
    ["TE in HTTP/1.0", "POST / HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n", 400],
    ["huge chunk size", "POST / HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\nfffffffff\r\n", 400],
    ["negative chunk size", "POST / HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n-1\r\n", 400],
    ["empty chunk size", "POST / HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n\r\n", 400],
    ["chunk junk", "POST / HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n3x\r\nabc\r\n", 400],
    ["chunk without CRLF", "POST / HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabcd\r\n", 400],
    ["NUL in chunk ext", "POST / HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n3;a\0\r\nabc\r\n", 400],
    ["bad trailer", "POST / HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n0\r\nx y: 1\r\n\r\n", 400],
    ["long chunk line", `POST / HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n1;${"a".repeat(2000)}`, 400],
    ["head too large", `POST / HTTP/1.1\r\nhost: h\r\nx-a: ${"a".repeat(17 * 1024)}`, 431],
    ["head too large, complete", `POST / HTTP/1.1\r\nhost: h\r\nx-a: ${"a".repeat(17 * 1024)}\r\n\r\n`, 431],
    ["too many headers", `POST / HTTP/1.1\r\nhost: h\r\n${"x-a: 1\r\n".repeat(101)}\r\n`, 431],
    ["no Host in HTTP/1.1", "POST / HTTP/1.1\r\ncontent-length: 0\r\n\r\n", 400],
    ["two Hosts", "POST / HTTP/1.0\r\nhost: a\r\nhost: a\r\n\r\n", 400],
    [
      "trailers too large",
      `POST / HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n0\r\n${"x: 1\r\n".repeat(4000)}`,
      431,
    ],
  ];
  for (const [name, text, status] of rows) {
    assert.equal(errorOf(text)?.status, status, name);
  }
});

Deno.test("http1: framing details (HTTP/1.0, Connection, Expect, leading CRLF, a body-less request)", () => {
  const parser = new RequestParser();
  parser.push(Buffer.from(
    "\r\n\r\nGET /a HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\nPOST /b HTTP/1.1\r\nHost: h\r\n" +
      "Expect: 100-continue\r\nConnection: foo, close\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\nab",
  ));
  const events = Array.from({ length: 6 }, () => parser.read());
  assert.deepEqual(events.map((e) => e?.type), ["head", "end", "head", "body", "end", undefined]);
  const first = (events[0] as { head: RequestHead }).head;
  assert.deepEqual([first.minor, first.keepAlive, first.contentLength], [0, true, undefined]);
  const second = (events[2] as { head: RequestHead }).head;
  assert.deepEqual(
    [second.minor, second.keepAlive, second.expectContinue, second.contentLength, second.contentType],
    [1, false, true, 2, "application/json"],
  );
  assert.ok(parser.idle);
  const plain = new RequestParser();
  plain.push(Buffer.from("GET / HTTP/1.0\r\n\r\n"));
  assert.equal((plain.read() as { head: RequestHead }).head.keepAlive, false);
});

Deno.test("http1: random bytes never throw out of the parser", () => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 10 }),
      fc.constantFrom(
        "",
        "POST / HTTP/1.1\r\nhost: h\r\n",
        "POST / HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n",
      ),
      (pieces, prefix) => {
        const parser = new RequestParser();
        parser.push(Buffer.from(prefix));
        for (const piece of pieces) {
          parser.push(Buffer.from(piece));
          for (let event = parser.read(); event !== undefined; event = parser.read()) {
            if (event.type === "error") assert.ok(event.status >= 400 && event.status < 600);
          }
        }
      },
    ),
    { numRuns: 500 },
  );
});

Deno.test("http1: an answer is one buffer; HEAD gets no body; header names and values cannot break the framing", () => {
  const answer = {
    status: 405,
    contentType: "text/plain",
    body: "method not allowed: use POST \u00e9\n",
    headers: { allow: "POST", "x-bad\r\nname": "1", "x-value": "a\r\nset-cookie: x" },
  };
  assert.equal(
    encodeAnswer(answer, false, 1, false).toString("utf8"),
    "HTTP/1.1 405 Method Not Allowed\r\ncontent-type: text/plain\r\ncontent-length: 32\r\nallow: POST\r\n" +
      "x-value: a  set-cookie: x\r\n\r\nmethod not allowed: use POST \u00e9\n",
  );
  assert.equal(
    encodeAnswer(answer, true, 0, true).toString("latin1"),
    "HTTP/1.1 405 Method Not Allowed\r\ncontent-type: text/plain\r\ncontent-length: 32\r\nallow: POST\r\n" +
      "x-value: a  set-cookie: x\r\nconnection: close\r\n\r\n",
  );
  assert.match(encodeAnswer(answer, false, 0, false).toString("latin1"), /\r\nconnection: keep-alive\r\n\r\n/);
});
