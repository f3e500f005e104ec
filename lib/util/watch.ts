// Notices changes to watched files: a directory watch, debounced, plus a cheap poll of file metadata as a backstop.

import type { Logger } from "@logtape/logtape";

/** Why a change was reported. */
export type WatchTrigger = "watch" | "poll";

/** Settings of {@linkcode watchFiles}. */
export interface WatchOptions {
  /** Directories to watch (not recursively): Kubernetes swaps ConfigMap and Secret volumes by a link in there. */
  readonly dirs: readonly string[];
  /** The paths the poll looks at: files or directories (a directory's entries are looked at too). */
  readonly paths: readonly string[];
  /** Called after a burst of watch events has been quiet for `debounceMs`, or when a poll sees a change. */
  readonly onChange: (trigger: WatchTrigger) => void;
  /** How often the poll looks at the files' metadata (inode, size, modification time, link targets). */
  readonly pollIntervalMs: number;
  /** Quiet time after a watch event before `onChange` (the kubelet swaps several links at once). */
  readonly debounceMs: number;
  /**
   * Every this many polls, `onChange("poll")` even when no metadata changed: a safety net for an edit in place
   * that keeps the size within the file system's time resolution. Default 30.
   */
  readonly fullEvery?: number;
  /** The signature taken before the caller's first read, so that a change made meanwhile is not missed. */
  readonly initialSignature?: string;
  readonly logger?: Logger;
}

/** A running watch. */
export interface FileWatch {
  /** Makes the next poll report a change whatever the metadata: for a read that failed for a passing reason. */
  invalidate(): void;
  /** Ends the watchers and timers. */
  stop(): void;
}

/**
 * What the poll compares: for each path, and for each visible entry of a directory path, the followed file's
 * inode, size and modification time (or why it cannot be read). Kubernetes' `..data` swap changes the inode
 * of every key, an edit in place changes the size or the time; no file is read, so a poll costs a few
 * `stat` calls instead of reading and hashing every rule file.
 */
export async function fileSignature(paths: readonly string[]): Promise<string> {
  const parts: string[] = [];
  const describe = async (path: string) => {
    try {
      const info = await Deno.stat(path);
      parts.push(`${path}\u0000${info.isDirectory ? "d" : "f"}:${info.ino}:${info.size}:${info.mtime?.getTime()}`);
      return info;
    } catch (error) {
      parts.push(`${path}\u0000!${error instanceof Error ? error.name : String(error)}`);
      return undefined;
    }
  };
  for (const path of paths) {
    const info = await describe(path);
    if (info?.isDirectory !== true) continue;
    try {
      const names: string[] = [];
      for await (const entry of Deno.readDir(path)) if (!entry.name.startsWith(".")) names.push(entry.name);
      for (const name of names.sort()) await describe(`${path.replace(/\/+$/, "")}/${name}`);
    } catch (error) {
      parts.push(`${path}\u0000!list ${error instanceof Error ? error.name : String(error)}`);
    }
  }
  return parts.join("\n");
}

/** Starts watching `dirs` and polling `paths`; a watch that cannot start is logged and left to the poll. */
export function watchFiles(options: WatchOptions): FileWatch {
  const { logger } = options;
  const fullEvery = options.fullEvery ?? 30;
  let stopped = false;
  let last = options.initialSignature;
  let debounce: ReturnType<typeof setTimeout> | undefined;
  let polling = false;
  let polls = 0;
  const watchers: Deno.FsWatcher[] = [];

  const fire = async (trigger: WatchTrigger) => {
    // Taken before the caller reads, so that the next poll sees any change made after this point.
    last = await fileSignature(options.paths);
    if (!stopped) options.onChange(trigger);
  };
  for (const dir of new Set(options.dirs)) {
    try {
      const watcher = Deno.watchFs(dir, { recursive: false });
      watchers.push(watcher);
      (async () => {
        for await (const _event of watcher) {
          if (debounce !== undefined) clearTimeout(debounce);
          debounce = setTimeout(() => void fire("watch").catch(() => {}), options.debounceMs);
        }
      })().catch(() => {});
    } catch (error) {
      logger?.warn("Cannot watch {dir}; relying on the poll: {message}", {
        dir,
        message: error instanceof Error ? error.message : String(error),
      });
    }
  }
  const timer = setInterval(async () => {
    if (polling || stopped) return;
    polling = true;
    try {
      polls++;
      const signature = await fileSignature(options.paths);
      if (signature !== last || polls % fullEvery === 0) {
        last = signature;
        if (!stopped) options.onChange("poll");
      }
    } finally {
      polling = false;
    }
  }, options.pollIntervalMs);

  return {
    invalidate() {
      last = undefined;
    },
    stop() {
      stopped = true;
      clearInterval(timer);
      if (debounce !== undefined) clearTimeout(debounce);
      for (const watcher of watchers) {
        try {
          watcher.close();
        } catch {
          // already closed
        }
      }
    },
  };
}

/** The directory to watch for a path: itself when it is a directory, else the directory holding it. */
export function watchedDirectory(path: string, isDirectory: boolean): string {
  if (isDirectory) return path;
  const slash = path.lastIndexOf("/");
  return slash < 0 ? "." : path.slice(0, slash) || "/";
}
