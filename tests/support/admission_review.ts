// Test support: the one builder of AdmissionReview envelopes (`admission.k8s.io/v1`) that the suites send.

/** A group, version and kind, as an AdmissionRequest names the object's type. */
export interface GroupVersionKind {
  readonly group: string;
  readonly version: string;
  readonly kind: string;
}

/** A group, version and resource, as an AdmissionRequest names the REST resource. */
export interface GroupVersionResource {
  readonly group: string;
  readonly version: string;
  readonly resource: string;
}

/** What a test says about the request; everything left out is left out of the envelope too. */
export interface ReviewOptions {
  /** The object admitted; its `apiVersion` (default `v1`) and `kind` (default `Pod`) give `kind` and `resource`. */
  readonly object: unknown;
  /** Default: a random UUID. */
  readonly uid?: string;
  /** Default: `CREATE`. */
  readonly operation?: string;
  readonly namespace?: string;
  readonly name?: string;
  /** Default: from the object's `apiVersion` and `kind`. */
  readonly kind?: GroupVersionKind;
  /** Default: the kind's group and version, the kind in lower case plus `s` (`Pod` → `pods`). */
  readonly resource?: GroupVersionResource;
  readonly dryRun?: boolean;
  readonly userInfo?: Record<string, unknown>;
  /**
   * Also the fields kube-apiserver sends on CREATE that the webhook does not read: `requestKind`,
   * `requestResource`, `oldObject: null`, `dryRun: false` (unless given) and the `CreateOptions`.
   */
  readonly asApiServer?: boolean;
  /** Fields of the request written last, over everything above (for malformed or unusual requests). */
  readonly fields?: Record<string, unknown>;
}

/** The type an object declares: `apiVersion` split into group and version, and `kind`. */
export function kindOf(object: unknown): GroupVersionKind {
  const record = typeof object === "object" && object !== null ? object as Record<string, unknown> : {};
  const apiVersion = typeof record["apiVersion"] === "string" ? record["apiVersion"] : "v1";
  const kind = typeof record["kind"] === "string" ? record["kind"] : "Pod";
  const slash = apiVersion.lastIndexOf("/");
  return slash < 0
    ? { group: "", version: apiVersion, kind }
    : { group: apiVersion.slice(0, slash), version: apiVersion.slice(slash + 1), kind };
}

/** An AdmissionReview asking about `options.object`, as kube-apiserver posts it to `/mutate` or `/validate`. */
export function admissionReview(options: ReviewOptions): Record<string, unknown> {
  const kind = options.kind ?? kindOf(options.object);
  const resource = options.resource ??
    { group: kind.group, version: kind.version, resource: `${kind.kind.toLowerCase()}s` };
  const apiServer = options.asApiServer === true;
  return {
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid: options.uid ?? crypto.randomUUID(),
      kind: { ...kind },
      resource: { ...resource },
      ...(apiServer ? { requestKind: { ...kind }, requestResource: { ...resource } } : {}),
      ...(options.name === undefined ? {} : { name: options.name }),
      ...(options.namespace === undefined ? {} : { namespace: options.namespace }),
      operation: options.operation ?? "CREATE",
      ...(options.userInfo === undefined ? {} : { userInfo: options.userInfo }),
      object: options.object,
      ...(apiServer ? { oldObject: null } : {}),
      ...(options.dryRun === undefined ? (apiServer ? { dryRun: false } : {}) : { dryRun: options.dryRun }),
      ...(apiServer ? { options: { kind: "CreateOptions", apiVersion: "meta.k8s.io/v1" } } : {}),
      ...options.fields,
    },
  };
}
