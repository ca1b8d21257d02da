/**
 * How a job looks in each output format: list rows, the JSON/YAML object (proto field names,
 * proto order), the `job describe` page, the dry-run plan, and the exit code a finished job
 * means (0 succeeded, 1 failed/cancelled, 2 verify found drift). Pure functions.
 */
import type { Job__Output } from '../../generated/cluster/v1/Job';
import type { JobDetail__Output } from '../../generated/cluster/v1/JobDetail';
import type { JobNode__Output } from '../../generated/cluster/v1/JobNode';
import type { HealthProbe__Output } from '../../generated/cluster/v1/HealthProbe';
import { driftLines, type FieldChange } from '../../shared/command-report';
import { isActive, isJobState } from '../../shared/job-states';
import { EXIT, type ExitCode } from '../command';
import { ageSince, formatBool, formatDuration, formatTable, orDash, type Cell, type Row } from '../output';

export const JOB_COLUMNS = ['ID', 'KIND', 'STATE', 'NODES', 'DONE', 'FAILED', 'BATCH', 'GROUP', 'AGE'] as const;
export const JOB_WIDE_COLUMNS = [...JOB_COLUMNS, 'BUNDLE', 'STRATEGY', 'DRY-RUN', 'REQUESTED-BY', 'MESSAGE'] as const;

export function isFinishedJobState(state: string): boolean {
  return isJobState(state) && !isActive(state);
}

const STATE_COLOUR: Record<string, Cell['colour']> = {
  Failed: 'red', Cancelled: 'yellow', Cancelling: 'yellow', Succeeded: 'green', Running: 'bold', Pausing: 'yellow', Paused: 'yellow', RollingBack: 'yellow', RolledBack: 'red',
};

function sortedCounts(c: Readonly<Record<string, number>>): Record<string, number> {
  return Object.fromEntries(Object.entries(c).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** uint32 max: "no limit" (exec runs every node whatever fails). */
export const UNLIMITED_FAILURES = 0xffffffff;

/** maxFailures as an operator reads it: a number, or "unlimited" for no limit. */
export function maxFailuresView(n: number): number | 'unlimited' {
  return n >= UNLIMITED_FAILURES ? 'unlimited' : n;
}

export function jobObject(j: Job__Output): Record<string, unknown> {
  return {
    id: j.id, kind: j.kind, state: j.state, group: j.group, bundle: j.bundle, strategy: j.strategy, batch: j.batch,
    maxFailures: maxFailuresView(j.maxFailures), dryRun: j.dryRun, force: j.force, nodeIds: j.nodeIds, batches: j.batches,
    currentBatch: j.currentBatch, counts: sortedCounts(j.counts), message: j.message, createdAt: j.createdAt,
    startedAt: j.startedAt, finishedAt: j.finishedAt, requestedBy: j.requestedBy, revision: j.revision, driftedNodes: j.driftedNodes,
    canary: j.canary, canarySoakMs: j.canarySoakMs, canarySoakUntil: j.canarySoakUntil,
    soakMs: j.soakMs, probeIntervalMs: j.probeIntervalMs, probes: j.probes.map(probeText), rollback: j.rollback,
  };
}

/** The job's state as an operator reads it: a verify that found drift says so (`Succeeded (drift on 2 nodes)`). */
export function jobStateText(j: Pick<Job__Output, 'state' | 'driftedNodes'>): string {
  const n = j.driftedNodes.length;
  return n > 0 ? `${j.state} (drift on ${n} node${n === 1 ? '' : 's'})` : j.state;
}

/** JSON text as data (so `-o json` nests it instead of quoting it); text when unreadable. */
export function parseJsonField(text: string): unknown {
  if (!text) return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

export function jobNodeObject(n: JobNode__Output): Record<string, unknown> {
  return {
    nodeId: n.nodeId, batch: n.batch, state: n.state, commandId: n.commandId, startedAt: n.startedAt, finishedAt: n.finishedAt,
    error: n.error, output: n.output, units: n.units.map((u) => ({ unitId: u.unitId, status: u.status, message: u.message })),
    plan: n.plan, drift: n.drift,
    previousState: n.previousState, previousBundle: n.previousBundle, rollbackState: n.rollbackState, rollbackError: n.rollbackError, rollbackFinishedAt: n.rollbackFinishedAt,
  };
}

export function jobDetailObject(d: JobDetail__Output): Record<string, unknown> {
  return { job: d.job ? jobObject(d.job) : null, nodes: d.nodes.map(jobNodeObject) };
}

function count(j: Job__Output, ...states: string[]): number {
  return states.reduce((sum, s) => sum + (j.counts[s] ?? 0), 0);
}

export function jobRow(j: Job__Output, nowMs: number): Row {
  const done = count(j, 'succeeded', 'failed', 'cancelled', 'skipped');
  return [
    j.id, j.kind + (j.dryRun ? ' (dry-run)' : ''), { text: jobStateText(j), colour: j.driftedNodes.length ? 'yellow' : STATE_COLOUR[j.state] }, String(j.nodeIds.length),
    `${done}/${j.nodeIds.length}`, { text: String(count(j, 'failed')), colour: count(j, 'failed') ? 'red' : undefined },
    j.batches ? `${Math.min(j.currentBatch + 1, j.batches)}/${j.batches}` : '-', orDash(j.group), ageSince(j.createdAt, nowMs),
  ];
}

export function jobWideRow(j: Job__Output, nowMs: number): Row {
  return [...jobRow(j, nowMs), orDash(j.bundle), orDash(j.strategy), formatBool(j.dryRun), orDash(j.requestedBy), orDash(j.message)];
}

/** Did this verify node find drift (a unit that differs or a probe that failed)? */
export function hasDrift(n: JobNode__Output): boolean {
  return !!n.drift && driftLines(n.drift).length > 0;
}

/** The exit code a finished job stands for (EXIT.ok while it runs, for callers that ask early). */
export function jobExitCode(d: JobDetail__Output): ExitCode {
  const state = d.job?.state ?? '';
  // A rolled-back upgrade did not upgrade: a failure for scripts.
  if (state === 'Failed' || state === 'Cancelled' || state === 'RolledBack') return EXIT.error;
  if (state === 'Succeeded' && d.nodes.some(hasDrift)) return EXIT.changes;
  return EXIT.ok;
}

export interface PlanLine {
  nodeId: string;
  unitId: string;
  action: string;
  detail: string;
}

/** `content: 3 lines → 4 lines`; a side that does not exist is `(none)`. */
function changeText(c: FieldChange): string {
  return `${c.field}: ${c.hasBefore ? c.before : '(none)'} → ${c.hasAfter ? c.after : '(none)'}`;
}

/** The per-node, per-unit plan of a dry run (the agent's PLAN report); a node without one says why. */
export function planLines(d: JobDetail__Output): PlanLine[] {
  const lines: PlanLine[] = [];
  for (const n of d.nodes) {
    const units = n.plan?.units ?? [];
    if (units.length === 0) {
      const why = n.error ? `error: ${n.error}` : n.plan ? 'no units' : `no plan (${n.state})`;
      lines.push({ nodeId: n.nodeId, unitId: '-', action: n.state === 'failed' ? 'failed' : '-', detail: why });
      continue;
    }
    for (const u of units) {
      const detail = u.summary || u.error || u.changes.map(changeText).join('; ');
      lines.push({ nodeId: n.nodeId, unitId: u.unitId, action: u.action || u.state, detail });
    }
  }
  return lines;
}

export function formatPlan(d: JobDetail__Output): string {
  return formatTable(['NODE', 'UNIT', 'ACTION', 'DETAIL'], planLines(d).map((l) => [l.nodeId, l.unitId, l.action, orDash(l.detail)]));
}

/**
 * The strategy as an operator reads it: an all-at-once job has no batch size (its stored
 * `batch` is a placeholder "1" and would read "batch 1" for a job of 20 nodes).
 */
export function strategyText(j: Pick<Job__Output, 'strategy' | 'batch' | 'batches' | 'nodeIds'>): string {
  if (j.strategy === 'all-at-once') return `all-at-once (${j.nodeIds.length} node(s) in one batch)`;
  return `${orDash(j.strategy)} batch ${orDash(j.batch)}, ${j.batches} batch(es)`;
}

/** --canary as an operator reads it ('' for a job without one). */
export function canaryText(j: Pick<Job__Output, 'canary' | 'canarySoakMs' | 'canarySoakUntil'>): string {
  if (!j.canary) return '';
  const then = j.canarySoakMs
    ? `then a soak of ${formatDuration(j.canarySoakMs)} and its verify probes again${j.canarySoakUntil ? ` (at ${j.canarySoakUntil})` : ''}; all pass: the rest`
    : 'then Paused until clusterctl job resume';
  return `${j.canary} node(s) first (batch 1), ${then}`;
}

/** One extra probe as the operator wrote it: `tcp 127.0.0.1:80`, `http URL=200`, `command "..."`. */
export function probeText(p: HealthProbe__Output): string {
  if (p.tcp) return `tcp ${p.tcp}`;
  if (p.http) return `http ${p.http}${p.expectStatus ? `=${p.expectStatus}` : ''}`;
  return `command ${JSON.stringify(p.command)}${p.expectExit ? ` (exit ${p.expectExit})` : ''}`;
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/** `soak 30s, probes every 10s: bundle verify probes + tcp 127.0.0.1:80`; '-' without a gate. */
export function healthText(j: Pick<Job__Output, 'soakMs' | 'probeIntervalMs' | 'probes'>): string {
  if (j.soakMs === 0 && j.probes.length === 0) return '-';
  const soak = j.soakMs > 0 ? `soak ${seconds(j.soakMs)}, probes every ${seconds(j.probeIntervalMs)}` : 'probes once after the apply';
  return `${soak}: bundle verify probes${j.probes.map((p) => ` + ${probeText(p)}`).join('')}`;
}

/** `job describe`: the job, then one block per node with its units and error. */
export function describeJob(d: JobDetail__Output, nowMs: number): string {
  const j = d.job;
  if (!j) return 'no job\n';
  const lines = [
    `Job:          ${j.id}`,
    `Kind:         ${j.kind}${j.dryRun ? ' (dry run)' : ''}`,
    `State:        ${jobStateText(j)}${j.message ? ` (${j.message})` : ''}`,
    `Group:        ${orDash(j.group)}`,
    `Bundle:       ${orDash(j.bundle)}`,
    `Strategy:     ${strategyText(j)}, max failures ${maxFailuresView(j.maxFailures)}${j.force ? ', forced' : ''}`,
    ...(j.canary ? [`Canary:       ${canaryText(j)}`] : []),
    ...(j.soakMs > 0 || j.probes.length > 0 ? [`Health gate:  ${healthText(j)}`] : []),
    ...(j.rollback ? [`Rollback:     ${j.rollback}`] : []),
    `Requested by: ${orDash(j.requestedBy)}`,
    `Created:      ${orDash(j.createdAt)} (${ageSince(j.createdAt, nowMs)} ago)`,
    `Started:      ${orDash(j.startedAt)}`,
    `Finished:     ${orDash(j.finishedAt)}`,
    `Counts:       ${Object.entries(sortedCounts(j.counts)).map(([k, v]) => `${k}=${v}`).join(' ') || '-'}`,
    '',
    'Nodes:',
  ];
  const rows: Row[] = d.nodes.map((n) => [n.nodeId, String(n.batch), { text: n.state, colour: n.state === 'failed' ? 'red' : undefined }, orDash(n.startedAt), orDash(n.finishedAt), orDash(n.error)]);
  lines.push(...formatTable(['NODE', 'BATCH', 'STATE', 'STARTED', 'FINISHED', 'ERROR'], rows).trimEnd().split('\n').map((l) => `  ${l}`));
  const rolled = d.nodes.filter((n) => n.rollbackState !== '');
  if (rolled.length > 0) {
    // In the order the rollback ran: the newest upgraded node first.
    const order = [...rolled].sort((a, b) => a.rollbackFinishedAt.localeCompare(b.rollbackFinishedAt));
    lines.push('', 'Rolled back (newest first):');
    const rbRows: Row[] = order.map((n) => [n.nodeId, `${orDash(n.previousBundle)} (${orDash(n.previousState)})`, { text: n.rollbackState, colour: n.rollbackState === 'failed' ? 'red' : undefined }, orDash(n.rollbackFinishedAt), orDash(n.rollbackError)]);
    lines.push(...formatTable(['NODE', 'BACK TO', 'STATE', 'FINISHED', 'ERROR'], rbRows).trimEnd().split('\n').map((l) => `  ${l}`));
  }
  for (const n of d.nodes) {
    if (n.units.length === 0) continue;
    lines.push('', `Units on ${n.nodeId}:`);
    lines.push(...formatTable(['UNIT', 'STATUS', 'MESSAGE'], n.units.map((u) => [u.unitId, u.status, orDash(u.message)])).trimEnd().split('\n').map((l) => `  ${l}`));
  }
  return lines.join('\n') + '\n';
}
