// What every rule source is to the server: started, stopped, and its status for /readyz, read from the store.

import type { Problem } from "../rules/problem.ts";
import type { RuleStore, SourceStatus } from "./store.ts";

/** A source of rule objects (files, the cluster) feeding the store; `server/app.ts` drives them all in one loop. */
export interface RuleSource {
  /** Name in the store, metrics and logs. */
  readonly name: string;
  /**
   * Starts reading. Resolves with the problems of a first load the source makes before serving (files); a source
   * that loads in the background (the cluster) resolves at once with none, and readiness follows its first load.
   */
  start(): Promise<readonly Problem[]>;
  /** Stops watching and polling; resolves when every connection and timer is gone. Safe to call twice. */
  stop(): Promise<void>;
  /** This source's line of /readyz. */
  status(): SourceStatus;
}

/** The store's status line of source `name` (a source registered but never loaded reads as not loaded). */
export function statusOf(store: RuleStore, name: string): SourceStatus {
  return store.status().find((status) => status.name === name) ?? { name, loaded: false, objects: 0, rules: 0 };
}
