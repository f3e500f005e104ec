// Wires the server: rule sources -> store, HTTPS webhook with certificate reload, probe port, graceful shutdown.

import type { Logger } from "@logtape/logtape";
import { sampleReview } from "../admission/sample.ts";
import { OPT_OUT_LABEL, type PodLike } from "../mutate/pod.ts";
import { formatProblem, type Problem } from "../rules/problem.ts";
import { FileRuleSource } from "../sources/file_source.ts";
import type { KubeRuleSource } from "../sources/kube/source.ts";
import type { RuleSource } from "../sources/source.ts";
import { RuleStore } from "../sources/store.ts";
import { type CertificateChain, mintCertificates } from "./certs.ts";
import { createWebhookCore } from "./handler.ts";
import { createMetrics, type Metrics } from "./metrics.ts";
import { createProbeHandler, type Readiness } from "./probes.ts";
import { reportRuleProblems } from "./rule_problems.ts";
import { ReloadingTlsServer } from "./tls.ts";
import type { TransportLimits } from "./transport.ts";
import { LOAD_SCREEN_DEADLINE_MS, PatternScreener, VALIDATE_SCREEN_DEADLINE_MS } from "./pattern_screener.ts";
import { createVerifyMetrics } from "../verify/metrics.ts";
import { truncate } from "../util/truncate.ts";
import { type ClusterRulesPolicy, refusedTargets, VerifyPolicy } from "../verify/policy.ts";
import { Verifier } from "../verify/verifier.ts";
import { readDockerConfigs } from "../verify/auth.ts";
import { Transport } from "../verify/transport.ts";
import { Mirrorer } from "../mirror/mirrorer.ts";
import { checkedFetch } from "../verify/http.ts";
import { createMirrorMetrics, formatMirrorEvent } from "../mirror/metrics.ts";
import { OnDemandMirror } from "../mirror/on_demand.ts";

/** Every setting of `mirrorhook serve`. */
export interface ServeConfig {
  readonly rules: readonly string[];
  readonly tlsDir?: string;
  readonly host: string;
  readonly port: number;
  readonly probeHost?: string;
  readonly probePort: number;
  readonly dryRun: boolean;
  readonly onError: "allow" | "deny";
  readonly bypassPrefix: string;
  readonly excludeNamespaces: readonly string[];
  readonly maxBodyBytes: number;
  /** Timeouts and the memory bound of the HTTPS port (defaults: DEFAULT_TRANSPORT_LIMITS). */
  readonly limits?: Partial<Omit<TransportLimits, "maxBodyBytes">>;
  readonly dev: boolean;
  /** Namespace the webhook runs in: its own Pods there (label app.kubernetes.io/name=mirrorhook) are never changed. */
  readonly selfNamespace?: string;
  /** After SIGTERM: keep serving (not ready) this long so endpoints drop the Pod first. */
  readonly shutdownDelayMs: number;
  /** Upper bound on waiting for in-flight requests. */
  readonly shutdownTimeoutMs: number;
  readonly rulesPollMs?: number;
  readonly certPollMs?: number;
  /** Read ImageRewrite and ClusterImageRewrite objects (and namespace labels) from the API server. */
  readonly kube?: boolean;
  /** Kubeconfig file for `kube`; in-cluster service account when absent. */
  readonly kubeconfig?: string;
  /** Deadline of a GET of a namespace the watch has not delivered yet (for namespaceSelector); default 1 s. */
  readonly namespaceLookupTimeoutMs?: number;
  /** Registry checks for rules with `verify`. */
  readonly verify?: VerifyConfig;
}

/** Settings of registry verification (`verify: true` rules). */
export interface VerifyConfig {
  /** Deadline for all checks of one admission. */
  readonly deadlineMs: number;
  /** Docker config files or directories (a mounted `.dockerconfigjson` Secret). */
  readonly dockerConfigs: readonly string[];
  /** Registries spoken to over plain HTTP. */
  readonly insecureRegistries: readonly string[];
  /** Extra CA file by registry host. */
  readonly caFiles: Readonly<Record<string, string>>;
  /** Registries every verified rule may check (`--verify-registry`); insecure and CA-file hosts count too. */
  readonly registries?: readonly string[];
  /** What cluster-wide rules may verify against (`--verify-cluster-rules`, default `listed`). */
  readonly clusterRules?: ClusterRulesPolicy;
  /** Copies of `mirror: true` rules: largest image, and copies at once (defaults 2 GiB and 2). */
  readonly mirror?: { readonly maxBytes?: number; readonly concurrency?: number };
  readonly cache?: {
    readonly maxEntries?: number;
    readonly presentMs?: number;
    readonly missingMs?: number;
    readonly errorMs?: number;
  };
}

/** A running server. */
export interface RunningServer {
  readonly webhookPort: number;
  readonly probePort: number;
  readonly metrics: Metrics;
  readonly store: RuleStore;
  readonly tls: ReloadingTlsServer;
  /** The throwaway chain in --dev mode. */
  readonly devCertificates?: CertificateChain;
  readonly readiness: () => Readiness;
  /** Readiness false, optional delay, in-flight requests finish (bounded), listeners closed. */
  shutdown(reason: string): Promise<void>;
}

/** Thrown when the server cannot start: the first rules load failed, or TLS could not start. */
export class StartupError extends Error {
  override name = "StartupError";
  readonly problems: readonly Problem[];
  constructor(message: string, problems: readonly Problem[] = []) {
    super(problems.length === 0 ? message : `${message}:\n${problems.map((p) => `  ${formatProblem(p)}`).join("\n")}`);
    this.problems = problems;
  }
}

/** The label the webhook's own Pods carry (set by deploy/). */
export const SELF_LABEL = { key: "app.kubernetes.io/name", value: "mirrorhook" } as const;

/** The example rules `--dev` serves when no --rules is given. */
const DEV_RULES: readonly string[] = [
  "dockerhub-harbor.yaml",
  "gcr-quay-ghcr-cache.yaml",
  "k8s-gcr-to-registry-k8s.yaml",
]
  .map((name) => decodeURIComponent(new URL(`../../rules/${name}`, import.meta.url).pathname));

/** Starts everything; throws {@linkcode StartupError} when the first load or TLS fails. */
export async function startServer(
  config: ServeConfig,
  log: { logger: Logger; metrics?: Metrics },
): Promise<RunningServer> {
  const { logger } = log;
  const metrics = log.metrics ?? createMetrics();
  const store = new RuleStore();
  reportRuleProblems(store, { logger, registry: metrics.registry });
  let shuttingDown = false;

  const rulePaths = config.rules.length > 0 ? config.rules : config.dev && config.kube !== true ? DEV_RULES : [];
  if (rulePaths.length === 0 && config.kube !== true) {
    throw new StartupError("Cannot start: give --rules PATH (file or directory), --kube, or --dev");
  }
  // Patterns are screened on a worker thread, never on the one that answers admissions.
  const screener = new PatternScreener();
  const screenForLoad = (sources: readonly string[]) =>
    screener.screen(sources, { deadlineMs: LOAD_SCREEN_DEADLINE_MS });
  // Every source in one list, files first: the store lists their objects in this order (the first listed wins a
  // conflict), and they start, stop and report in this order.
  const sources: RuleSource[] = [];
  if (rulePaths.length > 0) {
    sources.push(
      new FileRuleSource({
        paths: rulePaths,
        store,
        metrics,
        logger,
        screen: screenForLoad,
        ...(config.rulesPollMs === undefined ? {} : { pollIntervalMs: config.rulesPollMs }),
      }),
    );
  }
  let kube: KubeRuleSource | undefined;
  if (config.kube === true) {
    try {
      // Loaded only when configured: a file-only server need not hold the cluster source's modules (and node:http's).
      const [{ KubeRuleSource }, { loadKubeConfig }] = await Promise.all([
        import("../sources/kube/source.ts"),
        import("../sources/kube/http.ts"),
      ]);
      kube = new KubeRuleSource({
        kubeConfig: await loadKubeConfig(config.kubeconfig === undefined ? {} : { path: config.kubeconfig }),
        store,
        metrics,
        logger,
        screen: screenForLoad,
        ...(config.namespaceLookupTimeoutMs === undefined
          ? {}
          : { namespaceLookupTimeoutMs: config.namespaceLookupTimeoutMs }),
      });
    } catch (error) {
      screener.close();
      throw new StartupError(
        `Cannot start the Kubernetes source: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
    sources.push(kube);
  }
  for (const source of sources) {
    // Files load before serving (an error stops the start); the cluster source returns at once and /readyz stays
    // 503 until its first complete lists.
    const problems = await source.start();
    if (problems.some((p) => p.severity === "error")) {
      await Promise.all(sources.map((started) => started.stop()));
      screener.close();
      throw new StartupError(`Cannot start: the rules in ${rulePaths.join(", ")} have errors`, problems);
    }
  }
  let closeVerifier = async () => {};
  /** Everything but the listeners; `withVerifier` false while requests may still need registry checks. */
  const stopSources = async (withVerifier = true) => {
    await Promise.all(sources.map((source) => source.stop()));
    if (withVerifier) {
      await closeVerifier();
      screener.close();
    }
  };

  const verifyMetrics = createVerifyMetrics(metrics.registry);
  let verifier: Verifier;
  let verifyPolicy: VerifyPolicy;
  try {
    verifyPolicy = VerifyPolicy.create({
      registries: config.verify?.registries ?? [],
      clusterRules: config.verify?.clusterRules ?? "listed",
    });
    const cache = config.verify?.cache;
    verifier = await Verifier.create({
      policy: verifyPolicy,
      deadlineMs: config.verify?.deadlineMs ?? 2000,
      onLookupError: (image, detail) =>
        logger.warn("Could not check {image} in its registry: {detail}", { image, detail: truncate(detail) }),
      dockerConfigs: config.verify?.dockerConfigs ?? [],
      insecureRegistries: config.verify?.insecureRegistries ?? [],
      caFiles: config.verify?.caFiles ?? {},
      metrics: verifyMetrics,
      ...(cache === undefined ? {} : {
        cache: {
          ...(cache.maxEntries === undefined ? {} : { maxEntries: cache.maxEntries }),
          ttls: {
            ...(cache.presentMs === undefined ? {} : { presentMs: cache.presentMs }),
            ...(cache.missingMs === undefined ? {} : { missingMs: cache.missingMs }),
            ...(cache.errorMs === undefined ? {} : { errorMs: cache.errorMs }),
          },
        },
      }),
    });
  } catch (error) {
    await stopSources();
    throw new StartupError(
      `Cannot set up registry verification: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  // Rules with `mirror: true` copy what their target lacks, in the background, with the verification credentials.
  const mirrorMetrics = createMirrorMetrics(metrics.registry);
  let onDemand: OnDemandMirror;
  let mirrorer: Mirrorer;
  let mirrorTransport: Transport;
  try {
    mirrorTransport = await Transport.create({
      insecure: config.verify?.insecureRegistries ?? [],
      caFiles: config.verify?.caFiles ?? {},
    });
    // A copy pulls from the registry a Pod names: every hop is checked like a registry lookup (no loopback,
    // link-local or metadata address unless the platform listed the host).
    const listed = verifyPolicy.withListed(mirrorTransport.namedHosts);
    mirrorer = new Mirrorer({
      credentials: await readDockerConfigs(config.verify?.dockerConfigs ?? []),
      transport: mirrorTransport,
      fetch: checkedFetch({ isListed: (host) => listed.isListed(host) }),
      maxConcurrentCopies: config.verify?.mirror?.concurrency ?? 2,
      maxBytes: config.verify?.mirror?.maxBytes ?? 2 * 1024 ** 3,
      onEvent: (event) => {
        mirrorMetrics.record(event);
        const line = formatMirrorEvent(event);
        if (line === undefined) return;
        if (line.level === "info") logger.info(line.message, line.fields);
        else logger.warn(line.message, line.fields);
      },
    });
    onDemand = new OnDemandMirror(mirrorer, { onCopied: (target) => verifier.forget(target) });
  } catch (error) {
    await verifier.close();
    await stopSources();
    throw new StartupError(`Cannot set up mirroring: ${error instanceof Error ? error.message : String(error)}`);
  }
  closeVerifier = async () => {
    mirrorer.close();
    await onDemand.idle().catch(() => {});
    mirrorTransport.close();
    await verifier.close();
  };
  logger.info("Rules with verify may check {registries}; cluster-wide rules: {clusterRules} registries", {
    registries: verifier.policy.listed.length === 0 ? "no registry" : verifier.policy.listed.join(", "),
    clusterRules: verifier.policy.clusterRules,
  });
  // After an upgrade or a new rule, say which verified rules can never be checked (their images are kept).
  const refusalsReported = new Set<string>();
  const reportRefusals = () => {
    for (const target of refusedTargets(store.current, verifier.policy)) {
      const key = `${target.object}\u0000${target.registry}`;
      if (refusalsReported.has(key)) continue;
      refusalsReported.add(key);
      logger.warn(
        "{object} verifies against {registry}, which {scope} rules may not ask: list it with --verify-registry",
        {
          object: target.object,
          registry: target.registry,
          scope: target.scope === "namespaced" ? "namespaced" : "cluster-wide",
        },
      );
    }
  };
  reportRefusals();
  store.onChange(reportRefusals);
  const devCertificates = config.dev && config.tlsDir === undefined ? await mintCertificates() : undefined;
  const excluded = new Set(config.excludeNamespaces);
  const isOwnPod = config.selfNamespace === undefined
    ? undefined
    : (pod: PodLike) => pod.namespace === config.selfNamespace && pod.labels[SELF_LABEL.key] === SELF_LABEL.value;
  const handler = createWebhookCore({
    rules: () => store.current,
    metrics,
    logger,
    maxBodyBytes: config.maxBodyBytes,
    onError: config.onError,
    dryRun: config.dryRun,
    bypassPrefix: config.bypassPrefix,
    excludedNamespaces: excluded,
    ...(isOwnPod === undefined ? {} : { isOwnPod }),
    ...(kube === undefined ? {} : { namespaceLabels: (namespace: string) => kube.namespaceLabels(namespace) }),
    // A namespace the watch has not delivered yet is read once, for rules with a namespaceSelector.
    ...(kube?.watchesNamespaces === true
      ? { lookupNamespace: (namespace: string) => kube.lookupNamespace(namespace) }
      : {}),
    verifier,
    verifyDeadlineMs: config.verify?.deadlineMs ?? 2000,
    verifyDecisions: verifyMetrics.decisions,
    verifyChosen: verifyMetrics.chosen,
    mirror: onDemand,
    screenPatterns: (sources) => screener.screen(sources, { deadlineMs: VALIDATE_SCREEN_DEADLINE_MS }),
  });
  const tls = new ReloadingTlsServer({
    hostname: config.host,
    port: config.port,
    ...(config.tlsDir === undefined ? {} : { certDir: config.tlsDir }),
    ...(devCertificates === undefined ? {} : { pair: { cert: devCertificates.cert, key: devCertificates.key } }),
    handler,
    logger,
    metrics,
    ...(config.certPollMs === undefined ? {} : { pollIntervalMs: config.certPollMs }),
    limits: { ...config.limits, maxBodyBytes: config.maxBodyBytes },
  });
  try {
    await tls.start();
  } catch (error) {
    await stopSources();
    throw new StartupError(
      `Cannot start the HTTPS listener on ${config.host}:${config.port}: ${
        error instanceof Error ? error.message : String(error)
      }`,
    );
  }

  const readiness = (): Readiness => {
    const reasons: string[] = [];
    if (shuttingDown) reasons.push("shutting down");
    for (const source of store.status()) if (!source.loaded) reasons.push(`rules source ${source.name} has not loaded`);
    if (tls.notAfter === undefined) reasons.push("no serving certificate");
    const ruleSet = store.current;
    return {
      ready: reasons.length === 0,
      reasons,
      rulesHash: ruleSet.hash,
      objects: ruleSet.objects.length,
      rules: ruleSet.ruleCount,
      sources: store.status(),
      certificate: {
        ...(tls.notAfter === undefined ? {} : { notAfter: tls.notAfter.toISOString() }),
        ...(tls.rejected === undefined ? {} : {
          rejected: {
            notBefore: tls.rejected.notBefore.toISOString(),
            notAfter: tls.rejected.notAfter.toISOString(),
            reason: tls.rejected.reason,
          },
        }),
      },
    };
  };
  const extra: Record<string, () => Response> = devCertificates === undefined ? {} : {
    "/dev/ca.crt": () =>
      new Response(devCertificates.caCert, { headers: { "content-type": "application/x-pem-file" } }),
    "/dev/sample-review": () => Response.json(sampleReview(crypto.randomUUID())),
  };
  let probe: Deno.HttpServer<Deno.NetAddr>;
  try {
    probe = Deno.serve(
      { hostname: config.probeHost ?? config.host, port: config.probePort, onListen: () => {} },
      createProbeHandler({ metrics, readiness, extra }),
    );
  } catch (error) {
    await stopSources();
    await tls.shutdown();
    throw new StartupError(
      `Cannot start the probe listener on port ${config.probePort}: ${
        error instanceof Error ? error.message : String(error)
      }`,
    );
  }

  logger.info("Serving /mutate on https://{host}:{port}, probes on http://{host}:{probePort}", {
    host: config.host,
    port: tls.port,
    probePort: probe.addr.port,
    dryRun: config.dryRun,
    onError: config.onError,
    rulesHash: store.current.hash,
    excludeNamespaces: config.excludeNamespaces,
    optOutLabel: `${OPT_OUT_LABEL}=disabled`,
  });

  let shutdownPromise: Promise<void> | undefined;
  return {
    webhookPort: tls.port,
    probePort: probe.addr.port,
    metrics,
    store,
    tls,
    ...(devCertificates === undefined ? {} : { devCertificates }),
    readiness,
    shutdown(reason) {
      shutdownPromise ??= (async () => {
        shuttingDown = true;
        tls.drain();
        logger.info("Shutting down ({reason}): not ready; finishing in-flight requests", { reason });
        if (config.shutdownDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, config.shutdownDelayMs));
        await stopSources(false);
        let timer: ReturnType<typeof setTimeout> | undefined;
        const bounded = new Promise<"timeout">((resolve) => {
          timer = setTimeout(() => resolve("timeout"), config.shutdownTimeoutMs);
        });
        const result = await Promise.race([tls.shutdown().then(() => "done" as const), bounded]);
        clearTimeout(timer);
        if (result === "timeout") logger.warn("Shutdown grace period over; exiting with requests in flight");
        await closeVerifier();
        screener.close();
        await probe.shutdown().catch(() => {});
        logger.info("Stopped");
      })();
      return shutdownPromise;
    },
  };
}
