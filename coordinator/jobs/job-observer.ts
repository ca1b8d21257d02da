/**
 * What the job runner tells whoever measures it (coordinator/metrics.ts): a narrow interface,
 * so the runner does not know about Prometheus and a test can count what it reports.
 */
import type { JobKind, JobNodeState, JobState } from './job-record';

export interface JobObserver {
  /** A job reached a final state on this leader; `seconds` from its start (or creation) to its end. */
  jobFinished(kind: JobKind, state: JobState, seconds: number): void;
  /** One node's part of a job ended; `seconds` from its command's first send to its end. */
  nodeFinished(kind: JobKind, state: JobNodeState, seconds: number): void;
  /** A command was sent to an agent and is awaited (paired with commandSettled). */
  commandStarted(): void;
  commandSettled(): void;
}

/** Seconds between two RFC 3339 times; undefined when either is missing or unreadable. */
export function secondsBetween(from: string | undefined, to: string | undefined): number | undefined {
  if (!from || !to) return undefined;
  const ms = Date.parse(to) - Date.parse(from);
  return Number.isFinite(ms) && ms >= 0 ? ms / 1000 : undefined;
}
