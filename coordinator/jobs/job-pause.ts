/**
 * Pause and resume of a job, as pure decisions (tested by table in test/jobs/job-pause.test.ts);
 * JobService writes what they return, the runner (job-progress.ts) acts on it between batches.
 *
 * - pause: Running → Pausing (the current batch finishes, then the runner writes Paused before
 *   the next one). A job with one batch, or running its last, has nothing to hold: refused.
 *   Pause of a Pausing or Paused job is an OK no-op (the job is returned unchanged).
 * - resume: Paused | Pausing → Running. Resume of a Pending or Running job is an OK no-op.
 * - both: a finished or Cancelling job is refused with FAILED_PRECONDITION saying why.
 *
 * A Paused job keeps its claim on every node it has not run yet (no other job can take them);
 * nodes it already finished were released as they finished.
 */
import { FailedPreconditionError } from '../../shared';
import { checkJobTransition, isFinished, type JobRecord } from './job-record';

export interface JobChange {
  next: JobRecord;
  type: string;
  message: string;
}

/** How to go on with a Paused job (the message a Paused job carries). */
export function resumeHint(jobId: string): string {
  return `resume it: clusterctl job resume ${jobId} (or cancel it: clusterctl job cancel ${jobId})`;
}

/** The change a pause request makes; undefined: nothing to change (already Pausing or Paused). */
export function pauseChange(j: JobRecord, reason: string): JobChange | undefined {
  if (j.state === 'Pausing' || j.state === 'Paused') return undefined;
  if (isFinished(j.state)) throw new FailedPreconditionError(`job ${j.id} has already finished (${j.state}); nothing to pause`);
  if (j.state === 'Cancelling') throw new FailedPreconditionError(`job ${j.id} is being cancelled; it cannot be paused`);
  if (j.state === 'Pending') throw new FailedPreconditionError(`job ${j.id} has not started yet; pause it once it is Running (or cancel it: clusterctl job cancel ${j.id})`);
  if (j.batches.length < 2) {
    throw new FailedPreconditionError(`job ${j.id} runs all its nodes in one batch; there is no later batch to hold (cancel it instead: clusterctl job cancel ${j.id})`);
  }
  if (j.currentBatch >= j.batches.length - 1) {
    throw new FailedPreconditionError(`job ${j.id} is running its last batch (${j.batches.length} of ${j.batches.length}); there is no later batch to hold`);
  }
  checkJobTransition(j.id, j.state, 'Pausing');
  const why = reason ? `: ${reason}` : '';
  return {
    next: { ...j, state: 'Pausing', message: `pausing after batch ${j.currentBatch + 1} of ${j.batches.length}${why}` },
    type: 'job.pausing', message: `pause requested${why}`,
  };
}

/** The change a resume request makes; undefined: nothing to change (Pending or Running). */
export function resumeChange(j: JobRecord): JobChange | undefined {
  if (j.state === 'Pending' || j.state === 'Running') return undefined;
  if (isFinished(j.state)) throw new FailedPreconditionError(`job ${j.id} has already finished (${j.state}); nothing to resume`);
  if (j.state === 'Cancelling') throw new FailedPreconditionError(`job ${j.id} is being cancelled; it cannot be resumed`);
  checkJobTransition(j.id, j.state, 'Running');
  const batch = Math.min(j.currentBatch + 1, j.batches.length);
  return {
    next: { ...j, state: 'Running', message: j.state === 'Pausing' ? `running batch ${batch} of ${j.batches.length} (pause withdrawn)` : `resumed: running batch ${batch} of ${j.batches.length}` },
    type: 'job.resumed', message: j.state === 'Pausing' ? 'pause withdrawn before the batch ended' : `resumed at batch ${batch} of ${j.batches.length}`,
  };
}
