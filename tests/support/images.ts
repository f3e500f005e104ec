// Test support: pushes multi-platform images (an OCI index, its platform manifests and blobs) to a test registry.

import { sha256 } from "./registry.ts";

const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX = "application/vnd.oci.image.index.v1+json";

/** What {@linkcode pushPlatformImage} uploaded. */
export interface PushedPlatformImage {
  /** What the tag points at: the index, or the single manifest. */
  readonly digest: string;
  /** Image manifest digest per platform (`linux/amd64`). */
  readonly manifests: Readonly<Record<string, string>>;
  /** Every blob digest (configs and layers) with its size. */
  readonly blobs: ReadonlyMap<string, number>;
  /** Sum of every manifest and blob size. */
  readonly totalBytes: number;
}

/** Options of {@linkcode pushPlatformImage}. */
export interface PlatformPushOptions {
  /** `os/arch[/variant]` of each image; several make an index. Default one `linux/amd64` manifest, no index. */
  readonly platforms?: readonly string[];
  /** Force an index even for one platform. */
  readonly index?: boolean;
  /** Size of each image's layer. */
  readonly layerBytes?: number;
  /** Same seed, same bytes, same digests: an image can be pushed again to a new registry. */
  readonly seed?: number;
  readonly auth?: { readonly username: string; readonly password: string };
}

/** Deterministic bytes (xorshift32) so the same seed gives the same blobs. */
export function seededBytes(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = (seed | 0) || 0x9e3779b9;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Pushes one image per platform through the registry API (POST + PUT blobs, PUT manifests), then the tag. */
export async function pushPlatformImage(
  registryUrl: string,
  name: string,
  tag: string,
  options: PlatformPushOptions = {},
): Promise<PushedPlatformImage> {
  const base = registryUrl.replace(/\/+$/, "");
  const headers = (extra: Record<string, string> = {}): Headers => {
    const out = new Headers(extra);
    if (options.auth !== undefined) {
      out.set("authorization", `Basic ${btoa(`${options.auth.username}:${options.auth.password}`)}`);
    }
    return out;
  };
  const expect = async (response: Response, status: number, what: string) => {
    const body = await response.text();
    if (response.status !== status) {
      throw new Error(`Cannot push ${name}:${tag}: ${what} answered HTTP ${response.status}: ${body.slice(0, 300)}`);
    }
    return response;
  };
  const blobs = new Map<string, number>();
  let totalBytes = 0;
  const uploadBlob = async (bytes: Uint8Array): Promise<string> => {
    const digest = await sha256(bytes);
    const started = await expect(
      await fetch(`${base}/v2/${name}/blobs/uploads/`, { method: "POST", headers: headers() }),
      202,
      "POST upload",
    );
    const target = new URL(started.headers.get("location") ?? "", `${base}/`);
    target.searchParams.set("digest", digest);
    await expect(
      await fetch(target, {
        method: "PUT",
        headers: headers({ "content-type": "application/octet-stream" }),
        body: bytes as Uint8Array<ArrayBuffer>,
      }),
      201,
      "PUT blob",
    );
    if (!blobs.has(digest)) totalBytes += bytes.byteLength;
    blobs.set(digest, bytes.byteLength);
    return digest;
  };
  const putManifest = async (reference: string, mediaType: string, body: Uint8Array) => {
    await expect(
      await fetch(`${base}/v2/${name}/manifests/${reference}`, {
        method: "PUT",
        headers: headers({ "content-type": mediaType }),
        body: body as Uint8Array<ArrayBuffer>,
      }),
      201,
      `PUT manifest ${reference}`,
    );
  };
  const encoder = new TextEncoder();
  const platforms = options.platforms ?? ["linux/amd64"];
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
  const manifests: Record<string, string> = {};
  const entries: unknown[] = [];
  const asIndex = options.index === true || platforms.length > 1;
  let single: Uint8Array | undefined;
  for (const [i, platform] of platforms.entries()) {
    const [os = "", architecture = "", variant] = platform.split("/");
    const layer = seededBytes(options.layerBytes ?? 1024, seed + i * 7919);
    const layerDigest = await uploadBlob(layer);
    const config = encoder.encode(JSON.stringify({
      architecture,
      os,
      ...(variant === undefined ? {} : { variant }),
      config: {},
      rootfs: { type: "layers", diff_ids: [layerDigest] },
    }));
    const configDigest = await uploadBlob(config);
    const manifest = encoder.encode(JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: configDigest, size: config.byteLength },
      layers: [{
        mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
        digest: layerDigest,
        size: layer.byteLength,
      }],
    }));
    const digest = await sha256(manifest);
    manifests[platform] = digest;
    totalBytes += manifest.byteLength;
    if (asIndex) {
      await putManifest(digest, OCI_MANIFEST, manifest);
    } else {
      single = manifest;
    }
    entries.push({
      mediaType: OCI_MANIFEST,
      digest,
      size: manifest.byteLength,
      platform: { architecture, os, ...(variant === undefined ? {} : { variant }) },
    });
  }
  if (!asIndex && single !== undefined) {
    await putManifest(tag, OCI_MANIFEST, single);
    return { digest: await sha256(single), manifests, blobs, totalBytes };
  }
  const index = encoder.encode(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: entries }));
  await putManifest(tag, OCI_INDEX, index);
  return { digest: await sha256(index), manifests, blobs, totalBytes: totalBytes + index.byteLength };
}

/** HEAD a manifest or blob: the status and `Docker-Content-Digest`. */
export async function head(
  registryUrl: string,
  path: string,
  auth?: { readonly username: string; readonly password: string },
): Promise<{ status: number; digest: string | null }> {
  const response = await fetch(`${registryUrl.replace(/\/+$/, "")}${path}`, {
    method: "HEAD",
    headers: {
      accept: [OCI_INDEX, OCI_MANIFEST, "application/vnd.docker.distribution.manifest.v2+json"].join(", "),
      ...(auth === undefined ? {} : { authorization: `Basic ${btoa(`${auth.username}:${auth.password}`)}` }),
    },
  });
  await response.body?.cancel();
  return { status: response.status, digest: response.headers.get("docker-content-digest") };
}
