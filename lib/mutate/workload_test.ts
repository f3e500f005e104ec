import assert from "node:assert/strict";
import { loadRuleTexts } from "../compat/load.ts";
import { applyEdits, mutateWorkload, POD_TEMPLATE_PATHS } from "./workload.ts";

const { ruleSet } = loadRuleTexts([{
  name: "rules.yaml",
  text: `apiVersion: mirrorhook.dev/v1alpha1
kind: ImageRewrite
metadata:
  name: web-only
  namespace: web
spec:
  rules:
    - prefix: docker.io
      replace: harbor.example.com/dockerhub
`,
}]);

const POD_SPEC = { containers: [{ name: "app", image: "nginx:1.27" }] };

function withTemplate(kind: string, namespace?: string): Record<string, unknown> {
  const object: Record<string, unknown> = {
    kind,
    metadata: { name: "x", ...(namespace === undefined ? {} : { namespace }) },
  };
  let node = object;
  const path = POD_TEMPLATE_PATHS[kind] ?? [];
  path.forEach((key, index) => {
    const child = index === path.length - 1 ? { spec: structuredClone(POD_SPEC) } : {};
    node[key] = child;
    node = child;
  });
  return object;
}

function imageAt(value: unknown, path: readonly string[]): unknown {
  let node = value as Record<string, unknown>;
  for (const key of [...path, "spec"]) node = node[key] as Record<string, unknown>;
  return (node["containers"] as { image: string }[])[0]?.image;
}

Deno.test("mutateWorkload rewrites the Pod template of every workload kind in its own namespace", async (t) => {
  for (const kind of Object.keys(POD_TEMPLATE_PATHS)) {
    await t.step(kind, () => {
      const path = POD_TEMPLATE_PATHS[kind] ?? [];
      const inWeb = withTemplate(kind, "web");
      const result = mutateWorkload(inWeb, { ruleSet });
      assert.equal(result.pods.length, 1);
      assert.equal(result.pods[0]?.object, `${kind} web/x`);
      applyEdits(inWeb, result.edits);
      assert.equal(imageAt(inWeb, path), "harbor.example.com/dockerhub/library/nginx:1.27");

      const elsewhere = withTemplate(kind, "prod");
      const untouched = mutateWorkload(elsewhere, { ruleSet, namespace: "web" });
      assert.deepEqual(untouched.edits, [], "an object's own namespace comes before the default");
    });
  }
});

Deno.test("mutateWorkload walks Lists, takes Pods as they are, and leaves other kinds alone", () => {
  const list = {
    kind: "List",
    items: [
      { kind: "Pod", metadata: { name: "p" }, spec: structuredClone(POD_SPEC) },
      { kind: "ConfigMap", metadata: { name: "c" }, data: { image: "nginx:1.27" } },
      { kind: "DeploymentList", items: [withTemplate("Deployment")] },
    ],
  };
  const before = structuredClone(list);
  const result = mutateWorkload(list, { ruleSet, namespace: "web" });
  assert.deepEqual(result.pods.map((pod) => pod.object), ["Pod web/p", "Deployment web/x"]);
  // The Pod: its image, the annotation and the label; the nested Deployment: its image and a new template metadata.
  assert.deepEqual(result.edits.map((edit) => edit.path.join("/")), [
    "items/0/spec/containers/0/image",
    "items/0/metadata/annotations",
    "items/0/metadata/labels",
    "items/2/items/0/spec/template/spec/containers/0/image",
    "items/2/items/0/spec/template/metadata",
  ]);
  applyEdits(list, result.edits);
  assert.deepEqual(list.items[1], before.items[1]);
  assert.equal(list.items[0]?.spec?.containers[0]?.image, "harbor.example.com/dockerhub/library/nginx:1.27");
  assert.deepEqual(mutateWorkload("not an object", { ruleSet }), { edits: [], pods: [] });
});
