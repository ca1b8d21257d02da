/**
 * The states of a lifecycle job, defined once: the coordinator's job state machine
 * (coordinator/jobs/job-record.ts, JOB_TRANSITIONS) is written over them, and clusterctl reads
 * them too (the dashboard's feed tells the page which jobs are still active), so a new state is
 * added here and nowhere else.
 */
export const JOB_STATES = ['Pending', 'Running', 'Succeeded', 'Failed', 'Cancelling', 'Cancelled', 'Pausing', 'Paused', 'RollingBack', 'RolledBack'] as const;
export type JobState = (typeof JOB_STATES)[number];
export function isJobState(s: string): s is JobState {
  return (JOB_STATES as readonly string[]).includes(s);
}

/** Unfinished: the job holds its nodes' claims (a Paused one too). */
export function isActive(s: JobState): boolean {
  return s === 'Pending' || s === 'Running' || s === 'Cancelling' || s === 'Pausing' || s === 'Paused' || s === 'RollingBack';
}
