/**
 * Units a new bundle version no longer has are removed when it is applied (upgrade, a commission
 * into another group, a repair, a rollback): without this only decommission removed anything, and
 * a file or service taken out of `base@4` stayed on every node upgraded from `base@3`.
 *
 * The difference is computed here, on the agent, against its own applied record (what is really
 * on this machine, whatever the coordinator believes), by a pure function:
 *
 *  - A unit is identified by its id, its kind and its *target*: the path of a file or directory,
 *    the name of a package, the systemd unit name; a command's target is its id.
 *  - An applied unit is kept when the new bundle has a unit with the same id, kind and target
 *    (its spec may have changed: applying the new one converges it).
 *  - An applied unit whose id stayed but whose kind or target changed is dropped: the old target
 *    is removed (a file unit moved from /etc/a.conf to /etc/b.conf leaves no /etc/a.conf).
 *  - An applied unit whose target some unit of the new bundle manages (renamed id; a file that
 *    became a directory at the same path) is NOT removed: that would undo what the new version
 *    just applied. File and directory share one target space: both are a path.
 *  - Units still waiting for removal from an earlier apply (`pendingRemoval` in the record) are
 *    compared the same way, so a removal that failed is retried by the next apply.
 *
 * The removal runs after the new version applied successfully (Kubernetes' `apply --prune` and
 * Helm upgrades create and update first, delete last; Salt's state is converged before a cleanup
 * state), in reverse order, with each unit kind's own remove rules (the ones decommission uses).
 * When the apply fails nothing is removed: the node keeps the old units beside the part of the
 * new version that did apply, and the record keeps the dropped units as pending. When a removal
 * fails the run stops there (as decommission does) and the units not removed stay pending.
 */
import { normalize } from 'node:path';
import type { Bundle, UnitSpec } from '../shared/bundle/types';
import type { AppliedRecord } from './applied-record';
import { runBundle, type ExecutorOptions, type RunReport, type UnitResult } from './units/executor';

/** A unit an earlier apply left on the node that the current bundle no longer has. */
export interface PendingRemoval {
  /** The rendered spec as it was applied (what its remove rules need). */
  spec: UnitSpec;
  /** The bundle version that applied it: `base@3`. */
  from: string;
}

/** What on the machine a unit manages: two units with the same target manage the same thing. */
export function unitTarget(spec: UnitSpec): string {
  switch (spec.kind) {
    case 'file':
    case 'directory': return `path:${normalize(spec.path).replace(/(.)\/+$/, '$1')}`;
    case 'package': return `package:${spec.name}`;
    case 'systemd': return `systemd:${spec.unit}`;
    case 'command': return `command:${spec.id}`;
  }
}

/** Id, kind and target: a unit of the new bundle with the same identity is the same unit. */
function identity(spec: UnitSpec): string {
  return `${spec.id}\u0000${spec.kind}\u0000${unitTarget(spec)}`;
}

/**
 * Pure: the units of the previous record (its pending removals first, then its units, in apply
 * order) that `next` no longer has, each once. Empty when nothing was applied.
 */
export function droppedUnits(previous: AppliedRecord | undefined, next: Bundle): PendingRemoval[] {
  if (!previous) return [];
  const kept = new Set(next.units.map(identity));
  const claimed = new Set(next.units.map(unitTarget));
  const from = `${previous.bundleName}@${previous.bundleVersion}`;
  const candidates: PendingRemoval[] = [...(previous.pendingRemoval ?? []), ...previous.bundle.units.map((spec) => ({ spec, from }))];
  const seen = new Set<string>();
  const out: PendingRemoval[] = [];
  for (const c of candidates) {
    const id = identity(c.spec);
    if (kept.has(id) || claimed.has(unitTarget(c.spec)) || seen.has(id)) continue;
    seen.add(id);
    out.push(c);
  }
  return out;
}

/** What a dropped unit's remove rules do, in one line (plan, progress). */
function removalText(spec: UnitSpec): string {
  switch (spec.kind) {
    case 'file': return `remove file ${spec.path}`;
    case 'directory': return `remove directory ${spec.path} (kept if not empty)`;
    case 'package': return `remove package ${spec.name}`;
    case 'systemd': return `stop and disable ${spec.unit}${spec.content !== undefined ? ', delete its unit file' : ''}`;
    case 'command': return spec.undo !== undefined ? `run undo "${spec.undo.length > 60 ? `${spec.undo.slice(0, 57)}...` : spec.undo}"` : 'nothing (no undo command)';
  }
}

/**
 * The id a removal is reported under: the unit's own, or `id (base@3)` when the new bundle has a
 * unit with the same id (its path changed): a job's per-unit progress is keyed by id, and the
 * removal of the old path must not overwrite the apply of the new one.
 */
function reportedId(d: PendingRemoval, next: Bundle): string {
  return next.units.some((u) => u.id === d.spec.id) ? `${d.spec.id} (${d.from})` : d.spec.id;
}

/** Why a unit is removed: `not in base@4`, `target changed in base@4`, `kind changed to directory in base@4`. */
function reason(d: PendingRemoval, next: Bundle): string {
  const same = next.units.find((u) => u.id === d.spec.id);
  const to = `${next.name}@${next.version}`;
  if (!same) return `not in ${to}`;
  return same.kind !== d.spec.kind ? `kind changed to ${same.kind} in ${to}` : `target changed in ${to}`;
}

/** Pure: the plan entries for dropped units (a dry run lists them as `remove`, in the order they would run). */
export function plannedRemovals(dropped: readonly PendingRemoval[], next: Bundle): UnitResult[] {
  return [...dropped].reverse().map((d) => ({
    unitId: reportedId(d, next),
    kind: d.spec.kind,
    state: 'changed',
    plan: {
      unitId: reportedId(d, next), kind: d.spec.kind, action: 'remove', changes: [],
      summary: `${removalText(d.spec)} (from ${d.from}: ${reason(d, next)})`,
    },
    durationMs: 0,
    digest: '',
  }));
}

export interface RemovalOutcome {
  report: RunReport;
  /** Dropped units still on the node: the one that failed and those not reached. */
  remaining: PendingRemoval[];
}

/** Removes the dropped units in reverse order with their own remove rules; stops at the first failure. */
export async function removeDropped(dropped: readonly PendingRemoval[], next: Bundle, options: ExecutorOptions): Promise<RemovalOutcome> {
  const asBundle: Bundle = {
    name: next.name, version: next.version, variables: {}, verify: [],
    units: dropped.map((d) => ({ ...d.spec, id: reportedId(d, next) })),
  };
  const report = await runBundle(asBundle, 'remove', { ...options, previousDigests: undefined, runProbes: false });
  // The report is in removal order (reverse of `dropped`).
  const remaining = dropped.filter((_, i) => {
    const r = report.units[dropped.length - 1 - i];
    return r === undefined || r.state === 'failed' || r.state === 'skipped';
  });
  return { report, remaining };
}

/**
 * Decommission: removes the units earlier versions left pending first (they may sit in the
 * bundle's directories), then the bundle's own units in reverse order; one report for both.
 */
export async function removeWithLeftovers(bundle: Bundle, pending: readonly PendingRemoval[] | undefined, options: ExecutorOptions): Promise<RunReport> {
  const run: ExecutorOptions = { ...options, previousDigests: undefined };
  if (!pending?.length) return runBundle(bundle, 'remove', run);
  const leftovers = (await removeDropped(pending, bundle, run)).report;
  return leftovers.ok ? withRemovals(leftovers, await runBundle(bundle, 'remove', run)) : leftovers;
}

/** One report for the apply and the removal after it (what the coordinator stores and shows). */
export function withRemovals(apply: RunReport, removal: RunReport | undefined, extra: UnitResult[] = []): RunReport {
  const units = [...apply.units, ...(removal?.units ?? []), ...extra];
  const changed = [...apply.changed, ...(removal?.changed ?? []), ...extra.map((u) => u.unitId)];
  const failure = apply.failure ?? removal?.failure;
  return {
    ...apply,
    ok: apply.ok && (removal?.ok ?? true),
    changed,
    units,
    ...(failure ? { failure } : {}),
    cancelled: apply.cancelled || (removal?.cancelled ?? false),
    durationMs: apply.durationMs + (removal?.durationMs ?? 0),
  };
}

export interface AppliedWithRemovals {
  /** The apply and the removals, as one report. */
  report: RunReport;
  /** The apply alone (what the record's unit states come from). */
  applyReport: RunReport;
  /** Dropped units still on the node afterwards (all of them when the apply failed). */
  pending: PendingRemoval[];
}

/**
 * Applies `bundle`, then (only when that succeeded) removes what the previous record had and
 * `bundle` no longer has. The caller records `applyReport` with `pending`.
 */
export async function applyThenRemoveDropped(bundle: Bundle, previous: AppliedRecord | undefined, options: ExecutorOptions): Promise<AppliedWithRemovals> {
  const dropped = droppedUnits(previous, bundle);
  const applyReport = await runBundle(bundle, 'apply', options);
  if (!applyReport.ok || dropped.length === 0) return { report: applyReport, applyReport, pending: dropped };
  const removal = await removeDropped(dropped, bundle, options);
  const report = withRemovals(applyReport, removal.report);
  if (removal.report.failure) {
    const f = removal.report.failure;
    const still = removal.remaining.map((d) => d.spec.id).join(', ');
    report.failure = {
      ...f,
      reason: `removing what ${bundle.name}@${bundle.version} dropped failed: ${f.reason}; ${bundle.name}@${bundle.version} itself applied; still on the node: ${still} (the next apply removes them)`,
    };
  }
  return { report, applyReport, pending: removal.remaining };
}
