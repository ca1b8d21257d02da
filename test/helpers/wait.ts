import { expect } from 'chai';

/** Polls `probe` until it returns a value that is not undefined/false, or fails with `what`. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  options: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 15_000;
  const intervalMs = options.intervalMs ?? 100;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Asserts that `promise` rejects, and returns the error for further checks. */
export async function expectReject(promise: Promise<unknown>, match?: RegExp): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    if (match) expect(e.message).to.match(match);
    return e;
  }
  throw new Error('expected the promise to reject, but it resolved');
}

export function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
