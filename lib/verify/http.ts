// A fetch for registry requests that refuses loopback, link-local and metadata addresses of hosts not listed.

import dns from "node:dns";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import tls from "node:tls";

/** Why a request was not sent: the address it resolved to is not one the webhook may reach. */
export class AddressRefusedError extends Error {
  override name = "AddressRefusedError";
  readonly host: string;
  readonly address: string;
  constructor(host: string, address: string) {
    super(`refusing to connect to ${host}: address ${address} is loopback, link-local or a metadata service`);
    this.host = host;
    this.address = address;
  }
}

/** What {@linkcode guardedFetch} needs to know about hosts. */
export interface GuardOptions {
  /** True for hosts the platform named: any address is allowed for them (e.g. a registry on 127.0.0.1). */
  readonly isListed: (host: string) => boolean;
  /** Extra CA (PEM) for a host, trusted in addition to the default roots. */
  readonly ca?: (host: string) => string | undefined;
}

function ipv4Refused(address: string): boolean {
  const parts = address.split(".").map(Number);
  const [a = -1, b = -1, c = -1, d = -1] = parts;
  if (a === 127 || a === 0) return true; // loopback, "this network"
  if (a === 169 && b === 254) return true; // link-local, cloud metadata (169.254.169.254)
  if (a === 100 && b === 100 && c === 100 && d === 200) return true; // Alibaba Cloud metadata
  return false;
}

/**
 * True for an address a registry request must not reach unless its host is listed: loopback (127.0.0.0/8, ::1),
 * unspecified, link-local (169.254.0.0/16, fe80::/10) and metadata services (fd00:ec2::254, 100.100.100.200),
 * IPv4-mapped IPv6 forms included.
 */
export function isRefusedAddress(address: string): boolean {
  const bare = address.replace(/^\[|\]$/g, "").toLowerCase();
  if (net.isIPv4(bare)) return ipv4Refused(bare);
  if (!net.isIPv6(bare)) return false;
  const mapped = /^(?:0{0,4}:){0,4}:?(?:0{0,4}:)?ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(bare);
  if (mapped?.[1] !== undefined) return ipv4Refused(mapped[1]);
  const groups = expandIpv6(bare);
  if (groups === undefined) return true;
  if (groups.every((group) => group === 0)) return true; // ::
  if (groups.slice(0, 7).every((group) => group === 0) && groups[7] === 1) return true; // ::1
  if (((groups[0] ?? 0) & 0xffc0) === 0xfe80) return true; // fe80::/10
  if (groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff) return true; // mapped, hex form
  // fd00:ec2::254, the AWS metadata service over IPv6.
  return groups.join(":") === [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254].join(":");
}

function expandIpv6(address: string): number[] | undefined {
  let text = address;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted?.[1] !== undefined) {
    const [a = 0, b = 0, c = 0, d = 0] = dotted[1].split(".").map(Number);
    text = `${text.slice(0, -dotted[1].length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = "", tail] = text.split("::");
  const left = head === "" ? [] : head.split(":");
  const right = tail === undefined || tail === "" ? [] : tail.split(":");
  const missing = 8 - left.length - right.length;
  if (missing < 0 || (tail === undefined && missing !== 0)) return undefined;
  const groups = [...left, ...Array<string>(missing).fill("0"), ...right].map((group) => parseInt(group, 16));
  return groups.some((group) => Number.isNaN(group)) ? undefined : groups;
}

type LookupCallback = (error: Error | null, address?: unknown, family?: number) => void;

function checkingLookup(host: string, listed: boolean) {
  return (hostname: string, options: dns.LookupOptions, callback: LookupCallback) => {
    dns.lookup(hostname, { ...options, all: true }, (error, addresses) => {
      if (error !== null) return callback(error);
      const all = addresses as dns.LookupAddress[];
      const refused = listed ? undefined : all.find((entry) => isRefusedAddress(entry.address));
      if (refused !== undefined) return callback(new AddressRefusedError(host, refused.address));
      if (options.all === true) return callback(null, all);
      const first = all[0];
      if (first === undefined) return callback(new Error(`no address for ${hostname}`));
      callback(null, first.address, first.family);
    });
  };
}

/**
 * A fetch on node:http(s) whose connections only reach allowed addresses (checked on the resolved address, so a
 * name that resolves to 169.254.169.254 is refused too). It never follows redirects (the caller decides), and
 * ignores HTTP(S)_PROXY: a proxy would resolve names where they cannot be checked. Bodies: strings only.
 */
export function guardedFetch(options: GuardOptions): typeof fetch {
  return (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const host = url.hostname.replace(/^\[|\]$/g, "");
    const listed = options.isListed(url.host);
    if (!listed && net.isIP(host) !== 0 && isRefusedAddress(host)) {
      return Promise.reject(new AddressRefusedError(url.host, host));
    }
    const signal = init?.signal ?? undefined;
    if (signal?.aborted === true) return Promise.reject(signal.reason);
    const headers: Record<string, string> = {};
    new Headers(init?.headers).forEach((value, key) => headers[key] = value);
    const body = typeof init?.body === "string" ? init.body : undefined;
    if (body !== undefined) headers["content-length"] = String(new TextEncoder().encode(body).length);
    const secure = url.protocol === "https:";
    const extraCa = secure ? options.ca?.(url.host) : undefined;
    const requestOptions: https.RequestOptions = {
      protocol: url.protocol,
      hostname: host,
      ...(url.port === "" ? {} : { port: Number(url.port) }),
      path: `${url.pathname}${url.search}`,
      method: init?.method ?? "GET",
      headers,
      agent: false,
      lookup: checkingLookup(url.host, listed) as unknown as https.RequestOptions["lookup"],
      ...(secure && net.isIP(host) === 0 ? { servername: host } : {}),
      ...(extraCa === undefined ? {} : { ca: [...tls.rootCertificates, extraCa] }),
    };
    return new Promise<Response>((resolve, reject) => {
      const request = (secure ? https : http).request(requestOptions, (incoming) => {
        const responseHeaders = new Headers();
        for (const [name, value] of Object.entries(incoming.headers)) {
          if (value === undefined) continue;
          for (const one of Array.isArray(value) ? value : [value]) responseHeaders.append(name, one);
        }
        const status = incoming.statusCode ?? 0;
        const noBody = init?.method === "HEAD" || status === 204 || status === 304 || status < 200;
        if (noBody) {
          incoming.resume();
          signal?.removeEventListener("abort", onAbort);
          resolve(new Response(null, { status: status < 200 ? 502 : status, headers: responseHeaders }));
          return;
        }
        const stream = new ReadableStream<Uint8Array>({
          start(controller) {
            incoming.on("data", (chunk: Uint8Array) => {
              controller.enqueue(new Uint8Array(chunk));
              if ((controller.desiredSize ?? 0) <= 0) incoming.pause();
            });
            incoming.on("end", () => {
              signal?.removeEventListener("abort", onAbort);
              controller.close();
            });
            incoming.on("error", (error) => controller.error(error));
            incoming.on("aborted", () => controller.error(new Error("connection closed before the body ended")));
          },
          pull() {
            incoming.resume();
          },
          cancel() {
            signal?.removeEventListener("abort", onAbort);
            incoming.destroy();
          },
        });
        resolve(new Response(stream, { status, headers: responseHeaders }));
      });
      const onAbort = () => request.destroy(signal?.reason instanceof Error ? signal.reason : new Error("aborted"));
      signal?.addEventListener("abort", onAbort, { once: true });
      request.on("error", (error) => {
        signal?.removeEventListener("abort", onAbort);
        reject(error);
      });
      request.end(body);
    });
  };
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;

/** Refuses `url` unless its host is listed or every address it resolves to is allowed. */
async function checkAddresses(url: URL, isListed: (host: string) => boolean): Promise<void> {
  if (isListed(url.host)) return;
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const addresses = net.isIP(host) !== 0
    ? [host]
    : (await dns.promises.lookup(host, { all: true })).map((a) => a.address);
  const refused = addresses.find(isRefusedAddress);
  if (refused !== undefined) throw new AddressRefusedError(url.host, refused);
}

/**
 * A fetch for any body (the mirror's blob uploads stream) whose every hop is checked like {@linkcode guardedFetch}'s:
 * an unlisted host that resolves to a loopback, link-local or metadata address is refused, redirects are followed
 * here (at most 5), never from HTTPS down to plain HTTP unless the new host is listed, and `Authorization` is dropped
 * when a redirect leaves the host. The check resolves the name just before the request (a name that changes its
 * address in between is not caught; guardedFetch, for verification, checks the connection itself).
 */
export function checkedFetch(options: { readonly isListed: (host: string) => boolean }): typeof fetch {
  return async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    let url = new URL(input instanceof Request ? input.url : String(input));
    let request: RequestInit = { ...init, redirect: "manual" };
    for (let hop = 0;; hop++) {
      await checkAddresses(url, options.isListed);
      const response = await fetch(url, request);
      const location = response.headers.get("location");
      if (!REDIRECTS.has(response.status) || location === null || hop >= MAX_REDIRECTS) return response;
      await response.body?.cancel().catch(() => {});
      const next = new URL(location, url);
      if (url.protocol === "https:" && next.protocol !== "https:" && !options.isListed(next.host)) {
        throw new AddressRefusedError(next.host, "a redirect from HTTPS to plain HTTP");
      }
      const headers = new Headers(request.headers);
      if (next.host !== url.host) headers.delete("authorization");
      request = response.status === 303 ? { ...request, method: "GET", headers, body: null } : { ...request, headers };
      url = next;
    }
  };
}
