// Tests for ImageSwap map files: parsing, the model of ImageSwap (checked against ImageSwap's own tests), translation.

import assert from "node:assert/strict";
import { validateObject } from "../rules/schema.ts";
import { behaviourOf } from "./common.ts";
import { fnmatchPattern, parseMapFile, simulateImageSwap, translateImageSwap } from "./imageswap.ts";

/** ImageSwap's testing/map_files/map_file.conf, which its unit tests run against. */
const MAP_FILE_CONF = `# The contents of this file is linked to Python unittest assertions and should 
# not be changed without consideration for updating the related tests.
default:default.example.com
docker.io:my.example.com/mirror-
quay.io:quay.example3.com
gitlab.com:registry.example.com/gitlab
#gcr.io: # This is a comment 
cool.io:
registry.internal.twr.io:registry.example.com
harbor.geo.pks.twr.io:harbor2.com ###### This is a comment with many symbols
registry.waldo.com:8443::registry.garply.com # Swap map key that includes a port
registry.foo.com::localhost:30003/foo # Swap map value that includes a port
registry.bar.com:8443::registry.baz.com:30003/bar # Swap map key & value that include a port
registry2.bar.com:registry2.baz.com:30003/bar # Bad config (port in value) without "::" separator
registry3.bar.com:8443:registry.internal.baz.com:30003/bar # Bad config (port in key and value) without "::" separator
registry4.bar.com;registry.internal.baz.com/bar # Bad config with invalid separator
noswap_wildcards:twr.io, walrus.io
`;

/** ImageSwap's testing/map_files/map_file_library_image.conf. */
const LIBRARY_CONF = `default:default.example.com
docker.io:harbor.example.com
docker.io/library:harbor.example.com/library
quay.io:quay.example3.com
noswap_wildcards:twr.io, walrus.io
`;

Deno.test("parseMapFile() reads lines as ImageSwap does and names the odd ones", () => {
  const { maps, problems } = parseMapFile(MAP_FILE_CONF, "map_file.conf");
  assert.deepEqual([...maps.maps.keys()], [
    "default",
    "docker.io",
    "quay.io",
    "gitlab.com",
    "cool.io",
    "registry.internal.twr.io",
    "harbor.geo.pks.twr.io",
    "registry.waldo.com:8443",
    "registry.foo.com",
    "registry.bar.com:8443",
    "noswap_wildcards",
  ]);
  assert.equal(maps.maps.get("noswap_wildcards")?.value, "twr.io,walrus.io");
  assert.equal(maps.maps.get("cool.io")?.value, "");
  assert.equal(maps.maps.get("registry.foo.com")?.value, "localhost:30003/foo");
  const skipped = problems.filter((p) => behaviourOf(p) === "invalid-line").map((p) => p.line);
  assert.deepEqual(skipped, [14, 15, 16]);
  const deprecated = problems.filter((p) => behaviourOf(p) === "deprecated-separator").map((p) => p.line);
  assert.deepEqual(deprecated, [3, 4, 5, 6, 8, 9, 10, 17]);
});

Deno.test("parseMapFile() cuts comments at the first #, and warns where ImageSwap cuts elsewhere", () => {
  const { maps, problems } = parseMapFile("gcr.io::  # off: # see OPS-1\nquay.io::q.example.com#x\n", "maps");
  assert.equal(maps.maps.get("gcr.io")?.value, "");
  assert.equal(maps.maps.get("quay.io")?.value, "q.example.com");
  assert.deepEqual(problems.map((p) => [behaviourOf(p), p.line, p.column]), [["trailing-comment", 1, 1]]);
});

Deno.test("parseMapFile() lets a repeated key win, as ImageSwap's dict does, and says so", () => {
  const { maps, problems } = parseMapFile("default::a.example.com\ndefault::b.example.com\n", "maps");
  assert.equal(maps.maps.get("default")?.value, "b.example.com");
  assert.deepEqual(problems.map((p) => [p.code, behaviourOf(p), p.line]), [["duplicate", "duplicate-key", 2]]);
});

Deno.test("simulateImageSwap() agrees with ImageSwap's own unit tests", async (t) => {
  const conf = parseMapFile(MAP_FILE_CONF, "map_file.conf").maps;
  const library = parseMapFile(LIBRARY_CONF, "map_file_library_image.conf").maps;
  const exact = parseMapFile(
    "default::default.example.com\nnvcr.io::harbor.example.com\n[EXACT]hello-world::myownrepo.example.com/base/public-image-cache:hello-world\n",
    "map_file_exact.conf",
  ).maps;
  const rows: [string, typeof conf, string, string][] = [
    [
      "default map",
      conf,
      "default.io/paulbower/hello-kubernetes:1.5",
      "default.example.com/paulbower/hello-kubernetes:1.5",
    ],
    [
      "trailing dash",
      conf,
      "docker.io/tmobile/magtape:latest",
      "my.example.com/mirror-docker.io/tmobile/magtape:latest",
    ],
    [
      "path suffix",
      conf,
      "gitlab.com/tmobile/pie/proxyman:latest",
      "registry.example.com/gitlab/tmobile/pie/proxyman:latest",
    ],
    ["key-only map, with a port", conf, "cool.io:443/istio/istiod:latest", "cool.io:443/istio/istiod:latest"],
    [
      "noswap wildcard",
      conf,
      "registry.external.twr.io:443/istio/istiod:latest",
      "registry.external.twr.io:443/istio/istiod:latest",
    ],
    [
      "map overrides noswap",
      conf,
      "registry.internal.twr.io:443/istio/istiod:latest",
      "registry.example.com:443/istio/istiod:latest",
    ],
    ["noswap with a space after the comma", conf, "walrus.io/test/test:latest", "walrus.io/test/test:latest"],
    ["key with a port", conf, "registry.waldo.com:8443/app:1", "registry.garply.com/app:1"],
    ["library image", library, "nginx:latest", "harbor.example.com/library/nginx:latest"],
    ["default drops library/", exact, "any-image", "default.example.com/any-image"],
    ["host map", exact, "nvcr.io/any-image", "harbor.example.com/any-image"],
    ["exact map", exact, "hello-world", "myownrepo.example.com/base/public-image-cache:hello-world"],
  ];
  for (const [name, maps, image, expected] of rows) {
    await t.step(`${name}: ${image}`, () => assert.equal(simulateImageSwap(maps, image).output, expected));
  }
});

Deno.test("simulateImageSwap() fails where ImageSwap raises a KeyError", () => {
  const maps = parseMapFile("default::d.example.com\ndocker.io/library::h.example.com/library\n", "maps").maps;
  assert.equal(simulateImageSwap(maps, "nginx").output, "h.example.com/library/nginx");
  assert.match(simulateImageSwap(maps, "bitnami/redis").failure ?? "", /KeyError/);
});

Deno.test("fnmatchPattern() reads shell wildcards as Python's fnmatch does", async (t) => {
  const rows: [string, string, boolean][] = [
    ["ghcr.io/public*", "ghcr.io/public/a/b:1", true],
    ["ghcr.io/public*", "ghcr.io/private/a", false],
    ["*/app:?", "quay.io/x/app:1", true],
    ["quay.io/[!x]*", "quay.io/x/app", false],
    ["quay.io/[ab]*", "quay.io/b/app", true],
    ["a.b", "aXb", false],
  ];
  for (const [glob, text, matches] of rows) {
    await t.step(
      `${glob} on ${text}`,
      () => assert.equal(new RegExp(`^(?:${fnmatchPattern(glob)})$`).test(text), matches),
    );
  }
});

Deno.test("translateImageSwap() writes one object per file, rules in ImageSwap's order", () => {
  const translation = translateImageSwap(LIBRARY_CONF, "/etc/imageswap/maps");
  assert.deepEqual(translation.objects.map((object) => object.raw["metadata"]), [{ name: "imageswap-maps" }]);
  const [object] = translation.objects;
  assert.ok(object !== undefined);
  const checked = validateObject(object.raw);
  assert.deepEqual(checked.problems, []);
  assert.deepEqual(checked.object?.spec.rules.map((rule) => [rule.prefix ?? rule.match, rule.keep ?? false]), [
    ["docker.io", false],
    ["docker.io/library", false],
    ["quay.io", false],
    ["twr\\.io", true],
    ["walrus\\.io", true],
    // Where the lines above send images: a Pod admitted again keeps them (harbor.example.com/library is under it).
    ["harbor.example.com", true],
    ["quay.example3.com", true],
    ["^default\\.example\\.com/", true],
    ["^[^/]+/(.*)$", false],
  ]);
  assert.deepEqual(object.locate(["spec", "rules", 1, "replace"]), { line: 3, column: 19 });
  assert.deepEqual(translation.optOuts.map((o) => [o.kind, o.key, o.value]), [[
    "label",
    "k8s.twr.io/imageswap",
    "disabled",
  ]]);
});

Deno.test("translateImageSwap() names what ImageSwap does differently", async (t) => {
  const rows: { name: string; text: string; behaviours: [string, number][] }[] = [
    {
      name: "no default line",
      text: "docker.io::h.example.com\n[EXACT]busybox:1.36::h.example.com/busybox:1.36\n",
      behaviours: [["no-default", 1], ["exact-as-written", 2]],
    },
    {
      name: "docker.io/library without docker.io",
      text: "default::\ndocker.io/library::h.example.com/library\n",
      behaviours: [
        ["library-map-without-registry-map", 2],
        ["library-map-short-names-only", 2],
        ["index-docker-io", 2],
        // localhost:5000/… is a Docker Hub image there, and fails the same way.
        ["registry-read-as-docker-hub", 2],
      ],
    },
    {
      name: "keys ImageSwap never uses",
      text: "default::\ndocker.io/bitnami::h.example.com/b\nlocalhost:5000::h.example.com/l\n",
      behaviours: [["key-never-used", 2], ["registry-read-as-docker-hub", 3]],
    },
    {
      name: "an empty [EXACT] target",
      text: "default::\n[EXACT]busybox:1.36::\n",
      behaviours: [["empty-target", 2]],
    },
    {
      name: "a stray comma in noswap_wildcards",
      text: "default::h.example.com\nnoswap_wildcards::twr.io,\n",
      behaviours: [["empty-noswap-item", 2]],
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      const found = translateImageSwap(row.text, "maps").problems
        .filter((problem) => behaviourOf(problem) !== undefined)
        .map((problem): [string, number] => [behaviourOf(problem) ?? "", problem.line ?? 0]);
      for (const expected of row.behaviours) {
        assert.ok(
          found.some((f) => f[0] === expected[0] && f[1] === expected[1]),
          `${expected} in ${JSON.stringify(found)}`,
        );
      }
      assert.equal(found.length, row.behaviours.length, JSON.stringify(found));
    });
  }
});

Deno.test("translateImageSwap() moves [EXACT] and [REPLACE] to a first object when [REPLACE] is used", () => {
  const translation = translateImageSwap(
    "default::d.example.com\n[REPLACE]ghcr.io/public*::m.example.com\n[EXACT]a.io/x:1::b.io/y:2\n",
    "maps",
  );
  assert.deepEqual(
    translation.objects.map((
      object,
    ) => [(object.raw["metadata"] as { name: string }).name, (object.raw["spec"] as { priority: number }).priority]),
    [["imageswap-maps-replace", 1], ["imageswap-maps", 0]],
  );
});
