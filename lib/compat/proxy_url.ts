// Reads a single Docker Hub proxy prefix (k8s-proxy-image-swapper's PROXY_URL / REGISTRY_URL) into a rule object.

import { formatName, isRegistryComponent, parseReference } from "../image/reference.ts";
import { API_VERSION } from "../rules/schema.ts";
import {
  type Behaviour,
  type CompatProblem,
  compatProblem,
  nameFromSource,
  type Position,
  q,
  type TranslatedObject,
  type Translation,
} from "./common.ts";
import { compareWithTool, type Sample, type ToolResult } from "./compare.ts";

const ASSIGNMENT = /^(?:export\s+)?(PROXY_URL|REGISTRY_URL)\s*=\s*(.*)$/;
const SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i;

/** The one significant line of a proxy-URL text: the value as written and where it starts. */
export interface ProxyLine {
  readonly value: string;
  readonly at: Position;
  /** `PROXY_URL=` or `REGISTRY_URL=` was written. */
  readonly assigned: boolean;
  readonly text: string;
}

/** Lines that are neither blank nor `#` comments, with their 1-based numbers. */
export function significantLines(text: string): { text: string; line: number; indent: number }[] {
  const out: { text: string; line: number; indent: number }[] = [];
  text.split("\n").forEach((raw, index) => {
    const line = raw.replace(/\r$/, "");
    const trimmed = line.trim();
    if (trimmed === "" || trimmed.startsWith("#")) return;
    out.push({ text: line, line: index + 1, indent: line.length - line.trimStart().length });
  });
  return out;
}

function unquote(value: string): string {
  const trimmed = value.trim().replace(/\s+#.*$/, "");
  const quoted = /^(["'])(.*)\1$/.exec(trimmed);
  return quoted === null ? trimmed : quoted[2] ?? "";
}

/** The proxy line of `text` when it holds exactly one significant line that is an assignment or a bare value. */
export function findProxyLine(text: string): ProxyLine | undefined {
  const lines = significantLines(text);
  if (lines.length !== 1) return undefined;
  const [only] = lines;
  if (only === undefined) return undefined;
  const body = only.text.trim();
  const assignment = ASSIGNMENT.exec(body);
  const raw = assignment === null ? body : assignment[2] ?? "";
  const offset = only.text.indexOf(raw.trim()) + 1;
  return {
    value: unquote(raw),
    at: { line: only.line, column: Math.max(offset, only.indent + 1) },
    assigned: assignment !== null,
    text: body,
  };
}

/** The proxy prefix without scheme or trailing `/`, or why it cannot be one. */
export function checkProxyValue(value: string): { ok: true; prefix: string; scheme: boolean } | {
  ok: false;
  error: string;
} {
  const scheme = SCHEME.test(value);
  const prefix = value.replace(SCHEME, "").replace(/\/+$/, "");
  if (prefix === "") return { ok: false, error: "the proxy URL is empty" };
  if (/\s/.test(prefix) || prefix.includes("@")) return { ok: false, error: `${q(value)} is not a registry prefix` };
  const registry = prefix.split("/")[0] ?? "";
  const parsed = parseReference(`${prefix}/x`);
  if (!isRegistryComponent(registry) || !parsed.ok || !formatName(parsed.reference).endsWith("/x")) {
    return {
      ok: false,
      error: `${
        q(value)
      } is not a registry prefix (a host such as harbor.example.com, optionally with a port and a path)`,
    };
  }
  return { ok: true, prefix, scheme };
}

/** True for a text that is a single proxy URL: an assignment, or one bare value that reads as a registry prefix. */
export function isProxyUrlText(text: string): boolean {
  const line = findProxyLine(text);
  if (line === undefined) return false;
  return line.assigned || checkProxyValue(line.value).ok;
}

/** The default `ignoreimages` of k8s-proxy-image-swapper's chart (and the hard-coded skip of older versions). */
const IGNORED_BY_DEFAULT = ["registry"];

interface ParsedImage {
  registry: string;
  namespace: string;
  image: string;
  tag: string;
}

/** k8s-proxy-image-swapper's reading of an image: split on `/`, a registry only when the first part has a dot. */
function parseAsProxySwapper(image: string): ParsedImage {
  const name = (part: string) => part.split(":")[0] ?? part;
  const tag = (part: string) => (part.includes(":") ? part.split(":").slice(1).join(":") : "latest");
  const parts = image.split("/");
  const last = parts.at(-1) ?? image;
  const first = parts[0] ?? "";
  if (parts.length === 1) return { registry: "docker.io", namespace: "library", image: name(image), tag: tag(image) };
  if (parts.length === 2 && first === "docker.io") {
    return { registry: first, namespace: "library", image: name(last), tag: tag(last) };
  }
  if (!first.includes(".")) {
    return { registry: "docker.io", namespace: parts.slice(0, -1).join("/"), image: name(last), tag: tag(last) };
  }
  return { registry: first, namespace: parts.slice(1, -1).join("/"), image: name(last), tag: tag(last) };
}

function formatParsed(image: ParsedImage): string {
  return `${image.registry}/${image.namespace === "" ? "" : `${image.namespace}/`}${image.image}:${image.tag}`;
}

/** What k8s-proxy-image-swapper does to one image with `proxy` as its PROXY_URL. */
export function simulateProxySwapper(proxy: string, image: string, at?: Position): ToolResult {
  const parsed = parseAsProxySwapper(image);
  for (const ignored of IGNORED_BY_DEFAULT) {
    const other = parseAsProxySwapper(ignored);
    if (
      other.registry === parsed.registry && other.namespace === parsed.namespace && other.image === parsed.image
    ) return { output: formatParsed(parsed) };
  }
  if (parsed.registry === "docker.io") parsed.registry = proxy;
  return { output: formatParsed(parsed), ...(at === undefined ? {} : { at }) };
}

const EXPLAIN: Partial<Record<Behaviour, string>> = {
  "registry-read-as-docker-hub":
    "k8s-proxy-image-swapper reads a first component without a dot (localhost, host:port) as a Docker Hub namespace; mirrorhook reads it as the registry it is",
  "index-docker-io": "k8s-proxy-image-swapper leaves index.docker.io alone; mirrorhook reads it as docker.io",
  "ignored-images":
    "k8s-proxy-image-swapper's default ignoreimages leaves the registry image alone; mirrorhook rewrites it (add a keep rule for docker.io/library/registry if the proxy runs from it)",
};

/** Reads a proxy-URL text into a ClusterImageRewrite sending Docker Hub to the proxy. */
export function translateProxyUrl(text: string, source: string): Translation {
  const problems: CompatProblem[] = [];
  const line = findProxyLine(text);
  if (line === undefined) {
    problems.push(compatProblem("expected one line holding the proxy URL (PROXY_URL=harbor.example.com/dockerhub)", {
      source,
      severity: "error",
      code: "invalid-value",
    }));
    return { format: "proxy-url", objects: [], problems, optOuts: [] };
  }
  const checked = checkProxyValue(line.value);
  if (!checked.ok) {
    problems.push(compatProblem(checked.error, { source, at: line.at, severity: "error", code: "invalid-value" }));
    return { format: "proxy-url", objects: [], problems, optOuts: [] };
  }
  if (checked.scheme) {
    problems.push(compatProblem(
      `image references carry no scheme; mirrorhook uses ${q(checked.prefix)}`,
      { source, at: line.at, behaviour: "scheme-stripped" },
    ));
  }
  const object: TranslatedObject = {
    raw: {
      apiVersion: API_VERSION,
      kind: "ClusterImageRewrite",
      metadata: { name: nameFromSource("proxy-url", source) },
      spec: { priority: 0, rules: [{ prefix: "docker.io", replace: checked.prefix }] },
    },
    locate: () => line.at,
    comments: { object: [], rules: new Map([[0, [`line ${line.at.line}: ${line.text}`]]]) },
  };
  const samples: Sample[] = [
    { image: "nginx:1.25", behaviour: "library-dropped" },
    { image: "docker.io/bitnami/redis:7", behaviour: "library-dropped" },
    { image: "index.docker.io/library/nginx:1.25", behaviour: "index-docker-io" },
    { image: "localhost:5000/team/app:1.0", behaviour: "registry-read-as-docker-hub" },
    { image: "registry:5000/team/app:1.0", behaviour: "registry-read-as-docker-hub" },
    { image: "localhost/app:1.0", behaviour: "registry-read-as-docker-hub" },
    { image: "registry:2", behaviour: "ignored-images" },
  ];
  problems.push(...compareWithTool({
    format: "proxy-url",
    source,
    objects: [object],
    samples,
    tool: (image) => simulateProxySwapper(checked.prefix, image, line.at),
    explain: EXPLAIN,
  }));
  return { format: "proxy-url", objects: [object], problems, optOuts: [] };
}
