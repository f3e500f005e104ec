// Table and property tests for image reference parsing, normalization and formatting.
// Cases follow github.com/distribution/reference (reference_test.go, normalize_test.go, regexp.go).

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  DOCKER_HUB,
  formatFamiliar,
  formatName,
  formatReference,
  formatSuffix,
  normalizeReference,
  parseReference,
  type ReferenceErrorReason,
  sameImage,
} from "./reference.ts";

const HEX64 = "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c";
const SHA256 = `sha256:${HEX64}`;
const SHA384 = `sha384:${"ab".repeat(48)}`;
const SHA512 = `sha512:${"f".repeat(128)}`;
const LONG_NAMESPACE =
  "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255";

/** A valid input, its normalized form and its familiar form; `name` labels inputs too long to read. */
interface ValidRow {
  readonly input: string;
  readonly normalized: string;
  readonly familiar: string;
  readonly name?: string;
}

/** An invalid input and the reason code it must be rejected with. */
interface InvalidRow {
  readonly input: unknown;
  readonly reason: ReferenceErrorReason;
  readonly name?: string;
}

const VALID: readonly ValidRow[] = [
  // Docker Hub: default registry, `library/` for single-component names, `latest` only without tag and digest.
  { input: "nginx", normalized: "docker.io/library/nginx:latest", familiar: "nginx:latest" },
  { input: "nginx:latest", normalized: "docker.io/library/nginx:latest", familiar: "nginx:latest" },
  { input: "nginx:1.25", normalized: "docker.io/library/nginx:1.25", familiar: "nginx:1.25" },
  { input: "library/nginx", normalized: "docker.io/library/nginx:latest", familiar: "nginx:latest" },
  { input: "docker.io/nginx", normalized: "docker.io/library/nginx:latest", familiar: "nginx:latest" },
  {
    input: "docker.io/library/nginx:1.25-alpine",
    normalized: "docker.io/library/nginx:1.25-alpine",
    familiar: "nginx:1.25-alpine",
  },
  { input: "docker.io/library/redis:latest", normalized: "docker.io/library/redis:latest", familiar: "redis:latest" },
  { input: "debian", normalized: "docker.io/library/debian:latest", familiar: "debian:latest" },
  { input: "library/debian", normalized: "docker.io/library/debian:latest", familiar: "debian:latest" },
  { input: "docker.io/library/debian", normalized: "docker.io/library/debian:latest", familiar: "debian:latest" },
  { input: "bitnami/redis", normalized: "docker.io/bitnami/redis:latest", familiar: "bitnami/redis:latest" },
  { input: "bitnami/redis:7", normalized: "docker.io/bitnami/redis:7", familiar: "bitnami/redis:7" },
  { input: "docker.io/bitnami/redis:7.2", normalized: "docker.io/bitnami/redis:7.2", familiar: "bitnami/redis:7.2" },
  { input: "docker/docker", normalized: "docker.io/docker/docker:latest", familiar: "docker/docker:latest" },
  { input: "docker/migrator", normalized: "docker.io/docker/migrator:latest", familiar: "docker/migrator:latest" },
  { input: "dmcgowan/myapp", normalized: "docker.io/dmcgowan/myapp:latest", familiar: "dmcgowan/myapp:latest" },
  { input: "fooo/bar", normalized: "docker.io/fooo/bar:latest", familiar: "fooo/bar:latest" },
  {
    input: "nonlibrary/ubuntu",
    normalized: "docker.io/nonlibrary/ubuntu:latest",
    familiar: "nonlibrary/ubuntu:latest",
  },
  { input: "other/library", normalized: "docker.io/other/library:latest", familiar: "other/library:latest" },
  { input: "docker.io/library", normalized: "docker.io/library/library:latest", familiar: "library:latest" },
  {
    input: "docker.io/library/foo/bar",
    normalized: "docker.io/library/foo/bar:latest",
    familiar: "library/foo/bar:latest",
  },
  { input: "store/foo/bar", normalized: "docker.io/store/foo/bar:latest", familiar: "store/foo/bar:latest" },
  {
    input: "ubuntu-12.04-base",
    normalized: "docker.io/library/ubuntu-12.04-base:latest",
    familiar: "ubuntu-12.04-base:latest",
  },
  { input: "test_com", normalized: "docker.io/library/test_com:latest", familiar: "test_com:latest" },
  { input: "test_com/foo", normalized: "docker.io/test_com/foo:latest", familiar: "test_com/foo:latest" },
  // index.docker.io is Docker Hub; the comparison is case-sensitive, as in splitDockerDomain.
  { input: "index.docker.io/nginx", normalized: "docker.io/library/nginx:latest", familiar: "nginx:latest" },
  { input: "index.docker.io/library/debian:12", normalized: "docker.io/library/debian:12", familiar: "debian:12" },
  {
    input: "index.docker.io/docker/docker",
    normalized: "docker.io/docker/docker:latest",
    familiar: "docker/docker:latest",
  },
  { input: "index.docker.io/bitnami/redis:7", normalized: "docker.io/bitnami/redis:7", familiar: "bitnami/redis:7" },
  {
    input: `index.docker.io/library/nginx@${SHA256}`,
    normalized: `docker.io/library/nginx@${SHA256}`,
    familiar: `nginx@${SHA256}`,
  },
  {
    input: "INDEX.DOCKER.IO/nginx",
    normalized: "INDEX.DOCKER.IO/nginx:latest",
    familiar: "INDEX.DOCKER.IO/nginx:latest",
  },
  // Other registries: the first component is one when it has "." or ":", is localhost, or has an uppercase letter.
  { input: "ghcr.io/owner/app:v1", normalized: "ghcr.io/owner/app:v1", familiar: "ghcr.io/owner/app:v1" },
  {
    input: "quay.io/prometheus/node-exporter:v1.8.0",
    normalized: "quay.io/prometheus/node-exporter:v1.8.0",
    familiar: "quay.io/prometheus/node-exporter:v1.8.0",
  },
  {
    input: "registry.k8s.io/pause:3.9",
    normalized: "registry.k8s.io/pause:3.9",
    familiar: "registry.k8s.io/pause:3.9",
  },
  { input: "test.com/foo", normalized: "test.com/foo:latest", familiar: "test.com/foo:latest" },
  { input: "test.com/repo:tag", normalized: "test.com/repo:tag", familiar: "test.com/repo:tag" },
  {
    input: "b.gcr.io/test.example.com/my-app:test.example.com",
    normalized: "b.gcr.io/test.example.com/my-app:test.example.com",
    familiar: "b.gcr.io/test.example.com/my-app:test.example.com",
  },
  {
    input: "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
    normalized: "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
    familiar: "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
  },
  {
    input: "xn--n3h.com/myimage:xn--n3h.com",
    normalized: "xn--n3h.com/myimage:xn--n3h.com",
    familiar: "xn--n3h.com/myimage:xn--n3h.com",
  },
  {
    input: `xn--7o8h.com/myimage:xn--7o8h.com@${SHA512}`,
    normalized: `xn--7o8h.com/myimage:xn--7o8h.com@${SHA512}`,
    familiar: `xn--7o8h.com/myimage:xn--7o8h.com@${SHA512}`,
  },
  { input: "EXAMPLE.COM/foo", normalized: "EXAMPLE.COM/foo:latest", familiar: "EXAMPLE.COM/foo:latest" },
  { input: "Foo/bar", normalized: "Foo/bar:latest", familiar: "Foo/bar:latest" },
  { input: "FOO/bar", normalized: "FOO/bar:latest", familiar: "FOO/bar:latest" },
  { input: "Docker/docker", normalized: "Docker/docker:latest", familiar: "Docker/docker:latest" },
  { input: "Localhost/app", normalized: "Localhost/app:latest", familiar: "Localhost/app:latest" },
  // Ports belong to the registry and are never read as a tag.
  { input: "test.com:8080/foo", normalized: "test.com:8080/foo:latest", familiar: "test.com:8080/foo:latest" },
  { input: "test-com:8080/foo", normalized: "test-com:8080/foo:latest", familiar: "test-com:8080/foo:latest" },
  { input: "test:5000/repo", normalized: "test:5000/repo:latest", familiar: "test:5000/repo:latest" },
  { input: "test:5000/repo:tag", normalized: "test:5000/repo:tag", familiar: "test:5000/repo:tag" },
  {
    input: "xn--n3h.com:18080/foo",
    normalized: "xn--n3h.com:18080/foo:latest",
    familiar: "xn--n3h.com:18080/foo:latest",
  },
  {
    input: "example.com:8000/private/moonbase",
    normalized: "example.com:8000/private/moonbase:latest",
    familiar: "example.com:8000/private/moonbase:latest",
  },
  {
    input: "my-registry.local:30500/ns/app:2",
    normalized: "my-registry.local:30500/ns/app:2",
    familiar: "my-registry.local:30500/ns/app:2",
  },
  // The grammar's port is any run of digits; the runtimes parse these too.
  { input: "localhost:99999/foo", normalized: "localhost:99999/foo:latest", familiar: "localhost:99999/foo:latest" },
  { input: "localhost/foo", normalized: "localhost/foo:latest", familiar: "localhost/foo:latest" },
  { input: "localhost/foo:1", normalized: "localhost/foo:1", familiar: "localhost/foo:1" },
  { input: "localhost:5000/foo", normalized: "localhost:5000/foo:latest", familiar: "localhost:5000/foo:latest" },
  {
    input: "localhost:5000/foo/bar:tag",
    normalized: "localhost:5000/foo/bar:tag",
    familiar: "localhost:5000/foo/bar:tag",
  },
  // Without a slash there is no registry: what follows the colon is a tag.
  { input: "localhost", normalized: "docker.io/library/localhost:latest", familiar: "localhost:latest" },
  { input: "localhost:5000", normalized: "docker.io/library/localhost:5000", familiar: "localhost:5000" },
  { input: "example.com", normalized: "docker.io/library/example.com:latest", familiar: "example.com:latest" },
  { input: "test.com:tag", normalized: "docker.io/library/test.com:tag", familiar: "test.com:tag" },
  { input: "test.com:5000", normalized: "docker.io/library/test.com:5000", familiar: "test.com:5000" },
  { input: "foo_bar.com:8080", normalized: "docker.io/library/foo_bar.com:8080", familiar: "foo_bar.com:8080" },
  { input: "192.168.0.1", normalized: "docker.io/library/192.168.0.1:latest", familiar: "192.168.0.1:latest" },
  { input: "192.168.0.1:80", normalized: "docker.io/library/192.168.0.1:80", familiar: "192.168.0.1:80" },
  { input: "foo/foo_bar.com:8080", normalized: "docker.io/foo/foo_bar.com:8080", familiar: "foo/foo_bar.com:8080" },
  // IPv4 and IPv6 registries.
  { input: "192.168.1.1/repo", normalized: "192.168.1.1/repo:latest", familiar: "192.168.1.1/repo:latest" },
  {
    input: "192.168.1.1:5000/repo",
    normalized: "192.168.1.1:5000/repo:latest",
    familiar: "192.168.1.1:5000/repo:latest",
  },
  {
    input: "192.168.1.1:5000/repo:5050",
    normalized: "192.168.1.1:5000/repo:5050",
    familiar: "192.168.1.1:5000/repo:5050",
  },
  {
    input: "127.0.0.1:5000/docker/docker",
    normalized: "127.0.0.1:5000/docker/docker:latest",
    familiar: "127.0.0.1:5000/docker/docker:latest",
  },
  {
    input: "10.0.0.1:5000/team/app:1.0",
    normalized: "10.0.0.1:5000/team/app:1.0",
    familiar: "10.0.0.1:5000/team/app:1.0",
  },
  { input: "[2001:db8::1]/repo", normalized: "[2001:db8::1]/repo:latest", familiar: "[2001:db8::1]/repo:latest" },
  {
    input: "[2001:db8::1]:5000/repo",
    normalized: "[2001:db8::1]:5000/repo:latest",
    familiar: "[2001:db8::1]:5000/repo:latest",
  },
  {
    input: "[2001:db8::1]:5000/repo:tag",
    normalized: "[2001:db8::1]:5000/repo:tag",
    familiar: "[2001:db8::1]:5000/repo:tag",
  },
  {
    input: `[2001:db8::1]:5000/repo@${SHA256}`,
    normalized: `[2001:db8::1]:5000/repo@${SHA256}`,
    familiar: `[2001:db8::1]:5000/repo@${SHA256}`,
  },
  {
    input: `[2001:db8::1]:5000/repo:tag@${SHA256}`,
    normalized: `[2001:db8::1]:5000/repo:tag@${SHA256}`,
    familiar: `[2001:db8::1]:5000/repo:tag@${SHA256}`,
  },
  {
    input: "[2001:db8:1:2:3:4:5:6]/repo:tag",
    normalized: "[2001:db8:1:2:3:4:5:6]/repo:tag",
    familiar: "[2001:db8:1:2:3:4:5:6]/repo:tag",
  },
  {
    input: "[2001:db8::]:5000/repo",
    normalized: "[2001:db8::]:5000/repo:latest",
    familiar: "[2001:db8::]:5000/repo:latest",
  },
  { input: "[::1]:5000/repo", normalized: "[::1]:5000/repo:latest", familiar: "[::1]:5000/repo:latest" },
  {
    input: "[fc00::1]:5000/docker/docker",
    normalized: "[fc00::1]:5000/docker/docker:latest",
    familiar: "[fc00::1]:5000/docker/docker:latest",
  },
  {
    input: "[FC00::ABCD]:5000/docker",
    normalized: "[FC00::ABCD]:5000/docker:latest",
    familiar: "[FC00::ABCD]:5000/docker:latest",
  },
  // Digests are kept, with or without a tag; a digest alone gets no `latest`.
  { input: `nginx@${SHA256}`, normalized: `docker.io/library/nginx@${SHA256}`, familiar: `nginx@${SHA256}` },
  {
    input: `nginx:1.25@${SHA256}`,
    normalized: `docker.io/library/nginx:1.25@${SHA256}`,
    familiar: `nginx:1.25@${SHA256}`,
  },
  {
    input: `busybox:latest@${SHA256}`,
    normalized: `docker.io/library/busybox:latest@${SHA256}`,
    familiar: `busybox:latest@${SHA256}`,
  },
  {
    input: `dmcgowan/myapp@${SHA256}`,
    normalized: `docker.io/dmcgowan/myapp@${SHA256}`,
    familiar: `dmcgowan/myapp@${SHA256}`,
  },
  { input: `test:5000/repo@${SHA256}`, normalized: `test:5000/repo@${SHA256}`, familiar: `test:5000/repo@${SHA256}` },
  {
    input: `localhost:5000/repo:tag@${SHA256}`,
    normalized: `localhost:5000/repo:tag@${SHA256}`,
    familiar: `localhost:5000/repo:tag@${SHA256}`,
  },
  { input: `ghcr.io/a/b@${SHA384}`, normalized: `ghcr.io/a/b@${SHA384}`, familiar: `ghcr.io/a/b@${SHA384}` },
  { input: `ghcr.io/a/b@${SHA512}`, normalized: `ghcr.io/a/b@${SHA512}`, familiar: `ghcr.io/a/b@${SHA512}` },
  // Tags: 1 to 128 word characters, dots and dashes, not starting with "." or "-"; case is kept.
  {
    input: "lowercase:Uppercase",
    normalized: "docker.io/library/lowercase:Uppercase",
    familiar: "lowercase:Uppercase",
  },
  { input: "nginx:LATEST", normalized: "docker.io/library/nginx:LATEST", familiar: "nginx:LATEST" },
  { input: "nginx:_private", normalized: "docker.io/library/nginx:_private", familiar: "nginx:_private" },
  { input: "nginx:1.0-rc.1_b2", normalized: "docker.io/library/nginx:1.0-rc.1_b2", familiar: "nginx:1.0-rc.1_b2" },
  { input: "nginx:0", normalized: "docker.io/library/nginx:0", familiar: "nginx:0" },
  {
    input: `nginx:${"t".repeat(128)}`,
    normalized: `docker.io/library/nginx:${"t".repeat(128)}`,
    familiar: `nginx:${"t".repeat(128)}`,
    name: 'nginx:"t"×128',
  },
  // Path separators: one ".", one or two "_", any number of "-".
  { input: "dock__er/docker", normalized: "docker.io/dock__er/docker:latest", familiar: "dock__er/docker:latest" },
  {
    input: "docker-rules/docker",
    normalized: "docker.io/docker-rules/docker:latest",
    familiar: "docker-rules/docker:latest",
  },
  {
    input: "docker---rules/docker",
    normalized: "docker.io/docker---rules/docker:latest",
    familiar: "docker---rules/docker:latest",
  },
  { input: "a_b.c-d__e--f", normalized: "docker.io/library/a_b.c-d__e--f:latest", familiar: "a_b.c-d__e--f:latest" },
  {
    input: "example.com/a__b/c---d/e.f/g_h:v",
    normalized: "example.com/a__b/c---d/e.f/g_h:v",
    familiar: "example.com/a__b/c---d/e.f/g_h:v",
  },
  { input: "d/docker", normalized: "docker.io/d/docker:latest", familiar: "d/docker:latest" },
  { input: "jess/t", normalized: "docker.io/jess/t:latest", familiar: "jess/t:latest" },
  { input: "0/0", normalized: "docker.io/0/0:latest", familiar: "0/0:latest" },
  { input: "a/b/c/d/e", normalized: "docker.io/a/b/c/d/e:latest", familiar: "a/b/c/d/e:latest" },
  // Hexadecimal names: only a bare 64-character one is an image ID.
  {
    input: `docker.io/${HEX64}`,
    normalized: `docker.io/library/${HEX64}:latest`,
    familiar: `${HEX64}:latest`,
    name: "docker.io/<64 hex>",
  },
  {
    input: `${HEX64}:tag`,
    normalized: `docker.io/library/${HEX64}:tag`,
    familiar: `${HEX64}:tag`,
    name: "<64 hex>:tag",
  },
  {
    input: HEX64.slice(1),
    normalized: `docker.io/library/${HEX64.slice(1)}:latest`,
    familiar: `${HEX64.slice(1)}:latest`,
    name: "<63 hex>",
  },
  {
    input: `${HEX64}0`,
    normalized: `docker.io/library/${HEX64}0:latest`,
    familiar: `${HEX64}0:latest`,
    name: "<65 hex>",
  },
  {
    input: "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
    normalized: "docker.io/library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev:latest",
    familiar: "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev:latest",
  },
  // A Docker Hub path whose first component reads as a registry keeps docker.io/ in its familiar form.
  {
    input: "docker.io/foo.bar/baz",
    normalized: "docker.io/foo.bar/baz:latest",
    familiar: "docker.io/foo.bar/baz:latest",
  },
  {
    input: "docker.io/localhost/app",
    normalized: "docker.io/localhost/app:latest",
    familiar: "docker.io/localhost/app:latest",
  },
  { input: "docker.io/library/foo.bar", normalized: "docker.io/library/foo.bar:latest", familiar: "foo.bar:latest" },
  // The 255-character limit applies to the normalized repository path, not to the registry (distribution/reference
  // since v0.6.0): "library/" counts, "docker.io/" and a registry host do not.
  {
    input: "a".repeat(247),
    normalized: `docker.io/library/${"a".repeat(247)}:latest`,
    familiar: `${"a".repeat(247)}:latest`,
    name: '"a"×247 (path library/… 255)',
  },
  {
    input: `ns/${"a".repeat(252)}`,
    normalized: `docker.io/ns/${"a".repeat(252)}:latest`,
    familiar: `ns/${"a".repeat(252)}:latest`,
    name: 'ns/"a"×252 (path 255)',
  },
  {
    input: `index.docker.io/ns/${"a".repeat(252)}`,
    normalized: `docker.io/ns/${"a".repeat(252)}:latest`,
    familiar: `ns/${"a".repeat(252)}:latest`,
    name: 'index.docker.io/ns/"a"×252 (path 255)',
  },
  {
    input: `example.com/${"a".repeat(255)}:${"t".repeat(128)}@${SHA512}`,
    normalized: `example.com/${"a".repeat(255)}:${"t".repeat(128)}@${SHA512}`,
    familiar: `example.com/${"a".repeat(255)}:${"t".repeat(128)}@${SHA512}`,
    name: 'example.com/"a"×255:"t"×128@sha512 (path 255, name 267)',
  },
  {
    input: `${"r".repeat(60)}.example.com:5000/${"a".repeat(255)}`,
    normalized: `${"r".repeat(60)}.example.com:5000/${"a".repeat(255)}:latest`,
    familiar: `${"r".repeat(60)}.example.com:5000/${"a".repeat(255)}:latest`,
    name: '"r"×60.example.com:5000/"a"×255 (path 255, name 333)',
  },
  {
    input: `${"a/".repeat(127)}a:tag-puts-this-over-max`,
    normalized: `docker.io/${"a/".repeat(127)}a:tag-puts-this-over-max`,
    familiar: `${"a/".repeat(127)}a:tag-puts-this-over-max`,
    name: '"a/"×127 + "a:tag-puts-this-over-max" (path 255)',
  },
];

const INVALID: readonly InvalidRow[] = [
  // Not a string, empty, whitespace.
  { input: undefined, reason: "not-a-string" },
  { input: null, reason: "not-a-string" },
  { input: 42, reason: "not-a-string" },
  { input: true, reason: "not-a-string" },
  { input: ["nginx"], reason: "not-a-string", name: '["nginx"]' },
  { input: { image: "nginx" }, reason: "not-a-string", name: '{ image: "nginx" }' },
  { input: Symbol("nginx"), reason: "not-a-string", name: 'Symbol("nginx")' },
  { input: Object.create(null), reason: "not-a-string", name: "Object.create(null)" },
  { input: "", reason: "empty" },
  { input: " ", reason: "invalid-format" },
  { input: " nginx", reason: "invalid-format" },
  { input: "nginx ", reason: "invalid-format" },
  { input: "ngi nx", reason: "invalid-format" },
  { input: "\tnginx", reason: "invalid-format", name: "\\tnginx" },
  { input: "nginx\n", reason: "invalid-format", name: "nginx\\n" },
  { input: "nginx:latest ", reason: "invalid-tag" },
  // Uppercase repository.
  { input: "Nginx", reason: "uppercase-repository" },
  { input: "NGINX:latest", reason: "uppercase-repository" },
  { input: "Uppercase:tag", reason: "uppercase-repository" },
  { input: "docker/Docker", reason: "uppercase-repository" },
  { input: "bitnami/Redis:7", reason: "uppercase-repository" },
  { input: "docker.io/docker/Docker", reason: "uppercase-repository" },
  { input: "test:5000/Uppercase/lowercase:tag", reason: "uppercase-repository" },
  { input: "localhost/Foo", reason: "uppercase-repository" },
  { input: "Foo/Bar", reason: "uppercase-repository" },
  // Path components: leading, trailing and doubled separators, empty components, bad characters.
  { input: "-docker", reason: "invalid-format" },
  { input: "-docker/docker", reason: "invalid-format" },
  { input: "docker-/docker", reason: "invalid-format" },
  { input: "-docker-/docker", reason: "invalid-format" },
  { input: "____/____", reason: "invalid-format" },
  { input: "_docker/_docker", reason: "invalid-format" },
  { input: "docker_", reason: "invalid-format" },
  { input: "nginx.", reason: "invalid-format" },
  { input: ".nginx", reason: "invalid-format" },
  { input: "docker/dock..er", reason: "invalid-format" },
  { input: "docker/dock_.er", reason: "invalid-format" },
  { input: "docker/dock-.er", reason: "invalid-format" },
  { input: "dock___er/docker", reason: "invalid-format" },
  { input: "dock-_er", reason: "invalid-format" },
  { input: "a//b", reason: "invalid-format" },
  { input: "docker///docker", reason: "invalid-format" },
  { input: "docker.io/docker///docker", reason: "invalid-format" },
  { input: "docker/", reason: "invalid-format" },
  { input: "nginx/", reason: "invalid-format" },
  { input: "example.com/", reason: "invalid-format" },
  { input: "example.com/foo/", reason: "invalid-format" },
  { input: "/nginx", reason: "invalid-format" },
  { input: "aa/asdf$$^/aa", reason: "invalid-format" },
  { input: "nginx:v1:v2", reason: "invalid-format" },
  { input: ":justtag", reason: "invalid-format" },
  { input: "example.com/:tag", reason: "invalid-format" },
  { input: `@${SHA256}`, reason: "invalid-format", name: "@sha256:<64 hex>" },
  { input: "[fc00::1]:5000", reason: "invalid-format" },
  // Registries (a first component with "." or ":" is one, so a bad one is a registry error).
  { input: "dock..er/docker", reason: "invalid-registry" },
  { input: "dock_.er/docker", reason: "invalid-registry" },
  { input: "dock-.er/docker", reason: "invalid-registry" },
  { input: "https://github.com/docker/docker", reason: "invalid-registry" },
  { input: "-docker.io/docker/docker", reason: "invalid-registry" },
  { input: "docker-.io/docker", reason: "invalid-registry" },
  { input: "exa_mple.com/foo", reason: "invalid-registry" },
  // Docker's Parse accepts these as a domain-less path (Domain() is ""), which names no registry to pull from.
  { input: "foo_bar.com/x", reason: "invalid-registry" },
  { input: "a__docker.io/a", reason: "invalid-registry" },
  { input: "example..com/foo", reason: "invalid-registry" },
  { input: ".example.com/foo", reason: "invalid-registry" },
  { input: "example.com./foo", reason: "invalid-registry" },
  { input: "localhost:/foo", reason: "invalid-registry" },
  { input: "localhost:abc/foo", reason: "invalid-registry" },
  { input: "example.com:80a/foo", reason: "invalid-registry" },
  { input: "example.com:-1/foo", reason: "invalid-registry" },
  { input: "a:b:c/foo", reason: "invalid-registry" },
  { input: "foo:bar/baz", reason: "invalid-registry" },
  { input: "fc00::1:5000/debian", reason: "invalid-registry" },
  { input: "2001:db8::1/repo", reason: "invalid-registry" },
  { input: "[2001:db8::1/repo", reason: "invalid-registry" },
  { input: "[::1]x/repo", reason: "invalid-registry" },
  { input: "[]:5000/repo", reason: "invalid-registry" },
  { input: "[fe80::1%eth0]:5000/debian", reason: "invalid-registry" },
  { input: "[2001:db8:3:4::192.0.2.33]:5000/debian", reason: "invalid-registry" },
  { input: "[::ffff:192.0.2.1]/repo", reason: "invalid-registry" },
  { input: "[fc00::1]", reason: "invalid-tag" },
  { input: "[2001:db8::1]:tag", reason: "invalid-format" },
  { input: "Exa$mple/foo", reason: "invalid-registry" },
  // Tags.
  { input: "nginx:", reason: "invalid-tag" },
  { input: "nginx:.hidden", reason: "invalid-tag" },
  { input: "nginx:-rc1", reason: "invalid-tag" },
  { input: "nginx:a+b", reason: "invalid-tag" },
  { input: "nginx:t!g", reason: "invalid-tag" },
  { input: "nginx:tag/x", reason: "invalid-registry" },
  { input: `nginx:${"t".repeat(129)}`, reason: "invalid-tag", name: 'nginx:"t"×129' },
  // Digests: shape, length, case, algorithm.
  { input: "nginx@", reason: "invalid-digest" },
  { input: "nginx@sha256", reason: "invalid-digest" },
  { input: "nginx@sha256:", reason: "invalid-digest" },
  { input: `nginx@${HEX64}`, reason: "invalid-digest", name: "nginx@<64 hex>" },
  { input: "repo@sha256:ffffffffffffffffffffffffffffffffff", reason: "invalid-digest" },
  { input: `nginx@sha256:${HEX64.slice(1)}`, reason: "invalid-digest", name: "nginx@sha256:<63 hex>" },
  { input: `nginx@sha256:${HEX64}0`, reason: "invalid-digest", name: "nginx@sha256:<65 hex>" },
  { input: `nginx@sha256:${HEX64.toUpperCase()}`, reason: "invalid-digest", name: "nginx@sha256:<64 HEX>" },
  { input: `nginx@sha256:${"g".repeat(64)}`, reason: "invalid-digest", name: 'nginx@sha256:"g"×64' },
  { input: `nginx@sha512:${HEX64}`, reason: "invalid-digest", name: "nginx@sha512:<64 hex>" },
  { input: `nginx@${SHA256}@${SHA256}`, reason: "invalid-digest", name: "nginx@sha256:<hex>@sha256:<hex>" },
  { input: `nginx@${SHA256}:tag`, reason: "invalid-digest", name: "nginx@sha256:<hex>:tag" },
  { input: `nginx@1sha:${HEX64}`, reason: "invalid-digest", name: "nginx@1sha:<64 hex>" },
  { input: "nginx@md5:" + "a".repeat(32), reason: "unsupported-digest", name: "nginx@md5:<32 hex>" },
  {
    input: `validname@invaliddigest:${"f".repeat(64)}`,
    reason: "unsupported-digest",
    name: "validname@invaliddigest:<64 hex>",
  },
  { input: `nginx@SHA256:${HEX64}`, reason: "unsupported-digest", name: "nginx@SHA256:<64 hex>" },
  { input: `nginx@sha256+b64:${HEX64}`, reason: "unsupported-digest", name: "nginx@sha256+b64:<64 hex>" },
  { input: "[fe80::1%@invalidzone]:5000/repo", reason: "invalid-digest" },
  // A bare 64-character hexadecimal string is an image ID.
  { input: HEX64, reason: "hex-identifier", name: "<64 hex>" },
  { input: "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a", reason: "hex-identifier" },
  // Repository paths over 255 characters once normalized.
  { input: "a".repeat(248), reason: "name-too-long", name: '"a"×248 (path library/… 256)' },
  { input: `ns/${"a".repeat(253)}`, reason: "name-too-long", name: 'ns/"a"×253 (path 256)' },
  { input: `example.com/${"a".repeat(256)}`, reason: "name-too-long", name: 'example.com/"a"×256 (path 256)' },
  { input: `${"a/".repeat(128)}a:tag`, reason: "name-too-long", name: '"a/"×128 + "a:tag" (path 257)' },
  { input: `${LONG_NAMESPACE}/docker`, reason: "name-too-long", name: "<263-character namespace>/docker" },
  { input: "a".repeat(2000), reason: "name-too-long", name: '"a"×2000' },
];

function assertValid(row: ValidRow): void {
  const result = parseReference(row.input);
  assert.ok(result.ok, result.ok ? "" : result.error.message);
  const reference = result.reference;
  assert.equal(formatReference(reference), row.normalized);
  assert.equal(formatName(reference) + formatSuffix(reference), row.normalized);
  assert.equal(normalizeReference(row.input), row.normalized);
  assert.equal(formatFamiliar(reference), row.familiar);
  // Both forms parse back to the same reference.
  assert.equal(normalizeReference(row.normalized), row.normalized);
  assert.equal(normalizeReference(row.familiar), row.normalized);
  const reparsed = parseReference(row.normalized);
  assert.ok(reparsed.ok);
  assert.deepEqual(reparsed.reference, reference);
}

/** The reference as the error message quotes it (long ones are cut). */
function quoted(input: unknown): string {
  const text = typeof input === "string" ? input : (() => {
    try {
      return String(input);
    } catch {
      return `[${typeof input}]`;
    }
  })();
  return JSON.stringify(text.length > 300 ? text.slice(0, 300) : text).slice(0, -1);
}

function assertInvalid(row: InvalidRow): void {
  const result = parseReference(row.input);
  assert.ok(!result.ok, `expected ${row.name ?? String(row.input)} to be rejected`);
  assert.equal(result.error.reason, row.reason);
  assert.ok(
    result.error.message.includes(quoted(row.input)),
    `message ${JSON.stringify(result.error.message)} does not name the reference`,
  );
  if (typeof row.input === "string") {
    assert.equal(result.error.reference, row.input);
    assert.equal(normalizeReference(row.input), undefined);
  }
}

Deno.test("parseReference accepts and normalizes valid references", async (t) => {
  for (const row of VALID) {
    await t.step(row.name ?? row.input, () => assertValid(row));
  }
});

Deno.test("parseReference rejects invalid references with a reason", async (t) => {
  for (const row of INVALID) {
    await t.step(row.name ?? String(row.input), () => assertInvalid(row));
  }
});

Deno.test("the tables hold at least 100 rows", () => {
  assert.ok(VALID.length + INVALID.length >= 100);
});

// ---- Properties ----

const REASONS: ReadonlySet<string> = new Set<ReferenceErrorReason>([
  "empty",
  "not-a-string",
  "invalid-format",
  "uppercase-repository",
  "invalid-registry",
  "invalid-tag",
  "invalid-digest",
  "unsupported-digest",
  "name-too-long",
  "hex-identifier",
]);

/** Characters and fragments that the grammar gives meaning to, so random strings hit its edges. */
const grammarish = fc.array(
  fc.oneof(
    fc.constantFrom(..."aAz09f.-_:/@[]% \t"),
    fc.constantFrom(
      "docker.io/",
      "index.docker.io/",
      "localhost",
      ":5000/",
      ":99999/",
      "library/",
      "[::1]",
      "__",
      "--",
      SHA256,
    ),
  ),
  { maxLength: 24 },
).map((parts) => parts.join(""));

const alnum = fc.stringMatching(/^[a-z0-9]{1,6}$/);
const pathComponent = fc.tuple(alnum, fc.array(fc.tuple(fc.constantFrom(".", "_", "__", "-", "---"), alnum)))
  .map(([head, rest]) => head + rest.map(([separator, part]) => separator + part).join(""));
const domainComponent = fc.stringMatching(/^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,4}[a-zA-Z0-9])?$/);
const registry = fc.oneof(
  fc.constant(""),
  fc.constantFrom("docker.io/", "index.docker.io/", "localhost/", "localhost:5000/", "Registry/"),
  fc.tuple(fc.array(domainComponent, { minLength: 2, maxLength: 3 }), fc.option(fc.nat({ max: 70000 })))
    .map(([parts, port]) => `${parts.join(".")}${port === null ? "" : `:${port}`}/`),
  fc.tuple(fc.array(fc.nat({ max: 255 }), { minLength: 4, maxLength: 4 }), fc.option(fc.nat({ max: 65535 })))
    .map(([octets, port]) => `${octets.join(".")}${port === null ? "" : `:${port}`}/`),
  fc.tuple(fc.stringMatching(/^[0-9a-fA-F:]{1,12}$/), fc.option(fc.nat({ max: 65535 })))
    .map(([address, port]) => `[${address}]${port === null ? "" : `:${port}`}/`),
);
const tag = fc.stringMatching(/^[\w][\w.-]{0,20}$/);
const digest = fc.oneof(
  fc.stringMatching(/^[a-f0-9]{64}$/).map((hex) => `sha256:${hex}`),
  fc.stringMatching(/^[a-f0-9]{128}$/).map((hex) => `sha512:${hex}`),
);
const validReference = fc.tuple(
  registry,
  fc.array(pathComponent, { minLength: 1, maxLength: 4 }),
  fc.option(tag),
  fc.option(digest),
).map(([host, path, t, d]) => `${host}${path.join("/")}${t === null ? "" : `:${t}`}${d === null ? "" : `@${d}`}`)
  .filter((input) => parseReference(input).ok);

/**
 * A direct transcription of distribution/reference's ParseNormalizedNamed (regexp.go, normalize.go, go-digest's
 * algorithms), returning the normalized string or undefined. One deliberate difference: a first component that
 * splitDockerDomain takes as a domain but that is no valid host is rejected, where Parse would keep it as a path.
 */
function distributionNormalize(input: string): string | undefined {
  const alphanumeric = "[a-z0-9]+";
  const pathComponent = `${alphanumeric}(?:(?:[._]|__|[-]+)${alphanumeric})*`;
  const domainComponent = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
  const host = `(?:${domainComponent}(?:\\.${domainComponent})*|\\[(?:[a-fA-F0-9:]+)\\])`;
  const domainAndPort = `${host}(?::[0-9]+)?`;
  const name = `(?:${domainAndPort}/)?${pathComponent}(?:/${pathComponent})*`;
  const digestPattern = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}";
  const reference = new RegExp(`^(${name})(?::([\\w][\\w.-]{0,127}))?(?:@(${digestPattern}))?$`);
  if (/^[a-f0-9]{64}$/.test(input)) return undefined;
  // splitDockerDomain
  let domain = DOCKER_HUB;
  let remote = input;
  const slash = input.indexOf("/");
  if (slash >= 0) {
    const first = input.slice(0, slash);
    if (first === "localhost" || /[.:]/.test(first) || first.toLowerCase() !== first) {
      domain = first === "index.docker.io" ? DOCKER_HUB : first;
      remote = input.slice(slash + 1);
    }
  }
  if (domain === DOCKER_HUB && !remote.includes("/")) remote = `library/${remote}`;
  const colon = remote.indexOf(":");
  const remoteName = colon < 0 ? remote : remote.slice(0, colon);
  if (remoteName.toLowerCase() !== remoteName) return undefined;
  const match = reference.exec(`${domain}/${remote}`);
  // RepositoryNameTotalLengthMax applies to the path alone (distribution/reference v0.6.0).
  if (match === null || (match[1] ?? "").length - domain.length - 1 > 255) return undefined;
  if (!new RegExp(`^${domainAndPort}$`).test(domain)) return undefined;
  const digest = match[3];
  if (digest !== undefined) {
    const [algorithm = "", hex = ""] = digest.split(":");
    const length = ({ sha256: 64, sha384: 96, sha512: 128 } as Record<string, number>)[algorithm];
    if (length === undefined || hex.length !== length || !/^[a-f0-9]+$/.test(hex)) return undefined;
  }
  const tag = match[2] ?? (digest === undefined ? "latest" : undefined);
  return `${match[1]}${tag === undefined ? "" : `:${tag}`}${digest === undefined ? "" : `@${digest}`}`;
}

function assertRejectsCleanly(input: unknown): void {
  const result = parseReference(input);
  if (result.ok) return;
  assert.ok(REASONS.has(result.error.reason));
  assert.ok(result.error.message.includes(quoted(input)));
}

Deno.test("parseReference never throws", async (t) => {
  await t.step("any string", () => {
    fc.assert(fc.property(fc.string({ unit: "binary", maxLength: 80 }), assertRejectsCleanly), { numRuns: 2000 });
  });
  await t.step("grammar-like strings", () => {
    fc.assert(fc.property(grammarish, assertRejectsCleanly), { numRuns: 3000 });
  });
  await t.step("any value", () => {
    fc.assert(fc.property(fc.anything({ withBigInt: true, withNullPrototype: true }), assertRejectsCleanly));
  });
});

Deno.test("parseReference agrees with the distribution grammar", () => {
  fc.assert(
    fc.property(grammarish, (input) => assert.equal(normalizeReference(input), distributionNormalize(input))),
    { numRuns: 5000 },
  );
  for (const row of VALID) assert.equal(distributionNormalize(row.input), row.normalized, row.name ?? row.input);
  for (const row of INVALID) {
    if (typeof row.input === "string") assert.equal(distributionNormalize(row.input), undefined, row.name ?? row.input);
  }
});

Deno.test("normalization of valid references", async (t) => {
  await t.step("is idempotent", () => {
    fc.assert(
      fc.property(validReference, (input) => {
        const normalized = normalizeReference(input);
        assert.ok(normalized !== undefined);
        assert.equal(normalizeReference(normalized), normalized);
      }),
      { numRuns: 1000 },
    );
  });
  await t.step("round-trips through the familiar form", () => {
    fc.assert(
      fc.property(validReference, (input) => {
        const result = parseReference(input);
        assert.ok(result.ok);
        assert.equal(normalizeReference(formatFamiliar(result.reference)), formatReference(result.reference));
      }),
      { numRuns: 1000 },
    );
  });
});

Deno.test("sameImage() compares references once normalized", () => {
  assert.equal(sameImage("nginx", "docker.io/library/nginx:latest"), true);
  assert.equal(sameImage("index.docker.io/library/nginx:1.27", "nginx:1.27"), true);
  assert.equal(sameImage("nginx:1.27", "nginx:1.28"), false);
  assert.equal(sameImage("ghcr.io/a/b", "docker.io/a/b"), false);
  // Invalid references are compared as written.
  assert.equal(sameImage("NOT VALID", "NOT VALID"), true);
  assert.equal(sameImage("NOT VALID", "not valid"), false);
});
