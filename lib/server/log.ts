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
  const sink = (record: LogRecord) => out(jsonLinesFormatter({ ...record, message: [renderMessage(record.message)] }));
  resetSync();
  configureSync({
    sinks: { json: sink },
    loggers: [
      { category: ["mirrorhook"], lowestLevel: level as LogLevel, sinks: ["json"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["json"] },
    ],
  });
}

/** One value inside a message: plain values as they are (`https://127.0.0.1:8443`, not `https://"127.0.0.1":8443`). */
function renderValue(value: unknown): string {
  if (typeof value === "string") return value;
  if (typeof value !== "object" || value === null) return String(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** The message text with its values in place; the values also stay, typed, under `properties`. */
function renderMessage(parts: readonly unknown[]): string {
  return parts.map((part, index) => index % 2 === 0 ? String(part) : renderValue(part)).join("");
}

/** The logger for a part of mirrorhook, e.g. `logger("admission")`. */
export function logger(part: string): Logger {
  return getLogger(["mirrorhook", part]);
}
