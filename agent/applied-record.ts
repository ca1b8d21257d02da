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
import { digestOf } from '../shared/bundle/digest';
import type { Bundle, UnitKind } from '../shared/bundle/types';
import type { BaseUnitContext } from './unit-context';
import { writeFileAtomic } from './units/atomic-write';
import { runBundle, type ExecutorOptions, type HandlerRegistry, type RunReport } from './units/executor';
import { createHandlerRegistry } from './units/handlers';
import type { FieldChange, PlanAction } from './units/unit';

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
  /** Digest of name, version, status and unit digests (not the time): the `appliedDigest`. */
  digest: string;
}

export function recordPath(stateDir: string): string {
  return join(stateDir, APPLIED_RECORD_FILE);
}

function digestFor(r: Omit<AppliedRecord, 'digest' | 'appliedAt' | 'bundle' | 'format'>): string {
  return digestOf({ bundleName: r.bundleName, bundleVersion: r.bundleVersion, status: r.status, failedUnit: r.failedUnit ?? null, units: r.units });
}

/** The record an apply report leaves behind (the bundle must be the rendered one that ran). */
export function buildAppliedRecord(bundle: Bundle, report: RunReport, now: Date): AppliedRecord {
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
  const core = { bundleName: bundle.name, bundleVersion: bundle.version, status, ...(failedUnit ? { failedUnit } : {}), units } as const;
  return { format: FORMAT, ...core, appliedAt: now.toISOString(), bundle, digest: digestFor(core) };
}

function isRecord(v: unknown): v is AppliedRecord {
  const r = v as Partial<AppliedRecord> | null;
  return !!r && typeof r === 'object' && r.format === FORMAT && typeof r.bundleName === 'string' && typeof r.bundleVersion === 'string'
    && Array.isArray(r.units) && !!r.bundle && Array.isArray(r.bundle.units) && typeof r.digest === 'string';
}

/** The record, or undefined when the node never applied anything. Throws on a corrupt record (with its path). */
export async function readAppliedRecord(stateDir: string): Promise<AppliedRecord | undefined> {
  const path = recordPath(stateDir);
  let text: string;
  try {
    text = await fs.readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new InternalError(`cannot read applied record ${path}: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new InternalError(`applied record ${path} is not valid JSON (${(err as Error).message}); move it aside and re-apply`);
  }
  if (!isRecord(doc)) throw new InternalError(`applied record ${path} has an unknown format; move it aside and re-apply`);
  return doc;
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
 * Applies a rendered bundle and records the outcome (also an incomplete one, so what did change
 * can still be re-verified and removed). A no-op apply leaves the record as it was.
 */
export async function applyAndRecord(stateDir: string, bundle: Bundle, options: RecordedRunOptions): Promise<{ report: RunReport; record: AppliedRecord }> {
  const previous = await readAppliedRecord(stateDir);
  const report = await runBundle(bundle, 'apply', {
    ...options,
    handlers: options.handlers ?? createHandlerRegistry(),
    previousDigests: convergedDigests(previous, bundle.name),
  });
  const record = buildAppliedRecord(bundle, report, new Date((options.now ?? Date.now)()));
  if (previous?.digest !== record.digest || canonical(previous.bundle) !== canonical(record.bundle)) await writeAppliedRecord(stateDir, record);
  return { report, record: previous?.digest === record.digest ? previous : record };
}

function canonical(b: Bundle): string {
  return digestOf(b);
}

/** Plan or verify a rendered bundle with the applied record's digests (guardless commands). */
export async function runWithRecord(stateDir: string, bundle: Bundle, mode: 'plan' | 'verify', options: RecordedRunOptions): Promise<RunReport> {
  const previous = await readAppliedRecord(stateDir);
  return runBundle(bundle, mode, { ...options, handlers: options.handlers ?? createHandlerRegistry(), previousDigests: convergedDigests(previous, bundle.name) });
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
  options: { handlers?: HandlerRegistry; signal?: AbortSignal; runProbes?: boolean; now?: () => Date } = {},
): Promise<DriftReport | undefined> {
  const record = await readAppliedRecord(stateDir);
  if (!record) return undefined;
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
  const drifted = units.length > 0 || failedProbes.length > 0 || incomplete;
  const parts: string[] = [];
  if (units.length > 0) parts.push(`${units.length} of ${record.units.length} units drifted: ${units.map((u) => `${u.unitId} (${u.summary})`).join('; ')}`);
  if (failedProbes.length > 0) parts.push(`${failedProbes.length} probe(s) failed: ${failedProbes.map((p) => p.detail).join('; ')}`);
  if (incomplete) parts.push(`last apply stopped at unit ${record.failedUnit ?? '?'}`);
  return {
    bundle: { name: record.bundleName, version: record.bundleVersion },
    appliedDigest: record.digest,
    appliedAt: record.appliedAt,
    checkedAt: (options.now ?? (() => new Date()))().toISOString(),
    drifted,
    incomplete,
    units,
    failedProbes,
    summary: drifted ? parts.join('; ') : `all ${record.units.length} units of ${record.bundleName}@${record.bundleVersion} as applied`,
    report,
  };
}

/** Removes what the record says was applied (decommission), in reverse order; clears the record on success. */
export async function removeApplied(
  stateDir: string,
  ctx: BaseUnitContext,
  options: { handlers?: HandlerRegistry; signal?: AbortSignal; onProgress?: ExecutorOptions['onProgress'] } = {},
): Promise<RunReport | undefined> {
  const record = await readAppliedRecord(stateDir);
  if (!record) return undefined;
  const report = await runBundle(record.bundle, 'remove', { handlers: options.handlers ?? createHandlerRegistry(), context: ctx, signal: options.signal, onProgress: options.onProgress });
  if (report.ok) await clearAppliedRecord(stateDir);
  return report;
}
