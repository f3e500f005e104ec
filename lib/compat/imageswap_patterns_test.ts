// Checks the linear [REPLACE] patterns against the globs they translate, on generated images.

import assert from "node:assert/strict";
import fc from "fast-check";
import { screenPattern } from "../rules/pattern.ts";
import { fnmatchPattern, replaceGlobRule } from "./imageswap_patterns.ts";

const ALPHABET = ["a", "b", "/", ":", ".", "-", "_", "1"];
const text = (max: number) => fc.array(fc.constantFrom(...ALPHABET), { maxLength: max }).map((chars) => chars.join(""));
const GLOBS = [
  "*nvidia:k8s-device-plugin_*",
  "hello-*",
  "ubut*18.04",
  "*mysql-server:5.6",
  "hello:v1.?",
  "ghcr.io/public*",
  "*/a?b*",
  "a[!/]*b",
  "[a/]*",
  "*",
  "a/b",
  "*a*a*a*a*a*a*a*a*",
];

function lastComponent(image: string): string {
  return image.split("/").at(-1) ?? image;
}

Deno.test("replaceGlobRule() matches what the glob matches and captures the last component", async (t) => {
  for (const glob of GLOBS) {
    await t.step(glob, () => {
      const rule = replaceGlobRule(glob, "t.example.com/x");
      assert.equal(screenPattern(rule.match).status, "safe", rule.match);
      const reference = new RegExp(`^(?:${fnmatchPattern(glob)})$`);
      const linear = new RegExp(rule.match);
      const words = fc.oneof(text(12), fc.constantFrom("nvcr.io/nvidia:k8s-device-plugin_v0.9.0", "hello-world"));
      fc.assert(fc.property(words, (image) => {
        assert.equal(linear.test(image), reference.test(image), image);
        if (reference.test(image)) {
          assert.equal(image.replace(linear, rule.replace), `t.example.com/x/${lastComponent(image)}`);
        }
      }));
    });
  }
});
