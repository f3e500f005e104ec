// Waiting in tests without fixed sleeps: poll a condition, or wait for a count to settle, each bounded in time.

/** Polls `probe` every `everyMs` until it returns a value (not undefined or false); fails after `timeoutMs`. */
export async function until<T>(
  what: string,
  probe: () => T | undefined | false,
  timeoutMs = 3000,
  everyMs = 10,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined && value !== false) return value;
    if (performance.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(everyMs);
  }
}

/** Waits until `count` has not changed for `quietMs` (bounded by `timeoutMs`); returns the settled value. */
export async function settled(what: string, count: () => number, quietMs = 400, timeoutMs = 4000): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  let value = count();
  let since = performance.now();
  for (;;) {
    await delay(20);
    const now = count();
    if (now !== value) {
      value = now;
      since = performance.now();
    } else if (performance.now() - since >= quietMs) return value;
    if (performance.now() > deadline) throw new Error(`${what} kept changing for ${timeoutMs} ms`);
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
