// Test support: raw HTTP/1.1 over a real TLS socket, to send what fetch never would (pipelining, stalled bodies).

/** One parsed HTTP/1.1 response. */
export interface RawResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

type ReadResult = { done: true } | { done: false; value: Uint8Array };

/** A TLS connection to 127.0.0.1:port speaking raw bytes. */
export class RawTlsConnection {
  readonly conn: Deno.TlsConn;
  #buffer = new Uint8Array(0);
  #closed = false;
  #reader: ReadableStreamDefaultReader<Uint8Array>;

  private constructor(conn: Deno.TlsConn) {
    this.conn = conn;
    this.#reader = conn.readable.getReader();
  }

  /** Connects and completes the handshake. */
  static async open(port: number, caCert: string): Promise<RawTlsConnection> {
    const conn = await Deno.connectTls({ hostname: "127.0.0.1", port, caCerts: [caCert] });
    await conn.handshake();
    return new RawTlsConnection(conn);
  }

  /** Writes all of `data`. */
  async write(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    let offset = 0;
    while (offset < bytes.byteLength) offset += await this.conn.write(bytes.subarray(offset));
  }

  /** True once the server closed the connection (seen by a read). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Reads more bytes; false when the server closed or `deadline` passed. */
  async #fill(deadline: number): Promise<boolean> {
    if (this.#closed) return false;
    const left = deadline - performance.now();
    if (left <= 0) return false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => timer = setTimeout(() => resolve("timeout"), left));
    const read = this.#pending ??= this.#reader.read().then(
      (result): ReadResult => result.done ? { done: true } : { done: false, value: result.value },
      (): ReadResult => ({ done: true }),
    );
    const result = await Promise.race([read, timeout]);
    clearTimeout(timer);
    if (result === "timeout") return false;
    this.#pending = undefined;
    if (result.done) {
      this.#closed = true;
      return false;
    }
    const joined = new Uint8Array(this.#buffer.byteLength + result.value.byteLength);
    joined.set(this.#buffer);
    joined.set(result.value, this.#buffer.byteLength);
    this.#buffer = joined;
    return true;
  }
  #pending: Promise<ReadResult> | undefined;

  /** The next complete response (Content-Length framed), or undefined when none arrives within `timeoutMs`. */
  async response(timeoutMs = 5000): Promise<RawResponse | undefined> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const parsed = parseResponse(this.#buffer);
      if (parsed !== undefined) {
        this.#buffer = this.#buffer.subarray(parsed.size);
        return parsed.response;
      }
      if (!await this.#fill(deadline)) return undefined;
    }
  }

  /** Waits until the server closes the connection; true if it did within `timeoutMs`. */
  async waitClosed(timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    while (!this.#closed) {
      if (!await this.#fill(deadline) && !this.#closed) return false;
    }
    return true;
  }

  close(): void {
    try {
      this.conn.close();
    } catch {
      // already closed
    }
  }
}

function parseResponse(buffer: Uint8Array): { response: RawResponse; size: number } | undefined {
  const text = new TextDecoder("latin1").decode(buffer);
  const end = text.indexOf("\r\n\r\n");
  if (end < 0) return undefined;
  const [statusLine = "", ...lines] = text.slice(0, end).split("\r\n");
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? "0");
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const length = Number(headers["content-length"] ?? "0");
  if (buffer.byteLength < end + 4 + length) return undefined;
  const body = new TextDecoder().decode(buffer.subarray(end + 4, end + 4 + length));
  return { response: { status, headers, body }, size: end + 4 + length };
}

/** A raw HTTP/1.1 request with a Content-Length body. */
export function rawRequest(
  method: string,
  path: string,
  body: string | Uint8Array = "",
  headers: Record<string, string> = {},
): Uint8Array {
  const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
  const head = [
    `${method} ${path} HTTP/1.1`,
    "host: localhost",
    ...Object.entries({ "content-length": String(bytes.byteLength), ...headers }).map(([k, v]) => `${k}: ${v}`),
    "",
    "",
  ].join("\r\n");
  const encoded = new TextEncoder().encode(head);
  const out = new Uint8Array(encoded.byteLength + bytes.byteLength);
  out.set(encoded);
  out.set(bytes, encoded.byteLength);
  return out;
}
