import assert from "node:assert/strict";
import { describeText } from "./describe.ts";

Deno.test("describeText names the tool of a text, or says what it looks like", async (t) => {
  const rows: { name: string; text: string; format?: string; mirrorhook?: boolean; description: RegExp }[] = [
    { name: "empty", text: "# only a comment\n", description: /^an empty file$/ },
    {
      name: "ImageSwap maps",
      text: "default::\ndocker.io::harbor.example.com/dockerhub\n",
      format: "imageswap",
      description: /^an ImageSwap map file \(2 lines\)$/,
    },
    {
      name: "a proxy URL",
      text: "PROXY_URL=harbor.example.com/proxy\n",
      format: "proxy-url",
      description: /PROXY_URL of k8s-proxy-image-swapper/,
    },
    {
      name: "a from/to list",
      text: "- from: nginx\n  to: x.io/nginx\n",
      format: "imagemap",
      description: /from\/to list of kubernetes-image-mapper/,
    },
    {
      name: "RegistryRewriteRules",
      text: "apiVersion: dev.flemzord.fr/v1alpha1\nkind: RegistryRewriteRule\nmetadata: {name: a}\n",
      format: "flemzord",
      description: /^RegistryRewriteRule objects of mutating-registry-webhook \(1\)$/,
    },
    {
      name: "ImageMap objects",
      text: "apiVersion: mapper.imagerelocation.pivotal.io/v1alpha1\nkind: ImageMap\nmetadata: {name: a}\n",
      format: "imagemap",
      description: /^ImageMap objects/,
    },
    {
      name: "mirrorhook objects",
      text: "apiVersion: mirrorhook.dev/v1alpha1\nkind: ClusterImageRewrite\nmetadata: {name: a}\n",
      mirrorhook: true,
      description: /^mirrorhook objects \(ClusterImageRewrite\)$/,
    },
    {
      name: "other Kubernetes objects",
      text: "kind: Deployment\n---\nkind: Deployment\n---\nkind: Service\n",
      description: /^Kubernetes objects of kind Deployment ×2, Service$/,
    },
    { name: "broken YAML", text: "a: [\n", description: /not valid YAML or JSON/ },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      const described = describeText(row.text);
      assert.equal(described.format, row.format);
      assert.equal(described.mirrorhook, row.mirrorhook ?? false);
      assert.match(described.description, row.description);
    });
  }
});
