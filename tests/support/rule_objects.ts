// Rule objects as the API server holds them, for tests that create them through the fake API server.

type Json = Record<string, unknown>;

/** A ClusterImageRewrite named `name` with `rules` and any other `spec` fields. */
export function clusterRewrite(name: string, rules: unknown[], spec: Json = {}): Json {
  return {
    apiVersion: "mirrorhook.dev/v1alpha1",
    kind: "ClusterImageRewrite",
    metadata: { name },
    spec: { ...spec, rules },
  };
}

/** A namespaced ImageRewrite `name` in `namespace` with `rules`. */
export function namespacedRewrite(namespace: string, name: string, rules: unknown[]): Json {
  return {
    apiVersion: "mirrorhook.dev/v1alpha1",
    kind: "ImageRewrite",
    metadata: { name, namespace },
    spec: { rules },
  };
}
