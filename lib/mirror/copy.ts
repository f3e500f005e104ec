// Copies an image (a manifest or an index with its children) between registries with the distribution API.

import { formatReference, type ImageReference } from "../image/reference.ts";
import { readStreamLimited } from "../util/body.ts";
import { type BlobOutcome, type BlobProgress, copyBlob, DEFAULT_CHUNK_BYTES } from "./blob.ts";
import {
  configPlatform,
  COPY_MEDIA_TYPES,
  type Descriptor,
  filterIndex,
  formatPlatform,
  ManifestError,
  MAX_MANIFEST_BYTES,
  parseManifest,
  type Platform,
  platformMatches,
  sha256Digest,
} from "./manifest.ts";
import { MirrorError, type RegistrySession, type SessionPool } from "./session.ts";

/** Default number of blobs copied at once within one image. */
const DEFAULT_BLOB_CONCURRENCY = 3;
const MAX_NESTING = 2;

/** Options of {@linkcode copyImage}. */
export interface CopyOptions {
  readonly pool: SessionPool;
  /** Copy only these platforms of an index (each must be in it); a single-platform image must be one of them. */
  readonly platforms?: readonly Platform[];
  /** Refuse, before copying anything, an image whose manifests and blobs add up to more. */
  readonly maxBytes?: number;
  readonly blobConcurrency?: number;
  readonly chunkBytes?: number;
  /** A source blob stream that sends nothing for this long is abandoned (and retried). */
  readonly idleTimeoutMs?: number;
  readonly onProgress?: (progress: BlobProgress) => void;
  readonly signal?: AbortSignal;
}

/** What {@linkcode copyImage} did. */
export interface CopyResult {
  readonly source: string;
  readonly target: string;
  /** Digest of the top manifest on the target: the source's, unless a platform filter rewrote the index. */
  readonly digest: string;
  readonly sourceDigest: string;
  readonly mediaType: string;
  /** Manifests pushed (children and the top one). */
  readonly manifests: number;
  readonly blobs: Readonly<Record<BlobOutcome, number>>;
  /** Size of every manifest and blob of the copy. */
  readonly totalBytes: number;
  /** Bytes uploaded (blobs neither present nor mounted). */
  readonly copiedBytes: number;
  /** True when a platform filter dropped children of the index (then `digest` differs from `sourceDigest`). */
  readonly filtered: boolean;
}

interface ManifestNode {
  readonly digest: string;
  readonly mediaType: string;
  readonly bytes: Uint8Array;
  readonly children: readonly ManifestNode[];
  readonly blobs: readonly Descriptor[];
}

/** Runs `fn` on every item with at most `limit` running at once; rejects with the first failure. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && next < items.length) {
      const index = next++;
      try {
        results[index] = await fn(items[index] as T);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return results;
}

/** `12.3 MiB`. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

async function fetchManifest(
  session: RegistrySession,
  path: string,
  reference: string,
  signal: AbortSignal | undefined,
): Promise<{ bytes: Uint8Array; contentType: string; digest: string }> {
  const label = `${session.registry}/${path}${reference.includes(":") ? "@" : ":"}${reference}`;
  const response = await session.send({
    method: "GET",
    url: `/v2/${path}/manifests/${reference}`,
    scope: `repository:${path}:pull`,
    headers: { accept: COPY_MEDIA_TYPES.join(", ") },
    what: `GET manifest ${label}`,
    ...(signal === undefined ? {} : { signal }),
  });
  if (response.status !== 200) {
    await response.body?.cancel();
    throw new MirrorError(
      response.status === 404 ? "not-found" : "registry-error",
      `Cannot GET manifest ${label}: HTTP ${response.status}${response.status === 404 ? ": no such image" : ""}`,
      { httpStatus: response.status },
    );
  }
  const declared = Number(response.headers.get("content-length") ?? Number.NaN);
  const bytes = await readStreamLimited(
    response.body,
    Number.isFinite(declared) ? declared : undefined,
    MAX_MANIFEST_BYTES,
  );
  if (bytes === undefined) {
    throw new MirrorError("invalid-manifest", `Cannot GET manifest ${label}: larger than ${MAX_MANIFEST_BYTES} bytes`);
  }
  const digest = sha256Digest(bytes);
  const expected = reference.startsWith("sha256:") ? reference : response.headers.get("docker-content-digest");
  if (expected !== null && expected.startsWith("sha256:") && expected !== digest) {
    throw new MirrorError("digest-mismatch", `Cannot GET manifest ${label}: its bytes have digest ${digest}`);
  }
  return { bytes, contentType: response.headers.get("content-type") ?? "", digest };
}

async function fetchBlobBytes(session: RegistrySession, path: string, blob: Descriptor, signal?: AbortSignal) {
  const label = `${session.registry}/${path}@${blob.digest}`;
  const response = await session.send({
    method: "GET",
    url: `/v2/${path}/blobs/${blob.digest}`,
    scope: `repository:${path}:pull`,
    headers: { "accept-encoding": "identity" },
    what: `GET blob ${label}`,
    ...(signal === undefined ? {} : { signal }),
  });
  if (response.status !== 200) {
    await response.body?.cancel();
    throw new MirrorError(response.status === 404 ? "not-found" : "registry-error", `Cannot GET blob ${label}`, {
      httpStatus: response.status,
    });
  }
  const bytes = await readStreamLimited(response.body, undefined, MAX_MANIFEST_BYTES);
  if (bytes === undefined || sha256Digest(bytes) !== blob.digest) {
    throw new MirrorError("digest-mismatch", `Cannot GET blob ${label}: its bytes do not match the digest`);
  }
  return bytes;
}

/** Reads the manifest tree of the source: the top manifest and, for an index, the children to copy. */
class Planner {
  readonly #session: RegistrySession;
  readonly #path: string;
  readonly #options: CopyOptions;
  filtered = false;
  /** Digest of the source's top manifest, as fetched. */
  sourceDigest = "";

  constructor(session: RegistrySession, path: string, options: CopyOptions) {
    this.#session = session;
    this.#path = path;
    this.#options = options;
  }

  async plan(reference: string, depth: number, filter: boolean): Promise<ManifestNode> {
    const fetched = await fetchManifest(this.#session, this.#path, reference, this.#options.signal);
    if (depth === 0) this.sourceDigest = fetched.digest;
    let parsed;
    try {
      parsed = parseManifest(fetched.bytes, fetched.contentType);
    } catch (error) {
      if (!(error instanceof ManifestError)) throw error;
      throw new MirrorError(
        "invalid-manifest",
        `Cannot copy ${this.#session.registry}/${this.#path}@${fetched.digest}: ${error.message}`,
      );
    }
    const { mediaType, manifest } = parsed;
    const platforms = this.#options.platforms ?? [];
    if (manifest.kind === "image") {
      if (filter && depth === 0 && platforms.length > 0) await this.#checkPlatform(manifest.config, platforms);
      return {
        digest: fetched.digest,
        mediaType,
        bytes: fetched.bytes,
        children: [],
        blobs: [manifest.config, ...manifest.layers],
      };
    }
    if (depth >= MAX_NESTING) {
      throw new MirrorError("invalid-manifest", `Cannot copy ${this.#path}@${fetched.digest}: indexes nested too deep`);
    }
    let wanted = manifest.manifests;
    let bytes = fetched.bytes;
    let digest = fetched.digest;
    if (filter && platforms.length > 0) {
      const missing = platforms.filter((want) => !wanted.some((child) => platformMatches(child.platform, want)));
      if (missing.length > 0) {
        throw new MirrorError(
          "platform-missing",
          `Cannot copy ${this.#session.registry}/${this.#path}@${fetched.digest}: the index lacks platform(s) ${
            missing.map(formatPlatform).join(", ")
          }`,
        );
      }
      wanted = wanted.filter((child) => platforms.some((want) => platformMatches(child.platform, want)));
      if (wanted.length < manifest.manifests.length) {
        bytes = filterIndex(bytes, new Set(wanted.map((child) => child.digest)));
        digest = sha256Digest(bytes);
        this.filtered = true;
      }
    }
    const children = await mapLimit(
      wanted,
      this.#options.blobConcurrency ?? DEFAULT_BLOB_CONCURRENCY,
      (child) => this.plan(child.digest, depth + 1, false),
    );
    return { digest, mediaType, bytes, children, blobs: [] };
  }

  async #checkPlatform(config: Descriptor, platforms: readonly Platform[]): Promise<void> {
    const bytes = await fetchBlobBytes(this.#session, this.#path, config, this.#options.signal);
    const have = configPlatform(bytes);
    if (!platforms.some((want) => platformMatches(have, want))) {
      throw new MirrorError(
        "platform-missing",
        `Cannot copy ${this.#session.registry}/${this.#path}: the image is for ${
          have === undefined ? "an unknown platform" : formatPlatform(have)
        }, not ${platforms.map(formatPlatform).join(" or ")}`,
      );
    }
  }
}

function walk(node: ManifestNode, visit: (node: ManifestNode) => void): void {
  for (const child of node.children) walk(child, visit);
  visit(node);
}

async function pushManifest(
  session: RegistrySession,
  path: string,
  reference: string,
  node: ManifestNode,
  signal: AbortSignal | undefined,
): Promise<void> {
  const what = `PUT manifest ${session.registry}/${path}${reference.includes(":") ? "@" : ":"}${reference}`;
  const response = await session.send({
    method: "PUT",
    url: `/v2/${path}/manifests/${reference}`,
    scope: `repository:${path}:pull,push`,
    headers: { "content-type": node.mediaType },
    body: node.bytes,
    what,
    ...(signal === undefined ? {} : { signal }),
  });
  const text = response.status === 201 ? "" : (await response.text().catch(() => "")).slice(0, 300);
  await response.body?.cancel().catch(() => {});
  if (response.status !== 201) {
    throw new MirrorError("registry-error", `Cannot ${what}: HTTP ${response.status}: ${text.trim()}`, {
      httpStatus: response.status,
    });
  }
  const stored = response.headers.get("docker-content-digest");
  if (stored !== null && stored !== node.digest) {
    throw new MirrorError("digest-mismatch", `Cannot ${what}: the registry stored it as ${stored}, not ${node.digest}`);
  }
}

/**
 * Copies `source` to `target`: reads every manifest first, refuses an image over `maxBytes`, puts every blob in
 * place (skip, mount or upload), then pushes child manifests by digest, the top manifest by digest and last by
 * tag. A manifest is pushed only after everything it refers to is in place, so an interrupted copy leaves no
 * manifest that names a missing blob, and the tag appears last. Throws {@linkcode MirrorError}.
 */
export async function copyImage(
  source: ImageReference,
  target: ImageReference,
  options: CopyOptions,
): Promise<CopyResult> {
  const from = options.pool.get(source.registry);
  const to = options.pool.get(target.registry);
  // A reference by digest must keep its digest, so its index is copied whole.
  const filter = source.digest === undefined && target.digest === undefined;
  const planner = new Planner(from, source.path, options);
  const top = await planner.plan(source.digest ?? source.tag ?? "latest", 0, filter);

  const blobs = new Map<string, Descriptor>();
  let totalBytes = 0;
  let manifests = 0;
  walk(top, (node) => {
    manifests++;
    totalBytes += node.bytes.byteLength;
    for (const blob of node.blobs) blobs.set(blob.digest, blob);
  });
  for (const blob of blobs.values()) totalBytes += blob.size;
  const label = `${formatReference(source)} to ${formatReference(target)}`;
  if (options.maxBytes !== undefined && totalBytes > options.maxBytes) {
    throw new MirrorError(
      "too-large",
      `Cannot mirror ${label}: the image is ${totalBytes} bytes (${
        formatBytes(totalBytes)
      }), over the limit of ${options.maxBytes} bytes (${formatBytes(options.maxBytes)})`,
    );
  }
  if (target.digest !== undefined && target.digest !== top.digest) {
    throw new MirrorError("digest-mismatch", `Cannot mirror ${label}: the source's digest is ${top.digest}`);
  }

  const counts: Record<BlobOutcome, number> = { present: 0, mounted: 0, copied: 0 };
  let copiedBytes = 0;
  const route = { source: from, sourcePath: source.path, target: to, targetPath: target.path };
  await mapLimit([...blobs.values()], options.blobConcurrency ?? DEFAULT_BLOB_CONCURRENCY, async (blob) => {
    const outcome = await copyBlob(route, blob, {
      pool: options.pool,
      chunkBytes: options.chunkBytes ?? DEFAULT_CHUNK_BYTES,
      ...(options.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: options.idleTimeoutMs }),
      ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    counts[outcome]++;
    if (outcome === "copied") copiedBytes += blob.size;
  });

  // Children first, each by digest; the top manifest by digest, then by tag: the tag is the last thing written.
  const order: ManifestNode[] = [];
  walk(top, (node) => order.push(node));
  for (const node of order) await pushManifest(to, target.path, node.digest, node, options.signal);
  if (target.tag !== undefined) await pushManifest(to, target.path, target.tag, top, options.signal);

  return {
    source: formatReference(source),
    target: formatReference(target),
    digest: top.digest,
    sourceDigest: planner.sourceDigest,
    mediaType: top.mediaType,
    manifests,
    blobs: counts,
    totalBytes,
    copiedBytes,
    filtered: planner.filtered,
  };
}
