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
  | "catastrophic-pattern"
  | "unverified-pattern"
  | "invalid-replacement"
  | "conflict"
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
}

/** Formats `file:line:col: error: message` (parts omitted when unknown). */
export function formatProblem(problem: Problem): string {
  const where = [problem.source, problem.line, problem.column].filter((part) => part !== undefined).join(":");
  return `${where === "" ? "" : `${where}: `}${problem.severity}: ${problem.message}`;
}

/** True when any problem is an error. */
export function hasErrors(problems: readonly Problem[]): boolean {
  return problems.some((problem) => problem.severity === "error");
}

/** Messages of problems shown in one summary line; the rest are counted. */
const LISTED_PROBLEMS = 5;

/** The first few problems' messages in one line, `…; and 3 more`: for a status condition or a log line. */
export function joinProblems(problems: readonly Problem[]): string {
  const shown = problems.slice(0, LISTED_PROBLEMS).map((problem) => problem.message).join("; ");
  const more = problems.length - LISTED_PROBLEMS;
  return more > 0 ? `${shown}; and ${more} more` : shown;
}

/** metav1.Condition allows 32768 characters in a message. */
const MESSAGE_LIMIT = 32768;

/** A message cut to what a status condition holds. */
export function limitMessage(message: string): string {
  return message.length <= MESSAGE_LIMIT ? message : `${message.slice(0, MESSAGE_LIMIT - 1)}…`;
}

/** Thrown by the `…OrThrow` helpers: carries every problem found. */
export class RuleError extends Error {
  override name = "RuleError";
  readonly problems: readonly Problem[];
  constructor(action: string, problems: readonly Problem[]) {
    const errors = problems.filter((problem) => problem.severity === "error");
    super(`${action}: ${errors.map(formatProblem).join("; ")}`);
    this.problems = problems;
  }
}
