// Checks the Helm chart deploy/chart without helm: tests/support/helm_render (Go's text/template with Helm's semantics
// and the Sprig functions the chart uses) renders it, and the objects are compared with deploy/install.yaml:
// - with default values, the same objects as install.yaml, but for the documented differences (docs/operations.md,
//   "Install with Helm"): Helm's standard labels (and the instance label in selectors), no Namespace unless
//   namespace.create, CRDs from crds/ (deploy/crd's files, without the labels kustomize adds);
// - with overrides (release name, namespace, certManager.enabled=false, failurePolicy, replicas...), the objects change
//   as they should and still validate against the Kubernetes schemas;
// - where `helm` is on PATH, `helm lint` passes and `helm template` gives what helm_render gives.
// Skipped when `go` is missing (.ci/run installs golang-go).

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { isRecord, type Json, type K8sObject, parseManifests, schemaErrors } from "./support/manifests.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const CHART = `${ROOT}deploy/chart`;
const RENDERER_SOURCE = `${ROOT}tests/support/helm_render`;
const INSTALL = `${ROOT}deploy/install.yaml`;
/** Offline and with the installed toolchain: the renderer needs only the standard library. */
const GO_ENV = { GOFLAGS: "-mod=mod", GOPROXY: "off", GOTOOLCHAIN: "local" };
/** Labels the chart adds to install.yaml's (every object; the instance label also in selectors). */
const HELM_LABELS = [
  "app.kubernetes.io/instance",
  "app.kubernetes.io/managed-by",
  "app.kubernetes.io/version",
  "helm.sh/chart",
] as const;

function available(command: string, args: string[]): boolean {
  try {
    return new Deno.Command(command, { args, stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
}
const HAVE_GO = available("go", ["version"]);
const HAVE_HELM = available("helm", ["version", "--short"]);
const NO_GO = HAVE_GO ? "" : " (SKIPPED: go is not on PATH; install golang-go)";

function key(object: K8sObject): string {
  return `${object.kind} ${object.metadata.namespace ?? ""}/${object.metadata.name}`;
}

function byKey(objects: K8sObject[]): Map<string, K8sObject> {
  const map = new Map<string, K8sObject>();
  for (const object of objects) {
    assert.ok(!map.has(key(object)), `${key(object)} appears twice`);
    map.set(key(object), object);
  }
  return map;
}

function find(objects: K8sObject[], kind: string, name: string): K8sObject {
  const found = objects.find((object) => object.kind === kind && object.metadata.name === name);
  assert.ok(found !== undefined, `no ${kind} ${name} in ${objects.map(key).join(", ")}`);
  return found;
}

/** A copy without Helm's labels, wherever labels, matchLabels or a Service's selector are. */
function withoutHelmLabels<T>(value: T): T {
  if (Array.isArray(value)) return value.map(withoutHelmLabels) as T;
  if (!isRecord(value)) return value;
  const copy: Json = {};
  for (const [name, item] of Object.entries(value)) {
    if ((name === "labels" || name === "matchLabels" || name === "selector") && isRecord(item)) {
      copy[name] = withoutHelmLabels(Object.fromEntries(
        Object.entries(item).filter(([label]) => !(HELM_LABELS as readonly string[]).includes(label)),
      ));
    } else {
      copy[name] = withoutHelmLabels(item);
    }
  }
  return copy as T;
}

/** Helm's merge of values: maps merge key by key, null removes a key, anything else replaces. */
function mergeValues(base: Json, overrides: Json): Json {
  const merged: Json = { ...base };
  for (const [name, value] of Object.entries(overrides)) {
    if (value === null) delete merged[name];
    else if (isRecord(value) && isRecord(merged[name])) merged[name] = mergeValues(merged[name] as Json, value);
    else merged[name] = value;
  }
  return merged;
}

function chartMetadata(chartDir: string): Json {
  const chart: unknown = parse(Deno.readTextFileSync(`${chartDir}/Chart.yaml`));
  assert.ok(isRecord(chart));
  return { Name: chart["name"], Version: chart["version"], AppVersion: chart["appVersion"] };
}

function defaultValues(chartDir: string): Json {
  const values: unknown = parse(Deno.readTextFileSync(`${chartDir}/values.yaml`));
  assert.ok(isRecord(values), "values.yaml is a map");
  return values;
}

interface RenderOptions {
  release?: string;
  namespace?: string;
  values?: Json;
  includeCrds?: boolean;
  chartDir?: string;
}

interface Rendered {
  success: boolean;
  stdout: string;
  stderr: string;
}

/** Builds helm_render into dir and returns a function that renders the chart with it. */
async function buildRenderer(dir: string): Promise<(options?: RenderOptions) => Promise<Rendered>> {
  const binary = `${dir}/helm_render`;
  const build = await new Deno.Command("go", {
    args: ["build", "-o", binary, "."],
    cwd: RENDERER_SOURCE,
    env: GO_ENV,
  }).output();
  assert.ok(build.success, `go build tests/support/helm_render: ${new TextDecoder().decode(build.stderr)}`);
  let inputs = 0;
  return async (options = {}) => {
    const chartDir = options.chartDir ?? CHART;
    const input = {
      Values: mergeValues(defaultValues(chartDir), options.values ?? {}),
      Release: {
        Name: options.release ?? "mirrorhook",
        Namespace: options.namespace ?? "mirrorhook-system",
        Service: "Helm",
        IsInstall: true,
        IsUpgrade: false,
        Revision: 1,
      },
      Chart: chartMetadata(chartDir),
    };
    const inputPath = `${dir}/input-${inputs++}.json`;
    await Deno.writeTextFile(inputPath, JSON.stringify(input));
    const args = ["--chart", chartDir, "--input", inputPath];
    if (options.includeCrds === true) args.push("--include-crds");
    const output = await new Deno.Command(binary, { args }).output();
    return {
      success: output.success,
      stdout: new TextDecoder().decode(output.stdout),
      stderr: new TextDecoder().decode(output.stderr),
    };
  };
}

async function renderObjects(
  render: (options?: RenderOptions) => Promise<Rendered>,
  options: RenderOptions = {},
): Promise<K8sObject[]> {
  const rendered = await render(options);
  assert.ok(rendered.success, `helm_render: ${rendered.stderr}`);
  return parseManifests(rendered.stdout, "rendered chart");
}

function assertValid(object: K8sObject): void {
  assert.equal(schemaErrors(object), undefined, `${object.kind} ${object.metadata.name}`);
}

const NAMESPACED = new Set([
  "ServiceAccount",
  "ConfigMap",
  "Service",
  "Deployment",
  "PodDisruptionBudget",
  "Certificate",
  "Issuer",
]);

/** The overrides of the "another release" case. */
const OVERRIDES: Json = {
  replicaCount: 3,
  image: { repository: "registry.example.com/mirrorhook", tag: "0.2.0" },
  logLevel: "debug",
  extraArgs: ["--verify-timeout=3s"],
  nodeSelector: { "kubernetes.io/os": "linux" },
  tolerations: [{ key: "dedicated", operator: "Equal", value: "platform", effect: "NoSchedule" }],
  podAnnotations: { "prometheus.io/scrape": "true" },
  // Maps merge with the defaults: null removes the CPU limit.
  resources: { requests: { cpu: "200m", memory: "256Mi" }, limits: { cpu: null, memory: "1Gi" } },
  webhook: { failurePolicy: "Fail", timeoutSeconds: 3, excludeNamespaces: ["kube-system", "monitoring"] },
  certManager: { enabled: false },
  tls: { secretName: "edge-serving", caBundle: "Q0EgUEVN" },
};

Deno.test(`chart: deploy/chart renders install.yaml's objects and follows its values${NO_GO}`, {
  ignore: !HAVE_GO,
}, async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "mirrorhook-chart-" });
  try {
    const render = await buildRenderer(dir);
    const install = parseManifests(Deno.readTextFileSync(INSTALL), "deploy/install.yaml");

    await t.step("crds/ holds deploy/crd's files unchanged", () => {
      const names = (dir: string) => [...Deno.readDirSync(dir)].map((entry) => entry.name).sort();
      const crdFiles = names(`${ROOT}deploy/crd`).filter((name) => name !== "kustomization.yaml");
      assert.deepEqual(names(`${CHART}/crds`), crdFiles);
      for (const name of crdFiles) {
        assert.equal(
          Deno.readTextFileSync(`${CHART}/crds/${name}`),
          Deno.readTextFileSync(`${ROOT}deploy/crd/${name}`),
          `deploy/chart/crds/${name} differs from deploy/crd/${name}`,
        );
      }
    });

    await t.step("default values: install.yaml's objects, but for the documented differences", async () => {
      const rendered = await renderObjects(render, { includeCrds: true });
      // Documented differences: no Namespace (Helm needs it first), CRDs without kustomize's labels, Helm's labels.
      const expected = byKey(
        install.filter((object) => object.kind !== "Namespace").map((object) => {
          if (object.kind !== "CustomResourceDefinition") return object;
          const { labels: _labels, ...metadata } = object.metadata;
          return { ...object, metadata };
        }),
      );
      const actual = byKey(rendered.map(withoutHelmLabels));
      assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort(), "objects (kind namespace/name)");
      for (const [name, object] of expected) assert.deepEqual(actual.get(name), object, name);
    });

    await t.step("without --include-crds, no CRD (as helm template)", async () => {
      const rendered = await renderObjects(render);
      assert.ok(!rendered.some((object) => object.kind === "CustomResourceDefinition"));
      assert.ok(rendered.length > 0);
    });

    await t.step("namespace.create=true adds install.yaml's Namespace", async () => {
      const rendered = await renderObjects(render, { values: { namespace: { create: true } } });
      const namespace = find(rendered, "Namespace", "mirrorhook-system");
      assert.deepEqual(withoutHelmLabels(namespace), find(install, "Namespace", "mirrorhook-system"));
    });

    await t.step("every object carries Helm's labels; namespaced ones are in the release namespace", async () => {
      const rendered = await renderObjects(render, { release: "edge", namespace: "platform" });
      for (const object of rendered) {
        assert.deepEqual(
          HELM_LABELS.map((label) => object.metadata.labels?.[label]),
          ["edge", "Helm", "0.1.0", "mirrorhook-0.1.0"],
          key(object),
        );
        assert.equal(object.metadata.labels?.["app.kubernetes.io/name"], "mirrorhook", key(object));
        assert.equal(object.metadata.namespace, NAMESPACED.has(object.kind) ? "platform" : undefined, key(object));
      }
    });

    await t.step("another release, namespace and values", async () => {
      const rendered = await renderObjects(render, {
        release: "edge",
        namespace: "platform",
        values: OVERRIDES,
        includeCrds: true,
      });
      for (const object of rendered) assertValid(object);
      const fullname = "edge-mirrorhook";
      assert.deepEqual(
        rendered.map(key).sort(),
        [
          "ClusterRole /edge-mirrorhook",
          "ClusterRole /edge-mirrorhook-clusterimagerewrite-editor",
          "ClusterRole /edge-mirrorhook-clusterimagerewrite-viewer",
          "ClusterRole /edge-mirrorhook-imagerewrite-editor",
          "ClusterRole /edge-mirrorhook-imagerewrite-viewer",
          "ClusterRoleBinding /edge-mirrorhook",
          "ConfigMap platform/edge-mirrorhook-rules",
          "CustomResourceDefinition /clusterimagerewrites.mirrorhook.dev",
          "CustomResourceDefinition /imagerewrites.mirrorhook.dev",
          "Deployment platform/edge-mirrorhook",
          "MutatingWebhookConfiguration /edge-mirrorhook",
          "PodDisruptionBudget platform/edge-mirrorhook",
          "Service platform/edge-mirrorhook",
          "ServiceAccount platform/edge-mirrorhook",
          "ValidatingWebhookConfiguration /edge-mirrorhook",
        ],
        "no cert-manager objects without cert-manager",
      );

      const binding = find(rendered, "ClusterRoleBinding", fullname);
      assert.deepEqual(binding["roleRef"], {
        apiGroup: "rbac.authorization.k8s.io",
        kind: "ClusterRole",
        name: fullname,
      });
      assert.deepEqual(binding["subjects"], [{ kind: "ServiceAccount", name: fullname, namespace: "platform" }]);

      const selector = { "app.kubernetes.io/name": "mirrorhook", "app.kubernetes.io/instance": "edge" };
      assert.deepEqual(find(rendered, "Service", fullname)["spec"], {
        ...(find(install, "Service", "mirrorhook")["spec"] as Json),
        selector,
      });
      assert.deepEqual((find(rendered, "PodDisruptionBudget", fullname)["spec"] as Json)["selector"], {
        matchLabels: selector,
      });

      const deployment = find(rendered, "Deployment", fullname);
      const spec = deployment["spec"] as Json;
      assert.equal(spec["replicas"], 3);
      assert.deepEqual(spec["selector"], { matchLabels: selector });
      const template = spec["template"] as { metadata: Json; spec: Json };
      assert.deepEqual(template.metadata["annotations"], {
        "kubectl.kubernetes.io/default-container": "mirrorhook",
        "prometheus.io/scrape": "true",
      });
      const podLabels = template.metadata["labels"] as Json;
      assert.equal(podLabels["mirrorhook.dev/rewrite"], "disabled", "the webhook's own Pods stay opted out");
      assert.equal(podLabels["app.kubernetes.io/instance"], "edge");
      const pod = template.spec;
      assert.equal(pod["serviceAccountName"], fullname);
      assert.deepEqual(pod["nodeSelector"], { "kubernetes.io/os": "linux" });
      assert.deepEqual(pod["tolerations"], OVERRIDES["tolerations"]);
      assert.deepEqual(
        (pod["topologySpreadConstraints"] as { labelSelector: Json }[])[0]?.labelSelector,
        { matchLabels: selector },
      );
      const [container] = pod["containers"] as Json[];
      assert.ok(container !== undefined);
      assert.equal(container["image"], "registry.example.com/mirrorhook:0.2.0");
      assert.deepEqual(container["args"], [
        "--rules=/etc/mirrorhook/rules",
        "--tls-dir=/etc/mirrorhook/tls",
        "--verify-timeout=3s",
      ]);
      const env = Object.fromEntries(
        (container["env"] as { name: string; value?: string }[]).map((e) => [e.name, e.value]),
      );
      assert.equal(env["MIRRORHOOK_LOG_LEVEL"], "debug");
      assert.deepEqual(container["resources"], {
        requests: { cpu: "200m", memory: "256Mi" },
        limits: { memory: "1Gi" },
      });
      const volumes: Record<string, Json> = Object.fromEntries((pod["volumes"] as Json[]).map((v) => [v["name"], v]));
      assert.deepEqual(volumes["tls"], { name: "tls", secret: { secretName: "edge-serving", defaultMode: 0o440 } });
      assert.deepEqual(volumes["rules"], { name: "rules", configMap: { name: "edge-mirrorhook-rules" } });
      assert.equal(
        (volumes["registry-credentials"] as { secret: Json }).secret["secretName"],
        "edge-mirrorhook-registry-credentials",
      );

      for (const kind of ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"]) {
        const configuration = find(rendered, kind, fullname);
        assert.equal(configuration.metadata.annotations, undefined, `${kind}: no cert-manager annotation`);
        const [webhook] = configuration["webhooks"] as Json[];
        assert.ok(webhook !== undefined);
        const clientConfig = webhook["clientConfig"] as { service: Json; caBundle: string };
        assert.equal(clientConfig.caBundle, "Q0EgUEVN", `${kind}: caBundle`);
        assert.equal(clientConfig.service["name"], fullname);
        assert.equal(clientConfig.service["namespace"], "platform");
      }
      const [mutating] = find(rendered, "MutatingWebhookConfiguration", fullname)["webhooks"] as Json[];
      assert.ok(mutating !== undefined);
      assert.equal(mutating["failurePolicy"], "Fail");
      assert.equal(mutating["timeoutSeconds"], 3);
      assert.deepEqual(mutating["namespaceSelector"], {
        matchExpressions: [
          { key: "kubernetes.io/metadata.name", operator: "NotIn", values: ["kube-system", "monitoring", "platform"] },
          { key: "mirrorhook.dev/rewrite", operator: "NotIn", values: ["disabled"] },
        ],
      });
      assert.deepEqual(mutating["objectSelector"], {
        matchExpressions: [{ key: "mirrorhook.dev/rewrite", operator: "NotIn", values: ["disabled"] }],
      });
      assert.deepEqual(mutating["matchConditions"], [{
        name: "not-mirrorhook-itself",
        expression: "request.userInfo.username != 'system:serviceaccount:platform:edge-mirrorhook'",
      }]);
      const [validating] = find(rendered, "ValidatingWebhookConfiguration", fullname)["webhooks"] as Json[];
      assert.equal(validating?.["failurePolicy"], "Ignore", "the rules' webhook keeps Ignore");
    });

    await t.step("cert-manager objects follow the release", async () => {
      const rendered = await renderObjects(render, { release: "edge", namespace: "platform" });
      const serving = find(rendered, "Certificate", "edge-mirrorhook-serving-cert")["spec"] as Json;
      assert.deepEqual(serving["dnsNames"], [
        "edge-mirrorhook.platform.svc",
        "edge-mirrorhook.platform.svc.cluster.local",
      ]);
      assert.equal(serving["secretName"], "edge-mirrorhook-tls");
      assert.deepEqual(serving["issuerRef"], { group: "cert-manager.io", kind: "Issuer", name: "edge-mirrorhook-ca" });
      const ca = find(rendered, "Certificate", "edge-mirrorhook-ca")["spec"] as Json;
      assert.deepEqual(ca["issuerRef"], {
        group: "cert-manager.io",
        kind: "Issuer",
        name: "edge-mirrorhook-selfsigned",
      });
      assert.deepEqual(find(rendered, "Issuer", "edge-mirrorhook-ca")["spec"], {
        ca: { secretName: ca["secretName"] },
      });
      for (const kind of ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"]) {
        const configuration = find(rendered, kind, "edge-mirrorhook");
        assert.deepEqual(configuration.metadata.annotations, {
          "cert-manager.io/inject-ca-from": "platform/edge-mirrorhook-serving-cert",
        });
        const [webhook] = configuration["webhooks"] as { clientConfig: Json }[];
        assert.equal(webhook?.clientConfig["caBundle"], undefined, `${kind}: cert-manager injects the caBundle`);
      }
    });

    await t.step("certManager.enabled=false without tls.caBundle fails, naming the value", async () => {
      const rendered = await render({ values: { certManager: { enabled: false } } });
      assert.ok(!rendered.success, "rendered without a caBundle");
      assert.match(rendered.stderr, /tls\.caBundle/);
    });

    await t.step("names: release names with the chart's name, fullnameOverride, at most 63 characters", async () => {
      const cases: [RenderOptions, string][] = [
        [{ release: "mirrorhook-canary" }, "mirrorhook-canary"],
        [{ release: "edge", values: { fullnameOverride: "images" } }, "images"],
        [{ release: "r".repeat(70) }, "r".repeat(63)],
        [{ release: `${"a".repeat(62)}-x` }, "a".repeat(62)],
      ];
      for (const [options, fullname] of cases) {
        const rendered = await renderObjects(render, options);
        assert.equal(find(rendered, "Service", fullname).metadata.name, fullname);
        for (const object of rendered) {
          if (object.kind === "Service" || object.kind === "Deployment") {
            assert.match(object.metadata.name, /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/, key(object));
          }
        }
        const [webhook] = find(rendered, "MutatingWebhookConfiguration", fullname)["webhooks"] as Json[];
        assert.deepEqual((webhook?.["clientConfig"] as { service: Json }).service["name"], fullname);
      }
    });

    await t.step("rules: files become the ConfigMap; create=false mounts the named one and renders none", async () => {
      const files = { "dockerhub.yaml": "kind: ClusterImageRewrite\n", "quay.yaml": "kind: ImageRewrite\n" };
      const rendered = await renderObjects(render, { values: { rules: { files } } });
      assert.deepEqual(find(rendered, "ConfigMap", "mirrorhook-rules")["data"], {
        ...files,
        "k8s-gcr-to-registry-k8s.yaml": Deno.readTextFileSync(`${ROOT}rules/k8s-gcr-to-registry-k8s.yaml`),
      });
      const replaced = await renderObjects(render, {
        values: { rules: { files: { "k8s-gcr-to-registry-k8s.yaml": null, "mine.yaml": "kind: ImageRewrite\n" } } },
      });
      assert.deepEqual(find(replaced, "ConfigMap", "mirrorhook-rules")["data"], {
        "mine.yaml": "kind: ImageRewrite\n",
      });

      const external = await renderObjects(render, { values: { rules: { create: false, name: "platform-rules" } } });
      assert.ok(!external.some((object) => object.kind === "ConfigMap"));
      const pod = ((find(external, "Deployment", "mirrorhook")["spec"] as Json)["template"] as { spec: Json }).spec;
      assert.deepEqual((pod["volumes"] as Json[])[0], { name: "rules", configMap: { name: "platform-rules" } });
    });

    await t.step("podDisruptionBudget.enabled=false and priorityClassName", async () => {
      const rendered = await renderObjects(render, {
        values: { podDisruptionBudget: { enabled: false }, priorityClassName: "mirrorhook" },
      });
      assert.ok(!rendered.some((object) => object.kind === "PodDisruptionBudget"));
      const pod = ((find(rendered, "Deployment", "mirrorhook")["spec"] as Json)["template"] as { spec: Json }).spec;
      assert.equal(pod["priorityClassName"], "mirrorhook");
    });

    await t.step("a broken template fails the rendering, naming the file", async () => {
      const broken = `${dir}/broken-chart`;
      await Deno.mkdir(`${broken}/templates`, { recursive: true });
      for (const entry of Deno.readDirSync(`${CHART}/templates`)) {
        await Deno.copyFile(`${CHART}/templates/${entry.name}`, `${broken}/templates/${entry.name}`);
      }
      await Deno.copyFile(`${CHART}/Chart.yaml`, `${broken}/Chart.yaml`);
      await Deno.copyFile(`${CHART}/values.yaml`, `${broken}/values.yaml`);
      assert.ok((await render({ chartDir: broken })).success, "the copy renders");

      await Deno.writeTextFile(`${broken}/templates/service.yaml`, "name: {{ .Values.image.repository.host }}\n");
      const evaluation = await render({ chartDir: broken });
      assert.ok(!evaluation.success);
      assert.match(evaluation.stderr, /mirrorhook\/templates\/service\.yaml/);

      await Deno.writeTextFile(`${broken}/templates/service.yaml`, "{{ if .Values.replicaCount }}\n");
      const syntax = await render({ chartDir: broken });
      assert.ok(!syntax.success);
      assert.match(syntax.stderr, /mirrorhook\/templates\/service\.yaml/);

      await Deno.writeTextFile(`${broken}/templates/service.yaml`, '{{ include "mirrorhook.nothing" . }}\n');
      assert.ok(!(await render({ chartDir: broken })).success, "include of an undefined template");
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function helm(args: string[]): Promise<string> {
  const output = await new Deno.Command("helm", { args }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.ok(output.success, `helm ${args.join(" ")}: ${stderr}`);
  return new TextDecoder().decode(output.stdout);
}

Deno.test(
  `chart: helm lint, and helm template gives what helm_render gives${
    HAVE_HELM && HAVE_GO ? "" : " (SKIPPED: needs helm and go on PATH)"
  }`,
  { ignore: !HAVE_HELM || !HAVE_GO },
  async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "mirrorhook-helm-" });
    try {
      const render = await buildRenderer(dir);
      const overrides = `${dir}/overrides.json`;
      await Deno.writeTextFile(overrides, JSON.stringify(OVERRIDES));
      await t.step("helm lint", async () => {
        await helm(["lint", "--strict", CHART]);
        await helm(["lint", "--strict", CHART, "-f", overrides]);
      });
      const cases: [string, RenderOptions, string[]][] = [
        ["defaults", { includeCrds: true }, ["--include-crds"]],
        ["overrides", { release: "edge", namespace: "platform", values: OVERRIDES }, ["-f", overrides]],
      ];
      for (const [name, options, flags] of cases) {
        await t.step(`helm template: ${name}`, async () => {
          const release = options.release ?? "mirrorhook";
          const namespace = options.namespace ?? "mirrorhook-system";
          const fromHelm = parseManifests(
            await helm(["template", release, CHART, "--namespace", namespace, ...flags]),
            "helm template",
          );
          const ours = await renderObjects(render, options);
          const expected = byKey(ours);
          const actual = byKey(fromHelm);
          assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort());
          for (const [objectKey, object] of expected) assert.deepEqual(actual.get(objectKey), object, objectKey);
        });
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
