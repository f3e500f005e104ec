// Reading OCI and Docker v2 manifests and indexes as they are copied: descriptors, platforms, digests.

import { createHash } from "node:crypto";
import { isRecord } from "../util/json.ts";

export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json";

/** Media types a copy accepts (v1 signed manifests are refused: their signature names the source repository). */
export const COPY_MEDIA_TYPES: readonly string[] = [OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST];
/** Bound on one manifest body. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** A platform as `os/architecture[/variant]`. */
export interface Platform {
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string;
}

/** What a manifest or index points at. */
export interface Descriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly platform?: Platform;
}

/** A parsed manifest: an index with children, or an image manifest with a config and layers. */
export type ParsedManifest =
  | { readonly kind: "index"; readonly manifests: readonly Descriptor[] }
  | { readonly kind: "image"; readonly config: Descriptor; readonly layers: readonly Descriptor[] };

/** A manifest body that cannot be copied. */
export class ManifestError extends Error {
  override name = "ManifestError";
}

/** `sha256:<hex>` of `bytes`. */
export function sha256Digest(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

/** Parses `linux/amd64`, `linux/arm64/v8`; throws {@linkcode RangeError} naming the text. */
export function parsePlatform(text: string): Platform {
  const parts = text.trim().split("/");
  if (parts.length < 2 || parts.length > 3 || parts.some((part) => !/^[a-z0-9_.-]+$/i.test(part))) {
    throw new RangeError(`Cannot read platform ${JSON.stringify(text)}: expected os/architecture[/variant]`);
  }
  const [os = "", architecture = "", variant] = parts;
  return { os, architecture, ...(variant === undefined ? {} : { variant }) };
}

export function formatPlatform(platform: Platform): string {
  return [platform.os, platform.architecture, ...(platform.variant === undefined ? [] : [platform.variant])].join("/");
}

/** True when `have` satisfies `want`: same os and architecture, and the same variant when `want` names one. */
export function platformMatches(have: Platform | undefined, want: Platform): boolean {
  if (have === undefined) return false;
  return have.os === want.os && have.architecture === want.architecture &&
    (want.variant === undefined || have.variant === want.variant);
}

function readDescriptor(value: unknown, where: string): Descriptor {
  if (!isRecord(value)) throw new ManifestError(`${where}: expected an object`);
  const { mediaType, digest, size, platform } = value;
  if (typeof digest !== "string" || !/^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/.test(digest)) {
    throw new ManifestError(`${where}.digest: expected a digest, got ${JSON.stringify(digest)}`);
  }
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) {
    throw new ManifestError(`${where}.size: expected a non-negative integer, got ${JSON.stringify(size)}`);
  }
  let parsedPlatform: Platform | undefined;
  if (isRecord(platform) && typeof platform["os"] === "string" && typeof platform["architecture"] === "string") {
    parsedPlatform = {
      os: platform["os"],
      architecture: platform["architecture"],
      ...(typeof platform["variant"] === "string" && platform["variant"] !== ""
        ? { variant: platform["variant"] }
        : {}),
    };
  }
  return {
    mediaType: typeof mediaType === "string" ? mediaType : "",
    digest,
    size,
    ...(parsedPlatform === undefined ? {} : { platform: parsedPlatform }),
  };
}

/** The media type of a manifest body: its `mediaType` field, else the Content-Type the registry sent. */
function manifestMediaType(body: unknown, contentType: string): string {
  if (isRecord(body) && typeof body["mediaType"] === "string" && body["mediaType"] !== "") return body["mediaType"];
  return contentType.split(";")[0]?.trim() ?? "";
}

/** Parses a manifest body; throws {@linkcode ManifestError} naming the field that is wrong. */
export function parseManifest(bytes: Uint8Array, contentType: string): { mediaType: string; manifest: ParsedManifest } {
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    throw new ManifestError(`not JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (!isRecord(body)) throw new ManifestError("expected a JSON object");
  const mediaType = manifestMediaType(body, contentType);
  if (body["schemaVersion"] === 1 || mediaType.startsWith("application/vnd.docker.distribution.manifest.v1")) {
    throw new ManifestError("schema 1 manifests cannot be copied (their signature names the source repository)");
  }
  if (Array.isArray(body["manifests"]) || mediaType === OCI_INDEX || mediaType === DOCKER_LIST) {
    if (!Array.isArray(body["manifests"])) throw new ManifestError("manifests: expected a list");
    return {
      mediaType,
      manifest: {
        kind: "index",
        manifests: body["manifests"].map((entry, index) => readDescriptor(entry, `manifests[${index}]`)),
      },
    };
  }
  const layers = body["layers"] ?? [];
  if (!Array.isArray(layers)) throw new ManifestError("layers: expected a list");
  return {
    mediaType,
    manifest: {
      kind: "image",
      config: readDescriptor(body["config"], "config"),
      layers: layers.map((entry, index) => readDescriptor(entry, `layers[${index}]`)),
    },
  };
}

/**
 * The index body with only `keep` children, for a platform-filtered copy. The registry refuses an index whose
 * children are missing, so a filtered copy cannot keep the source's bytes (nor its digest).
 */
export function filterIndex(bytes: Uint8Array, keep: ReadonlySet<string>): Uint8Array {
  const body = JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
  const manifests = Array.isArray(body["manifests"]) ? body["manifests"] : [];
  body["manifests"] = manifests.filter((entry) => isRecord(entry) && keep.has(String(entry["digest"])));
  return new TextEncoder().encode(JSON.stringify(body));
}

/** The platform an image config declares (`os`, `architecture`, `variant`), if it is readable. */
export function configPlatform(bytes: Uint8Array): Platform | undefined {
  try {
    const body: unknown = JSON.parse(new TextDecoder().decode(bytes));
    if (!isRecord(body) || typeof body["os"] !== "string" || typeof body["architecture"] !== "string") {
      return undefined;
    }
    return {
      os: body["os"],
      architecture: body["architecture"],
      ...(typeof body["variant"] === "string" && body["variant"] !== "" ? { variant: body["variant"] } : {}),
    };
  } catch {
    return undefined;
  }
}
