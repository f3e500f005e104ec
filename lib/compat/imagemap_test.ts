// Tests for imagemap-style from/to lists and ImageMap objects.

import assert from "node:assert/strict";
import { behaviourOf } from "./common.ts";
import { readDocuments } from "../rules/documents.ts";
import { imageMapPairs, translateImageMapList, translateImageMapObjects } from "./imagemap.ts";

function item(text: string) {
  const { items, problems } = readDocuments(text, "map.yaml");
  assert.deepEqual(problems, []);
  return items;
}

Deno.test("imageMapPairs() recognises from/to lists, bare or under map:", async (t) => {
  const rows: [string, unknown, boolean][] = [
    ["a list", [{ from: "a", to: "b" }], true],
    ["under map", { map: [{ from: "a", to: "b" }] }, true],
    ["an empty list", [], false],
    ["a list with other items", [{ from: "a", to: "b" }, { image: "c" }], false],
    ["an object", { apiVersion: "v1" }, false],
  ];
  for (const [name, value, expected] of rows) {
    await t.step(name, () => assert.equal(imageMapPairs(value) !== undefined, expected));
  }
});

Deno.test("translateImageMapList() makes exact rules; the last entry for an image wins", () => {
  const [list] = item(
    "- from: nginx\n  to: r.example.com/nginx:1\n- from: nginx:latest\n  to: r.example.com/nginx:2\n",
  );
  assert.ok(list !== undefined);
  const translation = translateImageMapList(list, "relocation.yaml");
  assert.deepEqual(translation.objects.map((object) => [object.raw["metadata"], object.raw["spec"]]), [[
    { name: "imagemap-relocation" },
    { priority: 0, rules: [{ exact: "nginx:latest", replace: "r.example.com/nginx:2" }] },
  ]]);
  assert.deepEqual(translation.problems.map((p) => [behaviourOf(p), p.line]), [
    ["exact-as-written", 1],
    ["duplicate-key", 3],
    ["exact-as-written", 3],
  ]);
  assert.deepEqual(translation.objects[0]?.locate(["spec", "rules", 0, "replace"]), { line: 4, column: 3 });
});

Deno.test("translateImageMapList() refuses entries without both references", () => {
  const [list] = item("- from: nginx\n  to: ''\n- from: a.io/b:1\n  to: 3\n");
  assert.ok(list !== undefined);
  const translation = translateImageMapList(list, "relocation.yaml");
  assert.deepEqual(translation.objects, []);
  assert.deepEqual(translation.problems.map((p) => [p.severity, p.code, p.line]), [
    ["error", "invalid-replacement", 2],
    ["error", "type", 3],
  ]);
});

Deno.test("translateImageMapObjects() keeps each ImageMap in its namespace", () => {
  const items = item(`apiVersion: mapper.imagerelocation.pivotal.io/v1alpha1
kind: ImageMap
metadata: { name: a, namespace: team-a }
spec:
  map: [{ from: "gcr.io/x/y:1", to: "r.example.com/y:1" }]
---
apiVersion: mapper.imagerelocation.pivotal.io/v1alpha1
kind: ImageMap
metadata: { name: b }
spec:
  map: [{ from: "gcr.io/x/z:1", to: "r.example.com/z:1" }]
`);
  const translation = translateImageMapObjects(items, "maps.yaml");
  assert.deepEqual(translation.objects.map((object) => [object.raw["kind"], object.raw["metadata"]]), [
    ["ImageRewrite", { name: "a", namespace: "team-a" }],
    ["ImageRewrite", { name: "b", namespace: "default" }],
  ]);
  assert.deepEqual(translation.problems.map((p) => [behaviourOf(p), p.line]), [["no-namespace", 9]]);
});
