// A floor that answers like a real mutating webhook: same work as ../shared/bench's deno-floor (read, JSON-parse,
// echo the uid) but with an answer the size of mirrorhook's (a patch and warnings), so the transport cost of a
// realistic response is measured too. TRANSPORT=deno uses Deno.serve (as deno-floor), TRANSPORT=node uses
// node:https (as mirrorhook), TRANSPORT=internal uses Deno's internal HTTP/1.1-only server on a Deno.listenTls
// listener that offers ALPN http/1.1 alone, answering with a one-chunk stream (the candidate of bench/transports.md).
// Usage: deno run --allow-net=127.0.0.1 --allow-read=CERT_DIR --allow-env=TRANSPORT floor_sized.ts PORT CERT_DIR SMALL LARGE
// SMALL and LARGE are the answer sizes for request bodies under and over 50,000 bytes (the two fixtures).
import https from "node:https";

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

if (Deno.env.get("TRANSPORT") === "node") {
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
} else if (Deno.env.get("TRANSPORT") === "internal") {
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
