// Image copies between real Debian docker-registry instances on 127.0.0.1: content, platforms, mounts, limits, faults.

import assert from "node:assert/strict";
import { Registry } from "prom-client";
import { parseReferenceOrThrow } from "../lib/image/reference.ts";
import type { BlobProgress } from "../lib/mirror/blob.ts";
import { parsePlatform } from "../lib/mirror/manifest.ts";
import { createMirrorMetrics, formatMirrorEvent } from "../lib/mirror/metrics.ts";
import { Mirrorer, type MirrorerOptions, type MirrorEvent } from "../lib/mirror/mirrorer.ts";
import { OnDemandMirror } from "../lib/mirror/on_demand.ts";
import { MirrorError } from "../lib/mirror/session.ts";
import { CredentialStore } from "../lib/verify/auth.ts";
import { Transport } from "../lib/verify/transport.ts";
import { head, pushPlatformImage } from "./support/images.ts";
import { fetchToken, startTokenRegistry } from "./support/token_registry.ts";
import { registryInstalled, type RunningRegistry, startRegistry, TEST_USER } from "./support/registry.ts";

const ignore = !registryInstalled();
const FAST_RETRY = { attempts: 3, baseDelayMs: 20, maxDelayMs: 100 } as const;
const TWO_PLATFORMS = ["linux/amd64", "linux/arm64"];

async function mirrorer(
  registries: readonly RunningRegistry[],
  options: Omit<MirrorerOptions, "transport" | "credentials"> & { auth?: RunningRegistry; password?: string } = {},
): Promise<{ mirrorer: Mirrorer; events: MirrorEvent[]; [Symbol.dispose](): void }> {
  const transport = await Transport.create({ insecure: registries.map((registry) => registry.host) });
  const credentials = CredentialStore.empty();
  if (options.auth !== undefined) {
    credentials.add({
      auths: {
        [options.auth.host]: { username: TEST_USER.username, password: options.password ?? TEST_USER.password },
      },
    });
  }
  const events: MirrorEvent[] = [];
  const { auth: _auth, password: _password, ...rest } = options;
  const instance = new Mirrorer({
    retry: FAST_RETRY,
    ...rest,
    transport,
    credentials,
    onEvent: (event) => {
      events.push(event);
      options.onEvent?.(event);
    },
  });
  return {
    mirrorer: instance,
    events,
    [Symbol.dispose]: () => {
      instance.close();
      transport.close();
    },
  };
}

/** The MirrorError `fn` rejects with. */
async function rejection(fn: () => Promise<unknown>): Promise<MirrorError> {
  try {
    await fn();
  } catch (error) {
    if (error instanceof MirrorError) return error;
    throw error;
  }
  throw new assert.AssertionError({ message: "expected a MirrorError" });
}

function includes(text: string, part: string): void {
  assert.ok(text.includes(part), `${JSON.stringify(part)} not in ${JSON.stringify(text)}`);
}

const ref = (registry: RunningRegistry, path: string) => parseReferenceOrThrow(`${registry.host}/${path}`);
const auth = TEST_USER;

Deno.test({
  name: "mirror: copies images between real registries",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  await using source = await startRegistry();
  await using mirror = await startRegistry({ auth });
  await using second = await startRegistry();
  const multi = await pushPlatformImage(source.url, "team/multi", "v1", { platforms: TWO_PLATFORMS });
  const single = await pushPlatformImage(source.url, "team/single", "v1");

  await t.step("an index with both platform manifests and every blob, digests identical", async () => {
    using m = await mirrorer([source, mirror, second], { auth: mirror });
    const result = await m.mirrorer.mirror(ref(source, "team/multi:v1"), ref(mirror, "cache/multi:v1"));
    assert.deepEqual(result.digest, multi.digest);
    assert.deepEqual(result.sourceDigest, multi.digest);
    assert.deepEqual(result.manifests, 3);
    assert.deepEqual(result.blobs, { present: 0, mounted: 0, copied: 4 });
    assert.deepEqual(result.totalBytes, multi.totalBytes);
    assert.deepEqual(await head(mirror.url, "/v2/cache/multi/manifests/v1", auth), {
      status: 200,
      digest: multi.digest,
    });
    for (const digest of Object.values(multi.manifests)) {
      assert.deepEqual(await head(mirror.url, `/v2/cache/multi/manifests/${digest}`, auth), { status: 200, digest });
    }
    for (const digest of multi.blobs.keys()) {
      assert.deepEqual((await head(mirror.url, `/v2/cache/multi/blobs/${digest}`, auth)).status, 200, digest);
    }
    assert.deepEqual(m.events.map((event) => event.type), ["started", "finished"]);

    // A second copy finds every blob in place and uploads nothing.
    const again = await m.mirrorer.mirror(ref(source, "team/multi:v1"), ref(mirror, "cache/multi:v1"));
    assert.deepEqual(again.blobs, { present: 4, mounted: 0, copied: 0 });
    assert.deepEqual(again.copiedBytes, 0);
  });

  await t.step("a single-platform image", async () => {
    using m = await mirrorer([source, second]);
    const result = await m.mirrorer.mirror(ref(source, "team/single:v1"), ref(second, "single:v1"));
    assert.deepEqual(result.digest, single.digest);
    assert.deepEqual(await head(second.url, "/v2/single/manifests/v1"), { status: 200, digest: single.digest });
  });

  await t.step("a reference by digest is copied under that digest", async () => {
    using m = await mirrorer([source, second]);
    const platformDigest = multi.manifests["linux/arm64"] ?? "";
    const result = await m.mirrorer.mirror(
      ref(source, `team/multi@${platformDigest}`),
      ref(second, `bydigest@${platformDigest}`),
    );
    assert.deepEqual(result.digest, platformDigest);
    assert.deepEqual((await head(second.url, `/v2/bydigest/manifests/${platformDigest}`)).status, 200);
  });

  await t.step("a platform filter copies only the platforms asked for", async () => {
    using m = await mirrorer([source, second], { platforms: [parsePlatform("linux/arm64")] });
    const result = await m.mirrorer.mirror(ref(source, "team/multi:v1"), ref(second, "arm/multi:v1"));
    assert.ok(result.filtered);
    assert.deepEqual(result.sourceDigest, multi.digest);
    assert.deepEqual(result.manifests, 2);
    assert.deepEqual(result.blobs.copied, 2);
    const tagged = await head(second.url, "/v2/arm/multi/manifests/v1");
    assert.deepEqual(tagged, { status: 200, digest: result.digest });
    assert.deepEqual((await head(second.url, `/v2/arm/multi/manifests/${multi.manifests["linux/arm64"]}`)).status, 200);
    assert.deepEqual((await head(second.url, `/v2/arm/multi/manifests/${multi.manifests["linux/amd64"]}`)).status, 404);
  });

  await t.step("a platform the image lacks is named and nothing is pushed", async () => {
    using m = await mirrorer([source, second], { platforms: [parsePlatform("linux/s390x")] });
    const error = await rejection(
      () => m.mirrorer.mirror(ref(source, "team/multi:v1"), ref(second, "s390x/multi:v1")),
    );
    assert.deepEqual(error.reason, "platform-missing");
    includes(error.message, "linux/s390x");
    const onSingle = await rejection(
      () => m.mirrorer.mirror(ref(source, "team/single:v1"), ref(second, "s390x/single:v1")),
    );
    assert.deepEqual(onSingle.reason, "platform-missing");
    includes(onSingle.message, "linux/amd64");
    assert.deepEqual((await head(second.url, "/v2/s390x/multi/manifests/v1")).status, 404);
  });

  await t.step("within one registry, blobs are mounted, not uploaded", async () => {
    using m = await mirrorer([source]);
    const result = await m.mirrorer.mirror(ref(source, "team/multi:v1"), ref(source, "copies/multi:v1"));
    assert.deepEqual(result.blobs, { present: 0, mounted: 4, copied: 0 });
    assert.deepEqual(result.copiedBytes, 0);
    assert.deepEqual(await head(source.url, "/v2/copies/multi/manifests/v1"), { status: 200, digest: multi.digest });
  });

  await t.step("a copy over the size limit is refused before anything is written", async () => {
    using m = await mirrorer([source, second], { maxBytes: multi.totalBytes - 1 });
    const error = await rejection(
      () => m.mirrorer.mirror(ref(source, "team/multi:v1"), ref(second, "big/multi:v1")),
    );
    assert.deepEqual(error.reason, "too-large");
    includes(error.message, String(multi.totalBytes));
    includes(error.message, String(multi.totalBytes - 1));
    for (const digest of multi.blobs.keys()) {
      assert.deepEqual((await head(second.url, `/v2/big/multi/blobs/${digest}`)).status, 404);
    }
    const failed = m.events.find((event) => event.type === "failed");
    assert.deepEqual(failed?.type === "failed" ? failed.reason : undefined, "too-large");
  });

  await t.step("refused credentials fail with reason auth; a missing image with not-found", async () => {
    using m = await mirrorer([source, mirror], { auth: mirror, password: "wrong" });
    const error = await rejection(
      () => m.mirrorer.mirror(ref(source, "team/single:v1"), ref(mirror, "denied:v1")),
    );
    assert.deepEqual(error.reason, "auth");
    includes(error.message, "credentials rejected");
    const missing = await rejection(
      () => m.mirrorer.mirror(ref(source, "team/nothing:v1"), ref(mirror, "nothing:v1")),
    );
    assert.deepEqual(missing.reason, "not-found");
  });

  await t.step("20 concurrent requests for one target start one copy", async () => {
    using m = await mirrorer([source, second]);
    const results = await Promise.all(
      Array.from({ length: 20 }, () => m.mirrorer.mirror(ref(source, "team/multi:v1"), ref(second, "burst:v1"))),
    );
    assert.deepEqual(new Set(results).size, 1);
    assert.deepEqual(m.events.filter((event) => event.type === "started").length, 1);
    assert.deepEqual(m.events.filter((event) => event.type === "finished").length, 1);
    assert.deepEqual(m.mirrorer.pending, 0);
  });

  await t.step("copies beyond the concurrency bound wait their turn", async () => {
    using m = await mirrorer([source, second], { maxConcurrentCopies: 1 });
    let most = 0;
    const results = await Promise.all(["q1", "q2", "q3"].map((name) => {
      const promise = m.mirrorer.mirror(ref(source, "team/single:v1"), ref(second, `${name}:v1`));
      most = Math.max(most, m.mirrorer.active);
      return promise;
    }));
    assert.deepEqual(results.length, 3);
    assert.deepEqual(most, 1);
    assert.deepEqual(m.events.filter((event) => event.type === "queued").length, 2);
  });
});

Deno.test({
  name: "mirror: killing the source mid-copy leaves no manifest; a retry completes the copy",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const seed = 4242;
  const layerBytes = 2 * 1024 * 1024;
  const source = await startRegistry();
  await using target = await startRegistry();
  try {
    const image = await pushPlatformImage(source.url, "app", "v1", { platforms: TWO_PLATFORMS, layerBytes, seed });
    using m = await mirrorer([source, target], { chunkBytes: 128 * 1024, blobConcurrency: 1 });
    let killed: Promise<void> | undefined;
    const progress: BlobProgress[] = [];
    const error = await rejection(
      () =>
        m.mirrorer.mirror(ref(source, "app:v1"), ref(target, "mirror/app:v1"), {
          onProgress: (event) => {
            progress.push(event);
            // Kill the source while the first large blob is streaming.
            if (event.state === "copying" && event.done < event.total && event.total === layerBytes) {
              killed ??= source.stop();
            }
          },
        }),
    );
    await killed;
    assert.ok(killed !== undefined, "the copy never streamed a chunk");
    assert.deepEqual(error.reason, "unreachable");
    assert.deepEqual((await head(target.url, "/v2/mirror/app/manifests/v1")).status, 404);
    assert.deepEqual((await head(target.url, `/v2/mirror/app/manifests/${image.digest}`)).status, 404);
    for (const digest of Object.values(image.manifests)) {
      assert.deepEqual((await head(target.url, `/v2/mirror/app/manifests/${digest}`)).status, 404);
    }
    const failed = m.events.at(-1);
    assert.deepEqual(failed?.type, "failed");

    // The same image, pushed again to a new source, completes the copy with the same digest.
    await using again = await startRegistry();
    const repushed = await pushPlatformImage(again.url, "app", "v1", { platforms: TWO_PLATFORMS, layerBytes, seed });
    assert.deepEqual(repushed.digest, image.digest);
    using retry = await mirrorer([again, target], { chunkBytes: 128 * 1024 });
    const result = await retry.mirrorer.mirror(ref(again, "app:v1"), ref(target, "mirror/app:v1"));
    assert.deepEqual(result.digest, image.digest);
    assert.deepEqual(result.blobs.copied + result.blobs.present, 4);
    assert.deepEqual(await head(target.url, "/v2/mirror/app/manifests/v1"), { status: 200, digest: image.digest });
    for (const digest of image.blobs.keys()) {
      assert.deepEqual((await head(target.url, `/v2/mirror/app/blobs/${digest}`)).status, 200);
    }
  } finally {
    await source.stop();
  }
});

const MAIN = new URL("../main.ts", import.meta.url).pathname;

async function cli(args: readonly string[]): Promise<{ code: number; out: string; err: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "mirror", ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code: output.code, out: decoder.decode(output.stdout), err: decoder.decode(output.stderr) };
}

Deno.test({
  name: "mirror command: copies images as a subprocess and shows the progress of each blob",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  await using source = await startRegistry();
  await using mirror = await startRegistry({ auth });
  const dir = await Deno.makeTempDir({ prefix: "mirrorhook-mirror-cli-" });
  try {
    const multi = await pushPlatformImage(source.url, "team/multi", "v1", { platforms: TWO_PLATFORMS });
    const config = `${dir}/config.json`;
    await Deno.writeTextFile(
      config,
      JSON.stringify({ auths: { [mirror.host]: { auth: btoa(`${auth.username}:${auth.password}`) } } }),
    );
    const common = ["--docker-config", config, "--insecure-registry", source.host, "--insecure-registry", mirror.host];

    await t.step("--to: one line per blob, then a summary", async () => {
      const result = await cli([
        `${source.host}/team/multi:v1`,
        "--to",
        `${mirror.host}/cli/multi:v1`,
        "--progress",
        "lines",
        ...common,
      ]);
      assert.equal(result.code, 0, result.err);
      for (const digest of multi.blobs.keys()) includes(result.out, `${digest.slice(0, 19)} `);
      assert.equal(result.out.match(/ copied\n/g)?.length, 4, result.out);
      includes(result.out, `mirrored ${source.host}/team/multi:v1 -> ${mirror.host}/cli/multi:v1 ${multi.digest}`);
      includes(result.out, "3 manifest(s), 4 blob(s) (4 copied, 0 mounted, 0 present)");
      assert.deepEqual(await head(mirror.url, "/v2/cli/multi/manifests/v1", auth), {
        status: 200,
        digest: multi.digest,
      });
    });

    await t.step("--to without a tag keeps the image's tag", async () => {
      const result = await cli([
        `${source.host}/team/multi:v1`,
        "--to",
        `${mirror.host}/untagged/multi`,
        "--progress",
        "none",
        ...common,
      ]);
      assert.equal(result.code, 0, result.err);
      includes(result.out, `-> ${mirror.host}/untagged/multi:v1 ${multi.digest}`);
      assert.equal((await head(mirror.url, "/v2/untagged/multi/manifests/v1", auth)).status, 200);
    });

    await t.step("--rules: the target is what the rules rewrite the image to; bars with --progress bar", async () => {
      const rules = `${dir}/rules.yaml`;
      await Deno.writeTextFile(
        rules,
        [
          "apiVersion: mirrorhook.dev/v1alpha1",
          "kind: ClusterImageRewrite",
          "metadata:",
          "  name: to-mirror",
          "spec:",
          "  rules:",
          `    - prefix: ${source.host}/team`,
          `      replace: ${mirror.host}/rules/team`,
          "",
        ].join("\n"),
      );
      const result = await cli([
        `${source.host}/team/multi:v1`,
        "docker.io/library/untouched:1",
        "--rules",
        rules,
        "--platform",
        "linux/arm64",
        "--progress",
        "bar",
        ...common,
      ]);
      assert.equal(result.code, 0, result.err);
      includes(result.out, `[${"#".repeat(30)}]`);
      includes(result.out, `-> ${mirror.host}/rules/team/multi:v1`);
      includes(result.out, "platform-filtered");
      includes(result.out, "skipped docker.io/library/untouched:1: no rule rewrites it");
      const tagged = await head(mirror.url, "/v2/rules/team/multi/manifests/v1", auth);
      assert.equal(tagged.status, 200);
      assert.equal(
        (await head(mirror.url, `/v2/rules/team/multi/manifests/${multi.manifests["linux/arm64"]}`, auth)).status,
        200,
      );
    });

    await t.step("a copy over --max-bytes or a refused login exits 1 with the reason", async () => {
      const big = await cli([
        `${source.host}/team/multi:v1`,
        "--to",
        `${mirror.host}/big:v1`,
        "--max-bytes",
        "1KiB",
        ...common,
      ]);
      assert.equal(big.code, 1);
      includes(big.err, "over the limit of 1024 bytes");
      const denied = await cli([
        `${source.host}/team/multi:v1`,
        "--to",
        `${mirror.host}/denied:v1`,
        "--insecure-registry",
        source.host,
        "--insecure-registry",
        mirror.host,
      ]);
      assert.equal(denied.code, 1);
      includes(denied.err, "no credentials for this registry");
      const usage = await cli([`${source.host}/team/multi:v1`]);
      assert.equal(usage.code, 2);
      includes(usage.err, "exactly one of --to REF and --rules FILE");
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "mirror: events feed metrics and one log line per copy; close fails queued copies",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  await using source = await startRegistry();
  await using target = await startRegistry();
  const image = await pushPlatformImage(source.url, "app", "v1", { platforms: TWO_PLATFORMS });

  await t.step("finished and failed copies are counted, with bytes and reasons", async () => {
    const registry = new Registry();
    const metrics = createMirrorMetrics(registry);
    const lines: string[] = [];
    using m = await mirrorer([source, target], {
      maxBytes: image.totalBytes,
      onEvent: (event) => {
        metrics.record(event);
        const line = formatMirrorEvent(event);
        if (line !== undefined) lines.push(`${line.level}: ${line.message}`);
      },
    });
    await m.mirrorer.mirror(ref(source, "app:v1"), ref(target, "ok/app:v1"));
    await rejection(() => m.mirrorer.mirror(ref(source, "app:v1"), ref(target, "ok/app@sha256:" + "0".repeat(64))));
    const text = await registry.metrics();
    includes(text, "mirrorhook_mirror_copies_started_total 2");
    includes(text, "mirrorhook_mirror_copies_finished_total 1");
    includes(text, 'mirrorhook_mirror_copies_failed_total{reason="digest-mismatch"} 1');
    const uploaded = [...image.blobs.values()].reduce((sum, size) => sum + size, 0);
    includes(text, `mirrorhook_mirror_bytes_copied_total ${uploaded}`);
    includes(text, "mirrorhook_mirror_copies_in_progress 0");
    assert.equal(lines.length, 2);
    assert.match(lines[0] ?? "", /^info: mirrored .*ok\/app:v1 \(sha256:[0-9a-f]{64}\): .* in \d+\.\d s$/);
    assert.match(lines[1] ?? "", /^warning: Cannot mirror .* \(digest-mismatch\)/);
  });

  await t.step("closing the mirrorer fails running and queued copies with reason aborted", async () => {
    const registry = new Registry();
    const metrics = createMirrorMetrics(registry);
    using m = await mirrorer([source, target], { maxConcurrentCopies: 1, onEvent: (event) => metrics.record(event) });
    const first = rejection(() => m.mirrorer.mirror(ref(source, "app:v1"), ref(target, "closed/a:v1")));
    const second = rejection(() => m.mirrorer.mirror(ref(source, "app:v1"), ref(target, "closed/b:v1")));
    m.mirrorer.close();
    assert.equal((await first).reason, "aborted");
    assert.equal((await second).reason, "aborted");
    assert.equal((await head(target.url, "/v2/closed/a/manifests/v1")).status, 404);
    const text = await registry.metrics();
    includes(text, "mirrorhook_mirror_copies_in_progress 0");
    includes(text, "mirrorhook_mirror_copies_queued 0");
    includes(text, 'mirrorhook_mirror_copies_failed_total{reason="aborted"} 2');
  });
});

Deno.test({
  name: "mirror: a source that stops sending mid-blob is abandoned after the idle timeout",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  await using source = await startRegistry();
  await using target = await startRegistry();
  await pushPlatformImage(source.url, "app", "v1", { layerBytes: 64 * 1024 });
  // A front for the real registry that passes everything through but stalls blob bodies after their first bytes.
  const stalled = new Set<ReadableStreamDefaultController<Uint8Array>>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    const url = new URL(request.url);
    const upstream = await fetch(`${source.url}${url.pathname}${url.search}`, {
      method: request.method,
      headers: request.headers,
      ...(request.body === null ? {} : { body: request.body }),
    });
    if (request.method !== "GET" || !url.pathname.includes("/blobs/") || upstream.body === null) return upstream;
    const bytes = new Uint8Array(await upstream.arrayBuffer());
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        stalled.add(controller);
        controller.enqueue(bytes.subarray(0, 100));
      },
      cancel() {},
    });
    return new Response(body, { status: upstream.status, headers: upstream.headers });
  });
  const front = `127.0.0.1:${server.addr.port}`;
  try {
    const transport = await Transport.create({ insecure: [front, target.host] });
    const instance = new Mirrorer({ transport, retry: FAST_RETRY, idleTimeoutMs: 200, chunkBytes: 16 * 1024 });
    try {
      const error = await rejection(() =>
        instance.mirror(parseReferenceOrThrow(`${front}/app:v1`), ref(target, "stalled/app:v1"))
      );
      assert.equal(error.reason, "unreachable");
      includes(error.message, "no data for 200 ms");
      assert.equal((await head(target.url, "/v2/stalled/app/manifests/v1")).status, 404);
    } finally {
      instance.close();
      transport.close();
    }
  } finally {
    for (const controller of stalled) {
      try {
        controller.close();
      } catch {
        // Already cancelled by the client.
      }
    }
    await server.shutdown();
  }
});

Deno.test({
  name: "mirror: bearer tokens from the registry's token server, with push and mount scopes",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  await using source = await startRegistry();
  await using secured = await startTokenRegistry(auth);
  const image = await pushPlatformImage(source.url, "team/app", "v1", { platforms: TWO_PLATFORMS });
  const transport = await Transport.create({ insecure: [source.host, secured.host, secured.tokenHost] });
  const credentials = CredentialStore.empty().add({
    auths: { [secured.host]: { username: auth.username, password: auth.password } },
  });
  const instance = new Mirrorer({ transport, credentials, retry: FAST_RETRY });
  try {
    const pushed = await instance.mirror(ref(source, "team/app:v1"), ref(secured, "mirror/app:v1"));
    assert.equal(pushed.digest, image.digest);
    assert.deepEqual(pushed.blobs, { present: 0, mounted: 0, copied: 4 });
    const mounted = await instance.mirror(ref(secured, "mirror/app:v1"), ref(secured, "other/app:v1"));
    assert.deepEqual(mounted.blobs, { present: 0, mounted: 4, copied: 0 });

    const asked = secured.tokenRequests.flatMap((request) => request.scopes);
    assert.ok(asked.includes("repository:mirror/app:pull,push"), JSON.stringify(asked));
    assert.ok(asked.includes("repository:other/app:pull,push"), JSON.stringify(asked));
    assert.ok(asked.includes("repository:mirror/app:pull"), JSON.stringify(asked));
    assert.ok(secured.tokenRequests.every((request) => request.account === auth.username));

    const token = await fetchToken(secured, auth, ["repository:other/app:pull"]);
    const response = await fetch(`${secured.url}/v2/other/app/manifests/v1`, {
      method: "HEAD",
      headers: { authorization: `Bearer ${token}`, accept: "application/vnd.oci.image.index.v1+json" },
    });
    await response.body?.cancel();
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("docker-content-digest"), image.digest);

    // Without credentials the token server refuses, and the copy fails with reason auth.
    const anonymous = new Mirrorer({ transport, retry: FAST_RETRY });
    const error = await rejection(() => anonymous.mirror(ref(source, "team/app:v1"), ref(secured, "anon/app:v1")));
    anonymous.close();
    assert.equal(error.reason, "auth");
    includes(error.message, "no credentials");
  } finally {
    instance.close();
    transport.close();
  }
});

Deno.test({
  name: "mirror: on-demand requests return at once, share one copy, skip dry runs and report the copy",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  await using source = await startRegistry();
  await using target = await startRegistry();
  const image = await pushPlatformImage(source.url, "team/app", "v1", { platforms: TWO_PLATFORMS });
  using m = await mirrorer([source, target]);
  const copied: string[] = [];
  const onDemand = new OnDemandMirror(m.mirrorer, { onCopied: (reference) => copied.push(reference) });
  const from = `${source.host}/team/app:v1`;
  const to = `${target.host}/cache/team/app:v1`;

  assert.equal(onDemand.request(from, to, { dryRun: true }), "skipped-dry-run");
  assert.equal(m.events.length, 0);
  assert.equal(onDemand.request("UPPER/Case", to, { dryRun: false }), "invalid");

  const outcomes = Array.from({ length: 20 }, () => onDemand.request(from, to, { dryRun: false }));
  assert.equal(outcomes.filter((outcome) => outcome === "started").length, 1);
  assert.equal(outcomes.filter((outcome) => outcome === "joined").length, 19);
  // The request returned before the copy finished: the target has no manifest yet.
  assert.equal(copied.length, 0);
  await onDemand.idle();
  assert.deepEqual(copied, [to]);
  assert.equal(m.events.filter((event) => event.type === "started").length, 1);
  assert.deepEqual(await head(target.url, "/v2/cache/team/app/manifests/v1"), { status: 200, digest: image.digest });

  // A failed copy is reported by events only; request never throws and a later request tries again.
  assert.equal(onDemand.request(`${source.host}/team/none:v1`, `${target.host}/none:v1`, { dryRun: false }), "started");
  await onDemand.idle();
  const failed = m.events.at(-1);
  assert.equal(failed?.type === "failed" ? failed.reason : undefined, "not-found");
});

Deno.test({
  name: "mirror: a blob whose bytes do not match its digest never completes its upload",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  await using source = await startRegistry();
  await using target = await startRegistry();
  const image = await pushPlatformImage(source.url, "app", "v1", { layerBytes: 64 * 1024 });
  // A front for the real registry that flips one byte of every blob body it passes on (same length).
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    const url = new URL(request.url);
    const upstream = await fetch(`${source.url}${url.pathname}${url.search}`, {
      method: request.method,
      headers: request.headers,
    });
    if (request.method !== "GET" || !url.pathname.includes("/blobs/")) return upstream;
    const bytes = new Uint8Array(await upstream.arrayBuffer());
    bytes[bytes.length >> 1] = (bytes[bytes.length >> 1] ?? 0) ^ 0xff;
    return new Response(bytes, { status: upstream.status, headers: upstream.headers });
  });
  const front = `127.0.0.1:${server.addr.port}`;
  const transport = await Transport.create({ insecure: [front, target.host] });
  try {
    for (const [name, chunkBytes] of [["monolithic", 1024 * 1024], ["chunked", 16 * 1024]] as const) {
      await t.step(name, async () => {
        const instance = new Mirrorer({ transport, retry: FAST_RETRY, chunkBytes });
        try {
          const error = await rejection(() =>
            instance.mirror(parseReferenceOrThrow(`${front}/app:v1`), ref(target, `${name}/app:v1`))
          );
          assert.equal(error.reason, "digest-mismatch");
          for (const digest of image.blobs.keys()) {
            assert.equal((await head(target.url, `/v2/${name}/app/blobs/${digest}`)).status, 404);
          }
          assert.equal((await head(target.url, `/v2/${name}/app/manifests/v1`)).status, 404);
        } finally {
          instance.close();
        }
      });
    }
  } finally {
    transport.close();
    await server.shutdown();
  }
});
