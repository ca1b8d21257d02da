/**
 * The one retry policy, built on cockatiel (already the etcd client's policy library, see
 * etcd.ts). Two uses:
 * - `retryPolicy`: re-run a call while it fails with an error whose `retryable` marker is set
 *   (errors.ts: ConflictError, UnavailableError, DeadlineExceededError, NotLeaderError);
 * - `retryOnConflict`: a compare-and-swap loop. The body returns `CAS_LOST` when etcd refused
 *   its guarded write, and is run again (it re-reads and decides again on the fresh state);
 *   what it throws is never retried, so a refusal or a lost leader fence ends the loop at once.
 */
import { ConstantBackoff, handleWhen, handleWhenResult, retry, type IBackoffFactory, type IRetryBackoffContext, type RetryPolicy } from 'cockatiel';
import { ClusterError, type ConflictError } from './errors';

/** Whether a retry policy may try the same call again: the error's own marker. */
export function isRetryable(err: unknown): boolean {
  return err instanceof ClusterError && err.retryable;
}

export interface RetryOptions {
  /** Runs in all, the first included (at least 1). */
  attempts: number;
  /** Delay between runs (default: none). */
  backoff?: IBackoffFactory<IRetryBackoffContext<unknown>>;
}

function maxRetries(attempts: number): number {
  if (!Number.isSafeInteger(attempts) || attempts < 1) throw new RangeError(`retry attempts must be a positive integer, not ${attempts}`);
  return attempts - 1; // cockatiel counts the retries after the first run
}

/** Re-runs a call while it throws a retryable error, `attempts` runs at most; then the last error. */
export function retryPolicy(options: RetryOptions): RetryPolicy {
  return retry(handleWhen(isRetryable), { maxAttempts: maxRetries(options.attempts), backoff: options.backoff ?? new ConstantBackoff(0) });
}

/** What a compare-and-swap body returns when its guarded write lost to a concurrent change. */
export const CAS_LOST: unique symbol = Symbol('cas-lost');

/**
 * Runs `body` (given the 0-based attempt) until it returns something other than `CAS_LOST`,
 * `attempts` runs at most; after the last lost run throws `exhausted()`.
 */
export async function retryOnConflict<T>(
  attempts: number,
  body: (attempt: number) => Promise<T | typeof CAS_LOST>,
  exhausted: () => ConflictError,
): Promise<T> {
  const policy = retry(handleWhenResult((r) => r === CAS_LOST), { maxAttempts: maxRetries(attempts), backoff: new ConstantBackoff(0) });
  const result = await policy.execute(({ attempt }) => body(attempt));
  if (result === CAS_LOST) throw exhausted();
  return result;
}
