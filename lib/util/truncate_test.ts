// Tests of truncate: values within the byte limit unchanged, longer ones cut on a code point with the size named.

import assert from "node:assert/strict";
import { truncate } from "./truncate.ts";

Deno.test("truncate keeps what fits in 256 UTF-8 bytes and cuts the rest with its size", async (t) => {
  await t.step("ASCII up to the limit is unchanged, one more byte is cut", () => {
    const fits = `registry.example.com/${"a".repeat(256 - 21)}`;
    assert.equal(fits.length, 256);
    assert.equal(truncate(fits), fits);
    const over = `${fits}b`;
    const cut = truncate(over);
    assert.ok(cut.endsWith("…(257 bytes)"));
    assert.ok(new TextEncoder().encode(cut).byteLength <= 256);
  });
  await t.step("multi-byte text is measured in bytes, not UTF-16 units", () => {
    const text = "é".repeat(100); // 100 units, 200 bytes: fits
    assert.equal(truncate(text), text);
    const more = "é".repeat(200); // 400 bytes: cut on a whole character
    const cut = truncate(more);
    assert.ok(cut.endsWith("…(400 bytes)"));
    assert.ok(cut.startsWith("éé"));
    assert.ok(new TextEncoder().encode(cut).byteLength <= 256);
    assert.equal(truncate("x".repeat(200) + "☕".repeat(20)).endsWith("…(260 bytes)"), true);
  });
});
