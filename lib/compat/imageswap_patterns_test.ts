// Checks the linear ImageSwap patterns against the look-around patterns they replace, on generated images.

import assert from "node:assert/strict";
import fc from "fast-check";
import { screenPattern } from "../rules/pattern.ts";
import { defaultRule, fnmatchPattern, replaceGlobRule, unlike } from "./imageswap_patterns.ts";

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

Deno.test("unlike() leaves out exactly the literal, or the texts that start with it", async (t) => {
  for (const literal of ["ab", "a.b", "a/b-", "a", "-^]\\"]) {
    await t.step(literal, () => {
      const exact = new RegExp(`^${unlike(literal, "/", "exact", true)}$`);
      const prefix = new RegExp(`^${unlike(literal, "", "prefix", false)}$`);
      assert.equal(screenPattern(exact.source).status, "safe");
      fc.assert(fc.property(text(6), (word) => {
        const plain = !word.includes("/") && word !== "";
        assert.equal(exact.test(word), plain && word !== literal, word);
        assert.equal(prefix.test(word), !word.startsWith(literal), word);
      }));
    });
  }
});

Deno.test("defaultRule() rewrites like the look-ahead guard it replaces", async (t) => {
  const rows: [string, string, boolean, string][] = [
    [
      "harbor.example.com/default",
      "harbor.example.com/default/",
      false,
      "^(?!harbor\\.example\\.com/default/)[^/]+/(.*)$",
    ],
    ["harbor.example.com", "harbor.example.com/", false, "^(?!harbor\\.example\\.com/)[^/]+/(.*)$"],
    ["m.io/cache-", "m.io/cache-", true, "^(?!m\\.io/cache-)([^/:]+)(?::[0-9]+)?/(.*)$"],
    ["proxy-", "proxy-", true, "^(?!proxy-)([^/:]+)(?::[0-9]+)?/(.*)$"],
  ];
  const images = fc.tuple(
    fc.constantFrom("harbor.example.com", "harbor.example.co", "m.io", "m.io:5000", "proxy-x", "proxy", "a.b"),
    fc.constantFrom("default/x", "defaul/x", "cache-docker.io/x", "cache/x", "x/y:1", "default"),
  ).map(([registry, path]) => `${registry}/${path}`);
  for (const [value, own, dash, guard] of rows) {
    await t.step(`${value}`, () => {
      const rule = defaultRule(value, own, dash);
      assert.ok(rule !== undefined);
      assert.equal(screenPattern(rule.match).status, "safe", rule.match);
      const old = new RegExp(guard);
      const linear = new RegExp(rule.match);
      const oldReplace = dash ? `${value}$1/$2` : `${value.replace(/\/+$/, "")}/$1`;
      fc.assert(fc.property(images, (image) => {
        assert.equal(linear.test(image), old.test(image), image);
        if (old.test(image)) assert.equal(image.replace(linear, rule.replace), image.replace(old, oldReplace));
      }));
    });
  }
  assert.equal(defaultRule("r.io:5000/x", "r.io:5000/x/", false), undefined);
});
