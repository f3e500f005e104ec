// A floor that answers like a real mutating webhook: same work as ../shared/bench's deno-floor (read, JSON-parse,
// echo the uid) but with an answer the size of mirrorhook's (a patch and warnings), so the transport cost of a
// realistic response is measured too. TRANSPORT selects the transport:
//   own       mirrorhook's own: ReloadingTlsServer (node:tls, ALPN http/1.1, lib/server/http1.ts framing), built as
//             lib/server/app.ts builds it, with a WebhookCore that reads the body and answers the constant patch
//   node      node:https (mirrorhook's transport before issue 13)
//   tls       node:tls + a hand-rolled loop over lib/server/http1.ts, setNoDelay, one write per answer (no limits)
//   raw       raw Deno.listenTls + lib/server/http1.ts, one write per answer (TlsConn has no setNoDelay: shows the stall)
//   internal  Deno's internal HTTP/1.1-only server on a Deno.listenTls listener offering ALPN http/1.1 alone,
//             answering with a one-chunk stream
//   deno      Deno.serve (offers h2 by ALPN; keeps Nagle's algorithm on)
// Usage: deno run --allow-net=127.0.0.1 --allow-read=CERT_DIR --allow-env=TRANSPORT floor_sized.ts PORT CERT_DIR SMALL LARGE
// SMALL and LARGE are the answer sizes for request bodies under and over 50,000 bytes (the two fixtures).
import { Buffer } from "node:buffer";
import https from "node:https";
import tls from "node:tls";
import { getLogger } from "@logtape/logtape";
import { encodeAnswer, RequestParser } from "../../lib/server/http1.ts";
import { ReloadingTlsServer } from "../../lib/server/tls.ts";

const [portArg, certDir, smallArg, largeArg] = Deno.args;
if (portArg === undefined || certDir === undefined || smallArg === undefined || largeArg === undefined) Deno.exit(2);
const cert = Deno.readTextFileSync(`${certDir}/cert.pem`);
const key = Deno.readTextFileSync(`${certDir}/key.pem`);
const envelope = JSON.stringify({
  apiVersion: "admission.k8s.io/v1",
  kind: "AdmissionReview",
  response: { uid: "", allowed: true, patchType: "JSONPatch", patch: "" },
});
// A valid base64 JSON Patch (one annotation added) whose length brings the answer to `size` bytes.
const padding = (size: number) => {
  const room = Math.max(0, size - envelope.length - 36);
  const op = (n: number) =>
    JSON.stringify([{ op: "add", path: "/metadata/annotations/mirrorhook.dev~1pad", value: "x".repeat(n) }]);
  return btoa(op(Math.max(0, Math.floor((room * 3) / 4) - op(0).length)));
};
const small = padding(Number(smallArg));
const large = padding(Number(largeArg));

function answer(text: string): string {
  const patch = text.length > 50_000 ? large : small;
  const review = JSON.parse(text);
  return JSON.stringify({
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    response: { uid: review?.request?.uid ?? "", allowed: true, patchType: "JSONPatch", patch },
  });
}

const transport = Deno.env.get("TRANSPORT") ?? "deno";

/** A connection's loop over lib/server/http1.ts: answers each request read; false on a framing error. */
function parsedServer(write: (bytes: Buffer) => void): (chunk: Buffer) => boolean {
  const parser = new RequestParser();
  let target = "";
  let pieces: Buffer[] = [];
  return (chunk) => {
    parser.push(chunk);
    for (let event = parser.read(); event !== undefined; event = parser.read()) {
      if (event.type === "head") {
        target = event.head.target;
        pieces = [];
      } else if (event.type === "body") pieces.push(event.data);
      else if (event.type === "end") {
        const body = target === "/healthz" ? "ok" : answer(Buffer.concat(pieces).toString("utf8"));
        write(encodeAnswer({ status: 200, contentType: "application/json", body }, false, 1, false));
      } else return false;
    }
    return true;
  };
}

if (transport === "own") {
  const server = new ReloadingTlsServer({
    hostname: "127.0.0.1",
    port: Number(portArg),
    pair: { cert, key },
    logger: getLogger(["floor"]),
    handler: async (request) => {
      if (request.path === "/healthz") return { status: 200, contentType: "text/plain", body: "ok" };
      const body = await request.readBody(8 * 1024 * 1024);
      return {
        status: 200,
        contentType: "application/json",
        body: answer(new TextDecoder().decode(body ?? new Uint8Array(0))),
      };
    },
  });
  await server.start();
} else if (transport === "tls") {
  const server = tls.createServer({ cert, key, ALPNProtocols: ["http/1.1"] }, (socket) => {
    socket.setNoDelay(true);
    const serve = parsedServer((bytes) => socket.write(bytes));
    socket.on("data", (chunk: Buffer) => {
      if (!serve(chunk)) socket.destroy();
    });
    socket.on("error", () => {});
  });
  server.listen(Number(portArg), "127.0.0.1");
} else if (transport === "raw") {
  const listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: Number(portArg),
    cert,
    key,
    alpnProtocols: ["http/1.1"],
  });
  for await (const conn of listener) {
    (async () => {
      const out: Buffer[] = [];
      const serve = parsedServer((bytes) => out.push(bytes));
      try {
        for await (const chunk of conn.readable) {
          const ok = serve(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
          for (const bytes of out.splice(0)) {
            for (let offset = 0; offset < bytes.length;) offset += await conn.write(bytes.subarray(offset));
          }
          if (!ok) break;
        }
      } catch {
        // the client left
      } finally {
        try {
          conn.close();
        } catch {
          // already closed
        }
      }
    })();
  }
} else if (transport === "node") {
  const server = https.createServer({ cert, key }, (req, res) => {
    const chunks: Uint8Array[] = [];
    req.on("data", (chunk: Uint8Array) => chunks.push(chunk));
    req.on("end", () => {
      if (req.url === "/healthz") return void res.end("ok");
      const body = new TextEncoder().encode(answer(new TextDecoder().decode(Buffer.concat(chunks))));
      res.writeHead(200, { "content-type": "application/json", "content-length": body.byteLength });
      res.end(body);
    });
  });
  server.listen(Number(portArg), "127.0.0.1");
} else if (transport === "internal") {
  // deno-lint-ignore no-explicit-any
  const internal = (Deno as any)[(Deno as any).internal];
  const listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: Number(portArg),
    cert,
    key,
    alpnProtocols: ["http/1.1"],
  });
  internal.serveHttpOnListener(
    listener,
    new AbortController().signal,
    async (req: Request) => {
      if (new URL(req.url).pathname === "/healthz") return new Response("ok");
      const bytes = new TextEncoder().encode(answer(await req.text()));
      const body = new ReadableStream({
        start(controller) {
          controller.enqueue(bytes);
          controller.close();
        },
      });
      return new Response(body, { headers: { "content-type": "application/json" } });
    },
    (error: unknown) => new Response(String(error), { status: 500 }),
    () => {},
  );
} else {
  Deno.serve({ hostname: "127.0.0.1", port: Number(portArg), cert, key, onListen: () => {} }, async (req) => {
    if (new URL(req.url).pathname === "/healthz") return new Response("ok");
    return new Response(answer(await req.text()), { headers: { "content-type": "application/json" } });
  });
}
