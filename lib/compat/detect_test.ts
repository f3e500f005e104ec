// Tests for recognising a rule text's format by its content.

import assert from "node:assert/strict";
import { detectFormat, type TextFormat } from "./formats.ts";

Deno.test("detectFormat() tells the formats apart by content", async (t) => {
  const rows: [string, string, TextFormat][] = [
    ["our YAML", "apiVersion: mirrorhook.dev/v1alpha1\nkind: ClusterImageRewrite\nmetadata:\n  name: a\n", "objects"],
    ["our JSON", '{"apiVersion":"mirrorhook.dev/v1alpha1","kind":"ClusterImageRewrite"}', "objects"],
    ["a RegistryRewriteRule", "apiVersion: dev.flemzord.fr/v1alpha1\nkind: RegistryRewriteRule\n", "objects"],
    ["a flat YAML map", "apiVersion: v1\nkind: ConfigMap\n", "objects"],
    ["broken YAML", "apiVersion: [\n", "objects"],
    ["a scalar", "hello\n", "objects"],
    ["an empty text", "", "objects"],
    ["only comments", "# nothing\n", "objects"],
    ["ImageSwap maps", "default::harbor.example.com\ndocker.io::harbor.example.com/hub\n", "imageswap"],
    ["ImageSwap, old separator", "default:harbor.example.com\ncool.io:\n", "imageswap"],
    ["ImageSwap, one line", "default::\n", "imageswap"],
    ["ImageSwap, spaces and comments", "# maps\n default :: harbor.example.com # cache\n", "imageswap"],
    ["nested YAML with dotted keys", "metadata:\n  labels:\n    app.kubernetes.io/name: x\n", "objects"],
    ["ImageSwap [EXACT] only", "[EXACT]nginx::harbor.example.com/nginx:1\n", "imageswap"],
    ["ImageSwap with a bad line", "default::h.example.com\nregistry4.bar.com;x\n", "imageswap"],
    ["a proxy assignment", "PROXY_URL=harbor.example.com\n", "proxy-url"],
    ["a bare proxy", "harbor.example.com/dockerhub\n", "proxy-url"],
    ["a from/to list", "- from: nginx\n  to: r.example.com/nginx:1\n", "imagemap"],
    ["a from/to list in JSON", '[{"from": "nginx", "to": "r.example.com/nginx:1"}]', "imagemap"],
    ["a from/to list under map", "map:\n  - from: nginx\n    to: r.example.com/nginx:1\n", "imagemap"],
    ["a list of objects", "- apiVersion: v1\n  kind: Pod\n", "objects"],
  ];
  for (const [name, text, format] of rows) await t.step(name, () => assert.equal(detectFormat(text), format));
});
