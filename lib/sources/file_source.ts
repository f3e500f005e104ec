// Rule files as a source: initial load, then reloads on change (lib/util/watch.ts), compared by content; bad versions never replace good ones.

import { createHash } from "node:crypto";
import type { Logger } from "@logtape/logtape";
import { loadRuleTexts, loadRuleTextsScreened, type ScreenPatterns } from "../compat/load.ts";
import { formatProblem, hasErrors, type Problem } from "../rules/problem.ts";
import type { SourceMetrics } from "./metrics.ts";
import { readRulePaths } from "./rule_files.ts";
import type { RuleStore, SourceStatus } from "./store.ts";
import { fileSignature, type FileWatch, watchedDirectory, watchFiles } from "../util/watch.ts";
import { type RuleSource, statusOf } from "./source.ts";

/** Name of this source in the store, metrics and logs. */
export const FILE_SOURCE = "file";

/** Settings of {@linkcode FileRuleSource}. */
export interface FileSourceOptions {
  readonly paths: readonly string[];
  readonly store: RuleStore;
  readonly metrics?: SourceMetrics;
  readonly logger: Logger;
  /** Backup poll for missed watch events: looks at file metadata, reads the files only when it changed. */
  readonly pollIntervalMs?: number;
  /** Quiet time after a watch event before reading (Kubernetes swaps several links at once). */
  readonly debounceMs?: number;
  /** Screens the files' patterns off this thread first (a worker); absent: screened while compiling. */
  readonly screen?: ScreenPatterns;
}

/** Wait before reading again when a read failed (the kubelet may be half-way through a swap). */
const READ_RETRY_MS = 150;

/** Result of one load attempt. */
export type LoadOutcome = "success" | "unchanged" | "error";

/** Loads rule files into the store and keeps them current. */
export class FileRuleSource implements RuleSource {
  readonly name = FILE_SOURCE;
  #options: FileSourceOptions;
  #fingerprint: string | undefined;
  #objects = 0;
  /** Files read by the last good load: one of them turning into a directory is an error, not a silent drop. */
  #files: ReadonlySet<string> = new Set();
  #loaded = false;
  #watch: FileWatch | undefined;
  #loading: Promise<LoadOutcome> | undefined;
  #again = false;
  #stopped = false;

  constructor(options: FileSourceOptions) {
    this.#options = options;
    options.store.register(FILE_SOURCE);
  }

  /** First load: returns the problems; when any is an error nothing is in force and the caller should exit. */
  async start(): Promise<readonly Problem[]> {
    const { paths, logger } = this.#options;
    const initialSignature = await fileSignature(paths);
    const { problems } = await this.#load();
    if (hasErrors(problems) || this.#stopped) return problems;
    const dirs: string[] = [];
    for (const path of paths) {
      const info = await Deno.stat(path).catch(() => undefined);
      // A path that cannot be looked at now is left to the poll.
      if (info !== undefined) dirs.push(watchedDirectory(path, info.isDirectory));
    }
    this.#watch = watchFiles({
      dirs,
      paths,
      onChange: (trigger) => void this.reload(trigger),
      pollIntervalMs: this.#options.pollIntervalMs ?? 1000,
      debounceMs: this.#options.debounceMs ?? 100,
      initialSignature,
      logger,
    });
    return problems;
  }

  /** Re-reads the files; concurrent calls are folded into one more read. */
  reload(trigger: string): Promise<LoadOutcome> {
    if (this.#stopped) return Promise.resolve("unchanged");
    if (this.#loading !== undefined) {
      this.#again = true;
      return this.#loading;
    }
    this.#loading = (async () => {
      let outcome: LoadOutcome;
      do {
        this.#again = false;
        outcome = (await this.#load(trigger)).outcome;
      } while (this.#again && !this.#stopped);
      return outcome;
    })().finally(() => {
      this.#loading = undefined;
    });
    return this.#loading;
  }

  /** Stops watching and polling. */
  stop(): Promise<void> {
    this.#stopped = true;
    this.#watch?.stop();
    return Promise.resolve();
  }

  /** This source's line of /readyz. */
  status(): SourceStatus {
    return statusOf(this.#options.store, FILE_SOURCE);
  }

  async #load(trigger = "start"): Promise<{ outcome: LoadOutcome; problems: readonly Problem[] }> {
    const { store, metrics, logger, paths } = this.#options;
    // Nothing is in force before the first good load: say so instead of promising "the last good rules".
    const kept = this.#loaded ? "; the last good rules stay in force" : "";
    try {
      let read = await readRulePaths(paths, { previous: this.#files });
      if (read.problems.some((problem) => problem.code === "read-error")) {
        // The kubelet swaps `..data` first and removes the links of deleted keys afterwards: a read in between
        // sees dangling links. Look once more before calling it an error.
        await new Promise((resolve) => setTimeout(resolve, READ_RETRY_MS));
        read = await readRulePaths(paths, { previous: this.#files });
      }
      // Stopped while reading (shutdown, or a test tearing down its files): nothing to report any more.
      if (this.#stopped) return { outcome: "unchanged", problems: [] };
      const hash = createHash("sha256");
      for (const text of read.texts) hash.update(`${text.name}\u0000${text.text}\u0000`);
      for (const problem of read.problems) hash.update(`${problem.message}\u0000`);
      const fingerprint = hash.digest("hex");
      if (fingerprint === this.#fingerprint) {
        return { outcome: "unchanged", problems: [] };
      }
      const screen = this.#options.screen;
      const loaded = screen === undefined ? loadRuleTexts(read.texts) : await loadRuleTextsScreened(read.texts, screen);
      const problems: Problem[] = [...read.problems, ...loaded.problems];
      const previous = this.#objects;
      if (previous > 0 && loaded.objects.length === 0 && !hasErrors(problems)) {
        // An emptied ConfigMap or a half-written file is far likelier than a wish to stop every rewrite, which
        // has its own switches (--dry-run, removing the webhook): keep the rules in force.
        problems.push({
          severity: "error",
          code: "no-rules",
          message: `Cannot reload ${paths.join(", ")}: no rule objects found where ${previous} were in force; ` +
            "keeping them (use --dry-run or remove the webhook to stop rewriting)",
          path: "",
          fieldPath: [],
        });
      }
      if (hasErrors(problems)) {
        // Remember the bad version so the poll does not log it every second; a fix changes the fingerprint.
        // Screening refused (busy or slow) is no verdict on the files: the next poll tries again.
        if (!problems.some((p) => p.code === "unscreened-pattern")) this.#fingerprint = fingerprint;
        else this.#watch?.invalidate();
        const errors = problems.filter((p) => p.severity === "error");
        metrics?.reloads.inc({ source: FILE_SOURCE, result: "error" });
        store.fail(FILE_SOURCE, `${errors.length} error(s): ${errors.map(formatProblem).slice(0, 3).join("; ")}`);
        logger.error(`Rejected rule files${kept}: {errors} error(s)`, {
          trigger,
          errors: errors.length,
          codes: [...new Set(errors.map((p) => p.code))],
          problems: problems.map(formatProblem),
        });
        return { outcome: "error", problems };
      }
      const files = new Set(read.texts.map((text) => text.name));
      for (const name of this.#files) {
        if (!files.has(name)) {
          logger.warn("Rule file {file} was removed: its rules are no longer in force", {
            trigger,
            file: name,
            change: "removed",
          });
        }
      }
      this.#fingerprint = fingerprint;
      this.#files = files;
      this.#objects = loaded.objects.length;
      this.#loaded = true;
      store.updateCompiled(FILE_SOURCE, { objects: loaded.objects, optOuts: loaded.optOuts, compiled: loaded });
      metrics?.reloads.inc({ source: FILE_SOURCE, result: "success" });
      metrics?.rulesLoaded.set({ source: FILE_SOURCE }, loaded.ruleSet.ruleCount);
      metrics?.objectsLoaded.set({ source: FILE_SOURCE }, loaded.objects.length);
      for (const problem of problems) logger.warn("Rule warning: {message}", { message: formatProblem(problem) });
      logger.info("Loaded rule files: {objects} object(s), {rules} rule(s), hash {hash}", {
        trigger,
        files: read.texts.map((text) => text.name),
        objects: loaded.objects.length,
        rules: loaded.ruleSet.ruleCount,
        hash: store.current.hash,
      });
      return { outcome: "success", problems };
    } catch (error) {
      // Never let a reload failure escape: keep the last good rules.
      metrics?.reloads.inc({ source: FILE_SOURCE, result: "error" });
      const message = error instanceof Error ? error.message : String(error);
      store.fail(FILE_SOURCE, message);
      logger.error(`Cannot reload rule files${kept}: {message}`, { message, trigger });
      this.#watch?.invalidate(); // not a verdict on the files: the next poll reads them again
      return {
        outcome: "error",
        problems: [{ severity: "error", code: "read-error", message, path: "", fieldPath: [] }],
      };
    }
  }
}
