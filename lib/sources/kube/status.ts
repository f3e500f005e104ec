// Status of our rule objects: the Ready condition a verdict calls for, and the writer that puts it on the API objects.

import type { Logger } from "@logtape/logtape";
import type { ObjectVerdict } from "./evaluate.ts";
import { errorMessage, KubeApiError, type KubeHttp } from "./http.ts";
import { generationOf, metadataOf, objectPath, type Resource, resourceVersionOf, stringField } from "./resources.ts";
import { canonical, isRecord, type Json } from "../../util/json.ts";

/** RFC 3339 with seconds, as metav1.Time serializes. */
function formatTime(date: Date): string {
  return date.toISOString().replace(/\.\d+Z$/, "Z");
}

/**
 * The status an object should have. `lastTransitionTime` is kept from the current Ready condition when its
 * status (True/False) is unchanged; conditions of other types are kept as they are.
 */
export function desiredStatus(current: unknown, verdict: ObjectVerdict, now: Date): Json {
  const conditions = isRecord(current) && Array.isArray(current["conditions"]) ? current["conditions"] : [];
  const previous = conditions.find((condition) => isRecord(condition) && condition["type"] === "Ready");
  const status = verdict.reason === "Valid" ? "True" : "False";
  const kept = isRecord(previous) && previous["status"] === status && typeof previous["lastTransitionTime"] === "string"
    ? previous["lastTransitionTime"]
    : undefined;
  const generation = verdict.generation === undefined ? {} : { observedGeneration: verdict.generation };
  const ready = {
    type: "Ready",
    status,
    ...generation,
    lastTransitionTime: kept ?? formatTime(now),
    reason: verdict.reason,
    message: verdict.message,
  };
  return {
    ...generation,
    rules: verdict.rules,
    conditions: [...conditions.filter((condition) => !(isRecord(condition) && condition["type"] === "Ready")), ready],
  };
}

/** True when two statuses say the same thing. */
export function sameStatus(a: unknown, b: unknown): boolean {
  return canonical(a ?? null) === canonical(b ?? null);
}

/** The status without timestamps: what a write decided, independent of when. */
function statusFingerprint(status: unknown): string {
  const conditions = isRecord(status) && Array.isArray(status["conditions"]) ? status["conditions"] : [];
  return canonical({
    ...(isRecord(status) ? status : {}),
    conditions: conditions.map((condition) =>
      isRecord(condition) ? { ...condition, lastTransitionTime: undefined } : condition
    ),
  });
}

/** Settings of {@linkcode StatusWriter}. */
export interface StatusWriterOptions {
  readonly http: KubeHttp;
  readonly logger: Logger;
  /** Aborted when the source stops: no write starts after. */
  readonly signal: AbortSignal;
  /** Status writes attempted per object and change when they meet 409 Conflict. */
  readonly attempts: number;
  /** Clock for `lastTransitionTime`. */
  readonly now: () => Date;
  /** The current verdicts, by `Kind/namespace/name`. */
  readonly verdicts: () => ReadonlyMap<string, ObjectVerdict>;
  /** Our object behind a verdict as the watch last saw it; undefined for objects that are not ours to write. */
  readonly find: (key: string) => { raw: Json; resource: Resource } | undefined;
}

/** Writes each object's status when its verdict changes, one object at a time, without write loops between replicas. */
export class StatusWriter {
  #options: StatusWriterOptions;
  #pending = new Set<string>();
  #draining: Promise<void> | undefined;
  /** Per object: what we last wrote, and the resourceVersions just before and after, so a stale view does not rewrite. */
  #written = new Map<string, { fingerprint: string; versions: ReadonlySet<string> }>();
  #warnedStored = new Set<string>();

  constructor(options: StatusWriterOptions) {
    this.#options = options;
  }

  /** Resolves when the writes under way are done. */
  settled(): Promise<void> {
    return this.#draining ?? Promise.resolve();
  }

  /** Whether `raw` needs a write to carry `verdict`. */
  #needsWrite(key: string, raw: Json, verdict: ObjectVerdict): boolean {
    const desired = desiredStatus(raw["status"], verdict, this.#options.now());
    if (sameStatus(raw["status"], desired)) return false;
    // Our own write of this very status is on its way through the watch (or the server stored it differently).
    const written = this.#written.get(key);
    const version = resourceVersionOf(raw);
    return !(written !== undefined && written.fingerprint === statusFingerprint(desired) && version !== undefined &&
      written.versions.has(version));
  }

  /** Queues a write for every object whose status does not say its current verdict; writes one at a time. */
  queue(): void {
    for (const key of this.#written.keys()) {
      if (!this.#options.verdicts().has(key)) {
        this.#written.delete(key);
        this.#warnedStored.delete(key);
      }
    }
    for (const [key, verdict] of this.#options.verdicts()) {
      const found = this.#options.find(key);
      if (found !== undefined && this.#needsWrite(key, found.raw, verdict)) this.#pending.add(key);
    }
    if (this.#pending.size > 0 && this.#draining === undefined) {
      this.#draining = this.#drain().finally(() => {
        this.#draining = undefined;
      });
    }
  }

  async #drain(): Promise<void> {
    while (this.#pending.size > 0 && !this.#options.signal.aborted) {
      const [key] = this.#pending;
      if (key === undefined) break;
      this.#pending.delete(key);
      try {
        await this.#writeStatus(key);
      } catch (error) {
        if (this.#options.signal.aborted) return;
        this.#options.logger.warn("Cannot write the status of {object}: {message}", {
          object: key,
          message: errorMessage(error),
        });
      }
    }
  }

  /**
   * PUT /status with the resourceVersion we saw: a write based on a stale view fails with 409, and then we
   * re-read and decide again. Replicas compute the same status, so the loser of a race finds it already there.
   */
  async #writeStatus(key: string): Promise<void> {
    const found = this.#options.find(key);
    if (found === undefined) return;
    const { resource } = found;
    let raw = found.raw;
    const attempts = this.#options.attempts;
    const signal = this.#options.signal;
    const metadata = metadataOf(raw);
    const path = `${
      objectPath(resource, stringField(metadata, "namespace") ?? "", stringField(metadata, "name") ?? "")
    }/status`;
    // Every version this write was based on: the watch may still deliver any of them after the write succeeded.
    const versions = new Set<string>();
    for (let attempt = 1; attempt <= attempts; attempt++) {
      const verdict = this.#options.verdicts().get(key);
      // Not evaluated at this generation yet: the watch brings the new version and a new verdict.
      if (verdict === undefined || verdict.generation !== generationOf(raw)) return;
      if (!this.#needsWrite(key, raw, verdict)) return;
      const desired = desiredStatus(raw["status"], verdict, this.#options.now());
      const before = resourceVersionOf(raw);
      if (before !== undefined) versions.add(before);
      const answer = await this.#options.http.request("PUT", path, {
        query: { fieldManager: "mirrorhook" },
        body: { ...raw, status: desired },
        signal,
      });
      if (answer.status === 200 || answer.status === 201) {
        const after = resourceVersionOf(answer.body);
        if (after !== undefined) versions.add(after);
        this.#written.set(key, { fingerprint: statusFingerprint(desired), versions });
        const stored = isRecord(answer.body) ? answer.body["status"] : undefined;
        if (!sameStatus(stored, desired) && !this.#warnedStored.has(key)) {
          this.#warnedStored.add(key);
          this.#options.logger.warn(
            "The API server stored a different status for {object} than written; is the CRD's status schema current?",
            { object: verdict.label },
          );
        }
        this.#options.logger.debug("Wrote the status of {object}: {reason}", {
          object: verdict.label,
          reason: verdict.reason,
        });
        return;
      }
      if (answer.status === 404) return;
      if (answer.status !== 409) {
        throw new KubeApiError(`write the status of ${verdict.label}`, answer);
      }
      const fresh = await this.#options.http.request("GET", path.slice(0, -"/status".length), { signal });
      if (fresh.status === 404) return;
      if (fresh.status !== 200 || !isRecord(fresh.body)) {
        throw new KubeApiError(`read ${verdict.label}`, fresh);
      }
      raw = { ...fresh.body, apiVersion: resource.apiVersion, kind: resource.kind };
    }
    this.#options.logger.warn(
      "Gave up writing the status of {object} after {attempts} conflicts; will retry on the next change",
      {
        object: key,
        attempts,
      },
    );
  }
}
