// The sample Pod and AdmissionReview newcomers see (`mirrorhook demo`, `serve --dev`): the image spellings people write.

/** A Pod as a Deployment's ReplicaSet creates it. */
export const SAMPLE_POD = {
  apiVersion: "v1",
  kind: "Pod",
  metadata: { generateName: "web-7d9c8b6f5-", namespace: "default", labels: { app: "web" } },
  spec: {
    initContainers: [{ name: "migrate", image: "bitnami/postgresql:16" }],
    containers: [
      { name: "web", image: "nginx:1.27" },
      { name: "cache", image: "redis" },
      { name: "metrics", image: "quay.io/prometheus/node-exporter:v1.8.2" },
      { name: "pause", image: "k8s.gcr.io/pause:3.9" },
      { name: "debug", image: "direct.to/busybox:1.36" },
    ],
  },
} as const;

/** An AdmissionReview for {@linkcode SAMPLE_POD}, as kube-apiserver sends it on CREATE. */
export function sampleReview(uid: string): Record<string, unknown> {
  return {
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid,
      kind: { group: "", version: "v1", kind: "Pod" },
      resource: { group: "", version: "v1", resource: "pods" },
      requestKind: { group: "", version: "v1", kind: "Pod" },
      requestResource: { group: "", version: "v1", resource: "pods" },
      namespace: "default",
      operation: "CREATE",
      userInfo: { username: "system:serviceaccount:kube-system:replicaset-controller" },
      object: structuredClone(SAMPLE_POD),
      oldObject: null,
      dryRun: false,
      options: { kind: "CreateOptions", apiVersion: "meta.k8s.io/v1" },
    },
  };
}
