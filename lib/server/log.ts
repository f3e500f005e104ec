// Structured logs: LogTape, JSON Lines on standard error, batched into few writes and flushed on every exit path.

import {
  compareLogLevel,
  type Config,
  configureSync,
  getConfig,
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

/**
 * Configures LogTape for the process; `write` (each line at once) defaults to standard error through
 * {@linkcode stderrBatch}: one write per ~64 KiB or 20 ms of lines instead of one per line.
 */
export function configureLogging(level: MirrorhookLogLevel, write?: (line: string) => void): void {
  const out = write ?? stderrBatch().add;
  const sink = (record: LogRecord) => out(formatLine(record));
  // The line is written before the call returns, so LogTape need not copy each record's properties for it.
  Object.defineProperty(sink, IMMEDIATE_SINK, { value: true });
  resetSync();
  const config: Config<string, string> = {
    sinks: { json: sink },
    loggers: [
      { category: ["mirrorhook"], lowestLevel: level as LogLevel, sinks: ["json"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["json"] },
    ],
  };
  configureSync(config);
  direct = {
    config: getConfig(),
    out,
    info: compareLogLevel("info", level as LogLevel) >= 0,
    escapes: (out as { [ESCAPES_CONTROLS]?: boolean })[ESCAPES_CONTROLS] === true,
  };
}

/**
 * The sink {@linkcode configureLogging} installed, while its configuration is LogTape's current one: `logInfo` then
 * writes the line for a `mirrorhook` logger itself, as that sink would, without LogTape's dispatch.
 */
let direct:
  | {
    readonly config: unknown;
    readonly out: (line: string) => void;
    readonly info: boolean;
    /** `out` escapes DEL and C1 controls itself (a line batch): the line is handed over as built. */
    readonly escapes: boolean;
  }
  | undefined;

/** Lines held for one write: flushed past `maxBytes` characters, `delayMs` after the first, or by `flush()`. */
export interface LineBatch {
  readonly add: (line: string) => void;
  readonly flush: () => void;
}

/**
 * Batches lines for `writeSync` (which may write part of its bytes, as `Deno.FsFile.writeSync`); the timer is
 * unref'd, so it never keeps the process alive, and order is kept since every line goes through one queue. Each line
 * is encoded at once into one reused buffer (no string is held for the young generation to copy, no buffer allocated
 * per write), with DEL and C1 controls escaped (`\u009b`) as {@linkcode formatLine} escapes them, so a line added
 * here need not be checked for them first.
 */
export function createLineBatch(
  writeSync: (bytes: Uint8Array) => number,
  { maxBytes = 64 * 1024, delayMs = 20 }: { maxBytes?: number; delayMs?: number } = {},
): LineBatch {
  const encoder = new TextEncoder();
  // UTF-8 takes at most 3 bytes per UTF-16 unit: a line of up to `room` units always fits an empty buffer.
  const room = maxBytes + 1024;
  const buffer = new Uint8Array(3 * room);
  let used = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const writeAll = (bytes: Uint8Array) => {
    while (bytes.length > 0) bytes = bytes.subarray(writeSync(bytes));
  };
  const writePending = () => {
    if (used === 0) return;
    const bytes = buffer.subarray(0, used);
    used = 0;
    writeAll(bytes);
  };
  const flush = () => {
    if (timer !== undefined) {
      clearTimeout(timer);
      timer = undefined;
    }
    writePending();
  };
  const onTimer = () => {
    timer = undefined;
    writePending();
  };
  // A full batch is written at once and the timer left as it is: under load, one timer per `delayMs`, not per write.
  const added = () => {
    if (used >= maxBytes) writePending();
    else if (timer === undefined) {
      const id = setTimeout(onTimer, delayMs);
      Deno.unrefTimer(id as unknown as number);
      timer = id;
    }
  };
  const add = (line: string) => {
    if (line.length <= room) {
      if (line.length * 3 > buffer.length - used) writePending();
      const written = encoder.encodeInto(line, buffer.subarray(used)).written;
      // One search for DEL; the C1 range only when the line is not all ASCII.
      if (line.indexOf("\u007f") < 0 && (written === line.length || !CONTROL.test(line))) {
        used += written;
        added();
        return;
      }
    } else if (!CONTROL.test(line)) {
      // Longer than any batch: written alone, after what came before it.
      writePending();
      writeAll(encoder.encode(line));
      return;
    }
    // Controls escaped first: up to 6 characters for each, so the line is placed again.
    const escaped = line.replace(CONTROLS, escapeControl);
    if (escaped.length > room) {
      writePending();
      writeAll(encoder.encode(escaped));
      return;
    }
    if (escaped.length * 3 > buffer.length - used) writePending();
    used += encoder.encodeInto(escaped, buffer.subarray(used)).written;
    added();
  };
  Object.defineProperty(add, ESCAPES_CONTROLS, { value: true });
  return { add, flush };
}

/** Marks the `add` of a {@linkcode createLineBatch}: what it is given needs no escaping of controls first. */
const ESCAPES_CONTROLS = Symbol("mirrorhook.escapesControls");

let stderrLines: LineBatch | undefined;

/**
 * The process's batch of standard error lines, made once; flushed at exit (`Deno.exit`, the end of the event loop),
 * on an uncaught error or rejection, and by {@linkcode flushLogs} (graceful shutdown, before other stderr text).
 */
function stderrBatch(): LineBatch {
  if (stderrLines === undefined) {
    const batch = createLineBatch((bytes) => Deno.stderr.writeSync(bytes));
    const flush = () => {
      try {
        batch.flush();
      } catch {
        // Standard error is gone: nothing left to write to.
      }
    };
    for (const event of ["unload", "error", "unhandledrejection"]) globalThis.addEventListener(event, flush);
    stderrLines = batch;
  }
  return stderrLines;
}

/** Writes the log lines still held for standard error, so what follows (a message, an exit) comes after them. */
export function flushLogs(): void {
  stderrLines?.flush();
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
  let text = "";
  for (let index = 0; index < parts.length; index++) {
    const part = parts[index];
    text += index % 2 === 0 ? String(part) : renderValue(part);
  }
  return text;
}

/** The last record's timestamp as ISO text: under load, many records share a millisecond. */
let lastTimestamp = Number.NaN;
let lastTimestampText = "";
/** DEL and C1 controls, which JSON.stringify leaves raw and LogTape's formatter escapes (a terminal reads them). */
const CONTROL = /[\u007f-\u009f]/;
const CONTROLS = /[\u007f-\u009f]/g;
/** `"logger":"mirrorhook.server"` by category array (a logger's category is one array for its life). */
const loggerFields = new WeakMap<readonly string[], string>();

/**
 * One JSON Lines record, byte for byte what LogTape's `jsonLinesFormatter` writes for the record with its message
 * rendered by {@linkcode renderMessage}, without its per-key replacer when the properties are plain JSON data (the
 * replacer only changes errors, bigints and cycles, which then take LogTape's own path).
 */
export function formatLine(record: LogRecord): string {
  const message = renderMessage(record.message);
  if (!isPlainData(record.properties, 0)) return jsonLinesFormatter({ ...record, message: [message] });
  let category = loggerFields.get(record.category);
  if (category === undefined) {
    category = `,"logger":${JSON.stringify(record.category.join("."))}`;
    loggerFields.set(record.category, category);
  }
  const level = record.level === "warning" ? "WARN" : record.level.toUpperCase();
  if (record.timestamp !== lastTimestamp) {
    lastTimestamp = record.timestamp;
    lastTimestampText = new Date(record.timestamp).toISOString();
  }
  const line = `{"@timestamp":"${lastTimestampText}","level":"${level}","message":${
    JSON.stringify(message)
  }${category},"properties":${JSON.stringify(record.properties)}}`;
  return (CONTROL.test(line) ? line.replace(CONTROLS, escapeControl) : line) + "\n";
}

function escapeControl(char: string): string {
  return `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`;
}

/**
 * True when JSON.stringify writes `value` as LogTape's replacer would: strings, finite or not numbers, booleans,
 * null, undefined, and arrays and plain objects of those, a few levels deep (deeper: maybe a cycle, LogTape's path).
 */
function isPlainData(value: unknown, depth: number): boolean {
  if (value === null || value === undefined) return true;
  const type = typeof value;
  if (type === "string" || type === "number" || type === "boolean") return true;
  if (type !== "object" || depth > 6) return false;
  if (Array.isArray(value)) {
    for (const item of value) if (!isPlainData(item, depth + 1)) return false;
    return true;
  }
  const prototype = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) return false;
  if (typeof (value as { toJSON?: unknown }).toJSON === "function") return false;
  for (const key in value) {
    if (!isPlainData((value as Record<string, unknown>)[key], depth + 1)) return false;
  }
  return true;
}

/** LogTape's mark of a sink that formats each record at once (`markSinkAsImmediate`): no snapshot is taken for it. */
const IMMEDIATE_SINK = Symbol.for("LogTape.sinkSnapshotPolicy.immediate");

/** A message template split at its `{key}` placeholders: texts at even positions, keys at odd ones. */
const templates = new Map<string, readonly string[] | null>();

function splitTemplate(template: string): readonly string[] | null {
  let parts = templates.get(template);
  if (parts === undefined) {
    // Only plain `{key}` placeholders; anything else (`{{`, nested or spaced keys) takes LogTape's own parser.
    parts = /\{\{|\}\}|\{[^}]*[^\w}][^}]*\}/.test(template) ? null : template.split(/\{(\w+)\}/);
    if (templates.size < 256) templates.set(template, parts);
  }
  return parts;
}

/** What {@linkcode logInfo} writes: JSON data as JSON.stringify writes it the same as LogTape's formatter does. */
export type LogData =
  | string
  | number
  | boolean
  | null
  | undefined
  | readonly LogData[]
  | { readonly [key: string]: LogData };

/** Plain loggers of the `mirrorhook` category (not `with()` contexts, which add properties), by logger. */
const directLoggers = new WeakMap<Logger, string | null>();

/** `,"logger":"mirrorhook.part"` for a plain `mirrorhook` logger; null for any other. */
function directCategory(logger: Logger): string | null {
  let field = directLoggers.get(logger);
  if (field === undefined) {
    const category = logger.category;
    field = category[0] === "mirrorhook" && getLogger(category) === logger
      ? `,"logger":${JSON.stringify(category.join("."))}`
      : null;
    directLoggers.set(logger, field);
  }
  return field;
}

/**
 * `logger.info(template, properties)` for the record of every admission. While {@linkcode configureLogging}'s
 * configuration is in force, the line {@linkcode formatLine} would write for the record is built and written here,
 * without LogTape's per-record dispatch (~3 us an admission); otherwise it is handed to LogTape as a finished record
 * (`Logger.emit`), which skips the bookkeeping LogTape keeps for string messages.
 */
export function logInfo(logger: Logger, template: string, properties: Readonly<Record<string, LogData>>): void {
  const parts = splitTemplate(template);
  const to = direct;
  if (parts !== null && to !== undefined && getConfig() === to.config) {
    const category = directCategory(logger);
    if (category !== null) {
      if (!to.info) return;
      let message = "";
      for (let i = 0; i < parts.length; i++) {
        message += i % 2 === 0 ? parts[i] : renderValue(properties[parts[i] as string]);
      }
      const timestamp = Date.now();
      if (timestamp !== lastTimestamp) {
        lastTimestamp = timestamp;
        lastTimestampText = new Date(timestamp).toISOString();
      }
      const line = `{"@timestamp":"${lastTimestampText}","level":"INFO","message":${
        JSON.stringify(message)
      }${category},"properties":${JSON.stringify(properties)}}`;
      try {
        to.out((to.escapes || !CONTROL.test(line) ? line : line.replace(CONTROLS, escapeControl)) + "\n");
      } catch {
        // Standard error is gone (LogTape, too, only reports a failing sink): the admission is answered all the same.
      }
      return;
    }
  }
  if (parts === null || !logger.isEnabledFor("info")) {
    if (parts === null) logger.info(template, properties);
    return;
  }
  const message: unknown[] = [];
  for (let i = 0; i < parts.length; i++) message.push(i % 2 === 0 ? parts[i] : properties[parts[i] as string]);
  const record = {
    category: logger.category,
    level: "info" as const,
    message,
    rawMessage: template,
    timestamp: Date.now(),
    properties,
  };
  logger.emit(record);
}

/** The logger for a part of mirrorhook, e.g. `logger("admission")`. */
export function logger(part: string): Logger {
  return getLogger(["mirrorhook", part]);
}
