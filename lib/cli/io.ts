// What subcommands may touch: output streams and file reads, injected so tests run them in-process.

/** Streams and file access for the command line. */
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Reads a file as UTF-8; `-` reads standard input. */
  readText(path: string): Promise<string>;
}

/** A usage mistake: exit status 2 with a one-line reason. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Exit statuses shared by every subcommand. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

/** The real process: Deno's stdout, stderr, files and stdin. */
export function denoIo(): CliIo {
  const encoder = new TextEncoder();
  return {
    stdout: (text) => void Deno.stdout.writeSync(encoder.encode(text)),
    stderr: (text) => void Deno.stderr.writeSync(encoder.encode(text)),
    readText: async (path) => {
      if (path !== "-") return await Deno.readTextFile(path);
      return await new Response(Deno.stdin.readable).text();
    },
  };
}

/** Parses repeated `key=value` options into a label map, or throws {@linkcode UsageError}. */
export function parseLabels(pairs: readonly string[], option: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new UsageError(`${option} expects key=value, got ${JSON.stringify(pair)}`);
    labels[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return labels;
}
