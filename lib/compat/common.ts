// What every foreign-format reader produces: our objects as plain data, where each came from, and named differences.

import type { Position } from "../rules/documents.ts";
import type { FieldPath, Problem, ProblemCode } from "../rules/problem.ts";
import type { PodOptOut } from "../rules/compile.ts";

/** Formats of other tools that mirrorhook reads. */
export const FOREIGN_FORMATS = ["flemzord", "imageswap", "proxy-url", "imagemap"] as const;
export type ForeignFormat = (typeof FOREIGN_FORMATS)[number];

/** How each format is named in messages. */
export const TOOL_NAMES: Readonly<Record<ForeignFormat, string>> = {
  flemzord: "mutating-registry-webhook",
  imageswap: "ImageSwap",
  "proxy-url": "k8s-proxy-image-swapper",
  imagemap: "kubernetes-image-mapper",
};

/** 1-based line and column in a source text (defined where documents are parsed). */
export type { Position };

/**
 * One of our objects translated from a foreign source, not yet validated: it goes through the same
 * `validateObject` as a YAML document, so a file and its `mirrorhook import` output load identically.
 */
export interface TranslatedObject {
  /** A ClusterImageRewrite or ImageRewrite as plain data. */
  readonly raw: Record<string, unknown>;
  /** Where a field of the translated object came from in the source. */
  readonly locate: (path: FieldPath) => Position | undefined;
  /** Comments for `mirrorhook import`: on the object, and per rule index. */
  readonly comments: {
    readonly object: readonly string[];
    readonly rules: ReadonlyMap<number, readonly string[]>;
  };
}

/** A Pod opt-out the other tool honoured, which the admission layer must honour too; where it was read. */
export interface ForeignOptOut extends PodOptOut {
  readonly format: ForeignFormat;
  readonly source: string;
}

/** Result of reading one foreign source. */
export interface Translation {
  readonly format: ForeignFormat;
  readonly objects: readonly TranslatedObject[];
  /** Parse errors and differences from the other tool, positioned in the source. */
  readonly problems: readonly Problem[];
  readonly optOuts: readonly ForeignOptOut[];
}

/**
 * Named behaviours where the other tool differs from mirrorhook (or from what its configuration says).
 * Tests assert these names, never message wording.
 */
export type Behaviour =
  // Reference handling that the other tool gets wrong and mirrorhook does not reproduce.
  | "library-dropped"
  | "library-map-short-names-only"
  | "library-map-without-registry-map"
  | "registry-read-as-docker-hub"
  | "registry-duplicated"
  | "path-dropped"
  | "port-fallback"
  | "index-docker-io"
  | "no-default-tag"
  | "prefix-stacking"
  | "exact-as-written"
  | "invalid-output"
  // Configuration the other tool reads differently from how it looks.
  | "trailing-comment"
  | "deprecated-separator"
  | "invalid-line"
  | "no-default"
  | "empty-noswap-item"
  | "duplicate-key"
  | "key-never-used"
  | "empty-target"
  | "go-empty-expansion"
  | "replace-all"
  | "rule-order"
  | "empty-label-value"
  | "ignored-field"
  | "no-namespace"
  | "scheme-stripped"
  | "ignored-images";

/** A problem about a foreign source, carrying the behaviour it is about. */
export interface CompatProblem extends Problem {
  readonly behaviour?: Behaviour;
  /** The message without its `Check line N of file:` lead, for comments in `mirrorhook import` output. */
  readonly detail?: string;
}

/**
 * Code for warnings about a differing behaviour. problem.ts has no dedicated code yet; `ignored` is the
 * closest ("the source says X; X is not what happens"), and `behaviour` names the difference.
 */
const DIFFERENCE_CODE: ProblemCode = "differs";

/** Options of {@linkcode compatProblem}. */
export interface CompatProblemOptions {
  readonly source: string;
  readonly at?: Position | undefined;
  readonly severity?: Problem["severity"];
  readonly code?: ProblemCode;
  readonly behaviour?: Behaviour;
  readonly object?: string;
}

/** Builds a problem about a foreign source: `Check maps:3: ...` for warnings, `Cannot read maps:3: ...` for errors. */
export function compatProblem(detail: string, options: CompatProblemOptions): CompatProblem {
  const severity = options.severity ?? "warning";
  const line = options.at === undefined ? "" : ` line ${options.at.line} of`;
  const lead = severity === "error" ? "Cannot read" : "Check";
  return {
    severity,
    code: options.code ?? DIFFERENCE_CODE,
    message: `${lead}${line} ${options.source}: ${detail}${
      options.behaviour === undefined ? "" : ` [${options.behaviour}]`
    }`,
    path: "",
    fieldPath: [],
    source: options.source,
    ...(options.at === undefined ? {} : { line: options.at.line, column: options.at.column }),
    ...(options.object === undefined ? {} : { object: options.object }),
    ...(options.behaviour === undefined ? {} : { behaviour: options.behaviour }),
    detail: `${detail}${options.behaviour === undefined ? "" : ` [${options.behaviour}]`}`,
  };
}

/** The behaviour a problem names, if any. */
export function behaviourOf(problem: Problem): Behaviour | undefined {
  return (problem as CompatProblem).behaviour;
}

const NAME_MAX = 63;

/**
 * An object name derived from a file name: `imageswap-` + the base name without extension, lowercased, invalid
 * characters turned into `-` (no repeated prefix: `imageswap-maps.conf` gives `imageswap-maps`).
 */
export function nameFromSource(prefix: string, source: string): string {
  const base = source.replace(/\/+$/, "").split(/[\\/]/).at(-1) ?? "";
  const stem = base.replace(/^\.+/, "").replace(/\.[^.]*$/, "");
  let slug = stem.toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/-+/g, "-").replace(/^-|-$/g, "");
  if (slug === prefix || slug.startsWith(`${prefix}-`)) slug = slug.slice(prefix.length + 1);
  const name = slug === "" ? prefix : `${prefix}-${slug}`;
  return name.slice(0, NAME_MAX).replace(/-+$/, "");
}

/**
 * Escapes `text` for use inside a regular expression. Unlike `RegExp.escape`, it leaves letters and digits
 * alone (`RegExp.escape("twr.io")` is `\x74wr\.io`), so imported patterns stay readable; both are exact.
 */
export function escapePattern(text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|]/g, "\\$&");
}

/** JSON-quoted value for messages. */
export function q(value: string): string {
  return JSON.stringify(value);
}
