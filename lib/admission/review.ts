// AdmissionReview v1: narrowing the request from unknown, and the one place responses are built.

import { isRecord } from "../util/json.ts";
import { TextMemo } from "../util/text_memo.ts";
import { truncate } from "../util/truncate.ts";
/** The only AdmissionReview version served. */
export const ADMISSION_API_VERSION = "admission.k8s.io/v1";

/** `group/version/kind` or `group/version/resource`. */
export interface GroupVersionKind {
  readonly group: string;
  readonly version: string;
  readonly kind: string;
}

/** The fields of `request` mirrorhook reads. */
export interface AdmissionRequest {
  readonly uid: string;
  readonly kind: GroupVersionKind;
  readonly resource: { readonly group: string; readonly version: string; readonly resource: string };
  readonly subResource?: string;
  readonly name?: string;
  readonly namespace?: string;
  readonly operation: string;
  readonly object?: unknown;
  readonly oldObject?: unknown;
  readonly dryRun: boolean;
  readonly username?: string;
}

/** Why a body is not an AdmissionReview we can answer; `status` is the HTTP and AdmissionReview code. */
export class ReviewError extends Error {
  override name = "ReviewError";
  readonly status: number;
  readonly uid: string | undefined;
  constructor(status: number, message: string, uid?: string) {
    super(message);
    this.status = status;
    this.uid = uid;
  }
}

function str(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

/** Narrows a parsed body to an AdmissionRequest, or throws {@linkcode ReviewError} (400) naming the field. */
export function decodeReview(body: unknown): AdmissionRequest {
  if (!isRecord(body)) throw new ReviewError(400, "Cannot decode AdmissionReview: the body is not a JSON object");
  const request = body["request"];
  const uid = isRecord(request) ? str(request["uid"]) : undefined;
  if (body["kind"] !== "AdmissionReview") {
    throw new ReviewError(
      400,
      `Cannot decode AdmissionReview: kind is ${
        truncate(JSON.stringify(body["kind"] ?? null))
      }, expected "AdmissionReview"`,
      uid,
    );
  }
  if (body["apiVersion"] !== ADMISSION_API_VERSION) {
    throw new ReviewError(
      400,
      `Cannot decode AdmissionReview: apiVersion is ${
        truncate(JSON.stringify(body["apiVersion"] ?? null))
      }, expected "${ADMISSION_API_VERSION}"`,
      uid,
    );
  }
  if (!isRecord(request)) throw new ReviewError(400, "Cannot decode AdmissionReview: request is missing");
  if (uid === undefined || uid === "") {
    throw new ReviewError(400, "Cannot decode AdmissionReview: request.uid is missing");
  }
  const kind = request["kind"];
  const resource = request["resource"];
  const operation = str(request["operation"]);
  if (!isRecord(kind) || typeof kind["kind"] !== "string" || typeof kind["version"] !== "string") {
    throw new ReviewError(400, "Cannot decode AdmissionReview: request.kind must be {group, version, kind}", uid);
  }
  if (!isRecord(resource) || typeof resource["resource"] !== "string") {
    throw new ReviewError(
      400,
      "Cannot decode AdmissionReview: request.resource must be {group, version, resource}",
      uid,
    );
  }
  if (operation === undefined) {
    throw new ReviewError(400, "Cannot decode AdmissionReview: request.operation is missing", uid);
  }
  const userInfo = request["userInfo"];
  const subResource = str(request["subResource"]);
  const name = str(request["name"]);
  const namespace = str(request["namespace"]);
  const username = isRecord(userInfo) ? str(userInfo["username"]) : undefined;
  const decoded: { -readonly [K in keyof AdmissionRequest]: AdmissionRequest[K] } = {
    uid,
    kind: { group: str(kind["group"]) ?? "", version: kind["version"], kind: kind["kind"] },
    resource: {
      group: str(resource["group"]) ?? "",
      version: str(resource["version"]) ?? "",
      resource: resource["resource"],
    },
    operation,
    dryRun: request["dryRun"] === true,
  };
  if (subResource !== undefined && subResource !== "") decoded.subResource = subResource;
  if (name !== undefined && name !== "") decoded.name = name;
  if (namespace !== undefined && namespace !== "") decoded.namespace = namespace;
  const object = request["object"];
  if (object !== undefined && object !== null) decoded.object = object;
  const oldObject = request["oldObject"];
  if (oldObject !== undefined && oldObject !== null) decoded.oldObject = oldObject;
  if (username !== undefined) decoded.username = username;
  return decoded;
}

/** What an allowed response carries. */
export interface AllowOptions {
  readonly patch?: readonly unknown[];
  readonly warnings?: readonly string[];
  readonly auditAnnotations?: Readonly<Record<string, string>>;
}

/**
 * The API server keeps warnings up to 4096 characters in total and may cut each at 256, so warnings are
 * bounded by total length, with a last line saying how many were left out.
 */
const MAX_WARNINGS_LENGTH = 4096;
const MAX_WARNING_LENGTH = 256;

const encoder = new TextEncoder();
const NON_ASCII = /[\u0080-\uffff]/;

/** Base64 of the UTF-8 bytes of `text`; ASCII (the usual patch) is its own UTF-8, so btoa takes it directly. */
function toBase64(text: string): string {
  return NON_ASCII.test(text) ? encoder.encode(text).toBase64() : btoa(text);
}

/** The patches of the Pods admitted lately (one template's Pods get the same one), encoded once each. */
const patches = new TextMemo(toBase64, { maxEntries: 256, maxChars: 256 * 1024 });

function boundedWarnings(warnings: readonly string[]): string[] {
  const out: string[] = [];
  let total = 0;
  const reserve = 64; // room for the "more warnings" line
  for (let index = 0; index < warnings.length; index++) {
    const warning = warnings[index] as string;
    const line = warning.length > MAX_WARNING_LENGTH ? `${warning.slice(0, MAX_WARNING_LENGTH - 1)}\u2026` : warning;
    if (total + line.length > MAX_WARNINGS_LENGTH - reserve) {
      out.push(`mirrorhook: ${warnings.length - index} more warning(s) not shown`);
      break;
    }
    out.push(line);
    total += line.length;
  }
  return out;
}

/** `status` of a denied AdmissionReview, as the API server passes it to the client. */
export type AdmissionStatus = {
  readonly code: number;
  readonly message: string;
  readonly reason: string;
  readonly status: "Failure";
  readonly details?: StatusDetails;
};

/** `response` of an AdmissionReview as mirrorhook answers it (a type alias, so it is also a JSON record). */
export type AdmissionResponse = {
  readonly uid: string;
  readonly allowed: boolean;
  readonly patchType?: "JSONPatch";
  /** Base64 of the JSON Patch. */
  readonly patch?: string;
  readonly warnings?: readonly string[];
  readonly auditAnnotations?: Readonly<Record<string, string>>;
  readonly status?: AdmissionStatus;
};

/** The AdmissionReview mirrorhook answers with. */
export type AdmissionReviewAnswer = {
  readonly apiVersion: typeof ADMISSION_API_VERSION;
  readonly kind: "AdmissionReview";
  readonly response: AdmissionResponse;
};

/** An allowed AdmissionReview; a JSONPatch only when `patch` is non-empty. */
export function allowResponse(uid: string, options: AllowOptions = {}): AdmissionReviewAnswer {
  const response: { -readonly [K in keyof AdmissionResponse]: AdmissionResponse[K] } = { uid, allowed: true };
  if (options.patch !== undefined && options.patch.length > 0) {
    response.patchType = "JSONPatch";
    response.patch = patches.get(JSON.stringify(options.patch));
  }
  if (options.warnings !== undefined && options.warnings.length > 0) {
    response.warnings = boundedWarnings(options.warnings);
  }
  if (options.auditAnnotations !== undefined && Object.keys(options.auditAnnotations).length > 0) {
    response.auditAnnotations = options.auditAnnotations;
  }
  return { apiVersion: ADMISSION_API_VERSION, kind: "AdmissionReview", response };
}

/** The JSON text of an answer made by {@linkcode answerWithUid} (a symbol key: JSON.stringify leaves it out). */
const ANSWER_TEXT = Symbol("mirrorhook.answerText");

/** The text of an answer around its uid, by the answer it was made from; null when the uid does not lead it. */
const answerParts = new WeakMap<AdmissionReviewAnswer, readonly [string, string] | null>();

/**
 * `answer` for another request: the same answer with `uid` in place of its own, carrying its JSON text (built from
 * `answer`'s, which is made once) for {@linkcode answerText}.
 */
export function answerWithUid(answer: AdmissionReviewAnswer, uid: string): AdmissionReviewAnswer {
  const made: AdmissionReviewAnswer = { ...answer, response: { ...answer.response, uid } };
  let parts = answerParts.get(answer);
  if (parts === undefined) {
    const text = JSON.stringify(answer);
    const head = `{"apiVersion":${JSON.stringify(answer.apiVersion)},"kind":${
      JSON.stringify(answer.kind)
    },"response":{"uid":`;
    const lead = head + JSON.stringify(answer.response.uid);
    parts = text.startsWith(lead) ? [head, text.slice(lead.length)] : null;
    answerParts.set(answer, parts);
  }
  if (parts !== null) {
    Object.defineProperty(made, ANSWER_TEXT, { value: parts[0] + JSON.stringify(uid) + parts[1] });
  }
  return made;
}

/** `JSON.stringify(answer)`, made already when the answer came from {@linkcode answerWithUid}. */
export function answerText(answer: AdmissionReviewAnswer): string {
  return (answer as { [ANSWER_TEXT]?: string })[ANSWER_TEXT] ?? JSON.stringify(answer);
}

/** One field error in `status.details.causes`, as the API server's own validation reports it. */
export interface StatusCause {
  /** `FieldValueInvalid`, `FieldValueRequired`, ... */
  readonly reason: string;
  readonly message: string;
  /** Field path, e.g. `spec.rules[3].match`. */
  readonly field?: string;
}

/** `status.details` of a denial: the object denied and why, field by field. */
export interface StatusDetails {
  readonly name?: string;
  readonly group?: string;
  /** The resource (plural), as the API server fills it. */
  readonly kind?: string;
  readonly causes?: readonly StatusCause[];
}

/** What a denial carries: its HTTP-style code and message, and optionally warnings and details. */
export interface DenyOptions {
  readonly code: number;
  readonly message: string;
  readonly warnings?: readonly string[];
  readonly details?: StatusDetails;
}

/**
 * A denied AdmissionReview with `status.code` and a message; `uid` echoed when known. The API server
 * passes `status` (details included) through to the client, prefixed with the webhook's name.
 */
export function denyResponse(uid: string | undefined, options: DenyOptions): AdmissionReviewAnswer {
  const { code, message, warnings = [], details } = options;
  const status: AdmissionStatus = {
    code,
    message,
    reason: reasonFor(code),
    status: "Failure",
    ...(details === undefined ? {} : { details }),
  };
  const response: AdmissionResponse = {
    uid: uid ?? "",
    allowed: false,
    status,
    ...(warnings.length > 0 ? { warnings: boundedWarnings(warnings) } : {}),
  };
  return { apiVersion: ADMISSION_API_VERSION, kind: "AdmissionReview", response };
}

function reasonFor(code: number): string {
  switch (code) {
    case 400:
      return "BadRequest";
    case 413:
      return "RequestEntityTooLarge";
    case 415:
      return "UnsupportedMediaType";
    case 422:
      return "Invalid";
    default:
      return code >= 500 ? "InternalError" : "BadRequest";
  }
}
