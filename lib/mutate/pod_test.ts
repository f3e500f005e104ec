// Table tests for mutatePod: every row's patch is applied with fast-json-patch and the result re-admitted.

import assert from "node:assert/strict";
import jsonpatch, { type Operation } from "fast-json-patch";
import {
  MIRROR_POD_ANNOTATION,
  type MutateOptions,
  mutatePod,
  OPT_OUT_LABEL,
  ORIGINAL_IMAGES_ANNOTATION,
  REWRITTEN_LABEL,
  type SkipReason,
} from "./pod.ts";
import { compileRules } from "../../tests/support/rules.ts";

/** The example from DESIGN.md without its scope, so it applies everywhere. */
const HUB_RULES = compileRules(`apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: docker-hub-cache
spec:
  rules:
    - exact: ghcr.io/fantasy/coolstuff:v1.0
      replace: my-registry.com/patched-coolstuff:latest
    - prefix: docker.io/library
      replace: harbor.example.com/dockerhub/library
    - prefix: docker.io
      replace: harbor.example.com/dockerhub
    - match: '^(gcr\\.io|quay\\.io|ghcr\\.io)/(.*)$'
      replace: cache.internal.com/$1/$2
    - prefix: internal-registry.company.com
      keep: true
`);

/** The example from DESIGN.md as written: canary and staging only, and only when namespace labels are known. */
const SCOPED_RULES = compileRules(`apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: docker-hub-cache
spec:
  priority: 0
  namespaces: [canary, staging]
  namespaceSelector: {}
  podSelector: {}
  rules:
    - prefix: docker.io/library
      replace: harbor.example.com/dockerhub/library
`);

/** A rule that matches its own output. */
const SELF_MATCH_RULES = compileRules(`apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: everything-to-cache
spec:
  rules:
    - match: '^(.*)$'
      replace: cache.io/$1
`);

/** Valid for most tags, invalid when the tag (moved into the path) has uppercase letters. */
const TAG_AS_PATH_RULES = compileRules(`apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: tag-as-path
spec:
  rules:
    - match: '^docker\\.io/library/([a-z]+):([A-Za-z0-9.]+)$'
      replace: cache.io/$2/$1
`);

const HARBOR = "harbor.example.com/dockerhub";
const DIGEST = `sha256:${"a".repeat(64)}`;
const ANNOTATION_POINTER = "/metadata/annotations/mirrorhook.dev~1original-images";
const REWRITTEN = { [REWRITTEN_LABEL]: "true" } as const;

type Json = Record<string, unknown>;

interface PodParts {
  readonly namespace?: string;
  readonly containers?: Readonly<Record<string, string>>;
  readonly initContainers?: Readonly<Record<string, string>>;
  readonly ephemeralContainers?: Readonly<Record<string, string>>;
  /** Volume name → image reference; null for an emptyDir volume. */
  readonly volumes?: Readonly<Record<string, string | null>>;
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
  /** Written into the original-images annotation as JSON. */
  readonly originals?: Readonly<Record<string, string>>;
}

function makePod(parts: PodParts): Json {
  const annotations = parts.originals === undefined
    ? parts.annotations
    : { ...parts.annotations, [ORIGINAL_IMAGES_ANNOTATION]: JSON.stringify(parts.originals) };
  const containers = (list: Readonly<Record<string, string>> | undefined) =>
    Object.entries(list ?? {}).map(([name, image]) => ({ name, image, imagePullPolicy: "IfNotPresent" }));
  const spec: Json = { containers: containers(parts.containers), restartPolicy: "Always" };
  if (parts.initContainers !== undefined) spec["initContainers"] = containers(parts.initContainers);
  if (parts.ephemeralContainers !== undefined) spec["ephemeralContainers"] = containers(parts.ephemeralContainers);
  if (parts.volumes !== undefined) {
    spec["volumes"] = Object.entries(parts.volumes).map(([name, reference]) =>
      reference === null ? { name, emptyDir: {} } : { name, image: { reference, pullPolicy: "IfNotPresent" } }
    );
  }
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: "web-7d4b9c",
      namespace: parts.namespace ?? "default",
      uid: "0b8f4c1e-5d7a-4f0e-9a57-2d1c3b4a5e6f",
      ...(parts.labels === undefined ? {} : { labels: parts.labels }),
      ...(annotations === undefined ? {} : { annotations }),
    },
    spec,
  };
}

function isRecord(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A copy of `pod` with the original-images annotation parsed, so key order does not matter. */
function decodeOriginals(pod: unknown): unknown {
  const copy = structuredClone(pod);
  if (!isRecord(copy) || !isRecord(copy["metadata"])) return copy;
  const annotations = copy["metadata"]["annotations"];
  if (!isRecord(annotations) || typeof annotations[ORIGINAL_IMAGES_ANNOTATION] !== "string") return copy;
  try {
    annotations[ORIGINAL_IMAGES_ANNOTATION] = JSON.parse(annotations[ORIGINAL_IMAGES_ANNOTATION]);
  } catch {
    // Garbage stays as written.
  }
  return copy;
}

function valueAt(document: unknown, pointer: string): unknown {
  let node = document;
  for (const raw of pointer.split("/").slice(1)) {
    const segment = raw.replaceAll("~1", "/").replaceAll("~0", "~");
    if (Array.isArray(node)) node = node[Number(segment)];
    else if (isRecord(node)) node = Object.hasOwn(node, segment) ? node[segment] : undefined;
    else return undefined;
  }
  return node;
}

const IMAGE_PATH =
  /^\/spec\/(?:(?:containers|initContainers|ephemeralContainers)\/\d+\/image|volumes\/\d+\/image\/reference)$/;
const MAP_PATHS = new Set(["/metadata", "/metadata/annotations", "/metadata/labels"]);
const OWNED_PATHS = new Set([ANNOTATION_POINTER, "/metadata/labels/mirrorhook.dev~1rewritten"]);

interface Row {
  readonly name: string;
  readonly pod: unknown;
  readonly options?: Partial<MutateOptions>;
  /** The Pod after the patch; the input when absent (no change expected). */
  readonly after?: unknown;
  readonly skipped?: SkipReason;
  /** `action:reason` of each problem, in slot order. */
  readonly problems?: readonly string[];
  /** Exact warnings, only where the wording is a documented format. */
  readonly warnings?: readonly string[];
}

const isOwnPod: NonNullable<MutateOptions["isOwnPod"]> = (pod) => pod.labels["app.kubernetes.io/name"] === "mirrorhook";

const ROWS: readonly Row[] = [
  // Where images live.
  {
    name: "containers: nginx, other labels and annotations kept",
    pod: makePod({
      containers: { web: "nginx" },
      labels: { app: "web" },
      annotations: { "team.example.com/owner": "a" },
    }),
    after: makePod({
      containers: { web: `${HARBOR}/library/nginx:latest` },
      labels: { app: "web", ...REWRITTEN },
      annotations: { "team.example.com/owner": "a" },
      originals: { web: "nginx" },
    }),
    warnings: [
      "mirrorhook: rewrote nginx to harbor.example.com/dockerhub/library/nginx:latest (ClusterImageRewrite docker-hub-cache, rule 1)",
    ],
  },
  {
    name: "initContainers: busybox:1.36 beside a kept image",
    pod: makePod({
      containers: { web: "internal-registry.company.com/web:2" },
      initContainers: { setup: "busybox:1.36" },
      labels: { app: "web" },
    }),
    after: makePod({
      containers: { web: "internal-registry.company.com/web:2" },
      initContainers: { setup: `${HARBOR}/library/busybox:1.36` },
      labels: { app: "web", ...REWRITTEN },
      originals: { setup: "busybox:1.36" },
    }),
  },
  {
    name: "ephemeralContainers: nicolaka/netshoot:v0.13",
    pod: makePod({ containers: {}, ephemeralContainers: { debugger: "nicolaka/netshoot:v0.13" }, labels: {} }),
    after: makePod({
      containers: {},
      ephemeralContainers: { debugger: `${HARBOR}/nicolaka/netshoot:v0.13` },
      labels: REWRITTEN,
      originals: { debugger: "nicolaka/netshoot:v0.13" },
    }),
  },
  {
    name: "image volumes: quay.io/org/models:v1 after an emptyDir",
    pod: makePod({ containers: {}, volumes: { scratch: null, models: "quay.io/org/models:v1" }, labels: {} }),
    after: makePod({
      containers: {},
      volumes: { scratch: null, models: "cache.internal.com/quay.io/org/models:v1" },
      labels: REWRITTEN,
      originals: { "volume:models": "quay.io/org/models:v1" },
    }),
  },
  {
    name: "every field at once, with a kept image and an unmatched one",
    pod: makePod({
      containers: {
        web: "nginx:1.27",
        pause: "registry.k8s.io/pause:3.10",
        agent: "internal-registry.company.com/agent:1",
      },
      initContainers: { setup: "gcr.io/distroless/static:nonroot" },
      ephemeralContainers: { debug: "busybox" },
      volumes: { scratch: null, tools: "ghcr.io/fantasy/coolstuff:v1.0" },
      labels: { app: "web" },
    }),
    after: makePod({
      containers: {
        web: `${HARBOR}/library/nginx:1.27`,
        pause: "registry.k8s.io/pause:3.10",
        agent: "internal-registry.company.com/agent:1",
      },
      initContainers: { setup: "cache.internal.com/gcr.io/distroless/static:nonroot" },
      ephemeralContainers: { debug: `${HARBOR}/library/busybox:latest` },
      volumes: { scratch: null, tools: "my-registry.com/patched-coolstuff:latest" },
      labels: { app: "web", ...REWRITTEN },
      originals: {
        web: "nginx:1.27",
        setup: "gcr.io/distroless/static:nonroot",
        debug: "busybox",
        "volume:tools": "ghcr.io/fantasy/coolstuff:v1.0",
      },
    }),
  },
  {
    name: "nginx@sha256 keeps the digest",
    pod: makePod({ containers: { web: `nginx@${DIGEST}` }, labels: {} }),
    after: makePod({
      containers: { web: `${HARBOR}/library/nginx@${DIGEST}` },
      labels: REWRITTEN,
      originals: { web: `nginx@${DIGEST}` },
    }),
  },
  {
    name: "nginx:1.27@sha256 keeps tag and digest",
    pod: makePod({ containers: { web: `nginx:1.27@${DIGEST}` }, labels: {} }),
    after: makePod({
      containers: { web: `${HARBOR}/library/nginx:1.27@${DIGEST}` },
      labels: REWRITTEN,
      originals: { web: `nginx:1.27@${DIGEST}` },
    }),
  },
  {
    name: "index.docker.io/library/nginx",
    pod: makePod({ containers: { web: "index.docker.io/library/nginx" }, labels: {} }),
    after: makePod({
      containers: { web: `${HARBOR}/library/nginx:latest` },
      labels: REWRITTEN,
      originals: { web: "index.docker.io/library/nginx" },
    }),
  },
  {
    name: "container named constructor",
    pod: makePod({ containers: { constructor: "nginx", toString: "redis" }, labels: {} }),
    after: makePod({
      containers: { constructor: `${HARBOR}/library/nginx:latest`, toString: `${HARBOR}/library/redis:latest` },
      labels: REWRITTEN,
      originals: { constructor: "nginx", toString: "redis" },
    }),
  },
  {
    name: "container named __proto__",
    pod: makePod({ containers: { ["__proto__"]: "nginx" }, labels: {} }),
    after: makePod({
      containers: { ["__proto__"]: `${HARBOR}/library/nginx:latest` },
      labels: REWRITTEN,
      originals: { ["__proto__"]: "nginx" },
    }),
  },
  {
    name: "containers without names",
    pod: { kind: "Pod", metadata: { labels: {} }, spec: { containers: [{ image: "nginx" }, { image: "redis" }] } },
    after: {
      kind: "Pod",
      metadata: {
        labels: REWRITTEN,
        annotations: {
          [ORIGINAL_IMAGES_ANNOTATION]: JSON.stringify({ "containers[0]": "nginx", "containers[1]": "redis" }),
        },
      },
      spec: { containers: [{ image: `${HARBOR}/library/nginx:latest` }, { image: `${HARBOR}/library/redis:latest` }] },
    },
  },

  // Metadata shapes.
  {
    name: "no labels",
    pod: makePod({ containers: { web: "nginx" }, annotations: { note: "x" } }),
    after: makePod({
      containers: { web: `${HARBOR}/library/nginx:latest` },
      labels: REWRITTEN,
      annotations: { note: "x" },
      originals: { web: "nginx" },
    }),
  },
  {
    name: "no annotations",
    pod: makePod({ containers: { web: "nginx" }, labels: { app: "web" } }),
    after: makePod({
      containers: { web: `${HARBOR}/library/nginx:latest` },
      labels: { app: "web", ...REWRITTEN },
      originals: { web: "nginx" },
    }),
  },
  {
    name: "no labels and no annotations",
    pod: makePod({ containers: { web: "nginx" } }),
    after: makePod({
      containers: { web: `${HARBOR}/library/nginx:latest` },
      labels: REWRITTEN,
      originals: { web: "nginx" },
    }),
  },
  {
    name: "no metadata at all",
    pod: { apiVersion: "v1", kind: "Pod", spec: { containers: [{ name: "web", image: "nginx" }] } },
    options: { namespace: "default" },
    after: {
      apiVersion: "v1",
      kind: "Pod",
      spec: { containers: [{ name: "web", image: `${HARBOR}/library/nginx:latest` }] },
      metadata: {
        labels: REWRITTEN,
        annotations: { [ORIGINAL_IMAGES_ANNOTATION]: JSON.stringify({ web: "nginx" }) },
      },
    },
  },
  {
    name: "metadata null",
    pod: { kind: "Pod", metadata: null, spec: { containers: [{ name: "web", image: "nginx" }] } },
    after: {
      kind: "Pod",
      metadata: {
        labels: REWRITTEN,
        annotations: { [ORIGINAL_IMAGES_ANNOTATION]: JSON.stringify({ web: "nginx" }) },
      },
      spec: { containers: [{ name: "web", image: `${HARBOR}/library/nginx:latest` }] },
    },
  },
  {
    name: "labels and annotations null",
    pod: {
      kind: "Pod",
      metadata: { name: "p", labels: null, annotations: null },
      spec: { containers: [{ name: "web", image: "nginx" }] },
    },
    after: {
      kind: "Pod",
      metadata: {
        name: "p",
        labels: REWRITTEN,
        annotations: { [ORIGINAL_IMAGES_ANNOTATION]: JSON.stringify({ web: "nginx" }) },
      },
      spec: { containers: [{ name: "web", image: `${HARBOR}/library/nginx:latest` }] },
    },
  },
  {
    name: "no kind: read as a Pod",
    pod: { metadata: { labels: {} }, spec: { containers: [{ name: "web", image: "nginx" }] } },
    after: {
      metadata: { labels: REWRITTEN, annotations: { [ORIGINAL_IMAGES_ANNOTATION]: JSON.stringify({ web: "nginx" }) } },
      spec: { containers: [{ name: "web", image: `${HARBOR}/library/nginx:latest` }] },
    },
  },

  // The original-images annotation.
  {
    name: "existing annotation merged: a new sidecar beside a rewritten container",
    pod: makePod({
      containers: { web: `${HARBOR}/library/nginx:latest`, proxy: "envoyproxy/envoy:v1.31.0" },
      labels: { app: "web", ...REWRITTEN },
      annotations: { note: "x" },
      originals: { web: "nginx" },
    }),
    after: makePod({
      containers: { web: `${HARBOR}/library/nginx:latest`, proxy: `${HARBOR}/envoyproxy/envoy:v1.31.0` },
      labels: { app: "web", ...REWRITTEN },
      annotations: { note: "x" },
      originals: { web: "nginx", proxy: "envoyproxy/envoy:v1.31.0" },
    }),
  },
  {
    name: "existing annotation keeps entries of containers no longer present",
    pod: makePod({ containers: { web: "nginx" }, labels: {}, originals: { gone: "busybox" } }),
    after: makePod({
      containers: { web: `${HARBOR}/library/nginx:latest` },
      labels: REWRITTEN,
      originals: { gone: "busybox", web: "nginx" },
    }),
  },
  {
    name: "annotation with garbage JSON is replaced",
    pod: makePod({
      containers: { web: "nginx" },
      labels: {},
      annotations: { [ORIGINAL_IMAGES_ANNOTATION]: "{not json", note: "x" },
    }),
    after: makePod({
      containers: { web: `${HARBOR}/library/nginx:latest` },
      labels: REWRITTEN,
      annotations: { note: "x" },
      originals: { web: "nginx" },
    }),
  },
  {
    name: "annotation holding a JSON array",
    pod: makePod({
      containers: { web: "nginx" },
      labels: {},
      annotations: { [ORIGINAL_IMAGES_ANNOTATION]: '["nginx"]' },
    }),
    after: makePod({
      containers: { web: `${HARBOR}/library/nginx:latest` },
      labels: REWRITTEN,
      originals: { web: "nginx" },
    }),
  },
  {
    name: "annotation with non-string values keeps the string ones",
    pod: makePod({
      containers: { web: "nginx" },
      labels: {},
      annotations: { [ORIGINAL_IMAGES_ANNOTATION]: '{"web":42,"old":"busybox"}' },
    }),
    after: makePod({
      containers: { web: `${HARBOR}/library/nginx:latest` },
      labels: REWRITTEN,
      originals: { old: "busybox", web: "nginx" },
    }),
  },
  {
    name: "garbage annotation on an unchanged Pod is left alone",
    pod: makePod({
      containers: { pause: "registry.k8s.io/pause:3.10" },
      annotations: { [ORIGINAL_IMAGES_ANNOTATION]: "{not json" },
    }),
  },

  // UPDATE and the ephemeralcontainers subresource.
  {
    name: "UPDATE: images unchanged, a label touched, rules would now rewrite: no patch",
    pod: makePod({ containers: { web: "nginx", worker: "redis:7" }, labels: { app: "web", touched: "yes" } }),
    options: { oldPod: makePod({ containers: { web: "nginx", worker: "redis:7" }, labels: { app: "web" } }) },
  },
  {
    name: "UPDATE: already mutated Pod, label change only",
    pod: makePod({
      containers: { web: `${HARBOR}/library/nginx:latest` },
      labels: { ...REWRITTEN, touched: "yes" },
      originals: { web: "nginx" },
    }),
    options: {
      oldPod: makePod({
        containers: { web: `${HARBOR}/library/nginx:latest` },
        labels: REWRITTEN,
        originals: { web: "nginx" },
      }),
    },
  },
  {
    name: "UPDATE: one image changed, only it is rewritten, other originals kept",
    pod: makePod({
      containers: { web: "nginx:1.27", worker: `${HARBOR}/library/redis:7`, legacy: "busybox" },
      labels: REWRITTEN,
      originals: { web: "nginx:1.26", worker: "redis:7" },
    }),
    options: {
      oldPod: makePod({
        containers: { web: `${HARBOR}/library/nginx:1.26`, worker: `${HARBOR}/library/redis:7`, legacy: "busybox" },
        labels: REWRITTEN,
        originals: { web: "nginx:1.26", worker: "redis:7" },
      }),
    },
    after: makePod({
      containers: { web: `${HARBOR}/library/nginx:1.27`, worker: `${HARBOR}/library/redis:7`, legacy: "busybox" },
      labels: REWRITTEN,
      originals: { web: "nginx:1.27", worker: "redis:7" },
    }),
  },
  {
    name: "ephemeralcontainers subresource: only the new debug container",
    pod: makePod({
      containers: { web: `${HARBOR}/library/nginx:latest`, legacy: "redis" },
      ephemeralContainers: { "debugger-x7k2p": "busybox:1.36" },
      labels: REWRITTEN,
      originals: { web: "nginx" },
    }),
    options: {
      oldPod: makePod({
        containers: { web: `${HARBOR}/library/nginx:latest`, legacy: "redis" },
        labels: REWRITTEN,
        originals: { web: "nginx" },
      }),
    },
    after: makePod({
      containers: { web: `${HARBOR}/library/nginx:latest`, legacy: "redis" },
      ephemeralContainers: { "debugger-x7k2p": `${HARBOR}/library/busybox:1.36` },
      labels: REWRITTEN,
      originals: { web: "nginx", "debugger-x7k2p": "busybox:1.36" },
    }),
  },
  {
    name: "ephemeralcontainers subresource on a Pod never mutated",
    pod: makePod({ containers: { web: "nginx" }, ephemeralContainers: { debugger: "busybox" } }),
    options: { oldPod: makePod({ containers: { web: "nginx" } }) },
    after: makePod({
      containers: { web: "nginx" },
      ephemeralContainers: { debugger: `${HARBOR}/library/busybox:latest` },
      labels: REWRITTEN,
      originals: { debugger: "busybox" },
    }),
  },
  {
    name: "UPDATE with oldPod null: every image is a candidate",
    pod: makePod({ containers: { web: "nginx" }, labels: {} }),
    options: { oldPod: null },
    after: makePod({
      containers: { web: `${HARBOR}/library/nginx:latest` },
      labels: REWRITTEN,
      originals: { web: "nginx" },
    }),
  },

  // Pods left alone.
  {
    name: "label mirrorhook.dev/rewrite: disabled",
    pod: makePod({ containers: { web: "nginx" }, labels: { [OPT_OUT_LABEL]: "disabled" } }),
    skipped: "opted-out",
  },
  {
    name: "namespace labelled mirrorhook.dev/rewrite: disabled",
    pod: makePod({ containers: { web: "nginx" }, namespace: "legacy" }),
    options: { namespace: "legacy", namespaceLabels: { [OPT_OUT_LABEL]: "disabled" } },
    skipped: "opted-out",
  },
  {
    name: "kube-system by default",
    pod: makePod({ containers: { coredns: "coredns/coredns:1.11.3" }, namespace: "kube-system" }),
    options: { namespace: "kube-system" },
    skipped: "excluded-namespace",
  },
  {
    name: "kube-system from metadata when the request names none",
    pod: makePod({ containers: { coredns: "coredns/coredns:1.11.3" }, namespace: "kube-system" }),
    skipped: "excluded-namespace",
  },
  {
    name: "kube-system from metadata when the request namespace is empty",
    pod: makePod({ containers: { coredns: "coredns/coredns:1.11.3" }, namespace: "kube-system" }),
    options: { namespace: "" },
    skipped: "excluded-namespace",
  },
  {
    name: "custom excludedNamespaces: batch",
    pod: makePod({ containers: { job: "python:3.12" }, namespace: "batch" }),
    options: { namespace: "batch", excludedNamespaces: new Set(["batch"]) },
    skipped: "excluded-namespace",
  },
  {
    name: "custom excludedNamespaces replace the default: kube-system rewritten",
    pod: makePod({ containers: { coredns: "coredns/coredns:1.11.3" }, namespace: "kube-system", labels: {} }),
    options: { namespace: "kube-system", excludedNamespaces: new Set(["batch"]) },
    after: makePod({
      containers: { coredns: `${HARBOR}/coredns/coredns:1.11.3` },
      namespace: "kube-system",
      labels: REWRITTEN,
      originals: { coredns: "coredns/coredns:1.11.3" },
    }),
  },
  {
    name: "mirror Pod (kubernetes.io/config.mirror)",
    pod: makePod({
      containers: { etcd: "k8s.gcr.io/etcd:3.5.9-0" },
      namespace: "infra",
      annotations: { [MIRROR_POD_ANNOTATION]: "3f4e1c2b9a8d7e6f5a4b3c2d1e0f9a8b" },
    }),
    skipped: "mirror-pod",
  },
  {
    name: "the webhook's own Pod",
    pod: makePod({
      containers: { webhook: "ghcr.io/mirrorhook/mirrorhook:0.1.0" },
      labels: { "app.kubernetes.io/name": "mirrorhook" },
    }),
    options: { isOwnPod },
    skipped: "own-pod",
  },
  {
    name: "the webhook's own Pod, its namespace given by the request only",
    pod: {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { generateName: "mirrorhook-5c9d7-", labels: { "app.kubernetes.io/name": "mirrorhook" } },
      spec: { containers: [{ name: "webhook", image: "ghcr.io/mirrorhook/mirrorhook:0.1.0" }] },
    },
    options: {
      namespace: "mirrorhook-system",
      isOwnPod: (pod) => pod.namespace === "mirrorhook-system" && isOwnPod(pod),
    },
    skipped: "own-pod",
  },
  {
    name: "isOwnPod false for another Pod",
    pod: makePod({ containers: { web: "nginx" }, labels: { "app.kubernetes.io/name": "web" } }),
    options: { isOwnPod },
    after: makePod({
      containers: { web: `${HARBOR}/library/nginx:latest` },
      labels: { "app.kubernetes.io/name": "web", ...REWRITTEN },
      originals: { web: "nginx" },
    }),
  },

  // Not a Pod.
  { name: "null", pod: null, skipped: "not-a-pod" },
  { name: "undefined", pod: undefined, skipped: "not-a-pod" },
  { name: "a string", pod: "kind: Pod", skipped: "not-a-pod" },
  { name: "a number", pod: 42, skipped: "not-a-pod" },
  { name: "an array", pod: [makePod({ containers: { web: "nginx" } })], skipped: "not-a-pod" },
  {
    name: "a Deployment",
    pod: {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "web" },
      spec: { template: { spec: { containers: [{ name: "web", image: "nginx" }] } } },
    },
    skipped: "not-a-pod",
  },

  // Invalid images and invalid outputs.
  {
    name: "Nginx: uppercase repository",
    pod: makePod({ containers: { web: "Nginx" } }),
    problems: ["invalid-input:uppercase-repository"],
  },
  {
    name: "nginx: empty tag",
    pod: makePod({ containers: { web: "nginx:" } }),
    problems: ["invalid-input:invalid-tag"],
  },
  {
    name: "nginx@sha256:abc: bad digest",
    pod: makePod({ containers: { web: "nginx@sha256:abc" } }),
    problems: ["invalid-input:invalid-digest"],
  },
  {
    name: "empty image",
    pod: makePod({ containers: { web: "" } }),
    problems: ["invalid-input:empty"],
  },
  {
    name: "invalid images beside a valid one",
    pod: makePod({ containers: { a: "Nginx", b: "redis:7", c: "nginx@sha256:abc" }, labels: {} }),
    after: makePod({
      containers: { a: "Nginx", b: `${HARBOR}/library/redis:7`, c: "nginx@sha256:abc" },
      labels: REWRITTEN,
      originals: { b: "redis:7" },
    }),
    problems: ["invalid-input:uppercase-repository", "invalid-input:invalid-digest"],
  },
  {
    name: "a rule producing an invalid reference",
    pod: makePod({ containers: { web: "nginx:V1", api: "nginx:1.25" }, labels: {} }),
    options: { ruleSet: TAG_AS_PATH_RULES },
    after: makePod({
      containers: { web: "nginx:V1", api: "cache.io/1.25/nginx:latest" },
      labels: REWRITTEN,
      originals: { api: "nginx:1.25" },
    }),
    problems: ["invalid-output:uppercase-repository"],
  },
  {
    name: "bypass to an invalid reference: direct.to/Nginx",
    pod: makePod({ containers: { web: "direct.to/Nginx" } }),
    problems: ["invalid-output:uppercase-repository"],
  },

  // Re-admission and bypass.
  {
    name: "self-matching rule: first admission",
    pod: makePod({ containers: { web: "nginx" }, labels: {} }),
    options: { ruleSet: SELF_MATCH_RULES },
    after: makePod({
      containers: { web: "cache.io/docker.io/library/nginx:latest" },
      labels: REWRITTEN,
      originals: { web: "nginx" },
    }),
  },
  {
    name: "self-matching rule: re-admission of the mutated Pod",
    pod: makePod({
      containers: { web: "cache.io/docker.io/library/nginx:latest" },
      labels: REWRITTEN,
      originals: { web: "nginx" },
    }),
    options: { ruleSet: SELF_MATCH_RULES },
  },
  {
    name: "self-matching rule: re-admission of a Pod mutated through the bypass",
    pod: makePod({
      containers: { web: "docker.io/library/nginx:1.25" },
      labels: REWRITTEN,
      originals: { web: "direct.to/nginx:1.25" },
    }),
    options: { ruleSet: SELF_MATCH_RULES },
  },
  {
    name: "bypass: direct.to/nginx:1.25",
    pod: makePod({ containers: { web: "direct.to/nginx:1.25" }, labels: {} }),
    after: makePod({
      containers: { web: "docker.io/library/nginx:1.25" },
      labels: REWRITTEN,
      originals: { web: "direct.to/nginx:1.25" },
    }),
  },
  {
    name: "bypass with a custom prefix: skip.local/redis:7",
    pod: makePod({ containers: { web: "skip.local/redis:7", api: "direct.to/nginx" }, labels: {} }),
    options: { bypassPrefix: "skip.local" },
    after: makePod({
      containers: { web: "docker.io/library/redis:7", api: "direct.to/nginx" },
      labels: REWRITTEN,
      originals: { web: "skip.local/redis:7" },
    }),
  },
  {
    name: "bypass disabled: direct.to/nginx is an ordinary registry",
    pod: makePod({ containers: { web: "direct.to/nginx" } }),
    options: { bypassPrefix: "" },
  },
  {
    name: "a reference already in the mirror, no annotation",
    pod: makePod({ containers: { web: "registry.k8s.io/pause:3.10" } }),
  },

  // Scope.
  {
    name: "scoped rules: canary with namespace labels",
    pod: makePod({ containers: { web: "nginx" }, namespace: "canary", labels: {} }),
    options: {
      ruleSet: SCOPED_RULES,
      namespace: "canary",
      namespaceLabels: { "kubernetes.io/metadata.name": "canary" },
    },
    after: makePod({
      containers: { web: `${HARBOR}/library/nginx:latest` },
      namespace: "canary",
      labels: REWRITTEN,
      originals: { web: "nginx" },
    }),
  },
  {
    name: "scoped rules: default is out of scope",
    pod: makePod({ containers: { web: "nginx" } }),
    options: {
      ruleSet: SCOPED_RULES,
      namespace: "default",
      namespaceLabels: { "kubernetes.io/metadata.name": "default" },
    },
  },

  // Pod-shaped garbage.
  {
    name: "containers not a list",
    pod: { kind: "Pod", metadata: {}, spec: { containers: "nginx", initContainers: { a: 1 }, volumes: 7 } },
  },
  {
    name: "spec not an object",
    pod: { kind: "Pod", metadata: "web", spec: ["nginx"] },
  },
  {
    name: "containers without image, image a number, entries not objects",
    pod: {
      kind: "Pod",
      metadata: { labels: { app: 7 }, annotations: { n: 1 } },
      spec: {
        containers: [
          null,
          7,
          "nginx",
          { name: "no-image" },
          { name: "number", image: 42 },
          { name: "null", image: null },
          { name: "web", image: "nginx" },
        ],
        volumes: [{ name: "a", image: "nginx" }, { name: "b", image: { reference: 5 } }, null],
      },
    },
    after: {
      kind: "Pod",
      metadata: {
        labels: { app: 7, ...REWRITTEN },
        annotations: { n: 1, [ORIGINAL_IMAGES_ANNOTATION]: JSON.stringify({ web: "nginx" }) },
      },
      spec: {
        containers: [
          null,
          7,
          "nginx",
          { name: "no-image" },
          { name: "number", image: 42 },
          { name: "null", image: null },
          { name: "web", image: `${HARBOR}/library/nginx:latest` },
        ],
        volumes: [{ name: "a", image: "nginx" }, { name: "b", image: { reference: 5 } }, null],
      },
    },
  },
  {
    name: "labels an array, annotations a string",
    pod: {
      kind: "Pod",
      metadata: { labels: ["x"], annotations: "y" },
      spec: { containers: [{ name: "web", image: "nginx" }] },
    },
    after: {
      kind: "Pod",
      metadata: {
        labels: REWRITTEN,
        annotations: { [ORIGINAL_IMAGES_ANNOTATION]: JSON.stringify({ web: "nginx" }) },
      },
      spec: { containers: [{ name: "web", image: `${HARBOR}/library/nginx:latest` }] },
    },
  },
  {
    name: "rewritten label with another value is set to true",
    pod: makePod({ containers: { web: "nginx" }, labels: { [REWRITTEN_LABEL]: "false" } }),
    after: makePod({
      containers: { web: `${HARBOR}/library/nginx:latest` },
      labels: REWRITTEN,
      originals: { web: "nginx" },
    }),
  },
];

function checkPatchShape(pod: unknown, patch: readonly { op: string; path: string }[]): void {
  for (const operation of patch) {
    if (IMAGE_PATH.test(operation.path)) {
      assert.equal(operation.op, "replace", operation.path);
    } else if (MAP_PATHS.has(operation.path)) {
      // A whole map is only ever added where there was none, never replaced.
      assert.equal(operation.op, "add", operation.path);
      assert.equal(isRecord(valueAt(pod, operation.path)), false, `${operation.path} replaced an existing map`);
    } else {
      assert.ok(OWNED_PATHS.has(operation.path), `patch touches ${operation.path}`);
    }
  }
}

Deno.test("mutatePod", async (t) => {
  for (const row of ROWS) {
    await t.step(row.name, () => {
      const options: MutateOptions = { ruleSet: HUB_RULES, ...row.options };
      const before = structuredClone(row.pod);
      const result = mutatePod(row.pod, options);
      assert.deepEqual(row.pod, before, "mutatePod changed its input");
      assert.equal(result.skipped, row.skipped);
      if (row.skipped !== undefined) assert.deepEqual(result.patch, []);

      checkPatchShape(row.pod, result.patch);
      const after = result.patch.length === 0
        ? structuredClone(row.pod)
        : jsonpatch.applyPatch(structuredClone(row.pod), structuredClone([...result.patch]) as Operation[], true)
          .newDocument;
      assert.deepEqual(decodeOriginals(after), decodeOriginals(row.after ?? row.pod));

      assert.deepEqual(
        result.problems.map(({ decision }) => `${decision.action}:${decision.error.reason}`),
        row.problems ?? [],
      );
      assert.equal(result.warnings.length, result.changes.length + result.problems.length);
      if (row.warnings !== undefined) assert.deepEqual(result.warnings, row.warnings);
      for (const change of result.changes) {
        assert.equal(valueAt(after, change.slot.pointer), change.to);
        assert.equal(valueAt(row.pod, change.slot.pointer), change.from);
      }

      const again = mutatePod(after, options);
      assert.deepEqual(again.patch, [], "re-admitting the patched Pod changed it again");
      assert.deepEqual(again.changes, []);
    });
  }
});

Deno.test("mutatePod records the exact documented patch for a Pod with labels and annotations", () => {
  const pod = makePod({ containers: { web: "nginx" }, labels: { app: "web" }, annotations: { note: "x" } });
  assert.deepEqual(mutatePod(pod, { ruleSet: HUB_RULES }).patch, [
    { op: "replace", path: "/spec/containers/0/image", value: `${HARBOR}/library/nginx:latest` },
    { op: "add", path: ANNOTATION_POINTER, value: '{"web":"nginx"}' },
    { op: "add", path: "/metadata/labels/mirrorhook.dev~1rewritten", value: "true" },
  ]);
});

Deno.test("mutatePod reports decisions for unchanged images", () => {
  const pod = makePod({
    containers: { agent: "internal-registry.company.com/agent:1", pause: "registry.k8s.io/pause" },
  });
  const result = mutatePod(pod, { ruleSet: HUB_RULES });
  assert.deepEqual(result.decisions.map(({ slot, decision }) => [slot.key, decision.action]), [
    ["agent", "keep"],
    ["pause", "none"],
  ]);
  assert.deepEqual(result.warnings, []);
});

Deno.test("mutatePod() words its warnings for dry-run mode where it builds them", () => {
  const pod = { kind: "Pod", metadata: {}, spec: { containers: [{ name: "web", image: "nginx:1.27" }] } };
  const live = mutatePod(pod, { ruleSet: HUB_RULES });
  const dry = mutatePod(pod, { ruleSet: HUB_RULES, dryRun: true });
  assert.equal(live.warnings.length, 1);
  assert.match(live.warnings[0]!, /^mirrorhook: rewrote nginx:1\.27 to /);
  assert.equal(dry.warnings.length, 1);
  assert.match(dry.warnings[0]!, /^mirrorhook: dry-run, would rewrite nginx:1\.27 to /);
  assert.equal(dry.warnings[0]!.replace("dry-run, would rewrite", "rewrote"), live.warnings[0]);
  // The patch is computed either way; admit() decides not to send it.
  assert.deepEqual(dry.patch, live.patch);
});
