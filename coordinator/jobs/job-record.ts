/**
 * The job records stored in etcd (jobs/<jobId>, jobs/<jobId>/nodes/<nodeId>), their strict
 * decoders, the job state machine (pure, tested by table), job ids sortable by time, and the
 * bounded output kept per node (head + tail, Contiv #103/#113: output of every job is kept,
 * but a chatty command must not blow etcd's 1.5 MiB request limit).
 */
import { randomBytes } from 'node:crypto';
import { errorMessage, FailedPreconditionError, InvalidArgumentError } from '../../shared';
import { decodeCommandReport, type CommandReport } from '../../shared/command-report';
import { parseRecordObject } from '../../shared/records';
import type { HealthGate, RollbackPolicy } from '../../shared/health-gate';
import type { LifecycleState } from '../../shared/lifecycle';
import type { RenderInputs } from '../../shared/render-inputs';
import { isActive, isJobState, type JobState } from '../../shared/job-states';

export const JOB_KINDS = ['commission', 'upgrade', 'decommission', 'verify', 'repair', 'exec'] as const;
export type JobKind = (typeof JOB_KINDS)[number];
export function isJobKind(s: string): s is JobKind {
  return (JOB_KINDS as readonly string[]).includes(s);
}

export { JOB_STATES, isActive, isJobState, type JobState } from '../../shared/job-states';

/**
 * Job moves: a job is cancellable in every unfinished state (Contiv #62, #63).
 *
 * Pause (`clusterctl job pause`): Running → Pausing while the current batch finishes, then
 * Paused before the next one; a canary job goes Running → Paused by itself after its canary
 * batch. Resume: Paused | Pausing → Running. A Pausing job whose batch was its last simply
 * ends (Succeeded/Failed); a Paused job is cancelled through Cancelling like a running one.
 *
 * Rollback: an upgrade that stopped at its failure threshold with `--rollback on-failure`
 * (from Running, or Pausing when the failing batch was the one it waited for) goes RollingBack
 * (re-applying the previous version, job-rollback.ts) and ends RolledBack, or Failed when a
 * node could not be rolled back.
 */
export const JOB_TRANSITIONS: Readonly<Record<JobState, readonly JobState[]>> = {
  Pending: ['Running', 'Cancelling', 'Failed', 'Cancelled'],
  Running: ['Succeeded', 'Failed', 'Cancelling', 'Pausing', 'Paused', 'RollingBack'],
  Pausing: ['Paused', 'Running', 'Succeeded', 'Failed', 'Cancelling', 'RollingBack'],
  Paused: ['Running', 'Cancelling'],
  RollingBack: ['RolledBack', 'Failed', 'Cancelling'],
  Cancelling: ['Cancelled'],
  Succeeded: [],
  Failed: [],
  Cancelled: [],
  RolledBack: [],
};

export function isFinished(s: JobState): boolean {
  return JOB_TRANSITIONS[s].length === 0;
}

/** States the runner works on: a Paused job waits for its resume or cancel, not for the runner. */
export function isRunnable(s: JobState): boolean {
  return isActive(s) && s !== 'Paused';
}

export function checkJobTransition(jobId: string, from: JobState, to: JobState): void {
  if (JOB_TRANSITIONS[from].includes(to)) return;
  throw new FailedPreconditionError(
    `job ${jobId} is ${from}; it cannot become ${to}` + (isFinished(from) ? ' (it has finished)' : ` (from ${from}: ${JOB_TRANSITIONS[from].join(', ')})`),
  );
}

export const JOB_NODE_STATES = ['pending', 'running', 'succeeded', 'failed', 'cancelled', 'skipped'] as const;
export type JobNodeState = (typeof JOB_NODE_STATES)[number];
export function isNodeDone(s: JobNodeState): boolean {
  return s !== 'pending' && s !== 'running';
}

export interface JobTargets {
  nodeIds?: string[];
  labelSelector?: string;
  factSelector?: string;
  group?: string;
}

export interface JobRecord {
  id: string;
  kind: JobKind;
  state: JobState;
  /** As asked (for the record); `nodeIds` is what they resolved to, once, sorted. */
  targets: JobTargets;
  nodeIds: string[];
  /** The group (commission -g: the group the nodes join). */
  group?: string;
  /** "name@version" of the bundle the job applies (decommission/verify: per node, see JobNodeRecord.bundle). */
  bundle?: string;
  /** Globals < group variables < extra vars (job-starter.ts); commandVariables puts them over the bundle's. */
  variables: Record<string, string>;
  /**
   * The job's own extra vars (-e), also inside `variables`. Verify, repair and decommission
   * render with each node's applied variables with these over them (job-progress.ts).
   */
  extraVars?: Record<string, string>;
  strategy: 'all-at-once' | 'rolling';
  batch: string;
  maxFailures: number;
  dryRun: boolean;
  force: boolean;
  batches: string[][];
  currentBatch: number;
  message: string;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  requestedBy: string;
  /** False while StartJob is still claiming nodes: the runner leaves the job alone. */
  claimed: boolean;
  /** Kind exec: the command each node runs, and its timeout on the agent (ms). */
  exec?: { argv: string[]; timeoutMs: number };
  /** Verify: the nodes whose verification found drift, recorded when the job ends. */
  drifted?: string[];
  /**
   * --canary N: batches[0] holds the first N nodes; after it the job pauses for `job resume`,
   * or with canarySoakMs waits that long and re-runs the bundle's verify probes on them
   * (canary-soak.ts).
   */
  canary?: number;
  canarySoakMs?: number;
  /** When the canary soak ends (written once, so a new leader waits for the same moment). */
  canarySoakUntil?: string;
  /** Commission/upgrade: the probes each node must keep passing after its apply (shared/health-gate.ts). */
  health?: HealthGate;
  /** Upgrade: what happens when the job stops at its failure threshold (absent: never). */
  rollback?: RollbackPolicy;
  /** Why the job rolls back (its stop reason), kept for a new leader that resumes the rollback. */
  rollbackReason?: string;
}

export interface JobNodeUnit {
  unitId: string;
  status: string;
  message: string;
}

export interface JobNodeRecord {
  nodeId: string;
  state: JobNodeState;
  batch: number;
  commandId?: string;
  attempt: number;
  /** "name@version" sent to this node. */
  bundle?: string;
  startedAt?: string;
  finishedAt?: string;
  error?: string;
  output?: string;
  units: JobNodeUnit[];
  /** Dry run: the agent's PLAN report. */
  plan?: CommandReport;
  /** Verify: the agent's VERIFY report when it found drift. */
  drift?: CommandReport;
  /** Kind exec: the command's exit code as the agent reported it (-1: killed, timed out). */
  exitCode?: number;
  /**
   * Boot id of the agent the command was first sent to. An agent that comes back with another
   * one rebooted mid-command: its command is failed, never sent again (Contiv #158).
   */
  bootId?: string;
  /**
   * Upgrade: the node as it was before this job touched it, recorded with the node's first
   * `running` write, so a rollback (also by a later leader) re-applies exactly that.
   */
  previous?: PreviousApplied;
  /** The rollback of this node, once the job rolls back. */
  rollback?: NodeRollback;
}

export interface PreviousApplied {
  state: LifecycleState;
  /** "name@version" it had applied (absent: nothing, nothing to go back to). */
  bundle?: string;
  /** The inputs it rendered with (absent for an apply recorded before inputs were). */
  inputs?: RenderInputs;
}

export interface NodeRollback {
  state: 'running' | 'succeeded' | 'failed';
  /** Stable per node, so a new leader re-sends the SAME command (the agent answers from memory). */
  commandId: string;
  bundle: string;
  startedAt: string;
  finishedAt?: string;
  error?: string;
}

/**
 * The one merge of a bundle command's template variables, lowest first: the bundle's defaults
 * < the cluster globals < the group's variables < the job's extra vars (`clusterctl ... -e`).
 * The job starter merges the last three into JobRecord.variables; this puts them over the
 * bundle's. The agent renders with exactly this set (Command.variables).
 */
export function commandVariables(bundleDefaults: Readonly<Record<string, string | number | boolean>>, jobVariables: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(bundleDefaults)) out[k] = String(v);
  return { ...out, ...jobVariables };
}

export const OUTPUT_LIMIT = 64 * 1024;

/** Keeps head and tail of `text` within `limit` characters. */
export function boundOutput(text: string, limit = OUTPUT_LIMIT): string {
  if (text.length <= limit) return text;
  const marker = `\n[... ${text.length - limit} characters omitted ...]\n`;
  const half = Math.max(0, Math.floor((limit - marker.length) / 2));
  return text.slice(0, half) + marker + text.slice(text.length - half);
}

/** `j-20250101123045-ab12cd`: lexical order is creation order (to the second). */
export function newJobId(now: Date, random: () => Buffer = () => randomBytes(3)): string {
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  const stamp = `${now.getUTCFullYear()}${p(now.getUTCMonth() + 1)}${p(now.getUTCDate())}${p(now.getUTCHours())}${p(now.getUTCMinutes())}${p(now.getUTCSeconds())}`;
  return `j-${stamp}-${random().toString('hex')}`;
}

const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

export function decodeJob(key: string, text: string): JobRecord {
  const o = parseRecordObject(key, text);
  if (typeof o.id !== 'string') throw new InvalidArgumentError(`etcd value at ${key}: field id must be a string`);
  if (typeof o.kind !== 'string' || !isJobKind(o.kind)) throw new InvalidArgumentError(`etcd value at ${key}: unknown job kind ${JSON.stringify(o.kind)}`);
  if (typeof o.state !== 'string' || !isJobState(o.state)) throw new InvalidArgumentError(`etcd value at ${key}: unknown job state ${JSON.stringify(o.state)}`);
  return {
    ...(o as Partial<JobRecord>),
    id: o.id,
    kind: o.kind,
    state: o.state,
    targets: (o.targets && typeof o.targets === 'object' ? o.targets : {}),
    nodeIds: strings(o.nodeIds),
    variables: (o.variables && typeof o.variables === 'object' ? o.variables : {}) as Record<string, string>,
    strategy: o.strategy === 'rolling' ? 'rolling' : 'all-at-once',
    batch: typeof o.batch === 'string' ? o.batch : '1',
    maxFailures: typeof o.maxFailures === 'number' ? o.maxFailures : 0,
    dryRun: o.dryRun === true,
    force: o.force === true,
    batches: Array.isArray(o.batches) ? o.batches.map(strings) : [],
    currentBatch: typeof o.currentBatch === 'number' ? o.currentBatch : 0,
    message: typeof o.message === 'string' ? o.message : '',
    createdAt: typeof o.createdAt === 'string' ? o.createdAt : '',
    requestedBy: typeof o.requestedBy === 'string' ? o.requestedBy : '',
    claimed: o.claimed !== false,
  };
}

/**
 * A report stored by a coordinator before reports were messages (`planJson`/`driftJson`: the
 * agent's JSON text, a verify's drifted units under `drift`, changes with null sides), in the
 * shape the decoder reads.
 */
function legacyReport(text: string): unknown {
  const r = JSON.parse(text) as Record<string, unknown>;
  if (typeof r !== 'object' || r === null) return r;
  const unit = (u: unknown): unknown => {
    if (typeof u !== 'object' || u === null) return u;
    const { changes, ...rest } = u as Record<string, unknown>;
    return {
      ...rest,
      changes: Array.isArray(changes) ? changes.map((c: unknown) => {
        if (typeof c !== 'object' || c === null) return c;
        const { before, after, ...f } = c as Record<string, unknown>;
        return { ...f, ...(typeof before === 'string' ? { before, hasBefore: true } : {}), ...(typeof after === 'string' ? { after, hasAfter: true } : {}) };
      }) : changes,
    };
  };
  const { drift, units, ...rest } = r;
  const list = Array.isArray(units) ? units : drift;
  return { ...rest, units: Array.isArray(list) ? list.map(unit) : list };
}

/** The reports stored on a job's node record, checked as they are read back. */
function storedReports(key: string, o: Record<string, unknown>): Pick<JobNodeRecord, 'plan' | 'drift'> {
  const out: Pick<JobNodeRecord, 'plan' | 'drift'> = {};
  for (const field of ['plan', 'drift'] as const) {
    const legacy = o[`${field}Json`];
    if ((o[field] === undefined || o[field] === null) && (typeof legacy !== 'string' || legacy === '')) continue;
    try {
      out[field] = decodeCommandReport(o[field] ?? legacyReport(legacy as string), field);
    } catch (err) {
      throw new InvalidArgumentError(`etcd value at ${key}: ${errorMessage(err)}`);
    }
  }
  return out;
}

export function decodeJobNode(key: string, text: string): JobNodeRecord {
  const o = parseRecordObject(key, text);
  if (typeof o.nodeId !== 'string') throw new InvalidArgumentError(`etcd value at ${key}: field nodeId must be a string`);
  const state = typeof o.state === 'string' && (JOB_NODE_STATES as readonly string[]).includes(o.state) ? (o.state as JobNodeState) : undefined;
  if (!state) throw new InvalidArgumentError(`etcd value at ${key}: unknown job node state ${JSON.stringify(o.state)}`);
  const { planJson: _p, driftJson: _d, plan: _plan, drift: _drift, ...rest } = o;
  return {
    ...(rest as Partial<JobNodeRecord>),
    nodeId: o.nodeId,
    state,
    batch: typeof o.batch === 'number' ? o.batch : 0,
    attempt: typeof o.attempt === 'number' ? o.attempt : 0,
    units: Array.isArray(o.units) ? (o.units as JobNodeUnit[]) : [],
    ...storedReports(key, o),
  };
}

/** The job's per-node record before the runner touched it. */
export function pendingNode(nodeId: string, batch: number): JobNodeRecord {
  return { nodeId, state: 'pending', batch, attempt: 0, units: [] };
}

export function batchOf(job: JobRecord, nodeId: string): number {
  const i = job.batches.findIndex((b) => b.includes(nodeId));
  return i < 0 ? 0 : i;
}

/** Counts of nodes by per-node state (nodes without a record count as pending). */
export function countNodes(job: JobRecord, nodes: ReadonlyMap<string, JobNodeRecord>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const id of job.nodeIds) {
    const s = nodes.get(id)?.state ?? 'pending';
    counts[s] = (counts[s] ?? 0) + 1;
  }
  return counts;
}

/** The command id of a node's attempt: stable, so a resumed job re-sends the SAME id. */
export function commandIdFor(jobId: string, nodeId: string, attempt: number): string {
  return `${jobId}/${nodeId}/${attempt}`;
}
