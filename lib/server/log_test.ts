// Tests of the JSON Lines sink: each line as LogTape's own formatter writes it, whatever the properties hold.

import assert from "node:assert/strict";
import fc from "fast-check";
import { getLogger, jsonLinesFormatter, type LogRecord } from "@logtape/logtape";
import { memoryLogger } from "../../tests/support/webhook.ts";
import { configureLogging, createLineBatch, formatLine, type LogData, logger, logInfo } from "./log.ts";

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

  await t.step("each record's own timestamp, also when the previous one differs by a millisecond", () => {
    for (const offset of [0, 1, 1, 0, 86_400_000]) {
      const rec = { ...record({}), timestamp: record({}).timestamp + offset };
      assert.deepEqual(formatLine(rec), logtape(rec, "Rewrote 4 image(s)"));
    }
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

/** Any text, controls, quotes, backslashes, lone surrogates and C1 characters included. */
const anyText = fc.oneof(
  fc.string({ unit: "binary" }),
  fc.string({
    unit: fc.constantFrom("\u007f", "\u009b", "\u0085", "\u0000", '"', "\\", "\ud800", "é", "☕", "a", "{"),
  }),
);
const logData: fc.Arbitrary<LogData> = fc.letrec<{ value: LogData }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    anyText,
    fc.double(),
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.constant(undefined),
    fc.array(tie("value"), { maxLength: 4 }),
    fc.dictionary(anyText, tie("value"), { maxKeys: 4 }),
  ),
})).value;

Deno.test("logInfo's own line is byte for byte formatLine's line of the same record, whatever the fields hold", () => {
  const lines: string[] = [];
  const batched: number[][] = [];
  const batch = createLineBatch((bytes) => {
    batched.push([...bytes]);
    return bytes.length;
  });
  configureLogging("info", (line) => lines.push(line));
  const log = logger("log-direct");
  fc.assert(
    fc.property(
      fc.dictionary(anyText, logData, { maxKeys: 6 }),
      fc.constantFrom("Rewrote {count} image(s)", "Skipped: {reason}", "{a}{b}", "no placeholder"),
      (properties, template) => {
        lines.length = 0;
        const before = Date.now();
        logInfo(log, template, properties);
        const after = Date.now();
        assert.equal(lines.length, 1);
        const line = lines[0] ?? "";
        const timestamp = Date.parse(JSON.parse(line)["@timestamp"]);
        assert.ok(timestamp >= before && timestamp <= after);
        const message = template.split(/\{(\w+)\}/).map((part, i) => i % 2 === 0 ? part : properties[part]);
        const expected = formatLine({
          category: ["mirrorhook", "log-direct"],
          level: "info",
          message,
          rawMessage: template,
          timestamp,
          properties,
        });
        assert.equal(line, expected);
        // Through a line batch, which escapes controls once per write instead: the same bytes.
        batched.length = 0;
        configureLogging("info", batch.add);
        logInfo(log, template, properties);
        batch.flush();
        configureLogging("info", (line) => lines.push(line));
        const text = new TextDecoder().decode(new Uint8Array(batched.flat()));
        assert.equal(text.replace(/"@timestamp":"[^"]*"/, ""), expected.replace(/"@timestamp":"[^"]*"/, ""));
        assert.equal(
          line,
          jsonLinesFormatter({
            category: ["mirrorhook", "log-direct"],
            level: "info",
            message: [JSON.parse(expected).message],
            rawMessage: template,
            timestamp,
            properties,
          }),
        );
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("logInfo goes through LogTape when another configuration or a contextual logger is in force", async (t) => {
  const lines: string[] = [];
  configureLogging("info", (line) => lines.push(line));
  await t.step("a logger with() properties: LogTape adds them", () => {
    logInfo(logger("log-direct").with({ requestId: "r-1" }), "Rewrote {count} image(s)", { count: 1 });
    assert.equal(lines.length, 1);
    assert.deepEqual(JSON.parse(lines[0] ?? "").properties, { requestId: "r-1", count: 1 });
  });
  await t.step("a category outside mirrorhook: LogTape's routing (no sink here)", () => {
    lines.length = 0;
    logInfo(getLogger(["elsewhere"]), "Rewrote {count} image(s)", { count: 1 });
    assert.equal(lines.length, 0);
  });
  await t.step("LogTape configured again by someone else: their sink gets the record", () => {
    const { records } = memoryLogger("mirrorhook");
    lines.length = 0;
    logInfo(logger("log-direct"), "Rewrote {count} image(s)", { count: 3 });
    assert.equal(lines.length, 0);
    assert.equal(records.length, 1);
    assert.deepEqual(records[0]?.properties, { count: 3 });
    assert.deepEqual(records[0]?.message, ["Rewrote ", 3, " image(s)"]);
    configureLogging("info", (line) => lines.push(line));
  });
});

Deno.test("createLineBatch: one write per batch, lines complete and in order, partial writes finished", async (t) => {
  const decoder = new TextDecoder();
  const writes: number[][] = [];
  const written = () => decoder.decode(new Uint8Array(writes.flat()));
  // Like a pipe that takes at most 7 bytes per call: the batch must write the rest itself.
  const batch = createLineBatch((bytes) => {
    const taken = Math.min(bytes.length, 7);
    writes.push([...bytes.subarray(0, taken)]);
    return taken;
  }, { maxBytes: 200, delayMs: 10 });
  const lines = Array.from({ length: 5 }, (_, i) => `{"n":${i},"text":"café ☕"}\n`);

  await t.step("held until flush, then written whole and in order", () => {
    for (const line of lines) batch.add(line);
    assert.deepEqual(writes, []);
    batch.flush();
    assert.deepEqual(written(), lines.join(""));
    batch.flush();
    assert.deepEqual(written(), lines.join(""), "a second flush writes nothing again");
  });

  await t.step("past maxBytes: written at once", () => {
    writes.length = 0;
    const long = `${"x".repeat(250)}\n`;
    batch.add("first\n");
    batch.add(long);
    assert.deepEqual(written(), `first\n${long}`);
  });

  await t.step("DEL and C1 controls written escaped, as formatLine escapes them; other text as it is", () => {
    writes.length = 0;
    batch.add('{"a":"x\u007fy\u0085z\u009b31m","b":"\u00a0é ☕ \u0080"}\n');
    batch.add('{"plain":"ascii only"}\n');
    batch.flush();
    assert.equal(
      written(),
      '{"a":"x\\u007fy\\u0085z\\u009b31m","b":"\u00a0é ☕ \\u0080"}\n{"plain":"ascii only"}\n',
    );
  });

  await t.step("a line longer than the batch's buffer is written whole", () => {
    writes.length = 0;
    const long = `${"☕".repeat(1500)}\u009b\n`;
    batch.add(long);
    batch.flush();
    assert.equal(written(), long.replace("\u009b", "\\u009b"));
  });

  await t.step("any lines, controls and long ones included: all written, escaped, in order", () => {
    const line = fc.oneof(
      fc.string({
        unit: fc.constantFrom("a", "é", "☕", "\u007f", "\u0085", "\u009b", "\u00a0", "\n"),
        maxLength: 300,
      }),
      fc.string({ unit: "binary", maxLength: 40 }),
    );
    fc.assert(
      fc.property(fc.array(line, { maxLength: 12 }), fc.integer({ min: 1, max: 300 }), (lines, maxBytes) => {
        const out: number[] = [];
        const small = createLineBatch((bytes) => {
          const taken = Math.min(bytes.length, 13);
          out.push(...bytes.subarray(0, taken));
          return taken;
        }, { maxBytes, delayMs: 10_000 });
        for (const text of lines) small.add(text);
        small.flush();
        const expected = lines.join("").replace(/[\u007f-\u009f]/g, (c) => `\\u00${c.charCodeAt(0).toString(16)}`);
        assert.equal(decoder.decode(new Uint8Array(out)), new TextDecoder().decode(new TextEncoder().encode(expected)));
      }),
      { numRuns: 300 },
    );
  });

  await t.step("a line after a full batch was written: written by the timer still pending", async () => {
    writes.length = 0;
    batch.add("first\n");
    batch.add(`${"y".repeat(250)}\n`);
    assert.equal(written(), `first\n${"y".repeat(250)}\n`);
    batch.add("after\n");
    await new Promise((resolve) => setTimeout(resolve, 60));
    assert.equal(written(), `first\n${"y".repeat(250)}\nafter\n`);
  });

  await t.step("after delayMs: written by the timer", async () => {
    writes.length = 0;
    batch.add("late\n");
    assert.deepEqual(writes, []);
    await new Promise((resolve) => setTimeout(resolve, 60));
    assert.deepEqual(written(), "late\n");
  });
});

Deno.test("configureLogging's standard error: every line written at exit, uncaught error and rejection", async (t) => {
  const log = new URL("./log.ts", import.meta.url).href;
  for (
    const [ending, code] of [
      ["", 0],
      ["Deno.exit(3);", 3],
      ["throw new Error('boom');", 1],
      ["Promise.reject(new Error('boom'));", 1],
      ["setTimeout(() => { throw new Error('later'); }, 5);", 1],
    ] as const
  ) {
    await t.step(ending || "end of the event loop", async () => {
      const script = `import { configureLogging, logger } from "${log}";
configureLogging("info");
for (let i = 0; i < 500; i++) logger("exit-test").info("line {i}", { i });
${ending}`;
      const output = await new Deno.Command(Deno.execPath(), {
        args: ["eval", "--no-check", script],
        cwd: new URL("../..", import.meta.url).pathname,
        stdout: "null",
        stderr: "piped",
      }).output();
      assert.equal(output.code, code);
      const numbers = new TextDecoder().decode(output.stderr).split("\n").filter((line) => line.startsWith("{"))
        .map((line) => JSON.parse(line).properties.i);
      assert.deepEqual(numbers, Array.from({ length: 500 }, (_, i) => i));
    });
  }
});
