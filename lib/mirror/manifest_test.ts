// Unit tests of manifest reading: platforms, descriptors, schema 1 refusal, index filtering.

import assert from "node:assert/strict";
import {
  configPlatform,
  filterIndex,
  ManifestError,
  OCI_INDEX,
  parseManifest,
  parsePlatform,
  platformMatches,
  sha256Digest,
} from "./manifest.ts";

const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
const D1 = `sha256:${"1".repeat(64)}`;
const D2 = `sha256:${"2".repeat(64)}`;

Deno.test("parsePlatform() reads os/architecture[/variant]", async (t) => {
  for (
    const [text, expected] of [
      ["linux/amd64", { os: "linux", architecture: "amd64" }],
      ["linux/arm64/v8", { os: "linux", architecture: "arm64", variant: "v8" }],
      [" windows/amd64 ", { os: "windows", architecture: "amd64" }],
    ] as const
  ) {
    await t.step(text, () => assert.deepEqual(parsePlatform(text), expected));
  }
  for (const text of ["linux", "linux/", "a/b/c/d", "linux/amd 64"]) {
    await t.step(`rejects ${JSON.stringify(text)}`, () => assert.throws(() => parsePlatform(text), RangeError));
  }
});

Deno.test("platformMatches() compares the variant only when one is required", () => {
  const arm = { os: "linux", architecture: "arm", variant: "v7" };
  assert.ok(platformMatches(arm, parsePlatform("linux/arm")));
  assert.ok(platformMatches(arm, parsePlatform("linux/arm/v7")));
  assert.ok(!platformMatches(arm, parsePlatform("linux/arm/v6")));
  assert.ok(!platformMatches(undefined, parsePlatform("linux/arm")));
});

Deno.test("parseManifest() reads indexes and image manifests and names what is wrong", async (t) => {
  await t.step("index", () => {
    const parsed = parseManifest(
      encode({
        schemaVersion: 2,
        mediaType: OCI_INDEX,
        manifests: [{ mediaType: "m", digest: D1, size: 10, platform: { os: "linux", architecture: "amd64" } }],
      }),
      "",
    );
    assert.equal(parsed.mediaType, OCI_INDEX);
    assert.deepEqual(parsed.manifest, {
      kind: "index",
      manifests: [{ mediaType: "m", digest: D1, size: 10, platform: { os: "linux", architecture: "amd64" } }],
    });
  });
  await t.step("image manifest without mediaType takes the Content-Type", () => {
    const parsed = parseManifest(
      encode({ schemaVersion: 2, config: { digest: D1, size: 2 }, layers: [{ digest: D2, size: 3 }] }),
      "application/vnd.oci.image.manifest.v1+json; charset=utf-8",
    );
    assert.equal(parsed.mediaType, "application/vnd.oci.image.manifest.v1+json");
    assert.equal(parsed.manifest.kind, "image");
  });
  for (
    const [name, body, field] of [
      ["schema 1", { schemaVersion: 1, name: "x" }, "schema 1"],
      ["bad digest", { schemaVersion: 2, config: { digest: "nope", size: 1 } }, "config.digest"],
      ["negative size", { schemaVersion: 2, config: { digest: D1, size: -1 } }, "config.size"],
      ["layers not a list", { schemaVersion: 2, config: { digest: D1, size: 1 }, layers: {} }, "layers"],
      ["bad child", { schemaVersion: 2, manifests: [{ digest: D1 }] }, "manifests[0].size"],
    ] as const
  ) {
    await t.step(name, () => {
      assert.throws(() => parseManifest(encode(body), ""), (error) => {
        assert.ok(error instanceof ManifestError);
        assert.ok(error.message.includes(field), error.message);
        return true;
      });
    });
  }
  await t.step(
    "not JSON",
    () => assert.throws(() => parseManifest(new TextEncoder().encode("<html>"), ""), ManifestError),
  );
});

Deno.test("filterIndex() keeps the listed children and the other fields", () => {
  const index = encode({
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: [{ digest: D1, size: 1 }, { digest: D2, size: 2 }],
    annotations: { a: "b" },
  });
  const filtered = JSON.parse(new TextDecoder().decode(filterIndex(index, new Set([D2]))));
  assert.deepEqual(filtered, {
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: [{ digest: D2, size: 2 }],
    annotations: { a: "b" },
  });
});

Deno.test("configPlatform() and sha256Digest()", () => {
  assert.deepEqual(configPlatform(encode({ os: "linux", architecture: "arm64", variant: "v8" })), {
    os: "linux",
    architecture: "arm64",
    variant: "v8",
  });
  assert.equal(configPlatform(encode({ architecture: "amd64" })), undefined);
  assert.equal(configPlatform(new TextEncoder().encode("{")), undefined);
  assert.equal(
    sha256Digest(new TextEncoder().encode("abc")),
    "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
});
