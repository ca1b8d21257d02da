/**
 * "Reload" (DESIGN.md; Contiv #123, #169: a rebooted or returning node was never re-verified):
 * the agent re-verifies its applied record at start (after a restart or a reboot) and when it
 * reconnects after an outage, logs what drifted (`drift found`), and sends a DriftReport to the
 * coordinator, which records it on the node (coordinator/reconcile/drift-watcher.ts).
 *
 * Delivery is kept simple and level-triggered: while the last re-verify found drift, the
 * finding is sent after every Welcome (the coordinator records the same finding idempotently
 * enough: one event per report). A re-verify whose applied record changed meanwhile (a command
 * applied or removed something) is discarded: the newer record is the truth.
 */
import type { DriftReport as DriftReportMessage } from '../generated/cluster/v1/DriftReport';
import { errorMessage } from '../shared/errors';
import type { Logger } from '../shared/logger';
import type { DriftDetail, UnitReport } from '../shared/command-report';
import { reverifyRecord, type DriftedUnit, type DriftReport, type ReverifyOptions } from './applied-record';
import { fieldChangeReport } from './command-executor';
import type { AppliedStore } from './applied-store';
import type { LinkConnected } from './coordinator-link';
import type { BaseUnitContext } from './unit-context';

/** One re-verify's outcome, ready for the wire. */
export interface DriftFinding {
  drifted: boolean;
  /** One line for logs and the node record. */
  summary: string;
  appliedDigest: string;
  /** DriftReport.drift: what differs, per unit (never file content: see content-diff.ts). */
  detail: DriftDetail;
}

/**
 * The drift detail is bounded: a node with thousands of drifted units still sends one small
 * message. Measured as the detail's JSON length, which is more than its protobuf encoding.
 */
export const MAX_DRIFT_BYTES = 64 * 1024;

function driftedUnit(u: DriftedUnit, withChanges: boolean): UnitReport {
  return {
    unitId: u.unitId, kind: u.kind, state: u.action, action: u.action === 'failed' ? '' : u.action, summary: u.summary,
    changes: withChanges ? u.changes.map(fieldChangeReport) : [], error: '',
  };
}

/** Pure: the wire form of a re-verify (the full RunReport stays local). */
export function findingOf(report: DriftReport, maxBytes = MAX_DRIFT_BYTES): DriftFinding {
  const base: DriftDetail = {
    drifted: report.drifted, summary: report.summary, bundle: { ...report.bundle }, appliedAt: report.appliedAt,
    checkedAt: report.checkedAt, incomplete: report.incomplete, unusableRecord: false,
    units: report.units.map((u) => driftedUnit(u, true)), failedProbes: report.failedProbes.map((p) => ({ id: p.id, ok: false, detail: p.detail })),
    unitsOmitted: 0,
  };
  const size = (d: DriftDetail): number => JSON.stringify(d).length;
  let detail = base;
  if (size(detail) > maxBytes) detail = { ...base, units: report.units.map((u) => driftedUnit(u, false)) };
  if (size(detail) > maxBytes) {
    // Keep as many units as fit; the summary already names them all (cut as well).
    let keep = report.units.length;
    do {
      keep = Math.floor(keep / 2);
      detail = {
        ...base, summary: report.summary.slice(0, 2000), units: report.units.slice(0, keep).map((u) => driftedUnit(u, false)),
        unitsOmitted: report.units.length - keep,
      };
    } while (size(detail) > maxBytes && keep > 0);
  }
  return { drifted: report.drifted, summary: report.summary, appliedDigest: report.appliedDigest, detail };
}

/** Pure: an applied record that cannot be read is drift too: the node needs a re-apply. */
export function unusableRecordFinding(problem: string, now: Date): DriftFinding {
  const summary = `applied record unusable: ${problem}`;
  return {
    drifted: true, summary, appliedDigest: '',
    detail: {
      drifted: true, summary, bundle: null, appliedAt: '', checkedAt: now.toISOString(), incomplete: false, unusableRecord: true,
      units: [], failedProbes: [], unitsOmitted: 0,
    },
  };
}

/** Re-verifies what a store holds (refreshed first: `cluster-agent apply` may have written it). */
export async function reverifyStore(store: AppliedStore, ctx: BaseUnitContext, options: ReverifyOptions = {}): Promise<DriftFinding | undefined> {
  await store.refresh?.();
  const problem = store.problem?.();
  if (problem) return unusableRecordFinding(problem, (options.now ?? (() => new Date()))());
  const record = store.current();
  return record ? findingOf(await reverifyRecord(record, ctx, options)) : undefined;
}

export interface AppliedReloadOptions {
  /** Re-verifies the applied record; undefined when nothing was applied. */
  reverify: (signal: AbortSignal) => Promise<DriftFinding | undefined>;
  /** Puts a DriftReport on the coordinator stream; false when not connected. */
  send: (drift: DriftReportMessage) => boolean;
  logger: Logger;
  /** A reconnect after an outage at least this long re-verifies (default: the ping interval, at least 1 s). */
  reverifyAfterOutageMs?: number;
}

export class AppliedReload {
  private readonly log: Logger;
  private last?: DriftFinding;
  private running?: Promise<void>;
  private pending?: string;
  private generation = 0;
  private readonly abort = new AbortController();

  constructor(private readonly o: AppliedReloadOptions) {
    this.log = o.logger.child({ component: 'reload' });
  }

  /** The last re-verify's finding (undefined: none yet, or nothing applied). */
  get lastFinding(): DriftFinding | undefined {
    return this.last;
  }

  /** At agent start: after a restart or a reboot the record is re-verified before anything else is known. */
  start(): void {
    this.trigger('agent start');
  }

  /** After every Welcome: re-verify after an outage, else re-send a known drift. */
  onConnected(info: LinkConnected): void {
    const threshold = this.o.reverifyAfterOutageMs ?? Math.max(info.pingIntervalMs, 1000);
    if (info.outageMs !== undefined && info.outageMs >= threshold) {
      this.trigger(`reconnected after ${Math.round(info.outageMs)} ms away`);
      return;
    }
    // A re-verify in flight sends its own finding when it ends.
    if (!this.running) this.sendLast();
  }

  /** A command changed the applied record: what was found before no longer describes the node. */
  appliedChanged(): void {
    this.generation++;
    this.last = undefined;
  }

  /** Resolves when no re-verify is running (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.idle();
  }

  private trigger(reason: string): void {
    if (this.abort.signal.aborted) return;
    if (this.running) {
      this.pending = reason;
      return;
    }
    this.running = this.loop(reason).finally(() => { this.running = undefined; });
  }

  private async loop(first: string): Promise<void> {
    let reason: string | undefined = first;
    while (reason !== undefined && !this.abort.signal.aborted) {
      this.pending = undefined;
      await this.once(reason);
      reason = this.pending;
    }
  }

  private async once(reason: string): Promise<void> {
    const generation = this.generation;
    let finding: DriftFinding | undefined;
    try {
      finding = await this.o.reverify(this.abort.signal);
    } catch (err) {
      this.log.warn('re-verify of the applied record failed', { reason, error: errorMessage(err) });
      return;
    }
    if (this.abort.signal.aborted) return;
    if (generation !== this.generation) {
      this.log.info('re-verify result discarded: the applied record changed meanwhile', { reason });
      return;
    }
    this.last = finding;
    if (!finding) {
      this.log.info('nothing applied on this node: nothing to re-verify', { reason });
    } else if (finding.drifted) {
      this.log.warn('drift found', { reason, summary: finding.summary, appliedDigest: finding.appliedDigest });
      this.sendLast();
    } else {
      this.log.info('applied record re-verified: no drift', { reason, summary: finding.summary });
    }
  }

  private sendLast(): void {
    const f = this.last;
    if (!f?.drifted) return;
    if (this.o.send({ appliedDigest: f.appliedDigest, drift: f.detail })) {
      this.log.info('drift reported to the coordinator', { appliedDigest: f.appliedDigest });
    } else {
      this.log.debug('drift report waits for the coordinator stream', { appliedDigest: f.appliedDigest });
    }
  }
}
