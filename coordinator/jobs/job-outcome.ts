/**
 * What a job kind does to a node, as pure functions (tested by a table in
 * test/jobs/job-outcome.test.ts):
 *
 *  - the lifecycle state a kind moves its nodes into while working, and after success
 *    (verify, repair, exec: none — they keep the state);
 *  - the command kind sent to the agent;
 *  - the node-outcome decision: given how the command ended (result, timeout, cancel, reboot or
 *    an agent that stayed away — the last two arrive as a failed outcome naming the cause),
 *    the node's job record and the change to its node record.
 */
import { FailedPreconditionError, type LifecycleState, type NodeRecord } from '../../shared';
import type { CommandKind } from '../../generated/cluster/v1/CommandKind';
import type { CommandResult__Output } from '../../generated/cluster/v1/CommandResult';
import type { NodeChange } from '../node-store';
import { completedVerification, decodeCommandReport, type CommandReport } from '../../shared/command-report';
import { errorMessage } from '../../shared/errors';
import type { RenderInputs } from '../../shared/render-inputs';
import { boundOutput, type JobKind, type JobNodeRecord, type JobNodeUnit, type JobRecord } from './job-record';

export const CANCELLED_BY_OPERATOR = 'cancelled by operator';

/** The lifecycle state a job kind moves its nodes into while working (verify/repair/exec: none). */
export const WORKING_STATE: Readonly<Record<JobKind, LifecycleState | undefined>> = {
  commission: 'Commissioning',
  upgrade: 'Upgrading',
  decommission: 'Decommissioning',
  verify: undefined,
  repair: undefined,
  exec: undefined,
};

/** Lifecycle state after a successful job (verify/repair/exec: unchanged). */
export const DONE_STATE: Readonly<Record<JobKind, LifecycleState | undefined>> = {
  commission: 'Commissioned',
  upgrade: 'Upgraded',
  decommission: 'Decommissioned',
  verify: undefined,
  repair: undefined,
  exec: undefined,
};

export function commandKindFor(kind: JobKind, dryRun: boolean): CommandKind {
  if (dryRun) return 'COMMAND_KIND_PLAN';
  switch (kind) {
    case 'commission': case 'upgrade': case 'repair': return 'COMMAND_KIND_APPLY';
    case 'decommission': return 'COMMAND_KIND_REMOVE';
    case 'verify': return 'COMMAND_KIND_VERIFY';
    case 'exec': return 'COMMAND_KIND_EXEC';
  }
}

/** How one node's command ended: the agent's result, or one the runner made up (timeout, cancel, reboot, unreachable). */
export type CommandOutcome = Pick<CommandResult__Output, 'outcome' | 'error' | 'report' | 'appliedDigest' | 'output'> & { exitCode?: number };

/** An outcome the runner decided without a result from the agent. */
export function failedOutcome(outcome: CommandResult__Output['outcome'], error: string, output = ''): CommandOutcome {
  return { outcome, error, report: null, appliedDigest: '', output };
}

/** The job fields the decision reads. */
export type OutcomeJob = Pick<JobRecord, 'id' | 'kind' | 'dryRun' | 'group'>;

/** The state a job moves its nodes into while it works on them (none for a dry run). */
export function workingState(job: Pick<JobRecord, 'kind' | 'dryRun'>): LifecycleState | undefined {
  return job.dryRun ? undefined : WORKING_STATE[job.kind];
}

/** The node moving into its working state as the job starts on it (undefined: already there, or the kind has none). */
export function startedNodeChange(job: OutcomeJob, cur: NodeRecord | undefined, nodeId: string): NodeChange | undefined {
  const working = workingState(job);
  if (!working) return undefined;
  if (!cur) throw new FailedPreconditionError(`node ${nodeId} no longer exists`);
  if (cur.state === working) return undefined;
  return { next: { ...cur, state: working, currentJob: job.id }, event: { type: 'node.state', jobId: job.id, message: `${job.kind} started by job ${job.id}` } };
}

export interface NodeOutcome {
  ok: boolean;
  /** The operator's cancel was confirmed (or assumed): not a failure of the node. */
  cancelled: boolean;
  error?: string;
  /** The final fields of the node's job record (state, error, plan, drift, exitCode). */
  record: Pick<JobNodeRecord, 'state' | 'error' | 'plan' | 'drift' | 'exitCode'>;
  /** The result's report, decoded (undefined when there was none or it was malformed). */
  report?: CommandReport;
}

/** The agent's report checked as it comes off the wire; a malformed one fails the node, saying why. */
function checkedReport(wire: CommandReport | null | undefined): { report?: CommandReport; problem?: string } {
  if (!wire) return {};
  try {
    return { report: decodeCommandReport(wire) };
  } catch (err) {
    return { problem: `the agent's command report is malformed: ${errorMessage(err)}` };
  }
}

/** How the node's part of the job ended, from the command's outcome and whether the operator cancelled. */
export function decideNodeOutcome(job: OutcomeJob, r: CommandOutcome, cancelRequested: boolean): NodeOutcome {
  const cancelled = r.outcome === 'cancelled' && cancelRequested;
  const { report, problem } = checkedReport(r.report);
  const verification = job.kind === 'verify' && !job.dryRun ? completedVerification(report) : undefined;
  // A verification that ran is a success whatever it found: drift is its result, recorded in
  // the record's drift (and turned into exit code 2 by clusterctl), not a failure that would
  // count against --max-failures. Only a check that could not run fails the node.
  const ok = !problem && (r.outcome === 'succeeded' || verification !== undefined);
  const error = ok ? undefined : problem ?? (cancelled ? CANCELLED_BY_OPERATOR : r.error || `command ${r.outcome}`);
  return {
    ok, cancelled, ...(error ? { error } : {}), ...(report ? { report } : {}),
    record: {
      state: ok ? 'succeeded' : cancelled ? 'cancelled' : 'failed',
      ...(error ? { error } : {}),
      ...(job.dryRun && report ? { plan: report } : {}),
      ...(verification?.drifted && report ? { drift: report } : {}),
      ...(job.kind === 'exec' && r.exitCode !== undefined && r.outcome !== 'timed_out' && r.outcome !== 'cancelled' ? { exitCode: r.exitCode } : {}),
    },
  };
}

/**
 * The per-unit list of a finished command: what the live progress showed, with every unit the
 * result's report names in its final state (appended when progress never named it). Progress is
 * live output only: the agent drops it while no stream is open and re-sends only the result, so
 * a command that ran through a reconnect left units "running", or missing, in the record.
 * A plan's units read "planned" (as its progress says); a verify's report names only what drifted.
 */
export function unitsWithReport(live: readonly JobNodeUnit[], report: CommandReport | undefined): JobNodeUnit[] {
  if (!report || report.units.length === 0) return [...live];
  const final = new Map<string, JobNodeUnit>();
  // A second unit of one id (a verify's leftover of an earlier version named like a current
  // unit) is listed on its own, after the rest, instead of overwriting the first.
  const more: JobNodeUnit[] = [];
  for (const u of report.units) {
    const status = report.mode === 'plan' && u.state !== 'running' && u.state !== 'failed' ? 'planned' : u.state;
    const unit = { unitId: u.unitId, status, message: u.summary || u.error };
    if (final.has(u.unitId)) more.push(unit); else final.set(u.unitId, unit);
  }
  const out = live.map((u) => {
    const f = final.get(u.unitId);
    if (!f) return u;
    final.delete(u.unitId);
    return { ...f, message: f.message || u.message };
  });
  return [...out, ...final.values(), ...more];
}

/** The node's job record once its command ended (output: the result's, else what progress gathered; units: unitsWithReport). */
export function finishedJobNode(current: JobNodeRecord, d: NodeOutcome, r: CommandOutcome, finishedAt: string): JobNodeRecord {
  const output = r.output ? boundOutput(r.output) : current.output;
  return { ...current, ...d.record, units: unitsWithReport(current.units, d.report), finishedAt, ...(output ? { output } : {}) };
}

/** Kinds whose success leaves the node applied (and so verified) on the boot the command ran on. */
const APPLY_KINDS: ReadonlySet<JobKind> = new Set<JobKind>(['commission', 'upgrade', 'repair']);

/**
 * The node record once the job is done with it: the claim released, and the lifecycle state,
 * applied config, group and lastError the outcome implies. Undefined: nothing to write.
 */
export function finishedNodeChange(job: OutcomeJob, d: NodeOutcome, r: CommandOutcome, bundleRef: string | undefined, cur: NodeRecord | undefined, inputs?: RenderInputs, ranOnBoot?: string): NodeChange | undefined {
  if (!cur) return undefined;
  const { ok, error } = d;
  const { currentJob: _c, ...rest } = cur;
  const next: NodeRecord = { ...rest };
  if (cur.currentJob !== undefined && cur.currentJob !== job.id) next.currentJob = cur.currentJob;
  if (job.kind === 'exec') {
    // exec moves no lifecycle state and leaves lastError alone: its result is the job's.
    if (cur.currentJob !== job.id) return undefined;
    return { next, event: { type: 'job.node', jobId: job.id, message: `exec ${ok ? 'succeeded' : `failed: ${error ?? ''}`}` } };
  }
  const working = workingState(job);
  const done = DONE_STATE[job.kind];
  let message: string;
  if (job.dryRun) {
    message = `dry run ${ok ? 'planned' : `failed: ${error ?? ''}`}`;
  } else if (ok) {
    if (working && done && cur.state === working) next.state = done;
    if (job.kind === 'commission' && job.group) next.group = job.group;
    if (job.kind === 'decommission') {
      delete next.appliedConfig; delete next.appliedDigest; delete next.desiredConfig; delete next.appliedInputs;
    } else if (job.kind !== 'verify' && bundleRef) {
      next.appliedConfig = bundleRef;
      next.desiredConfig = bundleRef;
      if (r.appliedDigest) next.appliedDigest = r.appliedDigest;
      // What this apply rendered with: drift is judged against it, out of date from it.
      if (inputs) next.appliedInputs = inputs;
      else delete next.appliedInputs;
    }
    delete next.lastError;
    // An apply that succeeded made the machine match what it applied (and decommission removed
    // it): a drift finding from before no longer holds. Verify records its own finding.
    if (job.kind !== 'verify') delete next.driftSummary;
    message = `${job.kind} succeeded`;
    // The apply ran on the boot the node is on now: the node is verified for that boot, in this
    // same write. Otherwise the drift watcher would write it as a baseline afterwards (or start a
    // verify job for a rebooted node): one more commit, event and read per node, which in a
    // fan-out to 10,000 nodes is 10,000 more. A node whose boot changed since the command was
    // sent keeps its old verified boot, and the drift watcher reverifies it as before.
    if (APPLY_KINDS.has(job.kind) && ranOnBoot !== undefined && cur.bootId === ranOnBoot && next.verifiedBootId !== ranOnBoot) {
      next.verifiedBootId = ranOnBoot;
      message = `${message}; verified on boot ${ranOnBoot}`;
    }
  } else {
    // The operator's cancel is not the node's failure: the node says it was cancelled, and
    // from Cancelled (as from Failed) it can be commissioned again, upgraded or decommissioned.
    if (working && cur.state === working) next.state = d.cancelled ? 'Cancelled' : 'Failed';
    // A failed or cancelled commission may have applied part of the group's bundle: keep the
    // group so the node can still be decommissioned (or upgraded) with that bundle (no dead end).
    if (job.kind === 'commission' && job.group && !next.group) next.group = job.group;
    next.lastError = d.cancelled ? CANCELLED_BY_OPERATOR : `${job.kind} failed (job ${job.id}): ${error ?? ''}`;
    message = d.cancelled ? `${job.kind} ${CANCELLED_BY_OPERATOR} (job ${job.id})` : next.lastError;
  }
  return { next, event: { type: next.state !== cur.state ? 'node.state' : 'job.node', jobId: job.id, message } };
}
