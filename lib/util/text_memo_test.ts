import assert from "node:assert/strict";
import fc from "fast-check";
import { TextMemo } from "./text_memo.ts";

Deno.test("TextMemo answers what the function answers, computing each text once while it is remembered", () => {
  let calls = 0;
  const memo = new TextMemo((text) => {
    calls++;
    return `<${text}>`;
  }, { maxEntries: 3, maxChars: 1600 });
  assert.equal(memo.get("a"), "<a>");
  assert.equal(memo.get("a"), "<a>");
  assert.equal(calls, 1);
  for (const text of ["b", "c"]) memo.get(text);
  assert.equal(memo.size, 3);
  memo.get("d"); // full: forgotten at once, then "d" remembered
  assert.equal(memo.size, 1);
  assert.equal(memo.get("a"), "<a>");
  assert.equal(calls, 5);
  // Larger than a sixteenth of the characters: answered, never held.
  const large = "x".repeat(200);
  assert.equal(memo.get(large), `<${large}>`);
  assert.equal(memo.get(large), `<${large}>`);
  assert.equal(calls, 7);
  assert.equal(memo.size, 2);
});

Deno.test("TextMemo stays within its bounds and always answers right, whatever the texts", () => {
  fc.assert(
    fc.property(fc.array(fc.string({ maxLength: 40 }), { maxLength: 200 }), (texts) => {
      const memo = new TextMemo((text) => text.split("").reverse().join(""), { maxEntries: 8, maxChars: 400 });
      for (const text of texts) {
        assert.equal(memo.get(text), text.split("").reverse().join(""));
        assert.ok(memo.size <= 8);
      }
    }),
  );
});
