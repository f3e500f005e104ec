// Tests for the proxy-URL format and the model of k8s-proxy-image-swapper (cases from its mutate_test.go).

import assert from "node:assert/strict";
import { behaviourOf } from "./common.ts";
import {
  checkProxyValue,
  findProxyLine,
  isProxyUrlText,
  simulateProxySwapper,
  translateProxyUrl,
} from "./proxy_url.ts";

Deno.test("isProxyUrlText() recognises one proxy line, assigned or bare", async (t) => {
  const rows: [string, boolean][] = [
    ["PROXY_URL=harbor.example.com\n", true],
    ['# proxy\nexport REGISTRY_URL="https://harbor.example.com/dockerhub/"\n', true],
    ["harbor.example.com:5000/dockerhub\n", true],
    ["localhost:5000", true],
    ["hello\n", false],
    ["default::harbor.example.com\n", false],
    ["docker.io:harbor.example.com\n", false],
    ["harbor.example.com\nquay.example.com\n", false],
    ["apiVersion: v1\n", false],
  ];
  for (const [text, expected] of rows) {
    await t.step(JSON.stringify(text), () => assert.equal(isProxyUrlText(text), expected));
  }
});

Deno.test("findProxyLine() and checkProxyValue() strip quotes, scheme and trailing slashes", () => {
  const line = findProxyLine("\n# k8s-pisw\nPROXY_URL='https://harbor.example.com/dockerhub/' # cache\n");
  assert.deepEqual(line?.at, { line: 3, column: 11 });
  assert.equal(line?.value, "https://harbor.example.com/dockerhub/");
  assert.deepEqual(checkProxyValue(line?.value ?? ""), {
    ok: true,
    prefix: "harbor.example.com/dockerhub",
    scheme: true,
  });
  assert.equal(checkProxyValue("harbor.example.com/Docker").ok, false);
  assert.equal(checkProxyValue("").ok, false);
});

Deno.test("simulateProxySwapper() agrees with k8s-proxy-image-swapper's tests (current version adds the tag)", async (t) => {
  const rows: [string, string][] = [
    ["busybox", "example.com/library/busybox:latest"],
    ["busybox:latest", "example.com/library/busybox:latest"],
    ["toto/tata", "example.com/toto/tata:latest"],
    ["example.org/toto/tata", "example.org/toto/tata:latest"],
    ["docker.io/toto/tata:latest", "example.com/toto/tata:latest"],
    ["docker.io/busybox", "example.com/library/busybox:latest"],
    ["gcr.io/busybox", "gcr.io/busybox:latest"],
    ["gcr.io/toto/tata", "gcr.io/toto/tata:latest"],
    // What it does with registries without a dot.
    ["localhost:5000/team/app:1", "example.com/localhost:5000/team/app:1"],
  ];
  for (const [image, expected] of rows) {
    await t.step(image, () => assert.equal(simulateProxySwapper("example.com", image).output, expected));
  }
});

Deno.test("translateProxyUrl() sends Docker Hub to the proxy and names the differences", () => {
  const translation = translateProxyUrl("PROXY_URL=https://mirror:5000\n", "proxy.env");
  assert.deepEqual(translation.objects.map((object) => object.raw["spec"]), [
    { priority: 0, rules: [{ prefix: "docker.io", replace: "mirror:5000" }] },
  ]);
  assert.deepEqual(translation.problems.map((p) => behaviourOf(p)).sort(), [
    "ignored-images",
    "index-docker-io",
    "prefix-stacking",
    "registry-read-as-docker-hub",
    "scheme-stripped",
  ]);
  for (const problem of translation.problems) assert.deepEqual([problem.line, problem.column], [1, 11]);
});

Deno.test("translateProxyUrl() refuses a value that is no registry prefix", () => {
  const translation = translateProxyUrl("PROXY_URL=not a host\n", "proxy.env");
  assert.deepEqual(translation.objects, []);
  assert.deepEqual(translation.problems.map((p) => [p.severity, p.code, p.line]), [["error", "invalid-value", 1]]);
});
