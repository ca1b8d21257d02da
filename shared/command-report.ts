/**
 * The command report and the drift detail (proto/cluster.proto CommandReport, DriftDetail):
 * the agent writes them (agent/command-executor.ts, agent/applied-reload.ts), the job runner
 * stores them on the job's node record in etcd as the same structure, and the job runner, the
 * drift watcher and clusterctl read them through this module only.
 *
 * The decoders take anything (a record read back from etcd, a message off the wire) and
 * return the complete `__Output` form (every field present) or throw InvalidArgumentError
 * naming the first bad field by path: `units[2].changes[0].field: must be a string`.
 */
import type { CommandReport__Output } from '../generated/cluster/v1/CommandReport';
import type { DriftDetail__Output } from '../generated/cluster/v1/DriftDetail';
import type { UnitReport__Output } from '../generated/cluster/v1/UnitReport';
import type { ProbeReport__Output } from '../generated/cluster/v1/ProbeReport';
import type { RunFailure__Output } from '../generated/cluster/v1/RunFailure';
import type { FieldChange__Output } from '../generated/cluster/v1/FieldChange';
import type { BundleRef__Output } from '../generated/cluster/v1/BundleRef';
import { InvalidArgumentError } from './errors';

export type CommandReport = CommandReport__Output;
export type DriftDetail = DriftDetail__Output;
export type UnitReport = UnitReport__Output;
export type ProbeReport = ProbeReport__Output;
export type FieldChange = FieldChange__Output;

export const REPORT_MODES: readonly string[] = ['apply', 'remove', 'verify', 'plan'];

type Raw = Record<string, unknown>;

/** Reads one object's fields; a missing field takes the proto default, a mistyped one throws. */
class Fields {
  constructor(private readonly o: Raw, private readonly path: string) {}

  private fail(field: string, what: string): never {
    throw new InvalidArgumentError(`${this.path}${this.path ? '.' : ''}${field}: must be ${what}`);
  }

  at(field: string): string {
    return `${this.path}${this.path ? '.' : ''}${field}`;
  }

  string(field: string): string {
    const v = this.o[field];
    if (v === undefined || v === null) return '';
    return typeof v === 'string' ? v : this.fail(field, 'a string');
  }

  bool(field: string): boolean {
    const v = this.o[field];
    if (v === undefined || v === null) return false;
    return typeof v === 'boolean' ? v : this.fail(field, 'true or false');
  }

  count(field: string): number {
    const v = this.o[field];
    if (v === undefined || v === null) return 0;
    return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : this.fail(field, 'a whole number ≥ 0');
  }

  list<T>(field: string, item: (v: unknown, path: string) => T): T[] {
    const v = this.o[field];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) return this.fail(field, 'a list');
    return v.map((x, i) => item(x, `${this.at(field)}[${i}]`));
  }

  strings(field: string): string[] {
    return this.list(field, (x, path) => {
      if (typeof x !== 'string') throw new InvalidArgumentError(`${path}: must be a string`);
      return x;
    });
  }

  message<T>(field: string, decode: (v: unknown, path: string) => T): T | null {
    const v = this.o[field];
    return v === undefined || v === null ? null : decode(v, this.at(field));
  }
}

function fields(v: unknown, path: string): Fields {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new InvalidArgumentError(`${path || 'report'}: must be an object (got ${Array.isArray(v) ? 'a list' : JSON.stringify(v)?.slice(0, 80) ?? String(v)})`);
  }
  return new Fields(v as Raw, path);
}

function bundleRef(v: unknown, path: string): BundleRef__Output {
  const f = fields(v, path);
  return { name: f.string('name'), version: f.string('version') };
}

function fieldChange(v: unknown, path: string): FieldChange {
  const f = fields(v, path);
  return { field: f.string('field'), before: f.string('before'), hasBefore: f.bool('hasBefore'), after: f.string('after'), hasAfter: f.bool('hasAfter') };
}

function unitReport(v: unknown, path: string): UnitReport {
  const f = fields(v, path);
  const unitId = f.string('unitId');
  if (!unitId) throw new InvalidArgumentError(`${f.at('unitId')}: must name the unit`);
  return {
    unitId, kind: f.string('kind'), state: f.string('state'), action: f.string('action'), summary: f.string('summary'),
    changes: f.list('changes', fieldChange), error: f.string('error'),
  };
}

function probeReport(v: unknown, path: string): ProbeReport {
  const f = fields(v, path);
  return { id: f.string('id'), ok: f.bool('ok'), detail: f.string('detail') };
}

function runFailure(v: unknown, path: string): RunFailure__Output {
  const f = fields(v, path);
  return { unitId: f.string('unitId'), probeId: f.string('probeId'), reason: f.string('reason'), alreadyChanged: f.strings('alreadyChanged') };
}

/** A CommandReport from etcd or the wire, complete and checked; throws InvalidArgumentError. */
export function decodeCommandReport(v: unknown, path = 'report'): CommandReport {
  const f = fields(v, path);
  const mode = f.string('mode');
  if (!REPORT_MODES.includes(mode)) throw new InvalidArgumentError(`${f.at('mode')}: must be one of ${REPORT_MODES.join(', ')} (got ${JSON.stringify(mode)})`);
  return {
    mode, bundle: f.message('bundle', bundleRef), ok: f.bool('ok'), changed: f.strings('changed'),
    units: f.list('units', unitReport), probes: f.list('probes', probeReport), failure: f.message('failure', runFailure),
  };
}

/** A DriftDetail from etcd or the wire, complete and checked; throws InvalidArgumentError. */
export function decodeDriftDetail(v: unknown, path = 'drift'): DriftDetail {
  const f = fields(v, path);
  return {
    drifted: f.bool('drifted'), summary: f.string('summary'), bundle: f.message('bundle', bundleRef),
    appliedAt: f.string('appliedAt'), checkedAt: f.string('checkedAt'), incomplete: f.bool('incomplete'),
    unusableRecord: f.bool('unusableRecord'), units: f.list('units', unitReport),
    failedProbes: f.list('failedProbes', probeReport), unitsOmitted: f.count('unitsOmitted'),
  };
}

/**
 * A VERIFY report of a verification that ran to the end (no failure): drift is its result,
 * not a failure. Undefined for anything else (no report, another mode, or a unit whose check
 * itself failed).
 */
export function completedVerification(report: CommandReport | null | undefined): { drifted: boolean } | undefined {
  if (!report || report.mode !== 'verify' || report.failure) return undefined;
  return { drifted: report.units.length > 0 || report.probes.length > 0 };
}

/** What a VERIFY report found, one entry per drifted unit and failed probe: `motd: update /etc/motd`. */
export function driftLines(report: CommandReport): string[] {
  return [
    ...report.units.map((u) => `${u.unitId}: ${u.summary || u.error || 'differs'}`),
    ...report.probes.filter((p) => !p.ok).map((p) => `probe ${p.id}: ${p.detail || 'failed'}`),
  ];
}

/** A DriftDetail as one line ('' = no drift). */
export function driftDetailLine(d: DriftDetail): string {
  if (!d.drifted) return '';
  if (d.summary) return d.summary;
  return d.units.map((u) => `${u.unitId}: ${u.summary || 'differs'}`).join('; ') || 'drift reported';
}
