import assert from "node:assert/strict";
import { parseCasesText } from "./cases.ts";

Deno.test("parseCasesText reads rows with their lines, and the rules a mapping names", () => {
  const list = parseCasesText(
    "# header\n- image: nginx\n  expected: x.io/nginx\n- image: a\n  expected: b\n",
    "c.yaml",
  );
  assert.ok(!("problems" in list));
  assert.deepEqual(list.cases.map((row) => [row.image, row.line]), [["nginx", 2], ["a", 4]]);
  assert.equal(list.rules, undefined);

  const mapping = parseCasesText(
    "rules: [../a.yaml, b/]\ncases:\n  - image: nginx\n    expected: nginx\n    warnings: []\n",
    "m.yaml",
  );
  assert.ok(!("problems" in mapping));
  assert.deepEqual(mapping.rules, ["../a.yaml", "b/"]);
  assert.deepEqual(mapping.cases[0]?.warnings, []);
  assert.equal(mapping.cases[0]?.line, 3);
});

Deno.test("parseCasesText reports every problem with its line", async (t) => {
  const rows: { name: string; text: string; problems: [number, RegExp][] }[] = [
    { name: "broken YAML", text: "- image: [\n", problems: [[2, /Cannot parse YAML/]] },
    { name: "empty list", text: "[]\n", problems: [[1, /non-empty list of cases/]] },
    { name: "a scalar", text: "nginx\n", problems: [[1, /non-empty list of cases/]] },
    {
      name: "missing and unknown fields",
      text: "- image: nginx\n  expected: nginx\n- image: a\n  expectd: b\n- 42\n",
      problems: [[3, /case 2: unknown field\(s\) "expectd"/], [3, /case 2: expected is required/], [
        5,
        /case 3: expected a mapping/,
      ]],
    },
    {
      name: "wrong types",
      text: "- image: 1\n  expected: ''\n  podLabels: {a: 1}\n  warnings: nope\n",
      problems: [
        [1, /image: expected a non-empty string, got 1/],
        [1, /expected: expected a non-empty string/],
        [1, /podLabels: expected a map of string labels/],
        [1, /warnings: expected a list of strings/],
      ],
    },
    {
      name: "a mapping with a bad rules field and an unknown key",
      text: "rules: 3\nextra: x\ncases:\n  - image: a\n    expected: a\n",
      problems: [[1, /unknown field\(s\) "extra"/], [1, /rules: expected a path or a list of paths, got 3/]],
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      const result = parseCasesText(row.text, "c.yaml");
      assert.ok("problems" in result, `${row.name}: no problems reported`);
      assert.equal(result.problems.length, row.problems.length, JSON.stringify(result.problems));
      row.problems.forEach(([line, message], index) => {
        assert.equal(result.problems[index]?.line, line);
        assert.match(result.problems[index]?.message ?? "", message);
      });
    });
  }
});
