// Tests for readDocuments: both parsers give the same values, items and positions, errors stay positioned.

import assert from "node:assert/strict";
import { readDocuments } from "./documents.ts";
import type { FieldPath } from "./problem.ts";

/** 1-based line and column of the `nth` occurrence of `needle` in `text`. */
function at(text: string, needle: string, nth = 1): { line: number; column: number } {
  let index = -1;
  for (let i = 0; i < nth; i++) {
    index = text.indexOf(needle, index + 1);
    if (index < 0) throw new Error(`${JSON.stringify(needle)} not found ${nth} times`);
  }
  const before = text.slice(0, index);
  return { line: before.split("\n").length, column: index - before.lastIndexOf("\n") };
}

const OBJECT = `apiVersion: mirrorhook.dev/v1alpha1
kind: ClusterImageRewrite
metadata:
  name: hub
spec:
  rules:
    - prefix: docker.io
      replace: harbor.example.com/hub
    - exact: 'quay.io/a/b:1'
      replace: "mirror.example.com/b:1"
`;

interface Row {
  readonly name: string;
  readonly text: string;
  /** The plain values of the items, in order. */
  readonly values: unknown[];
  /** [item index, field path, needle, nth occurrence]: where `locate` must point. */
  readonly places: [number, FieldPath, string, number][];
}

const VALUE = {
  apiVersion: "mirrorhook.dev/v1alpha1",
  kind: "ClusterImageRewrite",
  metadata: { name: "hub" },
  spec: {
    rules: [
      { prefix: "docker.io", replace: "harbor.example.com/hub" },
      { exact: "quay.io/a/b:1", replace: "mirror.example.com/b:1" },
    ],
  },
};

const ROWS: readonly Row[] = [
  {
    name: "one object",
    text: OBJECT,
    values: [VALUE],
    places: [[0, ["spec", "rules", 1, "replace"], "replace", 2], [0, ["metadata", "name"], "name", 1]],
  },
  {
    name: "empty and comment-only documents between objects",
    text: `---\n# nothing here\n---\n${OBJECT}---\n---\n~\n---\n${OBJECT}`,
    values: [VALUE, VALUE],
    places: [[1, ["spec", "rules", 0, "prefix"], "prefix", 2], [0, ["spec", "rules", 1], "exact", 1]],
  },
  {
    name: "a List",
    text: `apiVersion: v1\nkind: List\nitems:\n  - kind: A\n  - kind: B\n    spec: {x: 1}\n`,
    values: [{ kind: "A" }, { kind: "B", spec: { x: 1 } }],
    places: [[1, ["spec", "x"], "x:", 1], [1, ["kind"], "kind: B", 1]],
  },
  {
    name: "JSON",
    text: `{"kind": "A", "spec": {"on": "original", "n": 010, "d": "2024-01-01"}}\n`,
    values: [{ kind: "A", spec: { on: "original", n: 10, d: "2024-01-01" } }],
    places: [[0, ["spec", "d"], `"d"`, 1]],
  },
  {
    name: "YAML 1.2 scalars: yes, on, dates and octal-looking numbers stay what YAML 1.2 says",
    text: `a: yes\non: off\nd: 2024-01-01\nn: 010\nh: 0x1F\nz: ~\n`,
    values: [{ a: "yes", on: "off", d: "2024-01-01", n: 10, h: 31, z: null }],
    places: [[0, ["h"], "h:", 1]],
  },
  {
    name: "anchors and aliases (the positioned parser)",
    text: `kind: A\nbase: &b {x: 1}\ncopy: *b\n`,
    values: [{ kind: "A", base: { x: 1 }, copy: { x: 1 } }],
    places: [[0, ["copy"], "copy", 1]],
  },
];

Deno.test("readDocuments() reads values and places fields", async (t) => {
  for (const row of ROWS) {
    await t.step(row.name, () => {
      const result = readDocuments(row.text, "r.yaml");
      assert.deepEqual(result.problems, []);
      assert.deepEqual(result.items.map((item) => item.value), row.values);
      for (const [index, path, needle, nth] of row.places) {
        assert.deepEqual(result.items[index]?.locate(path), at(row.text, needle, nth), `${path.join(".")}`);
      }
    });
  }
});

Deno.test("readDocuments() reports broken documents with positions and keeps the good ones", async (t) => {
  const rows: [string, string, number, number][] = [
    ["a duplicate key", `kind: A\n---\nkind: B\nkind: C\n`, 1, 4],
    ["a nested mapping in a compact mapping", `kind: A\n---\nx:\n  y: a: b\n`, 1, 4],
    ["an alias without an anchor", `kind: A\n---\nx: *nothing\n`, 1, 3],
  ];
  for (const [name, text, items, line] of rows) {
    await t.step(name, () => {
      const result = readDocuments(text, "r.yaml");
      assert.equal(result.items.length, items);
      const errors = result.problems.filter((p) => p.severity === "error");
      assert.ok(errors.length > 0);
      assert.ok(errors.every((p) => p.code === "yaml-syntax" && p.source === "r.yaml"));
      assert.equal(errors[0]?.line, line);
    });
  }
});

Deno.test("readDocuments() refuses a billion laughs (aliases multiplied) without expanding it", () => {
  const lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"];
  for (let i = 0; i < 9; i++) {
    const name = String.fromCharCode(98 + i);
    const previous = String.fromCharCode(97 + i);
    lines.push(`${name}: &${name} [${Array(10).fill(`*${previous}`).join(", ")}]`);
  }
  const result = readDocuments(lines.join("\n") + "\n", "r.yaml");
  assert.equal(result.items.length, 0);
  assert.equal(result.problems[0]?.code, "yaml-syntax");
});
