// Required platforms of a verified rule: their syntax, and the verification key that carries them to lib/verify.

/** `os/architecture[/variant]`, as in an OCI index (`linux/amd64`, `linux/arm64/v8`). */
const PLATFORM_PATTERN = /^[a-z0-9_.-]+\/[a-z0-9_.-]+(\/[a-z0-9_.-]+)?$/i;

/** Separates a reference from its required platforms in a verification key (never part of a reference). */
const PLATFORMS_MARK = " platforms=";

/** Undefined when `text` is `os/architecture[/variant]`, else why not. */
export function platformProblem(text: string): string | undefined {
  return PLATFORM_PATTERN.test(text) ? undefined : `expected os/architecture[/variant] such as linux/amd64`;
}

/**
 * The verification key of `reference` under `platforms`: the reference itself when none are required, else the
 * reference with the sorted platforms appended, so answers are cached per reference and platform set.
 */
export function withPlatforms(reference: string, platforms: readonly string[] | undefined): string {
  if (platforms === undefined || platforms.length === 0) return reference;
  return `${reference}${PLATFORMS_MARK}${[...new Set(platforms)].sort().join(",")}`;
}

/** The reference and required platforms of a verification key made by {@linkcode withPlatforms}. */
export function splitPlatforms(key: string): { reference: string; platforms: readonly string[] } {
  const at = key.indexOf(PLATFORMS_MARK);
  if (at < 0) return { reference: key, platforms: [] };
  return {
    reference: key.slice(0, at),
    platforms: key.slice(at + PLATFORMS_MARK.length).split(",").filter((p) => p !== ""),
  };
}
