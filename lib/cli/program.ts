// The `mirrorhook` command line: subcommands, their options and help, and exit statuses.

import { Command, CommanderError, InvalidArgumentError, Option } from "@commander-js/extra-typings";
import { DEFAULT_BYPASS_PREFIX } from "../rules/engine.ts";
import { FOREIGN_FORMATS } from "../compat/common.ts";
import { type CliIo, denoIo, EXIT, parseLabels, UsageError } from "./io.ts";
import { addMirrorCommand } from "./mirror.ts";
import { addServeCommand } from "./serve.ts";

// Other subcommands' modules are imported when they run: `serve` need not hold them (nor fast-json-patch and yaml's
// printer) in memory for its whole life.

/** The version printed by `--version`. */
export const VERSION = "0.1.0";

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function verifyTimeout(value: string): number {
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 300) {
    throw new UsageError(`--verify-timeout must be seconds from 0 to 300, got ${JSON.stringify(value)}`);
  }
  return seconds * 1000;
}

function nonEmpty(value: string): string {
  if (value.trim() === "") throw new InvalidArgumentError("must not be empty");
  return value;
}

/**
 * Options required only once the command line is otherwise sound: commander checks mandatory options before unknown
 * ones, so `rewrite --rule x nginx` said "--rules not specified" instead of naming the typo.
 */
const REQUIRED_LATER = new WeakSet<object>();

function requiredLater<T extends object>(option: T): T {
  REQUIRED_LATER.add(option);
  return option;
}

const rulesOption = () =>
  requiredLater(
    new Option("-r, --rules <path>", "rules file or directory (repeatable, required)").argParser(collect),
  );
const namespaceOption = () => new Option("-n, --namespace <ns>", "namespace of the Pod").argParser(nonEmpty);
const namespaceLabelOption = () =>
  new Option("--namespace-label <key=value>", "a label of the namespace, for namespaceSelector (repeatable)")
    .argParser(collect).default([] as string[]);
const bypassOption = () =>
  new Option("--bypass-prefix <prefix>", 'images written as <prefix><ref> become <ref>; "" disables')
    .default(DEFAULT_BYPASS_PREFIX);

/** Builds the program; `setExit` receives each action's exit status. */
export function buildProgram(
  io: CliIo,
  setExit: (code: number) => void,
  env: (name: string) => string | undefined = (name) => Deno.env.get(name),
) {
  const program = new Command()
    .name("mirrorhook")
    .description("Rewrites container image references in Pods by rules: a Kubernetes mutating admission webhook.")
    .version(VERSION)
    .showHelpAfterError("(run with --help for usage)")
    .configureOutput({ writeOut: (text) => io.stdout(text), writeErr: (text) => io.stderr(text) })
    .exitOverride()
    .hook("preAction", (_program, command) => {
      // After unknown options and missing arguments (checked before hooks run), as a user reads a command line.
      for (const option of command.options) {
        if (!REQUIRED_LATER.has(option) || command.getOptionValue(option.attributeName()) !== undefined) continue;
        command.error(`error: required option '${option.flags}' not specified`, {
          code: "commander.missingMandatoryOptionValue",
          exitCode: EXIT.usage,
        });
      }
    });

  addServeCommand(program, io, setExit, env);
  addMirrorCommand(program, io, setExit);

  program.command("rewrite")
    .description("print what the rules make of each image, one line per image, in order")
    .argument("<image...>", "image references as written in a Pod")
    .addOption(rulesOption())
    .addOption(namespaceOption())
    .option(
      "--pod-label <key=value>",
      "a label of the Pod, for podSelector and opt-out labels (repeatable)",
      collect,
      [] as string[],
    )
    .addOption(namespaceLabelOption())
    .option("--explain", "also print which object and rule decided and which other rules lost, or why nothing matched")
    .addOption(
      new Option("-o, --output <format>", "output format").choices(["text", "json"] as const).default("text" as const),
    )
    .addOption(bypassOption())
    .option("--verify", "ask each rewrite's target registry whether the image exists (onMissing decides if not)")
    .option("--verify-timeout <seconds>", "deadline for the registry checks", "5")
    .option("--docker-config <path>", "Docker config with registry credentials (repeatable)", collect, [] as string[])
    .option("--insecure-registry <host>", "registry spoken to over plain HTTP (repeatable)", collect, [] as string[])
    .option("--registry-ca <host=file>", "extra CA certificate for a registry (repeatable)", collect, [] as string[])
    .addHelpText(
      "after",
      `
Examples:
  mirrorhook rewrite --rules rules/dockerhub-harbor.yaml nginx bitnami/redis:7
  mirrorhook rewrite --rules rules/dockerhub-harbor.yaml --verify --docker-config ~/.docker/config.json --explain nginx:1.27
  mirrorhook rewrite --rules rules/registry-migration.yaml --namespace canary --explain old-registry.company.com/app:1
  mirrorhook rewrite --rules rules/gcr-quay-ghcr-cache.yaml -o json ghcr.io/org/app@sha256:<digest>

Exit status: 0 ok, 1 rules did not load or an image is invalid, 2 bad usage.`,
    )
    .action(async (images, options) => {
      setExit(
        await (await import("./rewrite.ts")).runRewrite(images, {
          rules: options.rules ?? [],
          ...(options.namespace === undefined ? {} : { namespace: options.namespace }),
          podLabels: parseLabels(options.podLabel, "--pod-label"),
          ...(options.namespaceLabel.length === 0
            ? {}
            : { namespaceLabels: parseLabels(options.namespaceLabel, "--namespace-label") }),
          explain: options.explain === true,
          output: options.output,
          bypassPrefix: options.bypassPrefix,
          ...(options.verify !== true ? {} : {
            verify: {
              deadlineMs: verifyTimeout(options.verifyTimeout),
              dockerConfigs: options.dockerConfig,
              insecureRegistries: options.insecureRegistry,
              caFiles: parseLabels(options.registryCa, "--registry-ca"),
            },
          }),
        }, io),
      );
    });

  program.command("mutate")
    .description(
      "print Pods, workloads (their Pod templates), Lists and multi-document streams as the cluster would run them",
    )
    .addOption(
      requiredLater(
        new Option(
          "-f, --file <file>",
          "manifests, YAML or JSON, one or more documents; - for standard input (required)",
        ),
      ),
    )
    .addOption(rulesOption())
    .addOption(
      new Option("-n, --namespace <ns>", "namespace for objects that name none (an object's own comes first)")
        .argParser(nonEmpty),
    )
    .addOption(namespaceLabelOption())
    .addOption(
      new Option("-o, --output <format>", "output format").choices(["yaml", "json"] as const).default("yaml" as const),
    )
    .option("--summary", "print one line per rewritten image (object, container, from \u2192 to, rule) instead")
    .addOption(bypassOption())
    .addHelpText(
      "after",
      `
Pods, and the Pod templates of Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job, CronJob and
PodTemplate are rewritten as the webhook will rewrite the Pods created from them, each with its object's namespace;
every other document is printed unchanged (YAML comments and quoting kept).

Examples:
  mirrorhook mutate -f pod.yaml --rules rules/dockerhub-harbor.yaml
  kubectl get pod web-0 -o yaml | mirrorhook mutate -f - --rules rules/dockerhub-harbor.yaml --namespace web -o json
  helm template my-release ./chart -n web | mirrorhook mutate -f - --rules my-rules/ --summary
  kubectl get deploy -A -o yaml | mirrorhook mutate -f - --rules my-rules/ -o json

Warnings go to standard error. Exit status: 0 ok, 1 unreadable manifests or rules, 2 bad usage.`,
    )
    .action(async (options) => {
      setExit(
        await (await import("./mutate.ts")).runMutate({
          file: options.file ?? "-",
          rules: options.rules ?? [],
          ...(options.namespace === undefined ? {} : { namespace: options.namespace }),
          ...(options.namespaceLabel.length === 0
            ? {}
            : { namespaceLabels: parseLabels(options.namespaceLabel, "--namespace-label") }),
          output: options.output,
          bypassPrefix: options.bypassPrefix,
          summary: options.summary === true,
        }, io),
      );
    });

  program.command("validate")
    .description("check rule files and directories together; print every problem with file:line:column")
    .argument("<path...>", "rule files or directories")
    .addOption(
      new Option("-o, --output <format>", "output format").choices(["text", "json"] as const).default("text" as const),
    )
    .addHelpText(
      "after",
      `
Examples:
  mirrorhook validate rules/
  mirrorhook validate hub.yaml migration.yaml -o json

Exit status: 0 no errors (warnings allowed), 1 errors found, 2 bad usage.`,
    )
    .action(async (paths, options) =>
      setExit(await (await import("./validate.ts")).runValidate(paths, options.output, io))
    );

  program.command("test")
    .description(
      "run cases files (image, namespace, labels \u2192 expected reference) against their rules; exit 1 on a failure",
    )
    .argument("[path...]", "cases files, or directories holding cases/<name>.yaml or mirrorhook-test.yaml", ["."])
    .addOption(
      new Option("-r, --rules <path>", "rules for every cases file, instead of the ones each names (repeatable)")
        .argParser(collect),
    )
    .addOption(
      new Option("-o, --output <format>", "output format").choices(["text", "json"] as const).default("text" as const),
    )
    .addOption(bypassOption())
    .addHelpText(
      "after",
      `
A cases file is a list of cases, or a mapping {rules: PATH or [PATH...], cases: [...]} whose paths are relative to
it. Without rules:, cases/<name>.yaml runs against ../<name>.yaml. A directory runs its mirrorhook-test.yaml and
every file in its cases/ folder, each against its own rules. Each case:
  - image: nginx:1.27                 # as written in the Pod (required)
    namespace: web                    # where the Pod is admitted
    podLabels: {app: web}             # labels of the Pod (opt-out labels count, as in the webhook)
    namespaceLabels: {env: dev}       # labels of the namespace, for namespaceSelector
    expected: harbor.example.com/dockerhub/library/nginx:1.27   # the reference the Pod ends up with (required)
    warnings: ["invalid reference"]   # substrings of the admission warnings expected; [] for none

Examples:
  mirrorhook test rules/
  mirrorhook test my-cases.yaml --rules platform-rules/
  mirrorhook test -o json > results.json

Exit status: 0 every case passed, 1 a case failed or a cases or rules file has errors, 2 bad usage.`,
    )
    .action(async (paths, options) =>
      setExit(
        await (await import("./test.ts")).runTest(paths, {
          ...(options.rules === undefined ? {} : { rules: options.rules }),
          output: options.output,
          bypassPrefix: options.bypassPrefix,
        }, io),
      )
    );

  program.command("import")
    .description("print another tool's configuration as mirrorhook objects, with comments where that tool differs")
    .argument("<file>", "the other tool's file; - for standard input")
    .addOption(
      new Option("--from <tool>", "the tool the file belongs to (recognised from the content when omitted)").choices(
        FOREIGN_FORMATS,
      ),
    )
    .addHelpText(
      "after",
      `
Tools:
  flemzord    RegistryRewriteRule objects of mutating-registry-webhook (dev.flemzord.fr/v1alpha1)
  imageswap   an ImageSwap map file (key::value lines)
  proxy-url   k8s-proxy-image-swapper's PROXY_URL: one Docker Hub proxy prefix
  imagemap    from/to pairs, or ImageMap objects of kubernetes-image-mapper

Without --from, the tool is recognised from the content (and named on standard error); with a --from that does not
fit the content, import says what the file looks like and stops.

Examples:
  mirrorhook import /etc/imageswap/maps > rules.yaml
  kubectl get registryrewriterules -o yaml | mirrorhook import --from flemzord -

Problems go to standard error. Exit status: 0 ok, 1 unreadable file or errors in it, 2 bad usage.`,
    )
    .action(async (file, options) => setExit(await (await import("./import.ts")).runImport(file, options.from, io)));

  program.command("demo")
    .description("rewrite a sample Pod with a bundled preset and show each step (no cluster needed)")
    .option(
      "-r, --rules <path>",
      "rules file or directory instead of the bundled preset (repeatable)",
      collect,
      [] as string[],
    )
    .addHelpText("after", "\nExample:\n  mirrorhook demo\n  mirrorhook demo --rules rules/k8s-gcr-to-registry-k8s.yaml")
    .action(async (options) => setExit(await (await import("./demo.ts")).runDemo(options.rules, io)));

  return program;
}

/** Runs the command line with `args` (without the program name); resolves to the exit status. */
export async function run(args: readonly string[], io: CliIo = denoIo()): Promise<number> {
  let exit: number = EXIT.ok;
  // Every command but serve screens patterns in this thread; serve screens on a worker and stays ~7 MB smaller.
  if (args[0] !== "serve") await import("../rules/pattern_analysis.ts");
  const program = buildProgram(io, (code) => {
    exit = code;
  });
  if (args.length === 0) {
    io.stderr(program.helpInformation());
    return EXIT.usage;
  }
  try {
    await program.parseAsync([...args], { from: "user" });
  } catch (error) {
    if (error instanceof CommanderError) {
      if (
        error.code === "commander.helpDisplayed" || error.code === "commander.version" ||
        error.code === "commander.help"
      ) {
        return EXIT.ok;
      }
      return EXIT.usage;
    }
    if (error instanceof UsageError) {
      io.stderr(`error: ${error.message}\n`);
      return EXIT.usage;
    }
    io.stderr(
      `mirrorhook: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    return EXIT.failed;
  }
  return exit;
}
