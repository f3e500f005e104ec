// Tests for watchFiles on real files: the watch is debounced, the poll reports only real changes, links swap.

import assert from "node:assert/strict";
import { fileSignature, watchFiles, type WatchTrigger } from "./watch.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits up to `timeoutMs` for `check`; returns whether it held. */
async function eventually(check: () => boolean, timeoutMs = 3000): Promise<boolean> {
  const start = performance.now();
  while (performance.now() - start < timeoutMs) {
    if (check()) return true;
    await sleep(10);
  }
  return check();
}

async function withDir(run: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "mirrorhook-watch-" });
  try {
    await run(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("fileSignature() changes with an edit, a swap of links and a removal, not with a read", async () => {
  await withDir(async (dir) => {
    await Deno.mkdir(`${dir}/v1`);
    await Deno.mkdir(`${dir}/v2`);
    await Deno.writeTextFile(`${dir}/v1/a.yaml`, "one");
    await Deno.writeTextFile(`${dir}/v2/a.yaml`, "one");
    await Deno.symlink("v1", `${dir}/..data`);
    await Deno.symlink("..data/a.yaml", `${dir}/a.yaml`);
    const paths = [dir];
    const first = await fileSignature(paths);
    await Deno.readTextFile(`${dir}/a.yaml`);
    assert.equal(await fileSignature(paths), first, "reading changes nothing");
    // The kubelet's swap: same content, same size, a new file behind the link.
    await Deno.symlink("v2", `${dir}/..data_tmp`);
    await Deno.rename(`${dir}/..data_tmp`, `${dir}/..data`);
    const swapped = await fileSignature(paths);
    assert.notEqual(swapped, first, "the ..data swap is seen");
    await Deno.writeTextFile(`${dir}/v2/a.yaml`, "two!");
    const edited = await fileSignature(paths);
    assert.notEqual(edited, swapped, "an edit in place is seen");
    await Deno.remove(`${dir}/a.yaml`);
    assert.notEqual(await fileSignature(paths), edited, "a removal is seen");
  });
});

Deno.test("watchFiles(): the poll reports a change once, and nothing while nothing changes", async () => {
  await withDir(async (dir) => {
    const file = `${dir}/tls.crt`;
    await Deno.writeTextFile(file, "a");
    const calls: WatchTrigger[] = [];
    const watch = watchFiles({
      dirs: [],
      paths: [file],
      onChange: (trigger) => calls.push(trigger),
      pollIntervalMs: 20,
      debounceMs: 10,
      fullEvery: 1_000_000,
      initialSignature: await fileSignature([file]),
    });
    try {
      await sleep(200);
      assert.deepEqual(calls, [], "no change, no call");
      await Deno.writeTextFile(file, "bb");
      assert.ok(await eventually(() => calls.length > 0), "the poll saw the edit");
      await sleep(200);
      assert.deepEqual(calls, ["poll"]);
    } finally {
      watch.stop();
    }
  });
});

Deno.test("watchFiles(): a burst of writes in a watched directory is one debounced call", async () => {
  await withDir(async (dir) => {
    const calls: WatchTrigger[] = [];
    const watch = watchFiles({
      dirs: [dir],
      paths: [dir],
      onChange: (trigger) => calls.push(trigger),
      pollIntervalMs: 60_000,
      debounceMs: 300,
    });
    try {
      // Written in one go: awaited writes on a loaded machine could space themselves out past the debounce window.
      for (let i = 0; i < 5; i++) Deno.writeTextFileSync(`${dir}/r${i}.yaml`, `${i}`);
      assert.ok(await eventually(() => calls.length > 0), "the watch fired");
      await sleep(700);
      assert.deepEqual(calls, ["watch"]);
    } finally {
      watch.stop();
    }
  });
});

Deno.test("watchFiles(): the safety net reads every fullEvery polls even without a change, and stop() ends it", async () => {
  await withDir(async (dir) => {
    const file = `${dir}/a.yaml`;
    await Deno.writeTextFile(file, "a");
    let calls = 0;
    const watch = watchFiles({
      dirs: [],
      paths: [file],
      onChange: () => calls++,
      pollIntervalMs: 10,
      debounceMs: 10,
      fullEvery: 3,
      initialSignature: await fileSignature([file]),
    });
    assert.ok(await eventually(() => calls >= 2), `fired ${calls} times`);
    watch.stop();
    const stopped = calls;
    await sleep(100);
    assert.equal(calls, stopped, "no call after stop()");
  });
});

Deno.test("watchFiles(): invalidate() makes the next poll report a change without one", async () => {
  await withDir(async (dir) => {
    const file = `${dir}/a.yaml`;
    await Deno.writeTextFile(file, "a");
    let calls = 0;
    const watch = watchFiles({
      dirs: [],
      paths: [file],
      onChange: () => calls++,
      pollIntervalMs: 20,
      debounceMs: 10,
      fullEvery: 1_000_000,
      initialSignature: await fileSignature([file]),
    });
    try {
      await sleep(150);
      assert.equal(calls, 0);
      watch.invalidate();
      assert.ok(await eventually(() => calls === 1), `fired ${calls} times`);
      await sleep(150);
      assert.equal(calls, 1, "once, then quiet again");
    } finally {
      watch.stop();
    }
  });
});
