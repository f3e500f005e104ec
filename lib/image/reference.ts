// Parses, validates, normalizes and formats container image references (distribution reference grammar).

/** Docker Hub's canonical registry name. */
export const DOCKER_HUB = "docker.io";
/**
 * Longest allowed repository path (normalized, without the registry), as distribution/reference sets it since
 * v0.6.0 (2024): `docker.io/library/` or a long registry host do not count.
 */
const NAME_TOTAL_LENGTH_MAX = 255;

const LEGACY_DOCKER_HUB = "index.docker.io";
const OFFICIAL_REPO_PREFIX = "library/";

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
/** Compressed or full IPv6 in brackets; zone identifiers and IPv4-mapped forms are excluded, as in the grammar. */
const IPV6_HOST = /^\[[a-fA-F0-9:]+\]$/;
/** Any run of digits: the grammar sets no range, so `localhost:99999/x` parses as the runtimes parse it. */
const PORT = /^[0-9]+$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^([A-Za-z][A-Za-z0-9]*(?:[+._-][A-Za-z][A-Za-z0-9]*)*):([0-9a-fA-F]{32,})$/;
const HEX_64 = /^[a-f0-9]{64}$/;
/** Algorithms the container runtimes accept, with their hex length (opencontainers/go-digest). */
const DIGEST_HEX_LENGTH: ReadonlyMap<string, number> = new Map([
  ["sha256", 64],
  ["sha384", 96],
  ["sha512", 128],
]);

/** A reference in normalized form: registry always set, tag and digest as given (tag `latest` added only when both are absent). */
export interface ImageReference {
  /** Registry host with optional port, e.g. `docker.io`, `localhost:5000`, `[2001:db8::1]:5000`. */
  readonly registry: string;
  /** Repository path below the registry, e.g. `library/nginx`. */
  readonly path: string;
  readonly tag?: string;
  readonly digest?: string;
}

/** What is wrong with an image reference; `reason` is a stable code for tests and metrics. */
export class ImageReferenceError extends Error {
  override name = "ImageReferenceError";
  /** The reference as given. */
  readonly reference: string;
  readonly reason: ReferenceErrorReason;
  constructor(reference: string, reason: ReferenceErrorReason, detail: string) {
    super(`Cannot parse image reference ${JSON.stringify(truncate(reference))}: ${detail}`);
    this.reference = reference;
    this.reason = reason;
  }
}

/** Stable codes for invalid references. */
export type ReferenceErrorReason =
  | "empty"
  | "not-a-string"
  | "invalid-format"
  | "uppercase-repository"
  | "invalid-registry"
  | "invalid-tag"
  | "invalid-digest"
  | "unsupported-digest"
  | "name-too-long"
  | "hex-identifier";

/** Result of {@linkcode parseReference}: never throws. */
export type ParseResult =
  | { readonly ok: true; readonly reference: ImageReference }
  | { readonly ok: false; readonly error: ImageReferenceError };

function truncate(text: string): string {
  return text.length > 300 ? `${text.slice(0, 300)}\u2026` : text;
}

/** `String(input)` for error messages, without throwing for objects that cannot be converted. */
function describe(input: unknown): string {
  try {
    return String(input);
  } catch {
    return `[${typeof input}]`;
  }
}

function fail(input: string, reason: ReferenceErrorReason, detail: string): ParseResult {
  return { ok: false, error: new ImageReferenceError(input, reason, detail) };
}

/** True when the first path component names a registry rather than a Docker Hub namespace. */
export function isRegistryComponent(component: string): boolean {
  return component.includes(".") || component.includes(":") || component === "localhost" ||
    component.toLowerCase() !== component;
}

function checkRegistry(host: string): string | undefined {
  let name = host;
  let port: string | undefined;
  if (host.startsWith("[")) {
    const close = host.indexOf("]");
    if (close < 0) return "unterminated IPv6 address";
    name = host.slice(0, close + 1);
    const rest = host.slice(close + 1);
    if (rest !== "") {
      if (!rest.startsWith(":")) return "unexpected text after IPv6 address";
      port = rest.slice(1);
    }
    if (!IPV6_HOST.test(name)) return `invalid IPv6 address ${JSON.stringify(name)}`;
  } else {
    const colon = host.indexOf(":");
    if (colon >= 0) {
      name = host.slice(0, colon);
      port = host.slice(colon + 1);
    }
    if (name === "") return "empty host name";
    for (const component of name.split(".")) {
      if (!DOMAIN_COMPONENT.test(component)) {
        return `invalid host name component ${JSON.stringify(component)}`;
      }
    }
  }
  if (port !== undefined && !PORT.test(port)) {
    return `invalid port ${JSON.stringify(port)}`;
  }
  return undefined;
}

/**
 * Parses `input` the way container runtimes resolve it (docker's ParseNormalizedNamed):
 * `nginx` -> `docker.io/library/nginx:latest`. Never throws.
 */
export function parseReference(input: unknown): ParseResult {
  if (typeof input !== "string") {
    return fail(describe(input), "not-a-string", `expected a string, got ${typeof input}`);
  }
  if (input === "") return fail(input, "empty", "reference is empty");
  if (input.length > 1024) return fail(input, "name-too-long", "reference is longer than 1024 characters");
  if (HEX_64.test(input)) {
    return fail(input, "hex-identifier", "a 64-character hexadecimal string is an image ID, not a reference");
  }

  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    const problem = checkDigest(digest);
    if (problem !== undefined) return fail(input, problem[0], problem[1]);
  }

  // The registry is the first component only if it looks like one; a colon inside it is a port.
  let registry: string;
  let remainder: string;
  const slash = rest.indexOf("/");
  const first = slash < 0 ? "" : rest.slice(0, slash);
  if (slash >= 0 && isRegistryComponent(first)) {
    registry = first;
    remainder = rest.slice(slash + 1);
    const problem = checkRegistry(registry);
    if (problem !== undefined) {
      return fail(input, "invalid-registry", `invalid registry ${JSON.stringify(registry)}: ${problem}`);
    }
  } else {
    registry = DOCKER_HUB;
    remainder = rest;
  }

  let tag: string | undefined;
  const lastColon = remainder.lastIndexOf(":");
  if (lastColon >= 0) {
    tag = remainder.slice(lastColon + 1);
    remainder = remainder.slice(0, lastColon);
    if (!TAG.test(tag)) {
      return fail(
        input,
        "invalid-tag",
        `invalid tag ${
          JSON.stringify(truncate(tag))
        }: a tag is 1 to 128 of [A-Za-z0-9_.-] and cannot start with "." or "-"`,
      );
    }
  }

  if (remainder === "") return fail(input, "invalid-format", "repository name is empty");
  const components = remainder.split("/");
  for (const component of components) {
    if (PATH_COMPONENT.test(component)) continue;
    if (PATH_COMPONENT.test(component.toLowerCase())) {
      return fail(input, "uppercase-repository", `repository name must be lowercase, got ${JSON.stringify(remainder)}`);
    }
    if (component === "") {
      return fail(input, "invalid-format", `repository name ${JSON.stringify(remainder)} has an empty path component`);
    }
    return fail(
      input,
      "invalid-format",
      `invalid path component ${
        JSON.stringify(truncate(component))
      }: use lowercase letters, digits and single separators (. _ __ -)`,
    );
  }

  if (registry === LEGACY_DOCKER_HUB) registry = DOCKER_HUB;
  let path = remainder;
  if (registry === DOCKER_HUB && components.length === 1) path = OFFICIAL_REPO_PREFIX + path;
  if (path.length > NAME_TOTAL_LENGTH_MAX) {
    return fail(
      input,
      "name-too-long",
      `repository path is ${path.length} characters, the limit is ${NAME_TOTAL_LENGTH_MAX}`,
    );
  }
  if (tag === undefined && digest === undefined) tag = "latest";
  const reference: ImageReference = {
    registry,
    path,
    ...(tag === undefined ? {} : { tag }),
    ...(digest === undefined ? {} : { digest }),
  };
  return { ok: true, reference };
}

function checkDigest(digest: string): [ReferenceErrorReason, string] | undefined {
  const match = DIGEST.exec(digest);
  if (match === null) {
    return [
      "invalid-digest",
      `invalid digest ${JSON.stringify(truncate(digest))}: expected algorithm:hex, e.g. sha256:<64 hex digits>`,
    ];
  }
  const algorithm = match[1] ?? "";
  const hex = match[2] ?? "";
  const length = DIGEST_HEX_LENGTH.get(algorithm);
  if (length === undefined) {
    return [
      "unsupported-digest",
      `unsupported digest algorithm ${JSON.stringify(algorithm)}: use sha256, sha384 or sha512`,
    ];
  }
  if (hex.length !== length || hex.toLowerCase() !== hex) {
    return [
      "invalid-digest",
      `invalid ${algorithm} digest: expected ${length} lowercase hex digits, got ${hex.length}`,
    ];
  }
  return undefined;
}

/** Parses or throws {@linkcode ImageReferenceError}. */
export function parseReferenceOrThrow(input: unknown): ImageReference {
  const result = parseReference(input);
  if (!result.ok) throw result.error;
  return result.reference;
}

/** `registry/path`, the reference's name without tag or digest. */
export function formatName(reference: ImageReference): string {
  return `${reference.registry}/${reference.path}`;
}

/** `:tag@digest`, whichever parts are present. */
export function formatSuffix(reference: ImageReference): string {
  return (reference.tag === undefined ? "" : `:${reference.tag}`) +
    (reference.digest === undefined ? "" : `@${reference.digest}`);
}

/** The fully qualified form, e.g. `docker.io/library/nginx:latest`. */
export function formatReference(reference: ImageReference): string {
  return formatName(reference) + formatSuffix(reference);
}

/** Normalizes `input` to its fully qualified string, or undefined when it is invalid. */
export function normalizeReference(input: string): string | undefined {
  const result = parseReference(input);
  return result.ok ? formatReference(result.reference) : undefined;
}

/** True when two references name the same image once normalized (`nginx` and `docker.io/library/nginx:latest`). */
export function sameImage(a: string, b: string): boolean {
  return a === b || (normalizeReference(a) ?? a) === (normalizeReference(b) ?? b);
}

/**
 * The shortest form people write, e.g. `nginx:latest`, `bitnami/redis:7`. It always parses back to the same
 * reference: a Docker Hub path whose first component would read as a registry (`docker.io/foo.bar/baz`,
 * `docker.io/localhost/app`) keeps its `docker.io/` prefix, where docker's FamiliarString would drop it.
 */
export function formatFamiliar(reference: ImageReference): string {
  let name = formatName(reference);
  if (reference.registry === DOCKER_HUB) {
    const official = reference.path.startsWith(OFFICIAL_REPO_PREFIX) &&
      !reference.path.slice(OFFICIAL_REPO_PREFIX.length).includes("/");
    const slash = reference.path.indexOf("/");
    const first = slash < 0 ? reference.path : reference.path.slice(0, slash);
    if (official) name = reference.path.slice(OFFICIAL_REPO_PREFIX.length);
    else if (!isRegistryComponent(first)) name = reference.path;
  }
  return name + formatSuffix(reference);
}
