// Checks deploy/ and deploy/install.yaml without a cluster:
// - every object validates against the Kubernetes JSON schemas (kubernetes-models; @kubernetes-models/cert-manager for
//   cert-manager.io) and has no field the API server does not know (field lists of @kubernetes/client-node, and for
//   cert-manager tables tied to its types at compile time);
// - the manifests agree with each other (Service, Secret, ConfigMap, ServiceAccount and Certificate names, namespace,
//   ports, mounts, selectors) and with the server (webhook and probe paths and ports, flags and MIRRORHOOK_* variables,
//   the opt-out label, its own-Pod label, the excluded namespaces, the rule object kinds);
// - the Deployment's exact command line, run against its mounts laid out as the kubelet does, serves the shipped rules
//   and stops within the grace period.
// Manifests are read as YAML 1.1, as kubectl reads them.

import { V8_FLAGS_ARGUMENT } from "../lib/rules/pattern.ts";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import * as k8s from "@kubernetes/client-node";
import type { ICertificate, IIssuer } from "@kubernetes-models/cert-manager/cert-manager.io/v1";
import { RULE_RESOURCES } from "../lib/admission/validate.ts";
import { buildProgram } from "../lib/cli/program.ts";
import { envName } from "../lib/cli/serve.ts";
import { DEFAULT_EXCLUDED_NAMESPACES, OPT_OUT_LABEL } from "../lib/mutate/pod.ts";
import { loadRuleTexts } from "../lib/compat/load.ts";
import { hasErrors } from "../lib/rules/problem.ts";
import { API_GROUP, API_VERSION, REWRITE_KINDS } from "../lib/rules/schema.ts";
import { compileSelector } from "../lib/rules/selector.ts";
import { SELF_LABEL } from "../lib/server/app.ts";
import { mintCertificates } from "../lib/server/certs.ts";
import { createWebhookCore } from "../lib/server/handler.ts";
import { createMetrics } from "../lib/server/metrics.ts";
import { createProbeHandler } from "../lib/server/probes.ts";
import { CERT_FILE, KEY_FILE } from "../lib/server/tls.ts";
import {
  CLUSTER_IMAGE_REWRITES,
  IMAGE_REWRITES,
  NAMESPACES,
  REGISTRY_REWRITE_RULES,
} from "../lib/sources/kube/resources.ts";
import { KubeMount } from "./support/kube_mount.ts";
import { decodePatch, freePort, memoryLogger } from "./support/webhook.ts";
import { parseAllDocuments } from "yaml";
import { admissionReview } from "./support/admission_review.ts";
import { isRecord, type Json, type K8sObject, parseManifests, schemaErrors } from "./support/manifests.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const DEPLOY = `${ROOT}deploy/`;
const INSTALL = `${DEPLOY}install.yaml`;
/** The kustomizations, in the order default/ composes them. */
const PARTS = ["crd", "rbac", "manager", "webhook", "certmanager"] as const;
const NAMESPACE = "mirrorhook-system";
/** The value of OPT_OUT_LABEL that opts out (lib/mutate/pod.ts compares with this literal). */
const OPT_OUT_VALUE = "disabled";

/** Reads the value at a dotted path with `[n]` indexes, failing with the path when it is missing. */
function at<T = unknown>(value: unknown, path: string): T {
  let node = value;
  for (const part of path.split(/\.|(?=\[)/).filter((p) => p !== "")) {
    const index = /^\[(\d+)\]$/.exec(part);
    if (index !== null) {
      assert.ok(Array.isArray(node), `${path}: expected a list before ${part}`);
      node = node[Number(index[1])];
    } else {
      assert.ok(isRecord(node), `${path}: expected an object before ${part}`);
      node = node[part];
    }
    assert.notEqual(node, undefined, `${path}: missing ${part}`);
  }
  return node as T;
}

function readText(path: string): string {
  return Deno.readTextFileSync(path);
}

function describe(object: K8sObject): string {
  const namespace = object.metadata.namespace === undefined ? "" : `${object.metadata.namespace}/`;
  return `${object.kind} ${namespace}${object.metadata.name}`;
}

interface Kustomization {
  namespace?: string;
  resources?: string[];
  configMapGenerator?: { name: string; namespace?: string; files?: string[]; options?: Json }[];
}

function readKustomization(part: string): Kustomization {
  const [document] = parseAllDocuments(readText(`${DEPLOY}${part}/kustomization.yaml`), { version: "1.1" });
  assert.ok(document !== undefined && document.errors.length === 0, `deploy/${part}/kustomization.yaml`);
  return document.toJS() as Kustomization;
}

/** The source objects of one folder: every resource file its kustomization lists (generators excluded). */
function sourceObjects(part: string): K8sObject[] {
  const kustomization = readKustomization(part);
  return (kustomization.resources ?? [])
    .filter((resource) => !resource.startsWith(".."))
    .flatMap((resource) => parseManifests(readText(`${DEPLOY}${part}/${resource}`), `deploy/${part}/${resource}`));
}

/** install.yaml's objects. */
function installObjects(): K8sObject[] {
  return parseManifests(readText(INSTALL), "deploy/install.yaml");
}

function kubectlAvailable(): boolean {
  try {
    return new Deno.Command("kubectl", { args: ["version", "--client"], stdout: "null", stderr: "null" }).outputSync()
      .success;
  } catch {
    return false;
  }
}
const HAVE_KUBECTL = kubectlAvailable();

function kustomize(part: string): K8sObject[] {
  const output = new Deno.Command("kubectl", { args: ["kustomize", `${DEPLOY}${part}`] }).outputSync();
  assert.ok(output.success, `kubectl kustomize deploy/${part}: ${new TextDecoder().decode(output.stderr)}`);
  return parseManifests(new TextDecoder().decode(output.stdout), `kubectl kustomize deploy/${part}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Schemas

interface Attribute {
  readonly baseName: string;
  readonly type: string;
}

/** Fields of `value` that the client-node model `type` does not have, recursively (`any`, primitives: not looked into). */
function unknownFields(value: unknown, type: string, path: string, out: string[]): void {
  if (value === null || value === undefined) return;
  const list = /^Array<(.+)>$/.exec(type);
  if (list?.[1] !== undefined) {
    if (Array.isArray(value)) value.forEach((item, i) => unknownFields(item, list[1] as string, `${path}[${i}]`, out));
    return;
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map?.[1] !== undefined) {
    if (isRecord(value)) {
      for (const [key, item] of Object.entries(value)) unknownFields(item, map[1], `${path}.${key}`, out);
    }
    return;
  }
  const model = (k8s as unknown as Record<string, { getAttributeTypeMap?: () => Attribute[] } | undefined>)[type];
  if (typeof model?.getAttributeTypeMap !== "function" || !isRecord(value)) return;
  const known = new Map(model.getAttributeTypeMap().map((attribute) => [attribute.baseName, attribute.type]));
  for (const [key, child] of Object.entries(value)) {
    const childType = known.get(key);
    if (childType === undefined) out.push(`${path}.${key}`);
    else unknownFields(child, childType, `${path}.${key}`, out);
  }
}

/** Field names of an object type, each either a leaf (`true`) or, when given, its own fields: all keys, no others. */
type FieldsOf<T> = { readonly [K in keyof Required<T>]: true | FieldsOf<NonNullable<T[K]>> };
type CertificateSpec = NonNullable<ICertificate["spec"]>;
type IssuerSpec = NonNullable<IIssuer["spec"]>;

// cert-manager's schemas accept any field, so their fields are listed here; `satisfies` keeps each list exactly the
// fields of @kubernetes-models/cert-manager's types.
const CERTIFICATE_SPEC_FIELDS = {
  additionalOutputFormats: true,
  commonName: true,
  dnsNames: true,
  duration: true,
  emailAddresses: true,
  encodeUsagesInRequest: true,
  ipAddresses: true,
  isCA: true,
  issuerRef: { group: true, kind: true, name: true },
  keystores: true,
  literalSubject: true,
  nameConstraints: true,
  otherNames: true,
  privateKey: { algorithm: true, encoding: true, rotationPolicy: true, size: true },
  renewBefore: true,
  renewBeforePercentage: true,
  revisionHistoryLimit: true,
  secretName: true,
  secretTemplate: { annotations: true, labels: true },
  signatureAlgorithm: true,
  subject: true,
  uris: true,
  usages: true,
} as const satisfies FieldsOf<CertificateSpec>;

const ISSUER_SPEC_FIELDS = {
  acme: true,
  ca: true,
  selfSigned: true,
  vault: true,
  venafi: true,
} as const satisfies FieldsOf<IssuerSpec>;

function unknownListedFields(value: unknown, fields: true | Readonly<Record<string, unknown>>, path: string): string[] {
  if (fields === true || !isRecord(value)) return [];
  return Object.entries(value).flatMap(([key, child]) =>
    key in fields
      ? unknownListedFields(child, fields[key] as true | Readonly<Record<string, unknown>>, `${path}.${key}`)
      : [`${path}.${key}`]
  );
}

/** Fields the API server would refuse with strict field validation. */
function strictFieldErrors(object: K8sObject): string[] {
  const out: string[] = [];
  if (object.apiVersion === "cert-manager.io/v1") {
    const { apiVersion: _a, kind: _k, metadata, spec, ...rest } = object;
    out.push(...Object.keys(rest));
    unknownFields(metadata, "V1ObjectMeta", "metadata", out);
    const fields = object.kind === "Certificate" ? CERTIFICATE_SPEC_FIELDS : ISSUER_SPEC_FIELDS;
    out.push(...unknownListedFields(spec, fields, "spec"));
    return out;
  }
  const version = object.apiVersion.split("/").at(-1) ?? "";
  const type = `${version.charAt(0).toUpperCase()}${version.slice(1)}${object.kind}`;
  assert.ok(type in k8s, `no field list for ${object.apiVersion} ${object.kind}`);
  unknownFields(object, type, "", out);
  return out.map((path) => path.replace(/^\./, ""));
}

function checkSchemas(t: Deno.TestContext, objects: readonly K8sObject[], source: string) {
  return t.step(source, async (t) => {
    assert.ok(objects.length > 0, `${source}: no objects`);
    for (const object of objects) {
      await t.step(describe(object), () => {
        assert.equal(schemaErrors(object), undefined);
        assert.deepEqual(strictFieldErrors(object), [], "fields the API server does not know");
      });
    }
  });
}

Deno.test("every object in deploy/ validates against the Kubernetes schemas, with no unknown fields", async (t) => {
  for (const part of PARTS) await checkSchemas(t, sourceObjects(part), `deploy/${part}/`);
  await checkSchemas(t, installObjects(), "deploy/install.yaml");
});

Deno.test("the schema checks catch mistakes", async (t) => {
  const deployment = () => structuredClone(find(installObjects(), "Deployment", "mirrorhook"));
  await t.step("a wrong type", () => {
    const object = deployment();
    at<Json>(object, "spec")["replicas"] = "two";
    assert.notEqual(schemaErrors(object), undefined);
  });
  await t.step("an unknown field deep in the Pod template", () => {
    const object = deployment();
    at<Json>(object, "spec.template.spec.containers[0].securityContext")["readOnlyRootFileSystem"] = true;
    assert.deepEqual(strictFieldErrors(object), [
      "spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem",
    ]);
  });
  await t.step("an unknown cert-manager field", () => {
    const object = structuredClone(find(installObjects(), "Certificate", "mirrorhook-serving-cert"));
    at<Json>(object, "spec.privateKey")["rotation"] = "Always";
    assert.deepEqual(strictFieldErrors(object), ["spec.privateKey.rotation"]);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Layout: kustomizations and install.yaml

Deno.test("each deploy/ folder is a kustomization listing all of its files; default/ composes them", async (t) => {
  for (const part of PARTS) {
    await t.step(part, () => {
      const kustomization = readKustomization(part);
      const listed = new Set([
        ...(kustomization.resources ?? []),
        ...(kustomization.configMapGenerator ?? []).flatMap((generator) => generator.files ?? []),
      ]);
      const files: string[] = [];
      for (const entry of Deno.readDirSync(`${DEPLOY}${part}`)) {
        if (entry.isFile && entry.name !== "kustomization.yaml") files.push(entry.name);
        if (entry.isDirectory) {
          for (const inner of Deno.readDirSync(`${DEPLOY}${part}/${entry.name}`)) {
            files.push(`${entry.name}/${inner.name}`);
          }
        }
      }
      assert.deepEqual([...listed].sort(), files.sort(), "files listed in kustomization.yaml vs files present");
    });
  }
  await t.step("default", () => {
    const kustomization = readKustomization("default");
    assert.equal(kustomization.namespace, NAMESPACE);
    assert.deepEqual(kustomization.resources, PARTS.map((part) => `../${part}`));
  });
});

Deno.test("install.yaml is the rendering of deploy/default", { ignore: !HAVE_KUBECTL }, async (t) => {
  const installed = installObjects();
  assert.match(readText(INSTALL), /^# .*\n(# .*\n)*# GENERATED from deploy\/default by `deno task deploy:render`/);
  assert.deepEqual(installed, kustomize("default"), "run: deno task deploy:render");
  for (const part of [...PARTS, "default"]) {
    await t.step(`kubectl kustomize deploy/${part} renders valid objects`, () => {
      for (const object of kustomize(part)) {
        assert.equal(schemaErrors(object), undefined, describe(object));
        assert.deepEqual(strictFieldErrors(object), [], describe(object));
      }
    });
  }
});

Deno.test("install.yaml: one of each object, namespaced ones in mirrorhook-system, in an order that applies", () => {
  const objects = installObjects();
  const keys = objects.map(describe);
  assert.equal(new Set(keys).size, keys.length, "duplicate objects");
  const clusterScoped = new Set([
    "Namespace",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
  ]);
  for (const object of objects) {
    if (clusterScoped.has(object.kind)) assert.equal(object.metadata.namespace, undefined, describe(object));
    else assert.equal(object.metadata.namespace, NAMESPACE, describe(object));
  }
  assert.deepEqual(
    objects.map((object) => object.kind).filter((kind, i, all) => all.indexOf(kind) === i),
    [
      "Namespace",
      "CustomResourceDefinition",
      "ServiceAccount",
      "ClusterRole",
      "ClusterRoleBinding",
      "ConfigMap",
      "Service",
      "Deployment",
      "PodDisruptionBudget",
      "Certificate",
      "Issuer",
      "MutatingWebhookConfiguration",
      "ValidatingWebhookConfiguration",
    ],
  );
  assert.equal(find(objects, "Namespace", NAMESPACE).metadata.labels?.[OPT_OUT_LABEL], OPT_OUT_VALUE);
});

// ---------------------------------------------------------------------------------------------------------------
// Cross-checks, on install.yaml (what is applied)

function find(objects: readonly K8sObject[], kind: string, name: string): K8sObject {
  const found = objects.filter((object) => object.kind === kind && object.metadata.name === name);
  assert.equal(found.length, 1, `${kind} ${name}`);
  return found[0] as K8sObject;
}

function only(objects: readonly K8sObject[], kind: string): K8sObject {
  const found = objects.filter((object) => object.kind === kind);
  assert.equal(found.length, 1, `one ${kind}`);
  return found[0] as K8sObject;
}

interface Container {
  name: string;
  image: string;
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  ports: { name: string; containerPort: number }[];
  livenessProbe: { httpGet: { path: string; port: string | number } };
  readinessProbe: { httpGet: { path: string; port: string | number } };
  startupProbe?: { httpGet: { path: string; port: string | number } };
  volumeMounts: { name: string; mountPath: string; readOnly?: boolean; subPath?: string }[];
  resources: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext: Json;
}

interface Volume {
  name: string;
  configMap?: { name: string; items?: unknown[] };
  secret?: { secretName: string; items?: { key: string; path: string }[]; defaultMode?: number; optional?: boolean };
  emptyDir?: Json;
}

interface Webhook {
  name: string;
  clientConfig: { service?: { name: string; namespace: string; path: string; port?: number }; caBundle?: string };
  rules: { apiGroups: string[]; apiVersions: string[]; operations: string[]; resources: string[]; scope?: string }[];
  failurePolicy: string;
  matchPolicy?: string;
  sideEffects: string;
  timeoutSeconds: number;
  admissionReviewVersions: string[];
  reinvocationPolicy?: string;
  namespaceSelector?: { matchLabels?: Record<string, string>; matchExpressions?: Requirement[] };
  objectSelector?: { matchLabels?: Record<string, string>; matchExpressions?: Requirement[] };
  matchConditions?: { name: string; expression: string }[];
}

interface Requirement {
  key: string;
  operator: "In" | "NotIn" | "Exists" | "DoesNotExist";
  values?: string[];
}

const objects = installObjects();
const deployment = find(objects, "Deployment", "mirrorhook");
const podSpec = at<Json>(deployment, "spec.template.spec");
const podLabels = at<Record<string, string>>(deployment, "spec.template.metadata.labels");
const container = (at<Container[]>(podSpec, "containers")).find((c) => c.name === "mirrorhook") as Container;
const volumes = at<Volume[]>(podSpec, "volumes");
const service = find(objects, "Service", "mirrorhook");
const mutating = only(objects, "MutatingWebhookConfiguration");
const validating = only(objects, "ValidatingWebhookConfiguration");
const mutatingHook = at<Webhook>(mutating, "webhooks[0]");
const validatingHook = at<Webhook>(validating, "webhooks[0]");
const certificates = objects.filter((object) => object.kind === "Certificate");
const servingCertificate = certificates.find((c) => at<Json>(c, "spec")["isCA"] !== true) as K8sObject;
const rulesConfigMap = find(objects, "ConfigMap", "mirrorhook-rules");
const serviceAccount = only(objects, "ServiceAccount");

function volumeMountedAt(path: string): { mount: Container["volumeMounts"][number]; volume: Volume } {
  const mount = container.volumeMounts.find((m) => m.mountPath === path);
  assert.ok(mount !== undefined, `a volume mounted at ${path}`);
  const volume = volumes.find((v) => v.name === mount.name);
  assert.ok(volume !== undefined, `volume ${mount.name}`);
  return { mount, volume };
}

function containerPort(port: string | number): number {
  if (typeof port === "number") return port;
  const found = container.ports.find((p) => p.name === port);
  assert.ok(found !== undefined, `container port ${port}`);
  return found.containerPort;
}

/** The serve options the container's args and MIRRORHOOK_* variables give, parsed by the real command line. */
async function effectiveServeOptions(): Promise<Record<string, unknown>> {
  const env = new Map<string, string>();
  for (const variable of container.env ?? []) {
    if (variable.value !== undefined) env.set(variable.name, variable.value);
    else if (variable.valueFrom?.fieldRef?.fieldPath === "metadata.namespace") {
      env.set(variable.name, deployment.metadata.namespace ?? "");
    } else assert.fail(`env ${variable.name}: only values and the downward API namespace are modelled here`);
  }
  const saved = new Map<string, string | undefined>();
  for (const name of Object.keys(Deno.env.toObject()).filter((n) => n.startsWith("MIRRORHOOK_"))) {
    saved.set(name, Deno.env.get(name));
    Deno.env.delete(name);
  }
  for (const [name, value] of env) {
    if (!saved.has(name)) saved.set(name, Deno.env.get(name));
    Deno.env.set(name, value);
  }
  class Captured extends Error {}
  let captured: Record<string, unknown> | undefined;
  const io = { stdout: () => {}, stderr: (text: string) => assert.fail(text), readText: () => Promise.resolve("") };
  const program = buildProgram(io, () => {}, (name) => env.get(name));
  program.hook("preAction", (_program, command) => {
    captured = { ...command.opts(), dryRunEnv: env.get(envName("--dry-run")), podNamespace: env.get("POD_NAMESPACE") };
    throw new Captured();
  });
  try {
    await program.parseAsync(["serve", ...(container.args ?? [])], { from: "user" });
  } catch (error) {
    if (!(error instanceof Captured)) throw error;
  } finally {
    for (const [name, value] of saved) value === undefined ? Deno.env.delete(name) : Deno.env.set(name, value);
  }
  assert.ok(captured !== undefined, "serve did not parse");
  return captured;
}

Deno.test("the Deployment's settings are serve's flags and variables, with the values the manifests expect", async (t) => {
  const serve = buildProgram({ stdout() {}, stderr() {}, readText: () => Promise.resolve("") }, () => {}).commands
    .find((command) => command.name() === "serve");
  assert.ok(serve !== undefined);
  const known = new Set(serve.options.map((option) => envName(option.long ?? "")));
  const options = await effectiveServeOptions();

  await t.step("every MIRRORHOOK_* variable is one of serve's", () => {
    for (const variable of container.env ?? []) {
      if (variable.name.startsWith("MIRRORHOOK_")) assert.ok(known.has(variable.name), variable.name);
    }
  });
  await t.step("the image's entrypoint is `mirrorhook serve`, so args hold only flags", () => {
    for (const arg of container.args ?? []) assert.match(arg, /^--[a-z-]+(=.*)?$/);
  });
  await t.step("ports: https is the webhook port, metrics the probe port", () => {
    assert.equal(options["port"], containerPort("https"));
    assert.equal(options["probePort"], containerPort("metrics"));
    const defaultOf = (flag: string) => serve.options.find((option) => option.long === flag)?.defaultValue;
    assert.equal(options["port"], defaultOf("--port"), "the server's default webhook port");
    assert.equal(options["probePort"], defaultOf("--probe-port"), "the server's default probe port");
    assert.deepEqual([defaultOf("--port"), defaultOf("--probe-port")], [8443, 8080]);
  });
  await t.step("rules come from the mirrorhook-rules ConfigMap, mounted as a directory", () => {
    assert.deepEqual(options["rules"], ["/etc/mirrorhook/rules"]);
    const { mount, volume } = volumeMountedAt("/etc/mirrorhook/rules");
    assert.equal(volume.configMap?.name, rulesConfigMap.metadata.name);
    assert.equal(volume.configMap?.items, undefined, "every key of the ConfigMap");
    assert.equal(mount.subPath, undefined, "subPath mounts never see updates");
    assert.equal(mount.readOnly, true);
  });
  await t.step("tls-dir is the serving Certificate's Secret, mounted as a directory with tls.crt and tls.key", () => {
    assert.equal(options["tlsDir"], "/etc/mirrorhook/tls");
    const { mount, volume } = volumeMountedAt("/etc/mirrorhook/tls");
    assert.equal(volume.secret?.secretName, at(servingCertificate, "spec.secretName"));
    const paths = volume.secret?.items?.map((item) => item.path) ?? [CERT_FILE, KEY_FILE];
    assert.ok(paths.includes(CERT_FILE) && paths.includes(KEY_FILE));
    assert.equal(mount.subPath, undefined, "subPath mounts never see renewals");
    assert.equal(mount.readOnly, true);
    const mode = volume.secret?.defaultMode ?? 0o644;
    assert.equal(mode & 0o007, 0, "the key is not world-readable");
    assert.equal(at(podSpec, "securityContext.fsGroup"), at(podSpec, "securityContext.runAsGroup"));
  });
  await t.step("the namespace the server treats as its own is the Deployment's (POD_NAMESPACE)", () => {
    assert.equal(options["selfNamespace"], undefined, "no --self-namespace: the downward API gives it");
    assert.equal(options["podNamespace"], NAMESPACE);
    assert.equal(podLabels[SELF_LABEL.key], SELF_LABEL.value);
  });
  await t.step("terminationGracePeriodSeconds covers shutdown-delay + shutdown-timeout", () => {
    const grace = at<number>(podSpec, "terminationGracePeriodSeconds");
    const needed = (options["shutdownDelay"] as number) + (options["shutdownTimeout"] as number);
    assert.ok(grace >= needed, `${grace} < ${needed}`);
  });
  await t.step("not dry-run, admit on errors, exclusions left at the server's default", () => {
    assert.equal(options["dryRun"], undefined);
    assert.equal(options["dryRunEnv"], "false");
    assert.equal(options["onError"], "allow");
    assert.equal(options["excludeNamespace"], undefined);
  });
});

Deno.test("the Deployment runs as the issue and DESIGN.md ask", async (t) => {
  await t.step("2 replicas, a PodDisruptionBudget and a spread over nodes, all selecting the Pods", () => {
    assert.equal(at(deployment, "spec.replicas"), 2);
    const selects = (selector: unknown) =>
      compileSelector(selector as Parameters<typeof compileSelector>[0])(podLabels);
    assert.ok(selects(at(deployment, "spec.selector")));
    const pdb = only(objects, "PodDisruptionBudget");
    assert.ok(selects(at(pdb, "spec.selector")));
    assert.equal(at(pdb, "spec.minAvailable"), 1);
    const spread = at<{ topologyKey: string; labelSelector: unknown }[]>(podSpec, "topologySpreadConstraints");
    assert.ok(spread.some((c) => c.topologyKey === "kubernetes.io/hostname" && selects(c.labelSelector)));
    assert.deepEqual(at(service, "spec.selector"), at(deployment, "spec.selector.matchLabels"));
  });
  await t.step("probes on the probe port: liveness /healthz, readiness /readyz", () => {
    assert.equal(container.livenessProbe.httpGet.path, "/healthz");
    assert.equal(container.readinessProbe.httpGet.path, "/readyz");
    assert.equal(containerPort(container.livenessProbe.httpGet.port), 8080);
    assert.equal(containerPort(container.readinessProbe.httpGet.port), 8080);
    if (container.startupProbe !== undefined) assert.equal(containerPort(container.startupProbe.httpGet.port), 8080);
  });
  await t.step("requests and limits", () => {
    for (const resource of ["cpu", "memory"]) {
      assert.ok(container.resources.requests?.[resource], `requests.${resource}`);
      assert.ok(container.resources.limits?.[resource], `limits.${resource}`);
    }
  });
  await t.step("non-root 65532, read-only root, no capabilities, RuntimeDefault seccomp", () => {
    const context = container.securityContext;
    assert.equal(context["runAsNonRoot"], true);
    assert.equal(context["runAsUser"], 65532);
    assert.equal(context["readOnlyRootFilesystem"], true);
    assert.equal(context["allowPrivilegeEscalation"], false);
    assert.deepEqual(at(context, "capabilities.drop"), ["ALL"]);
    assert.equal(at(context, "seccompProfile.type"), "RuntimeDefault");
    assert.equal(at(podSpec, "securityContext.runAsNonRoot"), true);
    assert.equal(at(podSpec, "securityContext.seccompProfile.type"), "RuntimeDefault");
  });
  await t.step("its ServiceAccount, and the image of this version", async () => {
    assert.equal(at(podSpec, "serviceAccountName"), serviceAccount.metadata.name);
    const version = (JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)) as { version: string }).version;
    assert.equal(container.image, `ghcr.io/mirrorhook/mirrorhook:${version}`);
  });
  await t.step("its own Pods are opted out too", () => {
    assert.equal(podLabels[OPT_OUT_LABEL], OPT_OUT_VALUE);
  });
});

Deno.test("the Service, certificates and webhook configurations agree", async (t) => {
  const servicePort = (name: string) => {
    const port = at<{ name: string; port: number; targetPort: string | number }[]>(service, "spec.ports")
      .find((p) => p.name === name);
    assert.ok(port !== undefined, `Service port ${name}`);
    return port;
  };
  await t.step("Service: 443 → the webhook port (https), 8080 → the probe port (metrics)", () => {
    assert.equal(servicePort("https").port, 443);
    assert.equal(containerPort(servicePort("https").targetPort), 8443);
    assert.equal(containerPort(servicePort("metrics").targetPort), 8080);
  });
  await t.step("the serving Certificate names the Service", () => {
    const dnsNames = at<string[]>(servingCertificate, "spec.dnsNames");
    const host = `${service.metadata.name}.${service.metadata.namespace}.svc`;
    assert.ok(dnsNames.includes(host), host);
    assert.ok(dnsNames.includes(`${host}.cluster.local`), `${host}.cluster.local`);
  });
  await t.step("self-signed Issuer → CA Certificate → CA Issuer → serving Certificate", () => {
    const issuer = (name: string) => find(objects, "Issuer", name);
    const servingIssuer = issuer(at(servingCertificate, "spec.issuerRef.name"));
    const caSecret = at<string>(servingIssuer, "spec.ca.secretName");
    const ca = certificates.find((c) => at<Json>(c, "spec")["secretName"] === caSecret);
    assert.ok(ca !== undefined, `a Certificate for Secret ${caSecret}`);
    assert.equal(at(ca, "spec.isCA"), true);
    assert.deepEqual(at(issuer(at(ca, "spec.issuerRef.name")), "spec.selfSigned"), {});
    for (const certificate of certificates) assert.equal(at(certificate, "spec.issuerRef.kind"), "Issuer");
  });
  for (
    const [configuration, hook, path] of [[mutating, mutatingHook, "/mutate"], [
      validating,
      validatingHook,
      "/validate",
    ]] as const
  ) {
    await t.step(`${configuration.kind}: calls ${path} on the Service with the injected CA`, () => {
      assert.equal(
        configuration.metadata.annotations?.["cert-manager.io/inject-ca-from"],
        `${servingCertificate.metadata.namespace}/${servingCertificate.metadata.name}`,
      );
      assert.equal(hook.clientConfig.caBundle, undefined, "cert-manager injects it");
      assert.deepEqual(hook.clientConfig.service, {
        name: service.metadata.name,
        namespace: service.metadata.namespace,
        path,
        port: servicePort("https").port,
      });
      assert.deepEqual(hook.admissionReviewVersions, ["v1"]);
      // The mutating webhook may copy images into a mirror (mirror: true), never on dryRun requests.
      assert.equal(hook.sideEffects, path === "/mutate" ? "NoneOnDryRun" : "None");
      assert.equal(hook.failurePolicy, "Ignore");
      assert.equal(hook.matchPolicy, "Equivalent");
    });
  }
  await t.step("the webhook paths are the ones the server answers", async () => {
    const { logger } = memoryLogger();
    const core = createWebhookCore({ rules: () => loadRuleTexts([]).ruleSet, metrics: createMetrics(), logger });
    const post = (path: string, body: unknown) =>
      core({
        method: "POST",
        path,
        contentType: "application/json",
        readBody: () => Promise.resolve(new TextEncoder().encode(JSON.stringify(body))),
      });
    const mutated = await post(at(mutatingHook, "clientConfig.service.path"), review({ namespace: "default" }));
    assert.equal(mutated.status, 200);
    const validated = await post(at(validatingHook, "clientConfig.service.path"), ruleReview());
    assert.equal(validated.status, 200);
    assert.equal((await post("/not-a-webhook", review({ namespace: "default" }))).status, 404);
  });
  await t.step("the probe paths are the ones the server answers", async () => {
    const handler = createProbeHandler({
      metrics: createMetrics(),
      readiness: () => ({
        ready: true,
        reasons: [],
        rulesHash: "",
        objects: 0,
        rules: 0,
        sources: [],
        certificate: {},
      }),
    });
    for (const probe of [container.livenessProbe, container.readinessProbe, container.startupProbe]) {
      if (probe === undefined) continue;
      const response = await handler(new Request(`http://127.0.0.1${probe.httpGet.path}`));
      await response.body?.cancel();
      assert.equal(response.status, 200, probe.httpGet.path);
    }
  });
});

Deno.test("the MutatingWebhookConfiguration sends what the server rewrites and nothing it must not touch", async (t) => {
  await t.step("Pods and their ephemeral containers, CREATE and UPDATE", () => {
    assert.deepEqual(mutatingHook.rules, [{
      apiGroups: [""],
      apiVersions: ["v1"],
      operations: ["CREATE", "UPDATE"],
      resources: ["pods", "pods/ephemeralcontainers"],
      scope: "Namespaced",
    }]);
    assert.equal(mutatingHook.timeoutSeconds, 5);
    assert.equal(mutatingHook.reinvocationPolicy, "IfNeeded");
  });
  const namespaceSelected = (name: string, labels: Record<string, string> = {}) =>
    compileSelector(mutatingHook.namespaceSelector ?? {})({ ...labels, "kubernetes.io/metadata.name": name });
  const objectSelected = (labels: Record<string, string>) => compileSelector(mutatingHook.objectSelector ?? {})(labels);
  await t.step("namespaceSelector: not the server's excluded namespaces, not its own, not opted-out ones", () => {
    assert.ok(namespaceSelected("default"));
    assert.ok(namespaceSelected("team-a", { [OPT_OUT_LABEL]: "enabled" }));
    for (const excluded of [...DEFAULT_EXCLUDED_NAMESPACES, NAMESPACE]) {
      assert.ok(!namespaceSelected(excluded), excluded);
    }
    assert.ok(!namespaceSelected("team-a", { [OPT_OUT_LABEL]: OPT_OUT_VALUE }));
  });
  await t.step("objectSelector: not opted-out Pods (nor the webhook's own)", () => {
    assert.ok(objectSelected({ app: "web" }));
    assert.ok(!objectSelected({ app: "web", [OPT_OUT_LABEL]: OPT_OUT_VALUE }));
    assert.ok(!objectSelected(podLabels));
  });
  await t.step("matchConditions: not requests from mirrorhook's own ServiceAccount", () => {
    const subject = `system:serviceaccount:${serviceAccount.metadata.namespace}:${serviceAccount.metadata.name}`;
    assert.deepEqual(mutatingHook.matchConditions?.map((c) => c.expression), [
      `request.userInfo.username != '${subject}'`,
    ]);
    const binding = only(objects, "ClusterRoleBinding");
    assert.deepEqual(at(binding, "subjects"), [{
      kind: "ServiceAccount",
      name: serviceAccount.metadata.name,
      namespace: serviceAccount.metadata.namespace,
    }]);
  });
});

Deno.test("the ValidatingWebhookConfiguration covers the rule object CRDs", () => {
  const crds = objects.filter((object) => object.kind === "CustomResourceDefinition");
  assert.deepEqual(crds.map((crd) => at<string>(crd, "spec.names.kind")).sort(), [...REWRITE_KINDS].sort());
  const plurals = crds.map((crd) => at<string>(crd, "spec.names.plural")).sort();
  assert.deepEqual(plurals, [...RULE_RESOURCES].sort());
  const versions = [...new Set(crds.flatMap((crd) => at<{ name: string }[]>(crd, "spec.versions").map((v) => v.name)))];
  assert.deepEqual(crds.map((crd) => at(crd, "spec.group")), [API_GROUP, API_GROUP]);
  const rules = validatingHook.rules.map((rule) => ({ ...rule, resources: [...rule.resources].sort() }));
  assert.deepEqual(rules, [{
    apiGroups: [API_GROUP],
    apiVersions: versions,
    operations: ["CREATE", "UPDATE"],
    resources: plurals,
    scope: "*",
  }]);
  assert.equal(`${API_GROUP}/${versions[0]}`, API_VERSION);
});

interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
}

/** The rules of every ClusterRole in install.yaml that carries `label: "true"`. */
function aggregatedRules(label: string): PolicyRule[] {
  return objects.filter((object) => object.kind === "ClusterRole" && object.metadata.labels?.[label] === "true")
    .flatMap((role) => at<PolicyRule[]>(role, "rules"));
}

/**
 * What the built-in `admin`, `edit` and `view` ClusterRoles gain from install.yaml, aggregated as the API server
 * aggregates them: `view` takes aggregate-to-view; `edit` takes aggregate-to-edit, and `view` (labelled
 * aggregate-to-edit); `admin` takes aggregate-to-admin, and `edit` (labelled aggregate-to-admin).
 */
function builtInRole(name: "admin" | "edit" | "view"): PolicyRule[] {
  const view = aggregatedRules("rbac.authorization.k8s.io/aggregate-to-view");
  const edit = [...aggregatedRules("rbac.authorization.k8s.io/aggregate-to-edit"), ...view];
  return name === "view" ? view : name === "edit" ? edit : [
    ...aggregatedRules("rbac.authorization.k8s.io/aggregate-to-admin"),
    ...edit,
  ];
}

function allows(rules: readonly PolicyRule[], verb: string, resource: string, group = API_GROUP): boolean {
  return rules.some((rule) =>
    (rule.apiGroups ?? []).some((g) => g === group || g === "*") &&
    (rule.resources ?? []).some((r) => r === resource || r === "*") &&
    rule.verbs.some((v) => v === verb || v === "*")
  );
}

const WRITE_VERBS = ["create", "update", "patch", "delete", "deletecollection"] as const;
const READ_VERBS = ["get", "list", "watch"] as const;

Deno.test("RBAC for the people who write rules: aggregated into admin, edit and view as documented", async (t) => {
  const [imageRewrites, clusterImageRewrites] = [IMAGE_REWRITES.plural, CLUSTER_IMAGE_REWRITES.plural];
  assert.deepEqual([imageRewrites, clusterImageRewrites].sort(), [...RULE_RESOURCES].sort());
  await t.step("namespace admins and editors write ImageRewrites (through a RoleBinding to admin or edit)", () => {
    for (const role of ["admin", "edit"] as const) {
      for (const verb of [...READ_VERBS, ...WRITE_VERBS]) {
        assert.ok(allows(builtInRole(role), verb, imageRewrites), `${role} ${verb}`);
      }
    }
  });
  await t.step("viewers read ImageRewrites and ClusterImageRewrites, and write nothing", () => {
    for (const resource of [imageRewrites, clusterImageRewrites]) {
      for (const verb of READ_VERBS) assert.ok(allows(builtInRole("view"), verb, resource), `view ${verb} ${resource}`);
      for (const verb of WRITE_VERBS) assert.ok(!allows(builtInRole("view"), verb, resource), `view ${verb}`);
    }
  });
  await t.step("no built-in role gains writes of ClusterImageRewrites or of any status: cluster admins only", () => {
    for (const role of ["admin", "edit", "view"] as const) {
      for (const verb of WRITE_VERBS) {
        for (const resource of [clusterImageRewrites, `${imageRewrites}/status`, `${clusterImageRewrites}/status`]) {
          assert.ok(!allows(builtInRole(role), verb, resource), `${role} ${verb} ${resource}`);
        }
      }
    }
  });
  await t.step("a ClusterImageRewrite editor role exists for a ClusterRoleBinding, aggregated nowhere", () => {
    const editor = find(objects, "ClusterRole", "mirrorhook-clusterimagerewrite-editor");
    const rules = at<PolicyRule[]>(editor, "rules");
    for (const verb of [...READ_VERBS, ...WRITE_VERBS]) assert.ok(allows(rules, verb, clusterImageRewrites), verb);
    assert.ok(!allows(rules, "update", `${clusterImageRewrites}/status`));
    const labels = Object.keys(editor.metadata.labels ?? {});
    assert.deepEqual(labels.filter((label) => label.startsWith("rbac.authorization.k8s.io/aggregate-to-")), []);
  });
  await t.step("mirrorhook's own role grants what the cluster source reads and the status it writes", () => {
    const rules = at<PolicyRule[]>(find(objects, "ClusterRole", "mirrorhook"), "rules");
    for (const resource of [IMAGE_REWRITES, CLUSTER_IMAGE_REWRITES, NAMESPACES, REGISTRY_REWRITE_RULES]) {
      const group = resource.apiVersion.includes("/") ? resource.apiVersion.split("/")[0] : "";
      for (const verb of READ_VERBS) {
        assert.ok(allows(rules, verb, resource.plural, group), `${verb} ${resource.plural}`);
      }
      for (const verb of WRITE_VERBS) {
        assert.ok(!allows(rules, verb, resource.plural, group), `${verb} ${resource.plural}`);
      }
    }
    for (const resource of [IMAGE_REWRITES, CLUSTER_IMAGE_REWRITES]) {
      assert.ok(allows(rules, "update", `${resource.plural}/status`), resource.plural);
    }
  });
});

Deno.test("the rules ConfigMap holds rule files that load without errors, copies of rules/ presets", async (t) => {
  const data = at<Record<string, string>>(rulesConfigMap, "data");
  assert.ok(Object.keys(data).length > 0);
  for (const [key, text] of Object.entries(data)) {
    await t.step(key, async () => {
      assert.equal(text, await Deno.readTextFile(`${DEPLOY}manager/rules/${key}`));
      assert.equal(text, await Deno.readTextFile(`${ROOT}rules/${key}`), "keep it equal to the preset in rules/");
      const loaded = loadRuleTexts([{ name: key, text }]);
      assert.ok(!hasErrors(loaded.problems), JSON.stringify(loaded.problems));
      assert.ok(loaded.objects.length > 0);
    });
  }
});

// ---------------------------------------------------------------------------------------------------------------
// The Deployment's command line, run

function review(
  options: { namespace: string; labels?: Record<string, string>; image?: string; username?: string },
): Json {
  return admissionReview({
    namespace: options.namespace,
    userInfo: { username: options.username ?? "system:serviceaccount:kube-system:replicaset-controller" },
    object: {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { generateName: "check-", namespace: options.namespace, labels: options.labels ?? { app: "check" } },
      spec: { containers: [{ name: "main", image: options.image ?? "k8s.gcr.io/pause:3.9" }] },
    },
    asApiServer: true,
  });
}

function ruleReview(): Json {
  const object = { apiVersion: API_VERSION, kind: "ClusterImageRewrite", metadata: { name: "x" }, spec: { rules: [] } };
  return admissionReview({
    name: "x",
    userInfo: { username: "admin" },
    object,
    fields: { oldObject: null, dryRun: false },
  });
}

function imagesAfter(answer: Json): string[] {
  const patch = decodePatch(at<Json>(answer, "response")) ?? [];
  return (patch as { path: string; value: unknown }[])
    .filter((op) => /^\/spec\/containers\/\d+\/image$/.test(op.path))
    .map((op) => String(op.value));
}

Deno.test("the Deployment's command line serves the shipped rules from its mounts and stops in time", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mirrorhook-deploy-" });
  let child: Deno.ChildProcess | undefined;
  let stderr: Promise<string> | undefined;
  try {
    // The mounts, laid out as the kubelet does (..data symlinks), under a temporary root.
    const chain = await mintCertificates({
      dnsNames: [...at<string[]>(servingCertificate, "spec.dnsNames"), "localhost"],
      ipAddresses: ["127.0.0.1"],
    });
    const mounts = new Map<string, string>();
    for (const mount of container.volumeMounts) {
      const volume = volumes.find((v) => v.name === mount.name) as Volume;
      const path = `${dir}${mount.mountPath}`;
      mounts.set(mount.mountPath, path);
      if (volume.configMap !== undefined) {
        await KubeMount.create(
          path,
          at<Record<string, string>>(find(objects, "ConfigMap", volume.configMap.name), "data"),
        );
      } else if (volume.secret !== undefined && volume.secret.optional === true) {
        // An optional Secret that does not exist is mounted as an empty directory.
        await Deno.mkdir(path, { recursive: true });
      } else if (volume.secret !== undefined) {
        await KubeMount.create(path, { [CERT_FILE]: chain.cert, [KEY_FILE]: chain.key, "ca.crt": chain.caCert });
      } else await Deno.mkdir(path, { recursive: true });
    }
    const relocate = (arg: string) => {
      for (const [mountPath, path] of mounts) {
        if (arg.includes(`=${mountPath}`)) return arg.replace(`=${mountPath}`, `=${path}`);
      }
      return arg;
    };
    const args = (container.args ?? []).map(relocate);
    assert.ok(args.every((arg) => !/^--(port|probe-port|host)\b/.test(arg)), "ports and host come from variables");

    const port = freePort();
    const probePort = freePort();
    const env: Record<string, string> = {};
    for (const variable of container.env ?? []) {
      const value = variable.value ?? (deployment.metadata.namespace as string);
      env[variable.name] = mounts.get(value) ?? value;
    }
    Object.assign(env, {
      MIRRORHOOK_PORT: String(port),
      MIRRORHOOK_PROBE_PORT: String(probePort),
      MIRRORHOOK_HOST: "127.0.0.1",
      TMPDIR: mounts.get("/tmp") ?? dir,
      NO_COLOR: "1",
    });
    for (const name of ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME"]) {
      const value = Deno.env.get(name);
      if (value !== undefined) env[name] = value;
    }
    child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-P=mirrorhook", V8_FLAGS_ARGUMENT, "--quiet", "main.ts", "serve", ...args],
      cwd: ROOT,
      clearEnv: true,
      env,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    stderr = new Response(child.stderr).text();

    const deadline = Date.now() + 60_000;
    let ready = false;
    while (!ready && Date.now() < deadline) {
      try {
        const response = await fetch(`http://127.0.0.1:${probePort}/readyz`, { signal: AbortSignal.timeout(1000) });
        ready = response.status === 200;
        await response.body?.cancel();
      } catch {
        // not listening yet
      }
      if (!ready) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    assert.ok(ready, "readyz never turned 200");

    const client = Deno.createHttpClient({ caCerts: [chain.caCert] });
    try {
      const post = async (body: Json) => {
        const response = await fetch(`https://127.0.0.1:${port}/mutate`, {
          method: "POST",
          client,
          headers: { "content-type": "application/json" },
          body: JSON.stringify(body),
        });
        assert.equal(response.status, 200);
        return await response.json() as Json;
      };
      assert.deepEqual(imagesAfter(await post(review({ namespace: "default" }))), ["registry.k8s.io/pause:3.9"]);
      assert.deepEqual(imagesAfter(await post(review({ namespace: "kube-system" }))), []);
      assert.deepEqual(imagesAfter(await post(review({ namespace: NAMESPACE, labels: podLabels }))), []);
    } finally {
      client.close();
    }

    const started = Date.now();
    child.kill("SIGTERM");
    const status = await child.status;
    const elapsed = Date.now() - started;
    child = undefined;
    assert.equal(status.code, 0, await stderr);
    assert.ok(elapsed < at<number>(podSpec, "terminationGracePeriodSeconds") * 1000, `stopped after ${elapsed} ms`);
  } finally {
    if (child !== undefined) {
      child.kill("SIGKILL");
      await child.status;
    }
    await stderr;
    await Deno.remove(dir, { recursive: true });
  }
});
