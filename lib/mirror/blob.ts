// Copies one blob between repositories: skip when present, cross-repository mount, else a verified upload.

import { createHash } from "node:crypto";
import { concat } from "../util/body.ts";
import type { Descriptor } from "./manifest.ts";
import { MirrorError, type RegistrySession, type SessionPool } from "./session.ts";

/** How a blob reached the target. */
export type BlobOutcome = "present" | "mounted" | "copied";

/** Progress of one blob: `done` of `total` bytes. */
export interface BlobProgress {
  readonly digest: string;
  readonly done: number;
  readonly total: number;
  /** `copying` while bytes flow; the outcome once the blob is in place. */
  readonly state: "copying" | BlobOutcome;
}

/** Where a blob comes from and goes to. */
export interface BlobRoute {
  readonly source: RegistrySession;
  readonly sourcePath: string;
  readonly target: RegistrySession;
  readonly targetPath: string;
}

/** Options of {@linkcode copyBlob}. */
export interface BlobCopyOptions {
  readonly pool: SessionPool;
  /** Blobs up to this size go in one PUT; larger ones in PATCH chunks of this size. */
  readonly chunkBytes: number;
  /** A source stream that sends nothing for this long is abandoned; default {@linkcode DEFAULT_IDLE_TIMEOUT_MS}. */
  readonly idleTimeoutMs?: number;
  readonly onProgress?: (progress: BlobProgress) => void;
  readonly signal?: AbortSignal;
}

/** Default chunk size: a chunked upload holds at most this much in memory per blob. */
export const DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024;
/** Default bound on a source blob stream that stops sending. */
const DEFAULT_IDLE_TIMEOUT_MS = 60_000;

/** The next read, or a rejection when nothing arrives within `idleMs`. */
async function readIdle(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  idleMs: number,
): Promise<ReadableStreamReadResult<Uint8Array>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      reader.read(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no data for ${idleMs} ms`)), idleMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function pushScope(path: string): string {
  return `repository:${path}:pull,push`;
}

function pullScope(path: string): string {
  return `repository:${path}:pull`;
}

/** Throws for an unexpected answer; a 404 means "not found" only for a source blob (else an upload vanished). */
async function fail(response: Response, what: string, source = false): Promise<never> {
  const text = (await response.text().catch(() => "")).slice(0, 300).replace(/\s+/g, " ").trim();
  const reason = source && response.status === 404 ? "not-found" : "registry-error";
  throw new MirrorError(reason, `Cannot ${what}: HTTP ${response.status}${text === "" ? "" : `: ${text}`}`, {
    httpStatus: response.status,
  });
}

/** True when the target already holds the blob. */
async function present(route: BlobRoute, digest: string, signal?: AbortSignal): Promise<boolean> {
  const response = await route.target.send({
    method: "HEAD",
    url: `/v2/${route.targetPath}/blobs/${digest}`,
    scope: pushScope(route.targetPath),
    what: `check blob ${digest} in ${route.target.registry}/${route.targetPath}`,
    ...(signal === undefined ? {} : { signal }),
  });
  await response.body?.cancel();
  if (response.status === 200) return true;
  if (response.status === 404) return false;
  return await fail(response, `check blob ${digest} in ${route.target.registry}/${route.targetPath}`);
}

/** Starts an upload (or mounts, when `from` is set): "mounted", or the upload Location. */
async function startUpload(route: BlobRoute, digest: string, from: string | undefined, signal?: AbortSignal) {
  const query = from === undefined ? "" : `?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`;
  const what = `start upload of ${digest} to ${route.target.registry}/${route.targetPath}`;
  const response = await route.target.send({
    method: "POST",
    url: `/v2/${route.targetPath}/blobs/uploads/${query}`,
    // A mount needs pull on the repository it mounts from.
    scope: from === undefined ? pushScope(route.targetPath) : `${pushScope(route.targetPath)} ${pullScope(from)}`,
    what,
    ...(signal === undefined ? {} : { signal }),
  });
  await response.body?.cancel();
  if (response.status === 201 && from !== undefined) return "mounted" as const;
  const location = response.headers.get("location");
  if (response.status !== 202 || location === null) return await fail(response, what);
  return route.target.resolve(location);
}

/** Reads `reader` into `size` bytes or fewer: the next chunk of the blob. */
async function readChunk(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  carry: Uint8Array[],
  size: number,
  idleMs: number,
  onBytes: (length: number) => void,
): Promise<{ chunk: Uint8Array; done: boolean }> {
  const parts = carry.splice(0);
  let length = parts.reduce((sum, part) => sum + part.byteLength, 0);
  let done = false;
  while (length < size) {
    const next = await readIdle(reader, idleMs);
    if (next.done) {
      done = true;
      break;
    }
    parts.push(next.value);
    length += next.value.byteLength;
    onBytes(Math.min(length, size));
  }
  const all = concat(parts, length);
  if (all.byteLength > size) {
    carry.push(all.subarray(size));
    return { chunk: all.subarray(0, size), done: false };
  }
  return { chunk: all, done };
}

/**
 * Streams the blob from the source into the upload at `location`, hashing as it goes: one PUT when it fits in a
 * chunk, else PATCH chunks and a closing PUT. The digest is checked before the closing PUT, so a corrupt or
 * short stream never completes the upload.
 */
async function upload(route: BlobRoute, blob: Descriptor, start: URL, options: BlobCopyOptions): Promise<void> {
  const { signal } = options;
  const label = `${route.source.registry}/${route.sourcePath}@${blob.digest}`;
  const response = await route.source.send({
    method: "GET",
    url: `/v2/${route.sourcePath}/blobs/${blob.digest}`,
    scope: pullScope(route.sourcePath),
    // The bytes as stored: a transparently decoded Content-Encoding would break the size check.
    headers: { "accept-encoding": "identity" },
    what: `GET blob ${label}`,
    ...(signal === undefined ? {} : { signal }),
  });
  if (response.status !== 200 || response.body === null) return await fail(response, `GET blob ${label}`, true);
  const declared = Number(response.headers.get("content-length") ?? Number.NaN);
  if (Number.isFinite(declared) && declared !== blob.size) {
    await response.body.cancel();
    throw new MirrorError("digest-mismatch", `Cannot copy blob ${label}: it has ${declared} bytes, not ${blob.size}`);
  }
  const hash = createHash("sha256");
  const reader = response.body.getReader();
  const carry: Uint8Array[] = [];
  const what = `upload blob ${blob.digest} to ${route.target.registry}/${route.targetPath}`;
  let location = start;
  let done = 0;
  let finalBody: Uint8Array = new Uint8Array();
  try {
    for (;;) {
      let next: { chunk: Uint8Array; done: boolean };
      try {
        next = await readChunk(
          reader,
          carry,
          options.chunkBytes,
          options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
          // Bytes in hand count as progress: a monolithic upload would otherwise show nothing until its end.
          (length) =>
            options.onProgress?.({
              digest: blob.digest,
              done: Math.min(blob.size, done + length),
              total: blob.size,
              state: "copying",
            }),
        );
      } catch (error) {
        throw new MirrorError(
          "unreachable",
          `Cannot copy blob ${label}: the source stream broke after ${done} bytes: ${
            error instanceof Error ? error.message : String(error)
          }`,
          { cause: error },
        );
      }
      if (signal?.aborted === true) throw new MirrorError("aborted", `Cannot copy blob ${label}: aborted`);
      hash.update(next.chunk);
      if (done + next.chunk.byteLength > blob.size) {
        throw new MirrorError("digest-mismatch", `Cannot copy blob ${label}: it is larger than ${blob.size} bytes`);
      }
      if (next.done && done === 0) {
        // The whole blob fits in one chunk: a monolithic upload (POST, then PUT with the bytes).
        finalBody = next.chunk;
        done = next.chunk.byteLength;
        break;
      }
      if (next.chunk.byteLength > 0) {
        const patched = await route.target.send({
          method: "PATCH",
          url: location.href,
          scope: pushScope(route.targetPath),
          headers: {
            "content-type": "application/octet-stream",
            "content-range": `${done}-${done + next.chunk.byteLength - 1}`,
          },
          body: next.chunk,
          what,
          ...(signal === undefined ? {} : { signal }),
        });
        await patched.body?.cancel();
        const moved = patched.headers.get("location");
        if (patched.status !== 202 || moved === null) return await fail(patched, what);
        location = route.target.resolve(moved);
        done += next.chunk.byteLength;
      }
      if (next.done) break;
    }
  } catch (error) {
    await reader.cancel().catch(() => {});
    await cancelUpload(route, location);
    throw error;
  }
  const digest = `sha256:${hash.digest("hex")}`;
  if (done !== blob.size || (blob.digest.startsWith("sha256:") && digest !== blob.digest)) {
    await cancelUpload(route, location);
    throw new MirrorError(
      "digest-mismatch",
      `Cannot copy blob ${label}: the source sent ${done} bytes with digest ${digest}, expected ${blob.size} bytes`,
    );
  }
  const finish = new URL(location);
  finish.searchParams.set("digest", blob.digest);
  const put = await route.target.send({
    method: "PUT",
    url: finish.href,
    scope: pushScope(route.targetPath),
    headers: { "content-type": "application/octet-stream" },
    body: finalBody,
    what,
    ...(signal === undefined ? {} : { signal }),
  });
  await put.body?.cancel();
  if (put.status !== 201) return await fail(put, what);
}

/** Best effort: an abandoned upload is cleaned up by the registry's upload purging otherwise. */
async function cancelUpload(route: BlobRoute, location: URL): Promise<void> {
  try {
    const response = await route.target.send({
      method: "DELETE",
      url: location.href,
      scope: pushScope(route.targetPath),
      what: "cancel upload",
    });
    await response.body?.cancel();
  } catch {
    // The registry is gone or refuses: nothing refers to the upload, so nothing is half-written.
  }
}

/**
 * Puts one blob in the target repository, retrying the whole transfer (a broken stream cannot be resumed) on
 * connection errors and 5xx answers; throws {@linkcode MirrorError}.
 */
export async function copyBlob(route: BlobRoute, blob: Descriptor, options: BlobCopyOptions): Promise<BlobOutcome> {
  const policy = options.pool.retry;
  for (let attempt = 0;; attempt++) {
    try {
      return await copyOnce(route, blob, options);
    } catch (error) {
      const retriable = error instanceof MirrorError
        ? error.reason === "unreachable" || (error.reason === "registry-error" && (error.httpStatus ?? 0) >= 500)
        : true;
      if (!retriable || attempt + 1 >= policy.attempts || options.signal?.aborted === true) throw error;
      const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
      await options.pool.wait(Math.round(ceiling / 2 + Math.random() * ceiling / 2), options.signal);
    }
  }
}

async function copyOnce(route: BlobRoute, blob: Descriptor, options: BlobCopyOptions): Promise<BlobOutcome> {
  const report = (state: BlobOutcome) => {
    options.onProgress?.({ digest: blob.digest, done: blob.size, total: blob.size, state });
    return state;
  };
  if (await present(route, blob.digest, options.signal)) return report("present");
  const sameRegistry = route.source.registry === route.target.registry && route.source.baseUrl === route.target.baseUrl;
  const mount = sameRegistry && route.sourcePath !== route.targetPath ? route.sourcePath : undefined;
  const started = await startUpload(route, blob.digest, mount, options.signal);
  if (started === "mounted") return report("mounted");
  await upload(route, blob, started, options);
  return report("copied");
}
