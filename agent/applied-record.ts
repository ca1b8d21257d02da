/**
 * The agent's own record of what it applied (DESIGN.md, "reload"): bundle name and version,
 * per-unit digest of the rendered spec, and the rendered bundle itself, so that after a
 * restart, a reboot or a reconnect the agent can re-verify exactly what it applied (and remove
 * it at decommission) without asking anyone. Kept in the state directory, written atomically.
 * Its digest (`appliedDigest`) is what the agent reports in its Hello and membership key: two
 * nodes with the same digest run the same rendered config.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { InternalError } from '../shared/errors';
import { Redactor } from '../shared/secret-envelope';
import { digestOf } from '../shared/bundle/digest';
import type { Bundle, UnitKind } from '../shared/bundle/types';
import type { BaseUnitContext } from './unit-context';
import { writeFileAtomic } from './units/atomic-write';
import { runBundle, type ExecutorOptions, type HandlerRegistry, type RunReport } from './units/executor';
import { createHandlerRegistry } from './units/handlers';
import type { FieldChange, PlanAction } from './units/unit';
import { applyThenRemoveDropped, droppedUnits, plannedRemovals, removeWithLeftovers, withRemovals, type PendingRemoval } from './dropped-units';

export const APPLIED_RECORD_FILE = 'applied.json';
const FORMAT = 1;

export interface AppliedUnit {
  id: string;
  kind: UnitKind;
  /** Digest of the rendered unit spec. */
  digest: string;
  /** False for the unit that failed and those after it in an incomplete apply. */
  converged: boolean;
}

export interface AppliedRecord {
  format: number;
  bundleName: string;
  bundleVersion: string;
  /** complete: every unit converged; incomplete: the apply stopped at `failedUnit`. */
  status: 'complete' | 'incomplete';
  failedUnit?: string;
  appliedAt: string;
  units: AppliedUnit[];
  /** The rendered bundle (templates resolved, sources inlined): what re-verify and remove use. */
  bundle: Bundle;
  /**
   * Units of earlier versions still on the node that `bundle` no longer has (agent/dropped-units.ts):
   * the apply that dropped them failed, or their removal did. The next apply removes them; absent
   * when there are none.
   */
  pendingRemoval?: PendingRemoval[];
  /**
   * Names of the variables in `bundle.variables` that held secrets (Command.secret_variables):
   * with the content of `secret: true` file units, what a re-verify redacts from its report
   * (recordRedactor). Absent when there were none.
   */
  secretVariables?: string[];
  /** Digest of name, version, status and unit digests (not the time): the `appliedDigest`. */
  digest: string;
}

export function recordPath(stateDir: string): string {
  return join(stateDir, APPLIED_RECORD_FILE);
}

function digestFor(r: Omit<AppliedRecord, 'digest' | 'appliedAt' | 'bundle' | 'format'>): string {
  // Leftovers make a node differ from one without them; a record with none keeps the digest it had before they existed.
  const pending = r.pendingRemoval?.length ? { pendingRemoval: r.pendingRemoval.map((p) => ({ from: p.from, digest: digestOf(p.spec) })) } : {};
  return digestOf({ bundleName: r.bundleName, bundleVersion: r.bundleVersion, status: r.status, failedUnit: r.failedUnit ?? null, units: r.units, ...pending });
}

/**
 * The record an apply report leaves behind (the bundle must be the rendered one that ran);
 * `pending`: units of earlier versions still to remove.
 */
export function buildAppliedRecord(
  bundle: Bundle, report: RunReport, now: Date, pending: readonly PendingRemoval[] = [], secretVariables: readonly string[] = [],
): AppliedRecord {
  const byId = new Map(report.units.map((u) => [u.unitId, u]));
  const failedUnit = report.failure?.unitId;
  let reachedFailure = false;
  const units: AppliedUnit[] = bundle.units.map((spec) => {
    const r = byId.get(spec.id);
    if (spec.id === failedUnit) reachedFailure = true;
    const converged = !reachedFailure && r !== undefined && r.state !== 'failed';
    return { id: spec.id, kind: spec.kind, digest: r?.digest ?? digestOf(spec), converged };
  });
  const status = report.ok || (report.failure?.probeId !== undefined && !report.cancelled) ? 'complete' : 'incomplete';
  const core = {
    bundleName: bundle.name, bundleVersion: bundle.version, status, ...(failedUnit ? { failedUnit } : {}), units,
    ...(pending.length > 0 ? { pendingRemoval: [...pending] } : {}),
  } as const;
  const secrets = secretVariables.length > 0 ? { secretVariables: [...new Set(secretVariables)].sort() } : {};
  return { format: FORMAT, ...core, appliedAt: now.toISOString(), bundle, ...secrets, digest: digestFor(core) };
}

/**
 * The secrets a record's rendered bundle holds: its secret variables' values and the content of
 * its secret file units. A re-verify after a restart has no command to tell it (docs/secrets.md).
 */
export function recordRedactor(record: Pick<AppliedRecord, 'bundle' | 'secretVariables'>): Redactor {
  const vars = record.bundle.variables ?? {};
  const values: string[] = [];
  for (const n of record.secretVariables ?? []) if (Object.hasOwn(vars, n)) values.push(String(vars[n]));
  for (const u of record.bundle.units) if (u.kind === 'file' && u.secret === true && typeof u.content === 'string') values.push(u.content);
  return new Redactor(values);
}

function isRecord(v: unknown): v is AppliedRecord {
  const r = v as Partial<AppliedRecord> | null;
  return !!r && typeof r === 'object' && r.format === FORMAT && typeof r.bundleName === 'string' && typeof r.bundleVersion === 'string'
    && Array.isArray(r.units) && !!r.bundle && Array.isArray(r.bundle.units) && typeof r.digest === 'string'
    && (r.pendingRemoval === undefined || (Array.isArray(r.pendingRemoval) && r.pendingRemoval.every((p) => !!p && typeof p.from === 'string' && !!p.spec && typeof p.spec.kind === 'string')))
    && (r.secretVariables === undefined || (Array.isArray(r.secretVariables) && r.secretVariables.every((n) => typeof n === 'string')));
}

/**
 * The shape the daemon's own store wrote before there was one format (agent versions up to
 * 0.x): `{bundle, version, digest, appliedAt, units: {id: digest}, bundleJson}`. It was written
 * only after an apply that succeeded, and it holds the rendered bundle and every unit's digest,
 * so it converts without loss into a complete record (only its digest is recomputed).
 */
interface LegacyDaemonRecord {
  bundle: string;
  version: string;
  digest: string;
  appliedAt: string;
  units: Record<string, string>;
  bundleJson: string;
}

function isLegacyDaemonRecord(v: unknown): v is LegacyDaemonRecord {
  const r = v as Partial<LegacyDaemonRecord> | null;
  return !!r && typeof r === 'object' && !('format' in r) && typeof r.bundle === 'string' && typeof r.digest === 'string'
    && typeof r.bundleJson === 'string' && !!r.units && typeof r.units === 'object';
}

/** Thrown when applied.json exists but cannot be used: the node needs a re-apply (the message says so). */
export class AppliedRecordError extends InternalError {}

/** Pure: the legacy daemon record as a format-1 record; throws AppliedRecordError when its bundle is unusable. */
export function migrateLegacyRecord(old: LegacyDaemonRecord, path: string): AppliedRecord {
  let bundle: Bundle;
  try {
    bundle = JSON.parse(old.bundleJson) as Bundle;
  } catch (err) {
    throw new AppliedRecordError(`applied record ${path} is in the old daemon format and its bundle is not valid JSON (${(err as Error).message}); re-apply needed`);
  }
  if (!bundle || typeof bundle !== 'object' || typeof bundle.name !== 'string' || !Array.isArray(bundle.units)) {
    throw new AppliedRecordError(`applied record ${path} is in the old daemon format and holds no usable bundle; re-apply needed`);
  }
  const rendered: Bundle = { ...bundle, version: String(bundle.version ?? old.version), verify: Array.isArray(bundle.verify) ? bundle.verify : [] };
  const units: AppliedUnit[] = rendered.units.map((spec) => ({ id: spec.id, kind: spec.kind, digest: old.units[spec.id] ?? digestOf(spec), converged: true }));
  const core = { bundleName: rendered.name, bundleVersion: rendered.version, status: 'complete', units } as const;
  const appliedAt = typeof old.appliedAt === 'string' && old.appliedAt ? old.appliedAt : new Date(0).toISOString();
  return { format: FORMAT, ...core, appliedAt, bundle: rendered, digest: digestFor(core) };
}

export interface LoadedRecord {
  /** undefined: the node never applied anything (no file). */
  record?: AppliedRecord;
  /** The file held the old daemon format and `record` is its conversion (not yet written back). */
  migrated: boolean;
}

/**
 * Reads `<stateDir>/applied.json`, converting the old daemon format. Throws AppliedRecordError
 * (with the path and "re-apply needed") on a record that is unreadable or of an unknown format.
 */
export async function loadAppliedRecord(stateDir: string): Promise<LoadedRecord> {
  const path = recordPath(stateDir);
  let text: string;
  try {
    text = await fs.readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { migrated: false };
    throw new AppliedRecordError(`cannot read applied record ${path}: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new AppliedRecordError(`applied record ${path} is not valid JSON (${(err as Error).message}); move it aside and re-apply`);
  }
  if (isRecord(doc)) return { record: doc, migrated: false };
  if (isLegacyDaemonRecord(doc)) return { record: migrateLegacyRecord(doc, path), migrated: true };
  throw new AppliedRecordError(`applied record ${path} has an unknown format; move it aside and re-apply`);
}

/** The record, or undefined when the node never applied anything. Throws on a corrupt record (with its path). */
export async function readAppliedRecord(stateDir: string): Promise<AppliedRecord | undefined> {
  return (await loadAppliedRecord(stateDir)).record;
}

export async function writeAppliedRecord(stateDir: string, record: AppliedRecord): Promise<void> {
  await fs.mkdir(stateDir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(recordPath(stateDir), `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
}

export async function clearAppliedRecord(stateDir: string): Promise<void> {
  await fs.rm(recordPath(stateDir), { force: true });
}

/** The appliedDigest to report ('' when nothing was applied). */
export async function readAppliedDigest(stateDir: string): Promise<string> {
  return (await readAppliedRecord(stateDir))?.digest ?? '';
}

/** Digests of the units the record says converged, for the same bundle name. */
export function convergedDigests(record: AppliedRecord | undefined, bundleName: string): Map<string, string> {
  const m = new Map<string, string>();
  if (record && record.bundleName === bundleName) for (const u of record.units) if (u.converged) m.set(u.id, u.digest);
  return m;
}

export type RecordedRunOptions = Omit<ExecutorOptions, 'previousDigests' | 'context' | 'handlers'> & {
  context: BaseUnitContext;
  handlers?: HandlerRegistry;
  now?: () => number;
};

/**
 * Applies a rendered bundle, removes what the previous record had and it no longer has
 * (agent/dropped-units.ts), and records the outcome (also an incomplete one, so what did change
 * can still be re-verified and removed). A no-op apply leaves the record as it was.
 */
export async function applyAndRecord(stateDir: string, bundle: Bundle, options: RecordedRunOptions): Promise<{ report: RunReport; record: AppliedRecord }> {
  const previous = await readAppliedRecord(stateDir);
  const run = await applyThenRemoveDropped(bundle, previous, {
    ...options,
    handlers: options.handlers ?? createHandlerRegistry(),
    previousDigests: convergedDigests(previous, bundle.name),
  });
  const next = recordAfterApply(previous, bundle, run.applyReport, new Date((options.now ?? Date.now)()), run.pending);
  if (next.changed) await writeAppliedRecord(stateDir, next.record);
  return { report: run.report, record: next.record };
}

/**
 * Pure: the record an apply leaves behind, and whether it differs from the previous one (the
 * same rule for `cluster-agent apply` and the daemon). Also an incomplete apply is recorded, so
 * what did change can be re-verified and removed; a no-op apply keeps the previous record (and
 * its time).
 */
export function recordAfterApply(
  previous: AppliedRecord | undefined, bundle: Bundle, report: RunReport, now: Date, pending: readonly PendingRemoval[] = [],
  secretVariables: readonly string[] = [],
): { record: AppliedRecord; changed: boolean } {
  const record = buildAppliedRecord(bundle, report, now, pending, secretVariables);
  const changed = !previous || previous.digest !== record.digest || digestOf(previous.bundle) !== digestOf(record.bundle)
    || (previous.secretVariables ?? []).join(',') !== (record.secretVariables ?? []).join(',');
  return changed ? { record, changed } : { record: previous, changed };
}

/**
 * Plan or verify a rendered bundle with the applied record's digests (guardless commands). A plan
 * also lists the removal of every unit the record has and `bundle` dropped.
 */
export async function runWithRecord(stateDir: string, bundle: Bundle, mode: 'plan' | 'verify', options: RecordedRunOptions): Promise<RunReport> {
  const previous = await readAppliedRecord(stateDir);
  const report = await runBundle(bundle, mode, { ...options, handlers: options.handlers ?? createHandlerRegistry(), previousDigests: convergedDigests(previous, bundle.name) });
  if (mode !== 'plan') return report;
  const planned = plannedRemovals(droppedUnits(previous, bundle), bundle);
  const total = report.units.length + planned.length;
  planned.forEach((u, i) => options.onProgress?.({ ...u, mode, index: report.units.length + i, total }));
  return withRemovals(report, undefined, planned);
}

export interface DriftedUnit {
  unitId: string;
  kind: UnitKind;
  action: PlanAction | 'failed';
  summary: string;
  changes: FieldChange[];
}

/** What re-verifying the applied record found. */
export interface DriftReport {
  bundle: { name: string; version: string };
  appliedDigest: string;
  appliedAt: string;
  checkedAt: string;
  /** True when any unit drifted, any check failed, any probe failed, or the last apply was incomplete. */
  drifted: boolean;
  incomplete: boolean;
  units: DriftedUnit[];
  failedProbes: { id: string; detail: string }[];
  /** One line for logs and events: `3 of 12 units drifted: chrony-conf (content 3→4 lines), ...`. */
  summary: string;
  report: RunReport;
}

/**
 * Re-verifies the applied record against the node (at agent start and on reconnect). Resolves
 * undefined when nothing was ever applied. Reads only; repairing is a policy decision for the
 * caller (apply the record's bundle again).
 */
export async function reverifyApplied(
  stateDir: string,
  ctx: BaseUnitContext,
  options: ReverifyOptions = {},
): Promise<DriftReport | undefined> {
  const record = await readAppliedRecord(stateDir);
  return record ? reverifyRecord(record, ctx, options) : undefined;
}

export interface ReverifyOptions {
  handlers?: HandlerRegistry;
  signal?: AbortSignal;
  runProbes?: boolean;
  now?: () => Date;
}

/** Re-verifies one applied record (the daemon holds its record in an AppliedStore). Reads only. */
export async function reverifyRecord(record: AppliedRecord, ctx: BaseUnitContext, options: ReverifyOptions = {}): Promise<DriftReport> {
  const report = await runBundle(record.bundle, 'verify', {
    handlers: options.handlers ?? createHandlerRegistry(),
    context: ctx,
    signal: options.signal,
    runProbes: options.runProbes,
    previousDigests: convergedDigests(record, record.bundle.name),
  });
  const units: DriftedUnit[] = report.units
    .filter((u) => u.state !== 'unchanged' && u.state !== 'skipped')
    .map((u) => ({
      unitId: u.unitId,
      kind: u.kind,
      action: u.state === 'failed' ? 'failed' : (u.plan?.action ?? 'update'),
      summary: u.state === 'failed' ? `check failed: ${u.error ?? 'unknown error'}` : (u.plan?.summary ?? ''),
      changes: u.plan?.changes ?? [],
    }));
  const failedProbes = report.probes.filter((p) => !p.ok).map((p) => ({ id: p.id, detail: p.detail }));
  const incomplete = record.status === 'incomplete';
  // Units an earlier version left behind are drift too: a repair (re-apply) removes them.
  const leftovers: DriftedUnit[] = (record.pendingRemoval ?? []).map((p) => ({
    unitId: p.spec.id, kind: p.spec.kind, action: 'remove', changes: [], summary: `dropped from ${p.from}, still on the node (removal pending)`,
  }));
  const drifted = units.length > 0 || failedProbes.length > 0 || incomplete || leftovers.length > 0;
  const parts: string[] = [];
  if (units.length > 0) parts.push(`${units.length} of ${record.units.length} units drifted: ${units.map((u) => `${u.unitId} (${u.summary})`).join('; ')}`);
  if (failedProbes.length > 0) parts.push(`${failedProbes.length} probe(s) failed: ${failedProbes.map((p) => p.detail).join('; ')}`);
  if (incomplete) parts.push(`last apply stopped at unit ${record.failedUnit ?? '?'}`);
  if (leftovers.length > 0) parts.push(`${leftovers.length} dropped unit(s) not yet removed: ${leftovers.map((u) => u.unitId).join(', ')}`);
  // A unit's summary names its rendered command, a probe's detail its output: either may hold a secret.
  return recordRedactor(record).redactDeep({
    bundle: { name: record.bundleName, version: record.bundleVersion },
    appliedDigest: record.digest,
    appliedAt: record.appliedAt,
    checkedAt: (options.now ?? (() => new Date()))().toISOString(),
    drifted,
    incomplete,
    units: [...units, ...leftovers],
    failedProbes,
    summary: drifted ? parts.join('; ') : `all ${record.units.length} units of ${record.bundleName}@${record.bundleVersion} as applied`,
    report,
  });
}

/**
 * Removes what earlier versions left pending (first: it may sit in the bundle's directories), then
 * what the record says was applied (decommission), in reverse order; clears the record on success.
 */
export async function removeApplied(
  stateDir: string,
  ctx: BaseUnitContext,
  options: { handlers?: HandlerRegistry; signal?: AbortSignal; onProgress?: ExecutorOptions['onProgress'] } = {},
): Promise<RunReport | undefined> {
  const record = await readAppliedRecord(stateDir);
  if (!record) return undefined;
  const run: ExecutorOptions = { handlers: options.handlers ?? createHandlerRegistry(), context: ctx, signal: options.signal, onProgress: options.onProgress };
  const report = await removeWithLeftovers(record.bundle, record.pendingRemoval, run);
  if (report.ok) await clearAppliedRecord(stateDir);
  return report;
}
