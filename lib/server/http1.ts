// Strict HTTP/1.1 framing over Buffers: an incremental request parser, and answers encoded in one buffer.
//
// Why our own framing: on Deno 2.9.6 a floor on node:tls with this kind of framing, setNoDelay and one write per
// answer answers ~6,800 requests/s on the typical Pod where the same floor on node:https answers 3,900-4,500
// (bench/transports.md). The parser is pure (no I/O, no clock), never throws on input, and scans each byte a bounded
// number of times (no regular expressions): every malformed input becomes an `error` event with a 4xx/5xx status.

import { Buffer } from "node:buffer";

/** Bounds of what one request may hold before its body. */
export interface ParserLimits {
  /** Bytes of the request line and headers together (and of a chunked body's trailers). */
  readonly maxHeaderBytes: number;
  /** Header fields per request. */
  readonly maxHeaders: number;
}

export const DEFAULT_PARSER_LIMITS: ParserLimits = { maxHeaderBytes: 16 * 1024, maxHeaders: 100 };

/** A request line and its headers, with what framing and connection handling need already read out. */
export interface RequestHead {
  readonly method: string;
  readonly target: string;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  readonly minor: 0 | 1;
  /** Field names lower-cased, in order, duplicates kept. */
  readonly headers: readonly (readonly [string, string])[];
  readonly contentType: string | undefined;
  /** The declared length; undefined with a chunked body or no body. */
  readonly contentLength: number | undefined;
  readonly chunked: boolean;
  /** The connection may carry another request after this one (version default and the Connection field). */
  readonly keepAlive: boolean;
  readonly expectContinue: boolean;
}

/** What {@linkcode RequestParser.read} yields, in order: head, zero or more body pieces, end; or an error. */
export type ParseEvent =
  | { readonly type: "head"; readonly head: RequestHead }
  /** A piece of body: a view into the bytes pushed, valid until the next push (copy it to keep it). */
  | { readonly type: "body"; readonly data: Buffer }
  | { readonly type: "end" }
  /** The stream is not HTTP/1.1 this parser accepts; nothing more is parsed. `reason` is safe to show. */
  | { readonly type: "error"; readonly status: 400 | 431 | 501 | 505; readonly reason: string };

/** Chunk-size lines longer than this (with extensions) are refused. */
const MAX_CHUNK_LINE = 1024;
/** Chunk sizes of more hex digits than this are refused (8 digits: up to 4 GiB, far above any body limit). */
const MAX_CHUNK_DIGITS = 8;
/** Content-Length values of more digits than this are refused (beyond Number.MAX_SAFE_INTEGER). */
const MAX_LENGTH_DIGITS = 15;

const CRLF = Buffer.from("\r\n");
const HEAD_END = Buffer.from("\r\n\r\n");

/** RFC 9110 tchar: the characters of a method or a field name. */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
  TCHAR[c.charCodeAt(0)] = 1;
}
const HEX = new Int8Array(256).fill(-1);
for (let i = 0; i < 16; i++) {
  HEX["0123456789abcdef".charCodeAt(i)] = i;
  HEX["0123456789ABCDEF".charCodeAt(i)] = i;
}

type State = "head" | "length" | "chunk-size" | "chunk-data" | "chunk-crlf" | "trailers" | "failed";

/**
 * Parses a stream of requests pushed in arbitrary pieces. `read()` returns the next event, or undefined when more
 * bytes are needed; the caller decides when to pull (so it can stop between pipelined requests).
 */
export class RequestParser {
  readonly #limits: ParserLimits;
  #buffer: Buffer = Buffer.alloc(0);
  #offset = 0;
  #state: State = "head";
  /** Body bytes still to come (Content-Length body, or the current chunk). */
  #remaining = 0;
  /** Bytes of trailers seen so far. */
  #trailerBytes = 0;
  /** An `end` event is owed (a body-less request just had its head returned). */
  #endPending = false;

  constructor(limits: ParserLimits = DEFAULT_PARSER_LIMITS) {
    this.#limits = limits;
  }

  /** Adds received bytes. A body view handed out earlier stays valid (the old buffer is not written to). */
  push(chunk: Buffer): void {
    if (this.#state === "failed") return;
    if (this.#offset >= this.#buffer.length) {
      this.#buffer = chunk;
    } else {
      this.#buffer = Buffer.concat([this.#buffer.subarray(this.#offset), chunk]);
    }
    this.#offset = 0;
  }

  /** Bytes received and not yet parsed (a partial head, or requests pipelined behind the current one). */
  get pendingBytes(): number {
    return this.#buffer.length - this.#offset;
  }

  /** True between requests: nothing of a next request has been parsed yet. */
  get idle(): boolean {
    return this.#state === "head" && !this.#endPending;
  }

  /** The next event, or undefined until more bytes are pushed. */
  read(): ParseEvent | undefined {
    if (this.#endPending) {
      this.#endPending = false;
      return END;
    }
    switch (this.#state) {
      case "head":
        return this.#readHead();
      case "length":
        return this.#readLengthBody();
      case "chunk-size":
        return this.#readChunkSize();
      case "chunk-data":
        return this.#readChunkData();
      case "chunk-crlf":
        return this.#readChunkCrlf();
      case "trailers":
        return this.#readTrailers();
      case "failed":
        return undefined;
    }
  }

  #fail(status: 400 | 431 | 501 | 505, reason: string): ParseEvent {
    this.#state = "failed";
    this.#buffer = Buffer.alloc(0);
    this.#offset = 0;
    return { type: "error", status, reason };
  }

  #readHead(): ParseEvent | undefined {
    const buffer = this.#buffer;
    // Empty lines before a request line are ignored (RFC 9112 section 2.2), a client's stray CRLF after a body.
    while (
      this.#offset + 1 < buffer.length && buffer[this.#offset] === 0x0d && buffer[this.#offset + 1] === 0x0a
    ) {
      this.#offset += 2;
    }
    const start = this.#offset;
    if (start >= buffer.length) return undefined;
    const end = buffer.indexOf(HEAD_END, start);
    if (end < 0) {
      if (buffer.length - start > this.#limits.maxHeaderBytes) {
        return this.#fail(431, "request header fields too large");
      }
      return undefined;
    }
    if (end + 4 - start > this.#limits.maxHeaderBytes) return this.#fail(431, "request header fields too large");
    const parsed = parseHead(buffer.toString("latin1", start, end), this.#limits);
    if (typeof parsed === "string") return this.#fail(parsed === "too many headers" ? 431 : 400, parsed);
    if ("status" in parsed) return this.#fail(parsed.status, parsed.reason);
    this.#offset = end + 4;
    if (parsed.chunked) {
      this.#state = "chunk-size";
    } else if (parsed.contentLength !== undefined && parsed.contentLength > 0) {
      this.#state = "length";
      this.#remaining = parsed.contentLength;
    } else {
      this.#endPending = true;
    }
    return { type: "head", head: parsed };
  }

  #readLengthBody(): ParseEvent | undefined {
    const available = this.#buffer.length - this.#offset;
    if (available === 0) return undefined;
    const take = Math.min(available, this.#remaining);
    const data = this.#buffer.subarray(this.#offset, this.#offset + take);
    this.#offset += take;
    this.#remaining -= take;
    if (this.#remaining === 0) {
      this.#state = "head";
      this.#endPending = true;
    }
    return { type: "body", data };
  }

  #readChunkSize(): ParseEvent | undefined {
    const buffer = this.#buffer;
    const start = this.#offset;
    const end = buffer.indexOf(CRLF, start);
    if (end < 0) {
      return buffer.length - start > MAX_CHUNK_LINE ? this.#fail(400, "chunk size line too long") : undefined;
    }
    if (end - start > MAX_CHUNK_LINE) return this.#fail(400, "chunk size line too long");
    let size = 0;
    let i = start;
    for (; i < end; i++) {
      const digit = HEX[buffer[i]!]!;
      if (digit < 0) break;
      if (i - start >= MAX_CHUNK_DIGITS) return this.#fail(400, "chunk size too large");
      size = size * 16 + digit;
    }
    if (i === start) return this.#fail(400, "invalid chunk size");
    // Chunk extensions (`;name=value`, after optional whitespace) are ignored, but must be printable.
    while (i < end && (buffer[i] === 0x20 || buffer[i] === 0x09)) i++;
    if (i < end) {
      if (buffer[i] !== 0x3b) return this.#fail(400, "invalid chunk size");
      for (; i < end; i++) {
        if (!fieldByte(buffer[i]!)) return this.#fail(400, "invalid chunk extension");
      }
    }
    this.#offset = end + 2;
    if (size === 0) {
      this.#state = "trailers";
      this.#trailerBytes = 0;
    } else {
      this.#state = "chunk-data";
      this.#remaining = size;
    }
    return this.read();
  }

  #readChunkData(): ParseEvent | undefined {
    const available = this.#buffer.length - this.#offset;
    if (available === 0) return undefined;
    const take = Math.min(available, this.#remaining);
    const data = this.#buffer.subarray(this.#offset, this.#offset + take);
    this.#offset += take;
    this.#remaining -= take;
    if (this.#remaining === 0) this.#state = "chunk-crlf";
    return { type: "body", data };
  }

  #readChunkCrlf(): ParseEvent | undefined {
    if (this.#buffer.length - this.#offset < 2) return undefined;
    if (this.#buffer[this.#offset] !== 0x0d || this.#buffer[this.#offset + 1] !== 0x0a) {
      return this.#fail(400, "chunk data not followed by CRLF");
    }
    this.#offset += 2;
    this.#state = "chunk-size";
    return this.read();
  }

  /** Trailer fields after the last chunk: checked for form and size, then dropped. */
  #readTrailers(): ParseEvent | undefined {
    const buffer = this.#buffer;
    for (;;) {
      const start = this.#offset;
      const end = buffer.indexOf(CRLF, start);
      if (end < 0) {
        return this.#trailerBytes + buffer.length - start > this.#limits.maxHeaderBytes
          ? this.#fail(431, "trailer fields too large")
          : undefined;
      }
      this.#trailerBytes += end + 2 - start;
      if (this.#trailerBytes > this.#limits.maxHeaderBytes) return this.#fail(431, "trailer fields too large");
      this.#offset = end + 2;
      if (end === start) {
        this.#state = "head";
        return END;
      }
      const field = parseField(buffer.toString("latin1", start, end));
      if (typeof field === "string") return this.#fail(400, field);
    }
  }
}

const END: ParseEvent = { type: "end" };

/** A byte allowed in a field value: visible ASCII, obs-text, space, tab. */
function fieldByte(c: number): boolean {
  return (c >= 0x20 && c !== 0x7f) || c === 0x09;
}

/** One `name: value` line: lower-cased name and trimmed value, or the reason it is malformed. */
function parseField(line: string): [string, string] | string {
  const first = line.charCodeAt(0);
  if (first === 0x20 || first === 0x09) return "obsolete line folding";
  const colon = line.indexOf(":");
  if (colon <= 0) return "invalid header field";
  for (let i = 0; i < colon; i++) {
    if (TCHAR[line.charCodeAt(i)] !== 1) return "invalid header field name";
  }
  let from = colon + 1;
  let to = line.length;
  while (from < to && (line.charCodeAt(from) === 0x20 || line.charCodeAt(from) === 0x09)) from++;
  while (to > from && (line.charCodeAt(to - 1) === 0x20 || line.charCodeAt(to - 1) === 0x09)) to--;
  for (let i = from; i < to; i++) {
    if (!fieldByte(line.charCodeAt(i))) return "invalid header field value";
  }
  return [line.slice(0, colon).toLowerCase(), line.slice(from, to)];
}

/** Whether a comma-separated field value holds `token` (case-insensitive). */
function hasToken(value: string, token: string): boolean {
  for (const part of value.split(",")) {
    if (part.trim().toLowerCase() === token) return true;
  }
  return false;
}

type HeadError = string | { status: 501 | 505; reason: string };

/** The request line and header block (without the final CRLFCRLF), as latin1 text. */
function parseHead(text: string, limits: ParserLimits): RequestHead | HeadError {
  const lines = text.split("\r\n");
  const requestLine = lines[0] ?? "";
  const sp1 = requestLine.indexOf(" ");
  const sp2 = sp1 < 0 ? -1 : requestLine.indexOf(" ", sp1 + 1);
  if (sp1 <= 0 || sp2 <= sp1 + 1 || requestLine.indexOf(" ", sp2 + 1) >= 0) return "invalid request line";
  for (let i = 0; i < sp1; i++) {
    if (TCHAR[requestLine.charCodeAt(i)] !== 1) return "invalid method";
  }
  for (let i = sp1 + 1; i < sp2; i++) {
    const c = requestLine.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f) return "invalid request target";
  }
  const version = requestLine.slice(sp2 + 1);
  let minor: 0 | 1;
  if (version === "HTTP/1.1") minor = 1;
  else if (version === "HTTP/1.0") minor = 0;
  else if (version.length === 8 && version.startsWith("HTTP/") && version[6] === ".") {
    return { status: 505, reason: "HTTP version not supported" };
  } else return "invalid request line";
  if (lines.length - 1 > limits.maxHeaders) return "too many headers";
  const headers: [string, string][] = [];
  let contentType: string | undefined;
  let contentLength: string | undefined;
  let transferEncoding: string | undefined;
  let connection = "";
  let expect: string | undefined;
  let hosts = 0;
  for (let i = 1; i < lines.length; i++) {
    const field = parseField(lines[i]!);
    if (typeof field === "string") return field;
    headers.push(field);
    const [name, value] = field;
    switch (name) {
      case "content-length":
        if (contentLength !== undefined && contentLength !== value) return "conflicting content-length";
        contentLength = value;
        break;
      case "transfer-encoding":
        transferEncoding = transferEncoding === undefined ? value : `${transferEncoding}, ${value}`;
        break;
      case "content-type":
        contentType ??= value;
        break;
      case "connection":
        connection = connection === "" ? value : `${connection}, ${value}`;
        break;
      case "expect":
        expect = value;
        break;
      case "host":
        hosts++;
        break;
    }
  }
  // RFC 9112 section 3.2: an HTTP/1.1 request without a Host field, or any request with more than one, is refused.
  if (hosts > 1 || (hosts === 0 && minor === 1)) return "missing or repeated host";
  let length: number | undefined;
  if (contentLength !== undefined) {
    if (contentLength.length === 0 || contentLength.length > MAX_LENGTH_DIGITS) return "invalid content-length";
    for (let i = 0; i < contentLength.length; i++) {
      const c = contentLength.charCodeAt(i);
      if (c < 0x30 || c > 0x39) return "invalid content-length";
    }
    length = Number(contentLength);
  }
  let chunked = false;
  if (transferEncoding !== undefined) {
    if (length !== undefined) return "both transfer-encoding and content-length";
    if (minor === 0) return "transfer-encoding in an HTTP/1.0 request";
    if (transferEncoding.trim().toLowerCase() !== "chunked") {
      return { status: 501, reason: "transfer coding not implemented (only chunked)" };
    }
    chunked = true;
  }
  const keepAlive = minor === 1 ? !hasToken(connection, "close") : hasToken(connection, "keep-alive");
  return {
    method: requestLine.slice(0, sp1),
    target: requestLine.slice(sp1 + 1, sp2),
    minor,
    headers,
    contentType,
    contentLength: length,
    chunked,
    keepAlive,
    expectContinue: minor === 1 && expect !== undefined && expect.toLowerCase() === "100-continue",
  };
}

/** An answer to encode (the core's WebhookResponse). */
export interface Answer {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
  readonly headers?: Readonly<Record<string, string>> | undefined;
}

const REASONS: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
  505: "HTTP Version Not Supported",
};

/** A refusal of the framing itself: status and a fixed reason, never anything of the request. */
export function errorAnswer(status: number, reason: string): Buffer {
  return encodeAnswer({ status, contentType: "text/plain; charset=utf-8", body: `${reason}\n` }, true, 1, false);
}

/** Status line, headers and body in one buffer (one write, one TLS record for small answers). */
export function encodeAnswer(answer: Answer, close: boolean, minor: 0 | 1, omitBody: boolean): Buffer {
  const length = Buffer.byteLength(answer.body, "utf8");
  let head = `HTTP/1.1 ${answer.status} ${REASONS[answer.status] ?? "Unknown"}\r\ncontent-type: ${
    safeValue(answer.contentType)
  }\r\ncontent-length: ${length}\r\n`;
  if (answer.headers !== undefined) {
    for (const [name, value] of Object.entries(answer.headers)) {
      if (safeName(name)) head += `${name}: ${safeValue(value)}\r\n`;
    }
  }
  if (close) head += "connection: close\r\n";
  else if (minor === 0) head += "connection: keep-alive\r\n";
  head += "\r\n";
  const out = Buffer.allocUnsafe(head.length + (omitBody ? 0 : length));
  out.write(head, 0, "latin1");
  if (!omitBody) out.write(answer.body, head.length, "utf8");
  return out;
}

function safeName(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f || c === 0x3a) return false;
  }
  return name.length > 0 && name.toLowerCase() !== "content-length" && name.toLowerCase() !== "connection";
}

function safeValue(value: string): string {
  let clean = true;
  for (let i = 0; i < value.length && clean; i++) {
    const c = value.charCodeAt(i);
    clean = (c >= 0x20 || c === 0x09) && c !== 0x7f && c <= 0xff;
  }
  if (clean) return value;
  let out = "";
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    out += (c < 0x20 && c !== 0x09) || c === 0x7f || c > 0xff ? " " : value[i];
  }
  return out;
}
