// `mirrorhook serve`: flags (each also MIRRORHOOK_<FLAG>), start-up, the --dev banner, and SIGTERM handling.

import { type Command, InvalidArgumentError, Option } from "@commander-js/extra-typings";
import { DEFAULT_EXCLUDED_NAMESPACES } from "../mutate/pod.ts";
import { DEFAULT_BYPASS_PREFIX } from "../rules/engine.ts";
import { hasLinearEngine, V8_FLAGS_ARGUMENT } from "../rules/pattern.ts";
import { type ServeConfig, startServer, StartupError } from "../server/app.ts";
import { DEFAULT_MAX_BODY_BYTES } from "../server/handler.ts";
import { DEFAULT_TRANSPORT_LIMITS } from "../server/transport.ts";
import { configureLogging, flushLogs, LOG_LEVELS, logger, type MirrorhookLogLevel } from "../server/log.ts";
import { type CliIo, EXIT, parseLabels, UsageError } from "./io.ts";
import { parseByteSize } from "./mirror.ts";

/** Environment variable for a flag: `--probe-port` -> `MIRRORHOOK_PROBE_PORT`. */
export function envName(flag: string): string {
  return `MIRRORHOOK_${flag.replace(/^--/, "").replaceAll("-", "_").toUpperCase()}`;
}

// Parsers throw commander's InvalidArgumentError, so the message names where the value came from: the flag, or its
// variable ("option '--port <port>' value 'abc' from env 'MIRRORHOOK_PORT' is invalid").
function int(_name: string, min: number, max: number) {
  return (value: string): number => {
    const number = Number(value);
    if (!Number.isInteger(number) || number < min || number > max) {
      throw new InvalidArgumentError(`It must be an integer from ${min} to ${max}.`);
    }
    return number;
  };
}

function seconds(_name: string) {
  return (value: string): number => {
    const number = Number(value.replace(/s$/, ""));
    if (!Number.isFinite(number) || number < 0 || number > 3600) {
      throw new InvalidArgumentError("It must be seconds from 0 to 3600.");
    }
    return number;
  };
}

function byteSize(value: string): number {
  try {
    return parseByteSize(value);
  } catch {
    throw new InvalidArgumentError("It must be a size in bytes, or with a K, M, G or T suffix (2GiB).");
  }
}

function positiveSeconds(name: string) {
  const parse = seconds(name);
  return (value: string): number => {
    const number = parse(value);
    if (number <= 0) throw new UsageError(`${name} must be more than 0 seconds, got ${JSON.stringify(value)}`);
    return number;
  };
}

function bool(name: string, value: string): boolean {
  if (/^(1|true|yes|on)$/i.test(value)) return true;
  if (/^(0|false|no|off|)$/i.test(value)) return false;
  throw new UsageError(`${name} must be true or false, got ${JSON.stringify(value)}`);
}

/** Repeatable options collect values; from the environment they are comma-separated. */
function list(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), ...value.split(",").map((item) => item.trim()).filter((item) => item !== "")];
}

/** Adds `serve` to the program. */
export function addServeCommand(
  program: Command,
  io: CliIo,
  setExit: (code: number) => void,
  env: (name: string) => string | undefined,
): void {
  const opt = (flags: string, description: string) => {
    const long = flags.split(/[ ,]+/).find((part) => part.startsWith("--")) ?? flags;
    return new Option(flags, description).env(envName(long)); // commander prints "(env: ...)"
  };
  program.command("serve")
    .description("run the admission webhook: HTTPS /mutate, plus /healthz, /readyz and /metrics on the probe port")
    .addOption(opt("-r, --rules <path>", "rules file or directory, watched (repeatable)").argParser(list))
    .addOption(opt("--tls-dir <dir>", "directory with tls.crt and tls.key (a cert-manager Secret mount), watched"))
    .addOption(opt("--host <address>", "address to listen on (default: 0.0.0.0; 127.0.0.1 with --dev)"))
    .addOption(opt("--port <port>", "HTTPS port for /mutate").argParser(int("--port", 0, 65535)).default(8443))
    .addOption(
      opt("--probe-port <port>", "plain HTTP port for probes and metrics").argParser(int("--probe-port", 0, 65535))
        .default(8080),
    )
    .addOption(
      new Option("--dry-run", `compute, warn, log and count, but patch nothing [env: ${envName("--dry-run")}=true]`),
    )
    .addOption(
      opt("--on-error <policy>", "when rule evaluation fails: admit unchanged, or deny").choices(
        ["allow", "deny"] as const,
      ).default("allow" as const),
    )
    .addOption(
      opt("--bypass-prefix <prefix>", 'images written <prefix><ref> become <ref> with no rule; "" disables').default(
        DEFAULT_BYPASS_PREFIX,
      ),
    )
    .addOption(opt("--exclude-namespace <ns>", "namespace never changed (repeatable)").argParser(list))
    .addOption(
      opt(
        "--self-namespace <ns>",
        "namespace mirrorhook runs in; its own Pods are never changed (default: POD_NAMESPACE)",
      ),
    )
    .addOption(opt("--log-level <level>", "log level").choices(LOG_LEVELS).default("info" as MirrorhookLogLevel))
    .addOption(
      opt("--max-body-bytes <n>", "largest accepted request body").argParser(
        int("--max-body-bytes", 1024, 256 * 1024 * 1024),
      ).default(DEFAULT_MAX_BODY_BYTES),
    )
    .addOption(
      opt("--body-timeout <seconds>", "a request body must be complete this long after its headers (else 408)")
        .argParser(positiveSeconds("--body-timeout")).default(DEFAULT_TRANSPORT_LIMITS.bodyTimeoutMs / 1000),
    )
    .addOption(
      opt("--headers-timeout <seconds>", "longest TLS handshake, and longest wait for a request's headers")
        .argParser(positiveSeconds("--headers-timeout")).default(DEFAULT_TRANSPORT_LIMITS.headersTimeoutMs / 1000),
    )
    .addOption(
      opt("--max-buffered-bytes <n>", "request bytes held in memory across all connections (more: 503)").argParser(
        int("--max-buffered-bytes", 64 * 1024, 4 * 1024 * 1024 * 1024),
      ).default(DEFAULT_TRANSPORT_LIMITS.maxBufferedBytes),
    )
    .addOption(
      opt("--shutdown-delay <seconds>", "after SIGTERM, keep serving while not ready").argParser(
        seconds("--shutdown-delay"),
      ).default(2),
    )
    .addOption(
      opt("--shutdown-timeout <seconds>", "longest wait for in-flight requests at shutdown").argParser(
        seconds("--shutdown-timeout"),
      ).default(20),
    )
    .addOption(
      opt("--verify-timeout <seconds>", "deadline for all registry checks of one admission (rules with verify)")
        .argParser(seconds("--verify-timeout")).default(2),
    )
    .addOption(
      opt(
        "--verify-registry <host>",
        "registry (HOST[:PORT]) every verified rule may check and hold credentials for (repeatable)",
      ).argParser(list),
    )
    .addOption(
      opt(
        "--verify-cluster-rules <which>",
        "registries cluster-wide rules may verify against: only those listed, or any (namespaced rules: only listed)",
      ).choices(["listed", "any"] as const).default("listed" as const),
    )
    .addOption(
      opt("--docker-config <path>", "Docker config file or directory with registry credentials (repeatable)").argParser(
        list,
      ),
    )
    .addOption(opt("--insecure-registry <host>", "registry spoken to over plain HTTP (repeatable)").argParser(list))
    .addOption(
      opt("--registry-ca <host=file>", "extra CA certificate file for a registry (repeatable)").argParser(list),
    )
    .addOption(
      opt(
        "--mirror-max-bytes <size>",
        "largest image a mirror: true rule copies (larger copies are refused and logged)",
      )
        .argParser(byteSize).default(2 * 1024 ** 3),
    )
    .addOption(
      opt("--mirror-concurrency <n>", "copies for mirror: true rules running at once (others wait their turn)")
        .argParser(int("--mirror-concurrency", 1, 64)).default(2),
    )
    .addOption(
      opt("--verify-cache-size <n>", "registry answers kept").argParser(int("--verify-cache-size", 1, 10_000_000))
        .default(10_000),
    )
    .addOption(
      opt("--verify-ttl-present <seconds>", "how long a found image is remembered").argParser(
        seconds("--verify-ttl-present"),
      ).default(600),
    )
    .addOption(
      opt("--verify-ttl-missing <seconds>", "how long a missing image is remembered").argParser(
        seconds("--verify-ttl-missing"),
      ).default(30),
    )
    .addOption(
      opt("--verify-ttl-error <seconds>", "how long a failed check is remembered").argParser(
        seconds("--verify-ttl-error"),
      ).default(10),
    )
    .addOption(
      new Option(
        "--kube",
        `read ImageRewrite and ClusterImageRewrite objects and namespace labels from the API server (default: on in a cluster) [env: ${
          envName("--kube")
        }=true|false]`,
      ),
    )
    .addOption(new Option("--no-kube", "do not read rules from the API server, even in a cluster"))
    .addOption(opt("--kubeconfig <file>", "kubeconfig for --kube (default: the in-cluster service account)"))
    .addOption(
      opt(
        "--namespace-lookup-timeout <seconds>",
        "deadline for reading a namespace the watch has not delivered yet (rules with a namespaceSelector)",
      ).argParser(positiveSeconds("--namespace-lookup-timeout")).default(1),
    )
    .addOption(
      new Option(
        "--dev",
        "throwaway CA and certificate for localhost, bundled example rules, and a ready curl command",
      ),
    )
    .addHelpText(
      "after",
      `
Examples:
  mirrorhook serve --dev
  mirrorhook serve --rules /etc/mirrorhook/rules --tls-dir /etc/mirrorhook/tls
  MIRRORHOOK_RULES=/rules MIRRORHOOK_TLS_DIR=/tls MIRRORHOOK_DRY_RUN=true mirrorhook serve

Every flag can come from its environment variable; a flag on the command line wins. Repeatable flags take
comma-separated values from the environment. Exit status: 0 after SIGTERM/SIGINT/SIGHUP, 1 when start-up fails
(every rule problem is printed), 2 bad usage.`,
    )
    .action(async (options, command) => {
      // A value from the environment is named by its variable in errors, as commander does for flags it parses.
      const from = (flag: string, key: string) => command.getOptionValueSource(key) === "env" ? envName(flag) : flag;
      const dryRunEnv = env(envName("--dry-run"));
      const devEnv = env(envName("--dev"));
      const dev = options.dev === true || (devEnv !== undefined && bool(envName("--dev"), devEnv));
      const kubeEnv = env(envName("--kube"));
      // On by default in a cluster (where the service account is mounted), off elsewhere; --kube/--no-kube decide.
      const kube = options.kube !== undefined
        ? options.kube
        : kubeEnv !== undefined
        ? bool(envName("--kube"), kubeEnv)
        : options.kubeconfig !== undefined || (!dev && env("KUBERNETES_SERVICE_HOST") !== undefined);
      const config: ServeConfig = {
        rules: options.rules ?? [],
        ...(options.tlsDir === undefined ? {} : { tlsDir: options.tlsDir }),
        host: options.host ?? (dev ? "127.0.0.1" : "0.0.0.0"),
        port: options.port ?? 8443,
        probePort: options.probePort ?? 8080,
        dryRun: options.dryRun === true || (dryRunEnv !== undefined && bool(envName("--dry-run"), dryRunEnv)),
        onError: options.onError ?? "allow",
        bypassPrefix: options.bypassPrefix ?? DEFAULT_BYPASS_PREFIX,
        excludeNamespaces: options.excludeNamespace ?? [...DEFAULT_EXCLUDED_NAMESPACES],
        maxBodyBytes: options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
        limits: {
          bodyTimeoutMs: (options.bodyTimeout ?? DEFAULT_TRANSPORT_LIMITS.bodyTimeoutMs / 1000) * 1000,
          headersTimeoutMs: (options.headersTimeout ?? DEFAULT_TRANSPORT_LIMITS.headersTimeoutMs / 1000) * 1000,
          maxBufferedBytes: options.maxBufferedBytes ?? DEFAULT_TRANSPORT_LIMITS.maxBufferedBytes,
        },
        dev,
        ...((options.selfNamespace ?? env("POD_NAMESPACE")) === undefined
          ? {}
          : { selfNamespace: options.selfNamespace ?? env("POD_NAMESPACE") ?? "" }),
        kube,
        ...(options.kubeconfig === undefined ? {} : { kubeconfig: options.kubeconfig }),
        namespaceLookupTimeoutMs: (options.namespaceLookupTimeout ?? 1) * 1000,
        verify: {
          deadlineMs: (options.verifyTimeout ?? 2) * 1000,
          registries: options.verifyRegistry ?? [],
          clusterRules: options.verifyClusterRules ?? "listed",
          dockerConfigs: options.dockerConfig ?? [],
          insecureRegistries: options.insecureRegistry ?? [],
          caFiles: parseLabels(options.registryCa ?? [], from("--registry-ca", "registryCa")),
          mirror: { maxBytes: options.mirrorMaxBytes ?? 2 * 1024 ** 3, concurrency: options.mirrorConcurrency ?? 2 },
          cache: {
            maxEntries: options.verifyCacheSize ?? 10_000,
            presentMs: (options.verifyTtlPresent ?? 600) * 1000,
            missingMs: (options.verifyTtlMissing ?? 30) * 1000,
            errorMs: (options.verifyTtlError ?? 10) * 1000,
          },
        },
        shutdownDelayMs: (options.shutdownDelay ?? 2) * 1000,
        shutdownTimeoutMs: (options.shutdownTimeout ?? 20) * 1000,
      };
      if (!dev && config.tlsDir === undefined) {
        throw new UsageError("serve needs --tls-dir (or --dev for a throwaway certificate)");
      }
      setExit(await runServe(config, options.logLevel ?? "info", io));
    });
}

/** Starts the server and resolves with the exit status once it has stopped. */
async function runServe(config: ServeConfig, level: MirrorhookLogLevel, io: CliIo): Promise<number> {
  configureLogging(level);
  if (!hasLinearEngine()) {
    // Without V8's linear engine a rule's pattern could backtrack for minutes on one crafted image.
    io.stderr(
      `mirrorhook: Cannot start: V8's linear-time regular expression engine is off; run with ${V8_FLAGS_ARGUMENT} (deno task mirrorhook, deno task compile and the container image set it)\n`,
    );
    return EXIT.failed;
  }
  const log = logger("server");
  let server;
  try {
    server = await startServer(config, { logger: log });
  } catch (error) {
    flushLogs();
    if (error instanceof StartupError) {
      io.stderr(`mirrorhook: ${error.message}\n`);
      return EXIT.failed;
    }
    throw error;
  }
  if (server.devCertificates !== undefined) {
    printDevBanner(io, server.webhookPort, server.probePort, server.devCertificates.caCert);
  }
  const stopped = new Promise<void>((resolve) => {
    const stop = (signal: string) => () => void server.shutdown(signal).then(resolve);
    // SIGHUP (a closed terminal, or an operator asking for a restart) shuts down as gracefully as SIGTERM, never exit 129.
    for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) Deno.addSignalListener(signal, stop(signal));
  });
  await stopped;
  // Log lines are batched; the last ones (shutdown's) reach standard error before serve returns.
  flushLogs();
  return EXIT.ok;
}

function printDevBanner(io: CliIo, port: number, probePort: number, caCert: string): void {
  const caBundle = btoa(caCert);
  io.stdout(
    `
mirrorhook --dev: serving https://localhost:${port}/mutate with a throwaway certificate and the bundled example rules
  probes and metrics: http://127.0.0.1:${probePort}/healthz  /readyz  /metrics

caBundle (clientConfig.caBundle of a MutatingWebhookConfiguration):
  ${caBundle}

Post a sample AdmissionReview (a Deployment's Pod) and see the answer:
  curl -s http://127.0.0.1:${probePort}/dev/ca.crt -o mirrorhook-dev-ca.crt
  curl -s http://127.0.0.1:${probePort}/dev/sample-review | curl -s --cacert mirrorhook-dev-ca.crt -H 'Content-Type: application/json' --data-binary @- https://localhost:${port}/mutate

Decode its JSON Patch: append  | jq -r .response.patch | base64 -d
Stop with Ctrl-C.
`,
  );
}
