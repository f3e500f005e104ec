// Deterministic synthetic rule objects and image references for the engine benchmarks.

import type { RewriteObject, RuleSpec } from "../lib/rules/schema.ts";

/** How many `match` rules the large sets carry: every miss runs all of them. */
export const REGEX_RULES = 50;

/** Rules present in every generated set (the first 5 exact and 5 prefix rules): the fixed images target them. */
export const CORE_RULES = 10;

const REGISTRIES = 8;
const TEAMS = 25;
const SERVICES = 10;
const REGEX_HOSTS = ["quay.io", "ghcr.io", "gcr.io"] as const;
const DIGEST = `sha256:${"0123456789abcdef".repeat(4)}`;

/** Options for {@linkcode generateRuleObjects}. */
export interface FixtureOptions {
  /** `match` rules among the total; default {@linkcode REGEX_RULES}. */
  readonly regexRules?: number;
}

/** Registry host of index `r`. */
function registry(r: number): string {
  return `registry-${r}.example.com`;
}

/** The normalized reference exact rule `j` matches. Depends on `j` only, so smaller sets are subsets of larger ones. */
export function exactKey(j: number): string {
  const r = j % REGISTRIES;
  const t = Math.floor(j / REGISTRIES) % TEAMS;
  const a = Math.floor(j / (REGISTRIES * TEAMS));
  return `${registry(r)}/team-${t}/app-${a}:1.${j % 10}`;
}

/**
 * The prefix of prefix rule `j`: 1, 2 or 3 path segments by `j % 3`, so deeper prefixes nest under shallower
 * ones (`registry-0.example.com/team-0` ⊃ `…/team-0/svc-0` ⊃ `…/team-0/svc-0/part-0`) and the trie walk is real.
 */
export function prefixKey(j: number): string {
  const depth = 1 + (j % 3);
  const q = Math.floor(j / 3);
  const r = q % REGISTRIES;
  const rest = Math.floor(q / REGISTRIES);
  if (depth === 1) return `${registry(r)}/team-${rest}`;
  if (depth === 2) return `${registry(r)}/team-${rest % TEAMS}/svc-${Math.floor(rest / TEAMS)}`;
  return `${registry(r)}/team-${rest % TEAMS}/svc-${Math.floor(rest / TEAMS) % SERVICES}/part-${
    Math.floor(rest / (TEAMS * SERVICES))
  }`;
}

/** Host of regex rule `k`. */
function regexHost(k: number): string {
  return REGEX_HOSTS[k % REGEX_HOSTS.length] ?? "quay.io";
}

/** Regex rule `k`: anchored, no overlapping quantifiers (the repository class excludes the separator after it). */
export function regexRule(k: number): RuleSpec {
  const host = regexHost(k);
  const escaped = host.replaceAll(".", "\\.");
  const mirror = `mirror.example.com/${host.split(".")[0]}/org-${k}`;
  // Every fifth rule uses named groups, as people write both.
  return k % 5 === 4
    ? { match: `^${escaped}/org-${k}/(?<repo>[^/:@]+)(?<rest>[:@][^/]*)$`, replace: `${mirror}/$<repo>$<rest>` }
    : { match: `^${escaped}/org-${k}/([^/:@]+)([:@][^/]*)$`, replace: `${mirror}/$1$2` };
}

function mirrorOf(key: string): string {
  return `mirror.example.com/${key.replace(".example.com", "")}`;
}

function clusterObject(name: string, priority: number, rules: RuleSpec[]): RewriteObject {
  return { kind: "ClusterImageRewrite", metadata: { name }, spec: { priority, rules } };
}

/**
 * `total` rules in up to four ClusterImageRewrite objects at three priorities:
 * - priority 100 `bench-pinned`: every tenth exact rule;
 * - priority 50 `bench-exact` and `bench-prefix`: the other exact rules, prefixes of 2 and 3 segments;
 * - priority 10 `bench-fallback`: prefixes of 1 segment, then the `match` rules.
 *
 * The non-regex rules are split half exact (rounded up), half prefix. Rule `j` of a kind does not depend on
 * `total`, so the first {@linkcode CORE_RULES} (exact 0–4, prefix 0–4) are in every set of 10 or more.
 */
export function generateRuleObjects(total: number, options: FixtureOptions = {}): RewriteObject[] {
  const regexRules = options.regexRules ?? REGEX_RULES;
  if (!Number.isInteger(total) || !Number.isInteger(regexRules) || regexRules < 0 || total < regexRules) {
    throw new RangeError(`Cannot generate ${total} rules with ${regexRules} regex rules: need 0 <= regex <= total`);
  }
  const plain = total - regexRules;
  const exactCount = Math.ceil(plain / 2);
  const prefixCount = plain - exactCount;
  const pinned: RuleSpec[] = [];
  const exact: RuleSpec[] = [];
  const prefix: RuleSpec[] = [];
  const fallback: RuleSpec[] = [];
  for (let j = 0; j < exactCount; j++) {
    const key = exactKey(j);
    (j % 10 === 0 ? pinned : exact).push({ exact: key, replace: mirrorOf(key) });
  }
  for (let j = 0; j < prefixCount; j++) {
    const key = prefixKey(j);
    (j % 3 === 0 ? fallback : prefix).push({ prefix: key, replace: mirrorOf(key) });
  }
  for (let k = 0; k < regexRules; k++) fallback.push(regexRule(k));
  const objects = [
    clusterObject("bench-pinned", 100, pinned),
    clusterObject("bench-exact", 50, exact),
    clusterObject("bench-prefix", 50, prefix),
    clusterObject("bench-fallback", 10, fallback),
  ];
  return objects.filter((object) => object.spec.rules.length > 0);
}

const TAGS = ["1.0", "2.3.1", "v1.28.4", "latest", "2024.05.01", "sha-4f2a9c1"] as const;
const REPOS = [
  "web",
  "api",
  "worker",
  "frontend",
  "auth/server",
  "jobs/cron",
  "db-migrate",
  "metrics-exporter",
] as const;

function pick<T>(list: readonly T[], i: number): T {
  const item = list[i % list.length];
  if (item === undefined) throw new RangeError("Cannot pick from an empty list");
  return item;
}

/** A tag, a digest, or both, cycling by `i` (references are written all three ways). */
function suffix(i: number): string {
  switch (i % 4) {
    case 0:
      return `:${pick(TAGS, i)}`;
    case 1:
      return `@${DIGEST}`;
    case 2:
      return `:${pick(TAGS, i)}@${DIGEST}`;
    default:
      return i % 8 === 3 ? "" : `:${pick(TAGS, i + 1)}`;
  }
}

/** An image under prefix rule `j`, one or two segments below it, that no exact rule or deeper prefix matches. */
function underPrefix(j: number, i: number): string {
  return `${prefixKey(j)}/${pick(REPOS, i)}${suffix(i)}`;
}

/** An image regex rule `k` matches. */
function matchedByRegex(k: number, i: number): string {
  return `${regexHost(k)}/org-${k}/${pick(["app", "tool", "agent", "operator"], i)}${suffix(i)}`;
}

/** References no generated rule matches, whatever the size: each runs every level and every regex. */
const MISSES: readonly string[] = [
  "nginx",
  "nginx:1.25.4",
  "nginx:1.25.4-alpine",
  "library/nginx:stable",
  "docker.io/library/nginx:1.27",
  "redis:7.2",
  "redis:7-alpine",
  "postgres:16.2",
  "postgres:16@" + DIGEST,
  "busybox:1.36",
  "busybox",
  "alpine:3.19",
  "ubuntu:22.04",
  "debian:bookworm-slim",
  "python:3.12-slim",
  "node:20-alpine",
  "golang:1.22",
  "bitnami/postgresql:16.2.0",
  "bitnami/redis:7.2.4-debian-12-r9",
  "grafana/grafana:10.4.1",
  "registry.k8s.io/pause:3.9",
  "registry.k8s.io/coredns/coredns:v1.11.1",
  "registry.k8s.io/kube-proxy:v1.29.2",
  "registry.k8s.io/ingress-nginx/controller:v1.10.0@" + DIGEST,
  "registry.k8s.io/metrics-server/metrics-server:v0.7.0",
  "gcr.io/distroless/static:nonroot",
  "gcr.io/distroless/base-debian12",
  "gcr.io/google-containers/pause:3.2",
  "quay.io/prometheus/prometheus:v2.50.1",
  "quay.io/prometheus/node-exporter:v1.7.0",
  "quay.io/jetstack/cert-manager-controller:v1.14.4",
  "quay.io/argoproj/argocd:v2.10.4",
  "quay.io/org-77/app:1.0",
  "ghcr.io/fluxcd/source-controller:v1.2.4",
  "ghcr.io/fluxcd/kustomize-controller:v1.2.2",
  "ghcr.io/org-500/tool:2.0",
  "ghcr.io/open-telemetry/opentelemetry-collector-releases/opentelemetry-collector:0.96.0",
  "public.ecr.aws/eks-distro/kubernetes/pause:3.9",
  "public.ecr.aws/docker/library/nginx:1.25",
  "mcr.microsoft.com/dotnet/aspnet:8.0",
  "mcr.microsoft.com/oss/kubernetes/pause:3.6",
  "docker.elastic.co/elasticsearch/elasticsearch:8.12.2",
  "registry.gitlab.com/gitlab-org/gitlab-runner:alpine-v16.9.1",
  "harbor.internal.example.com:8443/platform/gateway:3.1.0",
  "localhost:5000/dev/app:snapshot",
  "registry-0.example.com/other/web:1.0",
  "registry-3.example.com/platform/api:2.0",
  "registry-9.example.com/team-0/app-0:1.0",
  "registry-0.example.com/team-0x/app:1",
  "mirror.example.com/registry-0/team-0/web:1.0",
];

/**
 * ~200 references decided in every `decide` bench: 70 hit exact rules, 60 hit prefixes of depth 1–3, 20 hit
 * `match` rules spread over the 50 (hits late in the list run the earlier regexes first), 50 miss everything.
 * Exact and prefix hits target the {@linkcode CORE_RULES} so every set from 10 rules up sees the same outcomes
 * (at 10 rules, with no regex, the 20 regex hits are misses too).
 */
export const IMAGES: readonly string[] = Object.freeze(buildImages((i) => i % 5, (i) => i % 5, MISSES));

/**
 * The same mix as {@linkcode IMAGES}, but exact and prefix hits are spread over every rule of a set of `total`
 * rules (with {@linkcode REGEX_RULES} regexes): shows whether which entry is hit matters.
 */
export function spreadImages(total: number): string[] {
  const plain = total - REGEX_RULES;
  const exactCount = Math.ceil(plain / 2);
  const prefixCount = plain - exactCount;
  return buildImages(
    (i) => Math.floor((i * exactCount) / 70),
    (i) => Math.floor((i * prefixCount) / 60),
    MISSES,
  );
}

function buildImages(
  exactRule: (i: number) => number,
  prefixRule: (i: number) => number,
  misses: readonly string[],
): string[] {
  const images: string[] = [];
  for (let i = 0; i < 70; i++) images.push(exactKey(exactRule(i)));
  for (let i = 0; i < 60; i++) images.push(underPrefix(prefixRule(i), i));
  for (let i = 0; i < 20; i++) images.push(matchedByRegex((i * 7 + 3) % REGEX_RULES, i));
  images.push(...misses);
  return images;
}
