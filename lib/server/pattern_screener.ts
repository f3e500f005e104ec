// Screens `match` patterns in a worker, with a bounded queue and a deadline per request, caching verdicts by pattern.

import { cachedVerdict, type PatternVerdict, quickVerdict, rememberVerdict, screenPattern } from "../rules/pattern.ts";
import type { ScreenBatch, ScreenedBatch } from "./pattern_worker.ts";

/** Why screening gave no answer: too much queued, the deadline passed, or the screener was closed. */
export class ScreeningRefused extends Error {
  override name = "ScreeningRefused";
  constructor(readonly reason: "busy" | "timeout" | "closed", message: string) {
    super(message);
  }
}

/** Options of {@linkcode PatternScreener}. */
export interface ScreenerOptions {
  /** Most requests waiting at once; more are refused (busy). Default 1024. */
  readonly queueLimit?: number;
  /** Patterns sent to the worker in one message. Default 256. */
  readonly batchSize?: number;
  /** The worker is ended after this long without work (it keeps the process alive). Default 10 s. */
  readonly idleMs?: number;
  /** The worker's module (tests give a missing one); default lib/server/pattern_worker.ts. */
  readonly workerUrl?: string;
}

/** Options of one {@linkcode PatternScreener.screen} call. */
export interface ScreenOptions {
  /** Refuse (timeout) when the verdicts are not all in by then. */
  readonly deadlineMs: number;
}

interface Request {
  readonly verdicts: Map<string, PatternVerdict>;
  missing: number;
  done: boolean;
  readonly resolve: (verdicts: Map<string, PatternVerdict>) => void;
  readonly reject: (error: ScreeningRefused) => void;
  timer?: ReturnType<typeof setTimeout>;
}

interface Batch {
  readonly id: number;
  readonly sources: string[];
  readonly request: Request;
}

/** `/validate`'s budget: the answer must reach the API server within its webhook timeout (10 s by default). */
export const VALIDATE_SCREEN_DEADLINE_MS = 8_000;

/** The default deadline for loading rules (file and cluster sources): long, but never forever. */
export const LOAD_SCREEN_DEADLINE_MS = 60_000;

/**
 * Screens patterns on a worker thread, so that no screening ever runs on the thread that answers admissions.
 * Verdicts are remembered in the process-wide cache of lib/rules/pattern.ts (least recently used out first),
 * so compiling a screened rule set afterwards finds every verdict there. A request whose deadline passes is
 * refused; when its batch is still running the worker is ended and a new one started, so one pattern that
 * takes too long cannot stall the requests behind it.
 */
export class PatternScreener {
  #worker: Worker | undefined;
  #running: Batch | undefined;
  #queue: Batch[] = [];
  #requests = 0;
  #nextId = 1;
  #idle: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  #answered = false;
  #inline = false;
  readonly #queueLimit: number;
  readonly #batchSize: number;
  readonly #idleMs: number;
  readonly #workerUrl: string;

  constructor(options: ScreenerOptions = {}) {
    this.#queueLimit = options.queueLimit ?? 1024;
    this.#batchSize = options.batchSize ?? 256;
    this.#idleMs = options.idleMs ?? 10_000;
    this.#workerUrl = options.workerUrl ?? new URL("./pattern_worker.ts", import.meta.url).href;
  }

  /** Requests waiting or running. */
  get pending(): number {
    return this.#requests;
  }

  /** Verdicts for every source; rejects with {@linkcode ScreeningRefused} when busy, late or closed. */
  screen(sources: Iterable<string>, options: ScreenOptions): Promise<Map<string, PatternVerdict>> {
    const verdicts = new Map<string, PatternVerdict>();
    const unknown: string[] = [];
    const seen = new Set<string>();
    for (const source of sources) {
      if (verdicts.has(source)) continue;
      // A plain pattern needs no worker (see quickVerdict): a server whose rules are all plain never starts one.
      const cached = quickVerdict(source) ?? cachedVerdict(source);
      if (cached !== undefined) verdicts.set(source, cached);
      else if (!seen.has(source)) {
        seen.add(source);
        unknown.push(source);
      }
    }
    if (unknown.length === 0) return Promise.resolve(verdicts);
    if (this.#closed) return Promise.reject(new ScreeningRefused("closed", "Cannot screen patterns: shutting down"));
    if (this.#requests >= this.#queueLimit) {
      return Promise.reject(
        new ScreeningRefused("busy", `Cannot screen patterns: ${this.#requests} requests are waiting already`),
      );
    }
    return new Promise((resolve, reject) => {
      const request: Request = { verdicts, missing: unknown.length, done: false, resolve, reject };
      this.#requests++;
      request.timer = setTimeout(() => {
        this.#finish(
          request,
          new ScreeningRefused("timeout", `Cannot screen patterns within ${options.deadlineMs} ms`),
        );
      }, options.deadlineMs);
      for (let i = 0; i < unknown.length; i += this.#batchSize) {
        this.#queue.push({ id: this.#nextId++, sources: unknown.slice(i, i + this.#batchSize), request });
      }
      this.#pump();
    });
  }

  /** Ends the worker and refuses every waiting request. */
  close(): void {
    this.#closed = true;
    for (const batch of [...this.#queue, ...(this.#running === undefined ? [] : [this.#running])]) {
      this.#finish(batch.request, new ScreeningRefused("closed", "Cannot screen patterns: shutting down"));
    }
    this.#stopWorker();
  }

  #finish(request: Request, error?: ScreeningRefused): void {
    if (request.done) return;
    request.done = true;
    this.#requests--;
    clearTimeout(request.timer);
    this.#queue = this.#queue.filter((batch) => batch.request !== request);
    if (error === undefined) request.resolve(request.verdicts);
    else {
      request.reject(error);
      // A batch still running for a refused request may be stuck: start afresh rather than wait for it.
      if (this.#running?.request === request) this.#stopWorker();
    }
    this.#pump();
  }

  #pump(): void {
    if (this.#running !== undefined || this.#closed) return;
    const batch = this.#queue.shift();
    if (batch === undefined) {
      if (this.#worker !== undefined && this.#idle === undefined) {
        const idle = setTimeout(() => this.#stopWorker(), this.#idleMs);
        Deno.unrefTimer(idle);
        this.#idle = idle;
      }
      return;
    }
    clearTimeout(this.#idle);
    this.#idle = undefined;
    this.#running = batch;
    const worker = this.#start();
    if (worker === undefined) {
      // No worker can run here: screen in this thread rather than never (slower admissions, same verdicts), with the
      // analysis loaded here only now (a literal specifier, so `deno compile` bundles it).
      void import("../rules/pattern_analysis.ts").then(() =>
        this.#receive({ id: batch.id, verdicts: batch.sources.map((source) => screenPattern(source)) })
      );
      return;
    }
    const message: ScreenBatch = { id: batch.id, sources: batch.sources };
    worker.postMessage(message);
  }

  /** Whether screening fell back to this thread because no worker could start (e.g. its module is missing). */
  get inline(): boolean {
    return this.#inline;
  }

  #start(): Worker | undefined {
    if (this.#worker !== undefined || this.#inline) return this.#worker;
    let worker: Worker;
    try {
      worker = new Worker(this.#workerUrl, { type: "module" });
    } catch {
      this.#inline = true;
      return undefined;
    }
    worker.onmessage = (event: MessageEvent<ScreenedBatch>) => this.#receive(event.data);
    worker.onerror = (event) => {
      event.preventDefault();
      const running = this.#running;
      // A worker that never answered could not start at all: from now on screen in this thread.
      if (!this.#answered) this.#inline = true;
      this.#stopWorker();
      if (running !== undefined && !this.#inline) {
        this.#finish(running.request, new ScreeningRefused("timeout", `Cannot screen patterns: ${event.message}`));
      }
    };
    this.#worker = worker;
    return worker;
  }

  #receive(result: ScreenedBatch): void {
    this.#answered = true;
    const batch = this.#running;
    if (batch === undefined || batch.id !== result.id) return;
    this.#running = undefined;
    batch.sources.forEach((source, index) => {
      const verdict = result.verdicts[index];
      if (verdict === undefined) return;
      rememberVerdict(source, verdict);
      batch.request.verdicts.set(source, verdict);
    });
    batch.request.missing -= batch.sources.length;
    if (batch.request.missing <= 0) this.#finish(batch.request);
    else this.#pump();
  }

  #stopWorker(): void {
    clearTimeout(this.#idle);
    this.#idle = undefined;
    this.#worker?.terminate();
    this.#worker = undefined;
    const running = this.#running;
    this.#running = undefined;
    // A batch of a request still waiting goes back to the front of the queue, for the next worker.
    if (running !== undefined && !running.request.done) this.#queue.unshift(running);
    if (!this.#closed && this.#queue.length > 0) this.#pump();
  }
}
