/**
 * The automatic rollback of an upgrade (issue 15 §2), as pure decisions (tested by table in
 * test/jobs/job-rollback.test.ts); job-progress.ts runs them.
 *
 * When an upgrade with `--rollback on-failure` stops at its failure threshold (a node failed
 * its apply or its health gate), the job goes RollingBack and re-applies, node by node and
 * newest first, the bundle version and variables each node had before this job touched it
 * (JobNodeRecord.previous, recorded with the node's first `running` write, so a new leader after
 * a failover rolls back the same thing). That covers every node the job ran on: those it
 * upgraded and those that failed (a failed apply or probe left them on part or all of the new
 * version). Each node goes Upgrading again while its rollback runs, and then back to the state
 * it had before the job (Commissioned or Upgraded) with its previous version applied; a node
 * whose rollback fails is Failed, saying so. The job ends RolledBack when every node went back,
 * Failed otherwise. Every step is an event: `job.rollback` on the job and on each node.
 */
import { FailedPreconditionError, type LifecycleState, type NodeRecord } from '../../shared';
import type { NodeChange } from '../node-store';
import type { CommandOutcome } from './job-outcome';
import type { JobNodeRecord, JobRecord, JobState, PreviousApplied } from './job-record';

/** The job fields the decisions read. */
export type RollbackJob = Pick<JobRecord, 'id' | 'kind' | 'dryRun' | 'rollback' | 'nodeIds' | 'bundle'>;

/** States a rolled-back node returns to as they were; any other goes back to Commissioned. */
const RESTORABLE: readonly LifecycleState[] = ['Commissioned', 'Upgraded', 'Failed', 'Cancelled'];

/** Whether a job that stopped at its failure threshold rolls back. */
export function rollsBack(job: Pick<JobRecord, 'kind' | 'dryRun' | 'rollback'>, stopped: boolean, cancelled: boolean): boolean {
  return stopped && !cancelled && !job.dryRun && job.kind === 'upgrade' && job.rollback === 'on-failure';
}

/**
 * The nodes to roll back, newest first: every node the job ran on (succeeded or failed), by the
 * time it finished, latest first (a later batch before an earlier one; within a batch, the last
 * to finish first). Nodes whose rollback has ended are left out, so a resumed rollback continues.
 */
export function rollbackOrder(job: Pick<JobRecord, 'nodeIds'>, nodes: ReadonlyMap<string, JobNodeRecord>): string[] {
  return job.nodeIds
    .map((id) => nodes.get(id))
    .filter((n): n is JobNodeRecord => n !== undefined && (n.state === 'succeeded' || n.state === 'failed'))
    .filter((n) => n.rollback === undefined || n.rollback.state === 'running')
    .sort((a, b) => b.batch - a.batch || (b.finishedAt ?? '').localeCompare(a.finishedAt ?? '') || b.nodeId.localeCompare(a.nodeId))
    .map((n) => n.nodeId);
}

/** The command id of a node's rollback: stable, so a resumed job re-sends the SAME id. */
export function rollbackCommandId(jobId: string, nodeId: string): string {
  return `${jobId}/${nodeId}/rollback`;
}

/** Why a node cannot be rolled back (undefined: it can). */
export function rollbackRefusal(previous: PreviousApplied | undefined): string | undefined {
  if (!previous) return 'its state before the job was not recorded';
  if (!previous.bundle) return 'it had no bundle applied before the job';
  return undefined;
}

/** The node going back under the job's claim (Upgrading) as its rollback starts. */
export function rollbackStartChange(job: RollbackJob, cur: NodeRecord | undefined, nodeId: string, bundle: string): NodeChange | undefined {
  if (!cur) throw new FailedPreconditionError(`node ${nodeId} no longer exists`);
  if (cur.currentJob !== undefined && cur.currentJob !== job.id) {
    throw new FailedPreconditionError(`node ${nodeId} is in job ${cur.currentJob} now; not rolled back`);
  }
  if (cur.state === 'Upgrading' && cur.currentJob === job.id) return undefined;
  return {
    next: { ...cur, state: 'Upgrading', currentJob: job.id },
    event: { type: 'job.rollback', jobId: job.id, message: `rollback to ${bundle} started by job ${job.id}` },
  };
}

/**
 * The node record once its rollback ended: on success the state it had before the job and
 * its previous version applied (desired too: the job's version is what failed); on failure
 * Failed with the reason. The claim is released either way.
 */
export function rolledBackNodeChange(job: RollbackJob, cur: NodeRecord | undefined, previous: PreviousApplied, r: CommandOutcome, reason: string): NodeChange | undefined {
  // Only a node this rollback claimed (rollbackStartChange) is changed.
  if (!cur || cur.currentJob !== job.id) return undefined;
  const { currentJob: _c, ...rest } = cur;
  const next: NodeRecord = { ...rest };
  const bundle = previous.bundle ?? '';
  let message: string;
  if (r.outcome === 'succeeded') {
    if (cur.state === 'Upgrading') next.state = RESTORABLE.includes(previous.state) ? previous.state : 'Commissioned';
    next.appliedConfig = bundle;
    next.desiredConfig = bundle;
    if (r.appliedDigest) next.appliedDigest = r.appliedDigest;
    if (previous.inputs) next.appliedInputs = previous.inputs;
    else delete next.appliedInputs;
    next.lastError = `upgrade to ${job.bundle ?? '?'} rolled back to ${bundle} by job ${job.id}: ${reason}`;
    message = `rolled back to ${bundle} by job ${job.id}`;
  } else {
    if (cur.state === 'Upgrading') next.state = 'Failed';
    next.lastError = `rollback to ${bundle} failed (job ${job.id}): ${r.error || `command ${r.outcome}`}`;
    message = next.lastError;
  }
  return { next, event: { type: 'job.rollback', jobId: job.id, message } };
}

/** The job's end after a rollback: RolledBack when every node went back, Failed otherwise. */
export function rollbackEnd(job: Pick<JobRecord, 'nodeIds'>, nodes: ReadonlyMap<string, JobNodeRecord>, stopReason: string): { state: JobState; message: string } {
  const tried = job.nodeIds.map((id) => nodes.get(id)).filter((n): n is JobNodeRecord => n?.rollback !== undefined);
  const failed = tried.filter((n) => n.rollback?.state !== 'succeeded');
  const back = tried.length - failed.length;
  if (failed.length === 0) {
    return { state: 'RolledBack', message: `${stopReason}; rolled back ${back} node(s) to their previous version` };
  }
  return {
    state: 'Failed',
    message: `${stopReason}; rollback failed on ${failed.map((n) => n.nodeId).join(', ')} (${back} of ${tried.length} node(s) rolled back)`,
  };
}
