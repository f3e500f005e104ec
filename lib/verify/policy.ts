// Which registries a verified rule may ask (and hold credentials for), as the platform names them.

import { DOCKER_HUB } from "../image/reference.ts";

/**
 * Who wrote a rule: `namespaced` for a namespaced ImageRewrite (a tenant's), `cluster` for cluster-wide objects
 * (ClusterImageRewrite, rule files, RegistryRewriteRule), which the platform writes.
 */
export type RuleScope = "namespaced" | "cluster";

/** What cluster-wide rules may verify against: only listed registries, or any registry (anonymously). */
export type ClusterRulesPolicy = "listed" | "any";

/** Options of {@linkcode VerifyPolicy}. */
export interface VerifyPolicyOptions {
  /** Registries (`host` or `host:port`, as in image references) every verified rule may ask. */
  readonly registries?: Iterable<string>;
  /** Default `listed`. */
  readonly clusterRules?: ClusterRulesPolicy;
}

/** Detail of the answer for a registry the policy does not allow; the registry is never contacted. */
export const NOT_ALLOWED_DETAIL = "registry not allowed";

/** Docker Hub is named `docker.io` in references but served by these hosts; listing one lists them all. */
const DOCKER_HUB_HOSTS = ["docker.io", "index.docker.io", "registry-1.docker.io", "auth.docker.io"];

/** `Host:443` -> `host`, `index.docker.io` -> `docker.io`; a scheme or a path, if given, is dropped. */
export function normalizeRegistryHost(host: string): string {
  let name = host.trim().toLowerCase().replace(/^[a-z][a-z0-9+.-]*:\/\//, "").replace(/\/.*$/, "");
  name = name.replace(/:(443|80)$/, "");
  return DOCKER_HUB_HOSTS.includes(name) ? DOCKER_HUB : name;
}

/** A problem with a `--verify-registry` value. */
export class VerifyPolicyError extends Error {
  override name = "VerifyPolicyError";
  readonly value: string;
  constructor(value: string, message: string) {
    super(`Cannot use verify registry ${JSON.stringify(value)}: ${message}`);
    this.value = value;
  }
}

const HOST_PATTERN =
  /^(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*)(:[0-9]{1,5})?$/;

/**
 * The registries verification may reach. Listed hosts are reachable for every rule; a namespaced rule reaches
 * nothing else; a cluster-wide rule reaches any registry under `any`. Redirects, token realms, credentials and
 * loopback or link-local addresses are allowed only for listed hosts (see lib/verify/registry.ts).
 */
export class VerifyPolicy {
  readonly #listed: ReadonlySet<string>;
  readonly #clusterRules: ClusterRulesPolicy;
  readonly #open: boolean;

  private constructor(listed: ReadonlySet<string>, clusterRules: ClusterRulesPolicy, open: boolean) {
    this.#listed = listed;
    this.#clusterRules = clusterRules;
    this.#open = open;
  }

  /** Throws {@linkcode VerifyPolicyError} for a value that is not `host[:port]`. */
  static create(options: VerifyPolicyOptions = {}): VerifyPolicy {
    const listed = new Set<string>();
    for (const value of options.registries ?? []) {
      if (value.trim() === "") continue;
      if (value.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, "").replace(/\/+$/, "").includes("/")) {
        throw new VerifyPolicyError(value, "expected a registry HOST[:PORT], not a repository path");
      }
      const host = normalizeRegistryHost(value);
      if (!HOST_PATTERN.test(host)) throw new VerifyPolicyError(value, "expected HOST or HOST:PORT");
      listed.add(host);
    }
    return new VerifyPolicy(listed, options.clusterRules ?? "listed", false);
  }

  /**
   * Every rule may ask every registry (the command line's `rewrite --verify`, where the person running it wrote the
   * rules); the hosts given still count as listed for redirects, realms and addresses.
   */
  static open(listed: Iterable<string> = []): VerifyPolicy {
    return new VerifyPolicy(new Set([...listed].map(normalizeRegistryHost)), "any", true);
  }

  /** This policy with more listed hosts (the insecure and CA-file registries, which the platform named too). */
  withListed(hosts: Iterable<string>): VerifyPolicy {
    const listed = new Set(this.#listed);
    for (const host of hosts) listed.add(normalizeRegistryHost(host));
    return new VerifyPolicy(listed, this.#clusterRules, this.#open);
  }

  /** True when the platform named `host` (a registry name, API host or URL host). */
  isListed(host: string): boolean {
    return this.#listed.has(normalizeRegistryHost(host));
  }

  /** True when a rule of `scope` may verify a target in `registry`. */
  allows(registry: string, scope: RuleScope): boolean {
    if (this.#open || this.isListed(registry)) return true;
    return scope === "cluster" && this.#clusterRules === "any";
  }

  /**
   * True when a registry's redirect or token realm may lead to `host` (another host than the registry's own):
   * a listed one (any, for the open policy). Plain HTTP is decided by the transport's insecure list.
   */
  allowsElsewhere(host: string): boolean {
    return this.#open || this.isListed(host);
  }

  /** True when credentials may be sent to `registry`: only to listed ones (anything, for the open policy). */
  holdsCredentials(registry: string): boolean {
    return this.#open || this.isListed(registry);
  }

  /** True when some rule may verify against `registry`. */
  allowsAny(registry: string): boolean {
    return this.allows(registry, "cluster");
  }

  /** The listed hosts, sorted (for the start-up log). */
  get listed(): readonly string[] {
    return [...this.#listed].sort();
  }

  get clusterRules(): ClusterRulesPolicy {
    return this.#clusterRules;
  }
}

/** Minimal view of a compiled rule: what {@linkcode refusedTargets} reads. */
interface RuleView {
  readonly verify: boolean;
  readonly keep: boolean;
  readonly replace?: string;
  /** Later targets of a rule written with `to`. */
  readonly alternatives?: readonly string[];
  readonly object: { readonly kind: string; readonly label: string };
}

/** Minimal view of a rule set: its priority levels, as lib/rules/compile.ts builds them. */
interface RuleSetView {
  readonly levels: readonly {
    readonly exact: ReadonlyMap<string, readonly RuleView[]>;
    readonly prefixes: TrieView;
    readonly match: readonly RuleView[];
  }[];
}

interface TrieView {
  readonly children: ReadonlyMap<string, TrieView>;
  readonly rules: readonly RuleView[];
}

/** One verified rule whose target registry its scope may not ask. */
export interface RefusedTarget {
  /** `ClusterImageRewrite "hub"`. */
  readonly object: string;
  readonly registry: string;
  readonly scope: RuleScope;
}

/** The registry a `replace` sends images to, when it is written out (not built from capture groups). */
function replaceRegistry(replace: string): string | undefined {
  const first = replace.split("/")[0] ?? "";
  if (first.includes("$")) return undefined;
  if (!replace.includes("/")) return undefined;
  return first.includes(".") || first.includes(":") || first === "localhost" ? first : "docker.io";
}

/**
 * Verified rules whose target registry the policy does not allow for their scope, one entry per object and
 * registry: their images always end as "registry not allowed". For a start-up and reload warning.
 */
export function refusedTargets(ruleSet: RuleSetView, policy: VerifyPolicy): RefusedTarget[] {
  const found = new Map<string, RefusedTarget>();
  const visit = (rule: RuleView) => {
    if (!rule.verify || rule.keep || rule.replace === undefined) return;
    for (const replace of [rule.replace, ...(rule.alternatives ?? [])]) {
      const registry = replaceRegistry(replace);
      if (registry === undefined) continue;
      const scope: RuleScope = rule.object.kind === "ImageRewrite" ? "namespaced" : "cluster";
      if (policy.allows(registry, scope)) continue;
      found.set(`${rule.object.label}\u0000${registry}`, { object: rule.object.label, registry, scope });
    }
  };
  const walk = (node: TrieView) => {
    node.rules.forEach(visit);
    for (const child of node.children.values()) walk(child);
  };
  for (const level of ruleSet.levels) {
    for (const rules of level.exact.values()) rules.forEach(visit);
    walk(level.prefixes);
    level.match.forEach(visit);
  }
  return [...found.values()];
}
