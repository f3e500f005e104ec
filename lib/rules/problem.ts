// Problems found while reading or compiling rules: severity, a stable code, where, and what.

/** Stable problem codes; tests and metrics use these, never the message wording. */
export type ProblemCode =
  | "yaml-syntax"
  /** A rule path that cannot be read: missing, a dangling link, a loop of links, a directory, no permission. */
  | "read-error"
  | "file-too-large"
  /** More rules in all than the supported ceiling. */
  | "too-many-rules"
  /** A reload found no rule object where some were in force (an emptied ConfigMap). */
  | "no-rules"
  /** `mirror: true` on a namespaced ImageRewrite: a tenant may not make the webhook copy from any registry. */
  | "mirror-not-allowed"
  | "not-an-object"
  | "unknown-kind"
  | "unknown-field"
  | "required"
  | "type"
  | "invalid-value"
  | "rule-kind"
  | "keep-and-replace"
  | "invalid-reference"
  | "invalid-prefix"
  | "invalid-regex"
  /** A `match` pattern longer than the limit. */
  | "pattern-too-long"
  /** A `match` pattern V8's linear-time engine cannot run (back-references, look-arounds, large counted repetition). */
  | "unbounded-pattern"
  | "catastrophic-pattern"
  /** Screening the patterns was refused (busy, or past its deadline): nothing was loaded. */
  | "unscreened-pattern"
  | "invalid-replacement"
  | "conflict"
  /** A namespaced object decides, in its own namespace only, what a cluster-wide object decides elsewhere. */
  | "override"
  /** A rule that never decides: another rule always decides the same references first. */
  | "never-decides"
  | "duplicate"
  | "duplicate-object"
  | "double-escape"
  | "self-match"
  /** A plain key that YAML 1.1 parsers (kubectl, sigs.k8s.io/yaml) read as a boolean: `on:` becomes `true:`. */
  | "yaml-boolean-key"
  | "ignored"
  /** Another tool's configuration, read as is: that tool behaves differently here (named in `behaviour`). */
  | "differs";

/** A field path as segments: `["spec", "rules", 3, "match"]`. */
export type FieldPath = readonly (string | number)[];

const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Formats a field path the way kubectl does: `spec.rules[3].match`, `metadata.labels["a.b/c"]`. */
export function formatPath(path: FieldPath): string {
  let out = "";
  for (const segment of path) {
    if (typeof segment === "number") out += `[${segment}]`;
    else if (PLAIN_KEY.test(segment)) out += out === "" ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

/** The other side of a problem between two rules or objects (a conflict, an override, a rule that never decides). */
export interface RelatedPlace {
  /** `ClusterImageRewrite "hub"`. */
  readonly object: string;
  readonly rule?: number;
  readonly path: string;
  readonly fieldPath: FieldPath;
  readonly source?: string;
  readonly line?: number;
  readonly column?: number;
}

/** One problem with a rule source or object. */
export interface Problem {
  readonly severity: "error" | "warning";
  readonly code: ProblemCode;
  readonly message: string;
  /** Field path inside the object, e.g. `spec.rules[3].match`; empty for whole-file problems. */
  readonly path: string;
  /** The same path as segments, for locating it in a file. */
  readonly fieldPath: FieldPath;
  /** `ClusterImageRewrite "hub"` or `ImageRewrite "team/hub"`, when known. */
  readonly object?: string;
  /** Index into `spec.rules`, when the problem is about one rule. */
  readonly rule?: number;
  /** File name, when the object came from a file. */
  readonly source?: string;
  /** 1-based line and column in the file. */
  readonly line?: number;
  readonly column?: number;
  /** The other rule or object involved, when the problem is between two. */
  readonly related?: RelatedPlace;
}

/** Formats `file:line:col: error: message (see other.yaml:3:7)` (parts omitted when unknown). */
export function formatProblem(problem: Problem): string {
  const where = formatPlace(problem);
  const related = problem.related === undefined ? "" : formatPlace(problem.related);
  const see = related === "" || related === where ? "" : ` (see ${related})`;
  return `${where === "" ? "" : `${where}: `}${problem.severity}: ${problem.message}${see}`;
}

/** `file:line:col`, parts omitted when unknown. */
function formatPlace(place: { source?: string; line?: number; column?: number }): string {
  return [place.source, place.line, place.column].filter((part) => part !== undefined).join(":");
}

/** True when any problem is an error. */
export function hasErrors(problems: readonly Problem[]): boolean {
  return problems.some((problem) => problem.severity === "error");
}

/** Messages of problems shown in one summary line; the rest are counted. */
const LISTED_PROBLEMS = 5;

/** The first few problems' messages in one line, `...; and 3 more`: for a status condition or a log line. */
export function joinProblems(problems: readonly Problem[]): string {
  const shown = problems.slice(0, LISTED_PROBLEMS).map((problem) => problem.message).join("; ");
  const more = problems.length - LISTED_PROBLEMS;
  return more > 0 ? `${shown}; and ${more} more` : shown;
}

/** metav1.Condition allows 32768 characters in a message. */
const MESSAGE_LIMIT = 32768;

/** A message cut to what a status condition holds. */
export function limitMessage(message: string): string {
  return message.length <= MESSAGE_LIMIT ? message : `${message.slice(0, MESSAGE_LIMIT - 1)}\u2026`;
}

/**
 * A problem about an object (or one of its rules, when `path` starts with `spec.rules[i]`): the message
 * names the rule and object, e.g. `Cannot compile rule 3 of ClusterImageRewrite "hub": spec.rules[3].match: ...`.
 */
export function objectProblem(
  severity: Problem["severity"],
  code: ProblemCode,
  at: { readonly object: string; readonly path: FieldPath },
  detail: string,
): Problem {
  const { object, path } = at;
  const rule = path[0] === "spec" && path[1] === "rules" && typeof path[2] === "number" ? path[2] : undefined;
  const where = formatPath(path);
  const subject = rule === undefined ? object : `rule ${rule} of ${object}`;
  return {
    severity,
    code,
    message: `${severity === "error" ? "Cannot compile" : "Check"} ${subject}: ${
      where === "" ? "" : `${where}: `
    }${detail}`,
    path: where,
    fieldPath: path,
    object,
    ...(rule === undefined ? {} : { rule }),
  };
}
