// The screening worker's entry point: screens batches of patterns off the thread that answers admissions.

import { type PatternVerdict, screenPattern } from "../rules/pattern.ts";
import "../rules/pattern_analysis.ts";

/** A batch to screen. */
export interface ScreenBatch {
  readonly id: number;
  readonly sources: readonly string[];
}

/** The verdicts of a batch, in its order. */
export interface ScreenedBatch {
  readonly id: number;
  readonly verdicts: readonly PatternVerdict[];
}

const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent<ScreenBatch>) => void) | null;
  postMessage(message: ScreenedBatch): void;
};

scope.onmessage = (event) => {
  const { id, sources } = event.data;
  scope.postMessage({ id, verdicts: sources.map((source) => screenPattern(source)) });
};
