// Tests of the JSON Lines sink: each line as LogTape's own formatter writes it, whatever the properties hold.

import assert from "node:assert/strict";
import { jsonLinesFormatter, type LogRecord } from "@logtape/logtape";
import { configureLogging, formatLine, logger, logInfo } from "./log.ts";

function record(
  properties: Record<string, unknown>,
  message: readonly unknown[] = ["Rewrote ", 4, " image(s)"],
): LogRecord {
  return {
    category: ["mirrorhook", "server"],
    level: "info",
    message,
    rawMessage: "Rewrote {count} image(s)",
    timestamp: Date.UTC(2026, 0, 2, 3, 4, 5, 678),
    properties,
  };
}

/** What LogTape's formatter writes once the message is rendered into one string. */
function logtape(rec: LogRecord, rendered: string): string {
  return jsonLinesFormatter({ ...rec, message: [rendered] });
}

Deno.test("formatLine writes what LogTape's JSON Lines formatter writes", async (t) => {
  await t.step("plain data: strings, numbers, booleans, nested arrays and objects, undefined left out", () => {
    const rec = record({
      uid: "u-1",
      count: 4,
      dryRun: false,
      missing: undefined,
      ratio: Number.NaN,
      rewrites: [{ container: "app", from: "nginx", to: "mirror/nginx", verified: undefined }],
      empty: {},
      nothing: null,
    });
    assert.deepEqual(formatLine(rec), logtape(rec, "Rewrote 4 image(s)"));
  });

  await t.step("DEL and C1 controls are escaped, other text is not", () => {
    const rec = record({ image: "evil\u009b31mred\u007f", note: "café \u0001 ☕" });
    const line = formatLine(rec);
    assert.deepEqual(line, logtape(rec, "Rewrote 4 image(s)"));
    assert.deepEqual(line.includes("\\u009b") && line.includes("\\u007f"), true);
  });

  await t.step("an Error, a bigint, a Date, a cycle and a class instance take LogTape's path", () => {
    const cycle: Record<string, unknown> = { name: "loop" };
    cycle["self"] = cycle;
    for (
      const properties of [
        { error: new Error("boom") },
        { size: 10n },
        { at: new Date(0) },
        { cycle },
        { map: new Map([["a", 1]]) },
        { deep: { a: { b: { c: { d: { e: { f: { g: { h: 1 } } } } } } } } },
      ]
    ) {
      const rec = record(properties);
      assert.deepEqual(formatLine(rec), logtape(rec, "Rewrote 4 image(s)"));
    }
  });

  await t.step("values in the message are rendered plainly, as before", () => {
    const rec = record({ host: "127.0.0.1", port: 8443 }, ["Serving on https://", "127.0.0.1", ":", 8443, ""]);
    assert.deepEqual(formatLine(rec), logtape(rec, "Serving on https://127.0.0.1:8443"));
  });

  await t.step("a warning is WARN", () => {
    const rec = { ...record({}), level: "warning" as const };
    assert.deepEqual(formatLine(rec), logtape(rec, "Rewrote 4 image(s)"));
  });
});

Deno.test("configureLogging writes one parsed line per record through formatLine", () => {
  const lines: string[] = [];
  configureLogging("info", (line) => lines.push(line));
  logger("log-test").info("Kept {count} image(s)", { count: 2, images: ["a", "b"] });
  logger("log-test").debug("not shown");
  assert.deepEqual(lines.length, 1);
  const parsed = JSON.parse(lines[0] ?? "");
  assert.deepEqual(parsed.message, "Kept 2 image(s)");
  assert.deepEqual(parsed.logger, "mirrorhook.log-test");
  assert.deepEqual(parsed.properties, { count: 2, images: ["a", "b"] });
});

Deno.test("logInfo writes the line logger.info writes, and honours the level", async (t) => {
  const lines: string[] = [];
  const fields = { uid: "u-1", count: 2, rewrites: [{ container: "app", to: "mirror/nginx" }], reason: "opted-out" };
  const same = (template: string) => {
    lines.length = 0;
    logger("log-test").info(template, fields);
    logInfo(logger("log-test"), template, fields);
    assert.equal(lines.length, 2);
    const [byInfo, byLogInfo] = lines.map((line) => ({ ...JSON.parse(line), "@timestamp": "" }));
    assert.deepEqual(byLogInfo, byInfo);
  };
  configureLogging("info", (line) => lines.push(line));
  await t.step("placeholders at the start, middle and end", () => {
    same("Rewrote {count} image(s)");
    same("Skipped: {reason}");
    same("{count} image(s)");
    same("no placeholder");
    same("Unknown {missing} key");
  });
  await t.step("templates beyond plain keys take LogTape's parser", () => {
    same("Braces {{count}} and {count}");
    same("Spaced { count } key");
    same("Open { brace");
  });
  await t.step("below the configured level: nothing", () => {
    configureLogging("error", (line) => lines.push(line));
    lines.length = 0;
    logInfo(logger("log-test"), "Rewrote {count} image(s)", fields);
    assert.deepEqual(lines, []);
  });
});
