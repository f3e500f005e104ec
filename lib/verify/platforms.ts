// Whether a manifest serves the platforms a rule requires: an index's entries, or an image's config os/architecture.

import { isRecord } from "../util/json.ts";

/** A platform as an index or a config names it. */
interface Platform {
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string;
}

function readPlatform(value: unknown): Platform | undefined {
  if (!isRecord(value) || typeof value["os"] !== "string" || typeof value["architecture"] !== "string") {
    return undefined;
  }
  const variant = typeof value["variant"] === "string" && value["variant"] !== "" ? value["variant"] : undefined;
  return { os: value["os"], architecture: value["architecture"], ...(variant === undefined ? {} : { variant }) };
}

function format(platform: Platform): string {
  return [platform.os, platform.architecture, ...(platform.variant === undefined ? [] : [platform.variant])].join("/");
}

/** True when `have` serves `want` (`os/arch[/variant]`): same os and architecture, same variant when named. */
function servesPlatform(have: Platform | undefined, want: string): boolean {
  if (have === undefined) return false;
  const [os, architecture, variant] = want.split("/");
  return have.os === os && have.architecture === architecture && (variant === undefined || have.variant === variant);
}

/** What a manifest body says about platforms. */
export type ManifestPlatforms =
  /** An index: the platforms it lists. */
  | { readonly kind: "index"; readonly platforms: readonly Platform[] }
  /** An image manifest: the config blob to read its platform from. */
  | { readonly kind: "image"; readonly configDigest: string }
  | { readonly kind: "unreadable"; readonly detail: string };

/** Reads a manifest body (an index or an image manifest). */
export function manifestPlatforms(text: string): ManifestPlatforms {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return { kind: "unreadable", detail: "the manifest is not JSON" };
  }
  if (!isRecord(body)) return { kind: "unreadable", detail: "the manifest is not a JSON object" };
  if (Array.isArray(body["manifests"])) {
    const platforms: Platform[] = [];
    for (const entry of body["manifests"]) {
      const platform = isRecord(entry) ? readPlatform(entry["platform"]) : undefined;
      if (platform !== undefined) platforms.push(platform);
    }
    return { kind: "index", platforms };
  }
  const config = body["config"];
  if (
    isRecord(config) && typeof config["digest"] === "string" && /^[a-z0-9]+:[a-zA-Z0-9=_-]+$/.test(config["digest"])
  ) {
    return { kind: "image", configDigest: config["digest"] };
  }
  return { kind: "unreadable", detail: "the manifest names neither platforms nor a config" };
}

/** The platform an image config declares, or undefined when it names none. */
export function configPlatform(text: string): Platform | undefined {
  try {
    return readPlatform(JSON.parse(text));
  } catch {
    return undefined;
  }
}

/**
 * Undefined when the target serves the required platforms, else why not (for warnings: names the missing ones).
 * An index must list every required platform; a single-platform image must be one of them.
 */
export function missingPlatforms(
  found: { readonly kind: "index"; readonly platforms: readonly Platform[] } | {
    readonly kind: "image";
    readonly platform: Platform | undefined;
  },
  required: readonly string[],
): string | undefined {
  if (found.kind === "index") {
    const missing = required.filter((want) => !found.platforms.some((have) => servesPlatform(have, want)));
    return missing.length === 0 ? undefined : `lacks platform${missing.length === 1 ? "" : "s"} ${missing.join(", ")}`;
  }
  if (required.some((want) => servesPlatform(found.platform, want))) return undefined;
  return `lacks platform${required.length === 1 ? "" : "s"} ${required.join(", ")} (it is ${
    found.platform === undefined ? "of no declared platform" : `single-platform ${format(found.platform)}`
  })`;
}
