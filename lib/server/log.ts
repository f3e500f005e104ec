// Structured logs: LogTape, JSON Lines on standard error, written synchronously so nothing is lost at exit.

import {
  configureSync,
  getLogger,
  jsonLinesFormatter,
  type Logger,
  type LogLevel,
  type LogRecord,
  resetSync,
} from "@logtape/logtape";

/** Levels accepted by --log-level. */
export const LOG_LEVELS = ["debug", "info", "warning", "error"] as const;
export type MirrorhookLogLevel = (typeof LOG_LEVELS)[number];

/** Configures LogTape for the process; `write` defaults to standard error. */
export function configureLogging(level: MirrorhookLogLevel, write?: (line: string) => void): void {
  const encoder = new TextEncoder();
  const out = write ?? ((line: string) => void Deno.stderr.writeSync(encoder.encode(line)));
  const sink = (record: LogRecord) => out(jsonLinesFormatter(record));
  resetSync();
  configureSync({
    sinks: { json: sink },
    loggers: [
      { category: ["mirrorhook"], lowestLevel: level as LogLevel, sinks: ["json"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["json"] },
    ],
  });
}

/** The logger for a part of mirrorhook, e.g. `logger("admission")`. */
export function logger(part: string): Logger {
  return getLogger(["mirrorhook", part]);
}
