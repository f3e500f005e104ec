// `mirrorhook mirror IMAGE...`: copies images into a mirror (a given target, or where the rules send them).

import { type Command, Option } from "@commander-js/extra-typings";
import { formatReference, type ImageReference, parseReference } from "../image/reference.ts";
import type { BlobProgress } from "../mirror/blob.ts";
import { formatBytes } from "../mirror/copy.ts";
import { parsePlatform, type Platform } from "../mirror/manifest.ts";
import { Mirrorer } from "../mirror/mirrorer.ts";
import { decide } from "../rules/engine.ts";
import { readDockerConfigs } from "../verify/auth.ts";
import { Transport } from "../verify/transport.ts";
import { type CliIo, EXIT, parseLabels, UsageError } from "./io.ts";
import { loadRulesForCli } from "./rules.ts";

/** How progress is shown: bars redrawn in place, one line per finished blob, or nothing. */
export type ProgressMode = "bar" | "lines" | "none";

/** Options of `mirror`, as parsed. */
export interface MirrorCliOptions {
  readonly to?: string;
  readonly rules: readonly string[];
  readonly namespace?: string;
  readonly dockerConfigs: readonly string[];
  readonly insecureRegistries: readonly string[];
  readonly caFiles: Readonly<Record<string, string>>;
  readonly platforms: readonly Platform[];
  readonly maxBytes?: number;
  readonly progress: ProgressMode;
}

const BAR_WIDTH = 30;
const REDRAW_MS = 100;

/** Parses `--max-bytes`: bytes, or a number with a K/M/G/T suffix (powers of 1024; `B` and `iB` optional). */
export function parseByteSize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$/i.exec(text);
  if (match === null) throw new UsageError(`--max-bytes expects a size such as 500000000 or 2GiB, got ${text}`);
  const power = ["", "k", "m", "g", "t"].indexOf((match[2] ?? "").toLowerCase());
  const bytes = Math.floor(Number(match[1]) * 1024 ** power);
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new UsageError(`--max-bytes must be positive, got ${text}`);
  return bytes;
}

function shortDigest(digest: string): string {
  return digest.replace(/^(sha256:[0-9a-f]{12})[0-9a-f]+$/, "$1");
}

/** Shows blob progress: bars redrawn in place on a terminal, else one line per blob when it is in place. */
class ProgressView {
  readonly #io: CliIo;
  readonly #mode: ProgressMode;
  readonly #rows = new Map<string, BlobProgress>();
  #drawn = 0;
  #last = 0;

  constructor(io: CliIo, mode: ProgressMode) {
    this.#io = io;
    this.#mode = mode;
  }

  update(progress: BlobProgress): void {
    if (this.#mode === "none") return;
    if (this.#mode === "lines") {
      if (progress.state !== "copying") {
        this.#io.stdout(`  ${shortDigest(progress.digest)} ${formatBytes(progress.total)} ${progress.state}\n`);
      }
      return;
    }
    this.#rows.set(progress.digest, progress);
    const now = Date.now();
    if (progress.state === "copying" && now - this.#last < REDRAW_MS) return;
    this.#last = now;
    this.#draw();
  }

  #draw(): void {
    let text = this.#drawn > 0 ? `\x1b[${this.#drawn}A` : "";
    for (const row of this.#rows.values()) {
      const ratio = row.total === 0 ? 1 : Math.min(1, row.done / row.total);
      const filled = Math.round(ratio * BAR_WIDTH);
      const bar = `[${"#".repeat(filled)}${"-".repeat(BAR_WIDTH - filled)}]`;
      const state = row.state === "copying" ? `${Math.floor(ratio * 100)}%` : row.state;
      text += `\x1b[2K  ${shortDigest(row.digest)} ${bar} ${formatBytes(row.done)}/${
        formatBytes(row.total)
      } ${state}\n`;
    }
    this.#drawn = this.#rows.size;
    this.#io.stdout(text);
  }

  /** Ends one image: the bars stay on screen, the next image draws below them. */
  finish(): void {
    if (this.#mode === "bar" && this.#rows.size > 0) this.#draw();
    this.#rows.clear();
    this.#drawn = 0;
  }
}

function parseImage(text: string, what: string): ImageReference {
  const parsed = parseReference(text);
  if (!parsed.ok) {
    throw new UsageError(`${what} ${JSON.stringify(text)} is not a valid image reference: ${parsed.error.message}`);
  }
  return parsed.reference;
}

/** True when a reference as written names a tag or a digest (`host:5000/app` names neither). */
export function namesVersion(text: string): boolean {
  return text.includes("@") || text.slice(text.lastIndexOf("/") + 1).includes(":");
}

/** `target` with the tag and digest of `source`: `--to harbor.example.com/app` keeps the image's tag. */
function withVersionOf(target: ImageReference, source: ImageReference): ImageReference {
  return {
    registry: target.registry,
    path: target.path,
    ...(source.tag === undefined ? {} : { tag: source.tag }),
    ...(source.digest === undefined ? {} : { digest: source.digest }),
  };
}

/** Pairs each image with its target: `--to`, or what the rules rewrite it to; undefined targets are skipped. */
async function targets(
  images: readonly string[],
  options: MirrorCliOptions,
  io: CliIo,
): Promise<{ source: ImageReference; target?: ImageReference; why?: string }[] | undefined> {
  if (options.to !== undefined) {
    const target = parseImage(options.to, "--to");
    return images.map((image) => {
      const source = parseImage(image, "image");
      return { source, target: namesVersion(options.to ?? "") ? target : withVersionOf(target, source) };
    });
  }
  const ruleSet = await loadRulesForCli(options.rules, io);
  if (ruleSet === undefined) return undefined;
  const context = { ...(options.namespace === undefined ? {} : { namespace: options.namespace }), podLabels: {} };
  return images.map((image) => {
    const source = parseImage(image, "image");
    const decision = decide(ruleSet, image, { context });
    if (decision.action !== "rewrite") {
      return { source, why: decision.action === "keep" ? "a keep rule matches it" : "no rule rewrites it" };
    }
    return { source, target: parseImage(decision.output, "rewritten image") };
  });
}

/** Runs `mirror`: exit 0 when every image is in place, 1 when any copy failed or setup failed. */
export async function runMirror(images: readonly string[], options: MirrorCliOptions, io: CliIo): Promise<number> {
  if ((options.to === undefined) === (options.rules.length === 0)) {
    throw new UsageError("mirror needs exactly one of --to REF and --rules FILE");
  }
  if (options.to !== undefined && images.length > 1) {
    throw new UsageError("--to names one target: give one image, or use --rules for several");
  }
  const pairs = await targets(images, options, io);
  if (pairs === undefined) return EXIT.failed;
  let transport: Transport;
  let mirrorer: Mirrorer;
  try {
    const credentials = await readDockerConfigs(options.dockerConfigs);
    transport = await Transport.create({ insecure: options.insecureRegistries, caFiles: options.caFiles });
    mirrorer = new Mirrorer({
      credentials,
      transport,
      maxConcurrentCopies: 1,
      ...(options.platforms.length === 0 ? {} : { platforms: options.platforms }),
      ...(options.maxBytes === undefined ? {} : { maxBytes: options.maxBytes }),
    });
  } catch (error) {
    io.stderr(`mirrorhook: Cannot set up registry access: ${error instanceof Error ? error.message : String(error)}\n`);
    return EXIT.failed;
  }
  let failed = 0;
  try {
    for (const { source, target, why } of pairs) {
      const from = formatReference(source);
      if (target === undefined) {
        io.stdout(`skipped ${from}: ${why ?? "no target"}\n`);
        continue;
      }
      const to = formatReference(target);
      io.stdout(`mirroring ${from} -> ${to}\n`);
      const view = new ProgressView(io, options.progress);
      const started = performance.now();
      try {
        const result = await mirrorer.mirror(source, target, { onProgress: (progress) => view.update(progress) });
        view.finish();
        const seconds = ((performance.now() - started) / 1000).toFixed(1);
        const { copied, mounted, present } = result.blobs;
        io.stdout(
          `mirrored ${from} -> ${to} ${result.digest}${
            result.filtered ? ` (platform-filtered; source ${result.sourceDigest})` : ""
          }: ${result.manifests} manifest(s), ${
            copied + mounted + present
          } blob(s) (${copied} copied, ${mounted} mounted, ${present} present), ${
            formatBytes(result.copiedBytes)
          } uploaded of ${formatBytes(result.totalBytes)} in ${seconds} s\n`,
        );
      } catch (error) {
        view.finish();
        failed++;
        io.stderr(`mirrorhook: failed ${from} -> ${to}: ${error instanceof Error ? error.message : String(error)}\n`);
      }
    }
  } finally {
    mirrorer.close();
    transport.close();
  }
  return failed === 0 ? EXIT.ok : EXIT.failed;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** Registers `mirror` on the program. */
export function addMirrorCommand(program: Command, io: CliIo, setExit: (code: number) => void): void {
  program.command("mirror")
    .description("copy images into a mirror registry (by --to, or where --rules rewrite them), digests unchanged")
    .argument("<image...>", "source image references")
    .option("--to <ref>", "target reference for the one image given (without a tag, the image's tag or digest is kept)")
    .option(
      "-r, --rules <path>",
      "copy each image to what these rules rewrite it to (repeatable)",
      collect,
      [] as string[],
    )
    .option("-n, --namespace <ns>", "namespace the rules are evaluated for")
    .option(
      "--docker-config <path>",
      "Docker config with credentials for source and target (repeatable)",
      collect,
      [] as string[],
    )
    .option(
      "--platform <os/arch>",
      "copy only these platforms of a multi-platform image (repeatable)",
      collect,
      [] as string[],
    )
    .option("--max-bytes <size>", "refuse an image larger than this (bytes, or e.g. 2GiB)")
    .option("--insecure-registry <host>", "registry spoken to over plain HTTP (repeatable)", collect, [] as string[])
    .option("--registry-ca <host=file>", "extra CA certificate for a registry (repeatable)", collect, [] as string[])
    .addOption(
      new Option("--progress <mode>", "bar (default on a terminal), lines (default otherwise) or none")
        .choices(["auto", "bar", "lines", "none"] as const).default("auto" as const),
    )
    .addHelpText(
      "after",
      `
Examples:
  mirrorhook mirror nginx:1.27 --to harbor.example.com/dockerhub/library/nginx:1.27
  mirrorhook mirror --rules rules/dockerhub-harbor.yaml --docker-config ~/.docker/config.json --platform linux/amd64 nginx:1.27 redis:7

Exit status: 0 every image copied (or skipped: no rule rewrites it), 1 a copy failed, 2 bad usage.`,
    )
    .action(async (images, options) => {
      let platforms: Platform[];
      try {
        platforms = options.platform.map(parsePlatform);
      } catch (error) {
        throw new UsageError(`--platform: ${error instanceof Error ? error.message : String(error)}`);
      }
      const progress = options.progress === "auto" ? (Deno.stdout.isTerminal() ? "bar" : "lines") : options.progress;
      setExit(
        await runMirror(images, {
          ...(options.to === undefined ? {} : { to: options.to }),
          rules: options.rules,
          ...(options.namespace === undefined ? {} : { namespace: options.namespace }),
          dockerConfigs: options.dockerConfig,
          insecureRegistries: options.insecureRegistry,
          caFiles: parseLabels(options.registryCa, "--registry-ca"),
          platforms,
          ...(options.maxBytes === undefined ? {} : { maxBytes: parseByteSize(options.maxBytes) }),
          progress,
        }, io),
      );
    });
}
