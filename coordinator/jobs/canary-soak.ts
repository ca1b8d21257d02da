/**
 * --canary-soak D: after the canary batch the job waits D, then sends the bundle's VERIFY
 * command (units and verify probes, as a verify job does) to each canary node; all pass → the
 * job goes on by itself, a failing node is recorded failed in the job and the job's
 * --max-failures rule decides whether it stops. The moment the soak ends is written in the job
 * record once (canarySoakUntil), so a new leader waits for the same moment, and the verify's
 * command id is stable (`<job>/<node>/soak`), so a re-sent one is answered from the agent's memory.
 */
import { Halted } from './command-dispatch';
import type { Clock } from '../../shared';
import type { CommandOutcome } from './job-outcome';

/** The command id of a canary node's soak verify. */
export function soakCommandId(jobId: string, nodeId: string): string {
  return `${jobId}/${nodeId}/soak`;
}

/** Why the canary node failed its soak verify; undefined: it passed. Pure. */
export function soakFailure(r: CommandOutcome): string | undefined {
  if (r.outcome === 'succeeded') return undefined;
  return `canary soak: ${r.error || `verify ${r.outcome}`}`;
}

/** The end of the soak: the one recorded, or now + soakMs. */
export function soakUntil(recorded: string | undefined, nowMs: number, soakMs: number): string {
  return recorded && Number.isFinite(Date.parse(recorded)) ? recorded : new Date(nowMs + soakMs).toISOString();
}

/**
 * Waits until `untilIso` on the clock. Resolves early when `cancel` aborts; rejects with Halted
 * when `halted` does (leadership lost: the next leader waits for the rest).
 */
export function waitUntil(clock: Clock, untilIso: string, cancel: AbortSignal, halted: AbortSignal): Promise<void> {
  const ms = Math.max(0, Date.parse(untilIso) - clock.now());
  return new Promise<void>((resolve, reject) => {
    if (halted.aborted) { reject(new Halted('leadership lost or runner stopped')); return; }
    if (cancel.aborted) { resolve(); return; }
    const done = (): void => {
      timer.cancel();
      cancel.removeEventListener('abort', onCancel);
      halted.removeEventListener('abort', onHalt);
    };
    const onCancel = (): void => { done(); resolve(); };
    const onHalt = (): void => { done(); reject(new Halted('leadership lost or runner stopped')); };
    const timer = clock.setTimeout(() => { done(); resolve(); }, ms);
    cancel.addEventListener('abort', onCancel, { once: true });
    halted.addEventListener('abort', onHalt, { once: true });
  });
}
