/**
 * The agent's CommandHandler: runs the coordinator's commands with the config-unit executor.
 *
 *   APPLY   validate and render the bundle (vars: the command's, merged by the coordinator; facts:
 *           this node's), converge it, remove what the applied record has and the bundle dropped
 *           (agent/dropped-units.ts), then write the applied record (what the agent re-verifies
 *           after a restart: "reload"); with a health gate, soak: the probes must keep passing
 *           (units/health-soak.ts)
 *   REMOVE  undo the units in reverse order (and units earlier versions left), then clear the record
 *   VERIFY  check every unit and probe; drift is reported in the result's report (changes nothing)
 *   PLAN    what APPLY would change (dry run), removals of dropped units included
 *   EXEC    run one argv with a timeout, bounded output
 *
 * Per-unit progress goes to the callback (forwarded as CommandProgress); the AbortSignal
 * (CancelCommand, timeout, shutdown) aborts the running unit, whose child process is killed.
 * The applied record (agent/applied-record.ts: the one format `cluster-agent apply` uses too)
 * sits behind the narrow AppliedStore interface (agent/applied-store.ts). Its converged unit
 * digests are the executor's previousDigests, so a guardless command runs once per spec.
 */
import type { Command__Output } from '../generated/cluster/v1/Command';
import type { Logger } from '../shared/logger';
import { errorMessage } from '../shared/errors';
import { renderBundle } from '../shared/bundle/render-template';
import { validateBundle } from '../shared/bundle/validate-bundle';
import type { Bundle } from '../shared/bundle/types';
import type { BaseUnitContext } from './unit-context';
import { firstViolation, normaliseAllowedPaths, violationMessage } from '../shared/path-allowlist';
import { convergedDigests, recordAfterApply } from './applied-record';
import type { AppliedStore } from './applied-store';
import { commandKindName, type CommandHandler, type CommandResultBody, type ReportProgress } from './command-handler';
import { runBundle, type ExecutorOptions, type HandlerRegistry, type RunMode, type RunReport, type UnitProgress, type UnitResult } from './units/executor';
import { applyThenRemoveDropped, droppedUnits, plannedRemovals, removeWithLeftovers, withRemovals, type PendingRemoval } from './dropped-units';
import type { FieldChange } from './units/unit';
import type { CommandReport, FieldChange as FieldChangeReport, UnitReport } from '../shared/command-report';
import { BoundedOutput } from './units/bounded-output';
import { runShell } from './units/run-shell';
import { runHealthSoak } from './units/health-soak';
import type { VerifyProbe } from '../shared/bundle/types';
import type { HealthGate__Output } from '../generated/cluster/v1/HealthGate';

/** An EXEC command without its own timeout may run this long. @default 600000 (10 min) */
export const DEFAULT_EXEC_TIMEOUT_MS = 600_000;

export interface CommandExecutorOptions {
  handlers: HandlerRegistry;
  context: BaseUnitContext;
  applied: AppliedStore;
  logger: Logger;
  /** This node's facts for `{{ facts.* }}` templates; undefined when unknown. */
  facts?: () => Promise<unknown>;
  /** Called after the applied record changed (e.g. to refresh the membership record). */
  onAppliedChanged?: () => void;
  /**
   * Called after an apply or remove succeeded, also when the record stayed the same (a repair
   * of drifted files): the node matches its record now, so drift found before is obsolete.
   */
  onConverged?: () => void;
  defaultUnitTimeoutMs?: number;
  /** EXEC commands without their own timeout (default 10 min). */
  execTimeoutMs?: number;
  clock?: () => Date;
}

const MODE: Record<string, RunMode | undefined> = { apply: 'apply', remove: 'remove', verify: 'verify', plan: 'plan' };

function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** What a unit's progress looks like on the wire (CommandProgress.status). */
function wireStatus(mode: RunMode, p: UnitProgress): string {
  if (mode === 'plan' && p.state !== 'running' && p.state !== 'failed') return 'planned';
  return p.state;
}

/** A field change for the wire: null (absent before/after) becomes has_before/has_after false. */
export function fieldChangeReport(c: FieldChange): FieldChangeReport {
  return { field: c.field, before: c.before ?? '', hasBefore: c.before !== null, after: c.after ?? '', hasAfter: c.after !== null };
}

/** One unit's result for the wire. */
export function unitReport(u: UnitResult): UnitReport {
  return {
    unitId: u.unitId, kind: u.kind, state: u.state, action: u.plan?.action ?? '', summary: u.plan?.summary ?? '',
    changes: (u.plan?.changes ?? []).map(fieldChangeReport), error: u.error ?? '',
  };
}

/**
 * The CommandResult report the coordinator stores: plan and drift per unit, failures, probes.
 * A VERIFY report keeps only what drifted (units not unchanged, probes that failed).
 */
export function commandReport(report: RunReport): CommandReport {
  const verify = report.mode === 'verify';
  const f = report.failure;
  return {
    mode: report.mode, bundle: { name: report.bundle.name, version: report.bundle.version }, ok: report.ok, changed: [...report.changed],
    units: (verify ? report.units.filter((u) => u.state !== 'unchanged') : report.units).map(unitReport),
    probes: (verify ? report.probes.filter((p) => !p.ok) : report.probes).map((p) => ({ id: p.id, ok: p.ok, detail: p.detail })),
    failure: f ? { unitId: f.unitId ?? '', probeId: f.probeId ?? '', reason: f.reason, alreadyChanged: [...f.alreadyChanged] } : null,
  };
}

/** A VERIFY report with the units earlier versions left behind counted as drift (a repair removes them). */
function withLeftovers(report: RunReport, pending: readonly PendingRemoval[]): RunReport {
  const units: UnitResult[] = pending.map((p) => ({
    unitId: p.spec.id, kind: p.spec.kind, state: 'changed', durationMs: 0, digest: '',
    plan: { unitId: p.spec.id, kind: p.spec.kind, action: 'remove', changes: [], summary: `dropped from ${p.from}, still on the node (removal pending)` },
  }));
  return { ...report, ok: false, units: [...report.units, ...units], changed: [...report.changed, ...units.map((u) => u.unitId)] };
}

export class CommandExecutor implements CommandHandler {
  private readonly log: Logger;

  constructor(private readonly o: CommandExecutorOptions) {
    this.log = o.logger.child({ component: 'command-executor' });
  }

  async execute(cmd: Command__Output, reportProgress: ReportProgress, signal: AbortSignal): Promise<CommandResultBody> {
    const kind = commandKindName(cmd.kind);
    if (kind === 'exec') return this.exec(cmd, reportProgress, signal);
    const mode = MODE[kind];
    if (!mode) return { outcome: 'failed', error: `unknown command kind ${cmd.kind}` };

    let bundle: Bundle;
    try {
      bundle = validateBundle(JSON.parse(cmd.bundleJson));
    } catch (err) {
      return { outcome: 'failed', error: `command ${cmd.id}: refused: bundle_json is not a valid bundle: ${errorMessage(err)}` };
    }
    let facts: unknown;
    try {
      facts = await this.o.facts?.();
    } catch (err) {
      this.log.warn('facts unavailable for templates', { err: errorMessage(err) });
    }
    let rendered: Bundle;
    try {
      // The command's variables are the whole set (the coordinator merged the bundle's defaults,
      // the group's and the job's); the bundle's own are not merged again here.
      rendered = renderBundle({ ...bundle, variables: cmd.variables }, { facts });
    } catch (err) {
      return { outcome: 'failed', error: errorMessage(err) };
    }

    // The group's allowed paths, checked again on the rendered units before anything is touched:
    // the coordinator checked them at push time, but a leader is not trusted blindly.
    let allowed: string[];
    try {
      allowed = normaliseAllowedPaths(cmd.allowedPaths);
    } catch (err) {
      return { outcome: 'failed', error: `command ${cmd.id}: refused: ${errorMessage(err)}` };
    }
    // Only what writes or plans to: removal and verification of what is there are never refused.
    const outside = mode === 'apply' || mode === 'plan' ? firstViolation(rendered, allowed) : undefined;
    if (outside) return { outcome: 'failed', error: `command ${cmd.id}: refused: ${violationMessage(outside, allowed)}` };

    // Someone may have run `cluster-agent apply` on this state dir since the last command.
    await this.o.applied.refresh?.();
    const previous = this.o.applied.current();
    const output = new BoundedOutput();
    const options: ExecutorOptions = {
      handlers: this.o.handlers,
      context: this.o.context,
      signal,
      defaultTimeoutMs: this.o.defaultUnitTimeoutMs,
      // Remove undoes whatever is there; the others treat a guardless command that ran as done.
      previousDigests: mode === 'remove' ? undefined : convergedDigests(previous, rendered.name),
      onProgress: (p) => {
        reportProgress({ unitId: p.unitId, status: wireStatus(mode, p), message: p.plan?.summary ?? p.error ?? '' });
      },
      onOutput: (unitId, chunk) => {
        output.push(chunk);
        reportProgress({ unitId, status: 'running', message: '', output: chunk });
      },
    };
    // Apply also removes what the previous record had and this bundle dropped (agent/dropped-units.ts).
    const run = mode === 'apply' ? await applyThenRemoveDropped(rendered, previous, options) : undefined;
    let report: RunReport;
    if (run) report = run.report;
    // Decommission removes what earlier versions left behind too.
    else if (mode === 'remove') report = await removeWithLeftovers(rendered, previous?.pendingRemoval, options);
    else report = await runBundle(rendered, mode, options);
    if (mode === 'plan') {
      const planned = plannedRemovals(droppedUnits(previous, rendered), rendered);
      for (const u of planned) reportProgress({ unitId: u.unitId, status: 'planned', message: u.plan?.summary ?? '' });
      report = withRemovals(report, undefined, planned);
    } else if (mode === 'verify' && previous?.pendingRemoval?.length && previous.bundleName === rendered.name) {
      report = withLeftovers(report, previous.pendingRemoval);
    }

    let appliedDigest = previous?.digest ?? '';
    if (run) {
      // Also a failed apply is recorded (status incomplete): what it changed stays verifiable.
      const next = recordAfterApply(previous, rendered, run.applyReport, this.o.clock?.() ?? new Date(), run.pending, cmd.secretVariables ?? []);
      if (next.changed) {
        await this.o.applied.write(next.record);
        this.o.onAppliedChanged?.();
      }
      appliedDigest = next.record.digest;
      if (report.ok) this.o.onConverged?.();
      // The record says what is on the node (this version, converged) whatever the soak finds:
      // a failing probe fails the command, and the coordinator decides about a rollback.
      if (report.ok && cmd.health) await this.soak(rendered, cmd, cmd.health, facts, report, signal);
    } else if (report.ok && mode === 'remove') {
      await this.o.applied.clear();
      appliedDigest = '';
      this.o.onAppliedChanged?.();
      this.o.onConverged?.();
    }

    const failure = report.failure;
    let error = '';
    if (report.cancelled) error = `cancelled${failure?.unitId ? ` while running unit ${failure.unitId}` : ''}`;
    else if (failure) error = `${failure.unitId ? `unit ${failure.unitId}: ` : ''}${failure.reason}` + (failure.alreadyChanged.length ? ` (already changed: ${failure.alreadyChanged.join(', ')})` : '');
    else if (!report.ok && mode === 'verify') error = `drift in ${report.changed.join(', ')}`;
    return {
      outcome: report.ok ? 'succeeded' : report.cancelled ? 'cancelled' : 'failed',
      error,
      report: commandReport(report),
      appliedDigest,
      output: output.result().text,
    };
  }

  /** Runs the health gate's soak after a converged apply; a failing probe turns the report into a failure. */
  private async soak(rendered: Bundle, cmd: Command__Output, gate: HealthGate__Output, facts: unknown, report: RunReport, signal: AbortSignal): Promise<void> {
    const asked: VerifyProbe[] = gate.probes.map((p) => {
      const timeout = p.timeoutMs ? { timeoutMs: p.timeoutMs } : {};
      if (p.tcp) return { id: p.id, tcp: p.tcp, ...timeout };
      if (p.http) return { id: p.id, http: p.http, ...(p.expectStatus ? { expectStatus: p.expectStatus } : {}), ...timeout };
      return { id: p.id, command: p.command, expectExit: p.expectExit, ...timeout };
    });
    let extra: VerifyProbe[];
    try {
      // The job's probes are templated like the bundle's: `{{ vars.port }}`, `{{ facts.hostname }}`.
      extra = renderBundle({ name: rendered.name, version: rendered.version, variables: cmd.variables, units: [], verify: asked }, { facts }).verify;
    } catch (err) {
      report.ok = false;
      report.failure = { reason: `health probes: ${errorMessage(err)}`, alreadyChanged: [] };
      return;
    }
    const probes = [...rendered.verify, ...extra];
    if (probes.length === 0) return;
    const r = await runHealthSoak(probes, { ...this.o.context, signal, changedUnits: new Set(report.changed) }, { soakMs: gate.soakMs, intervalMs: gate.intervalMs });
    this.log.info('health soak finished', { ok: r.ok, rounds: r.rounds, soakMs: gate.soakMs });
    // The apply's own probe results are superseded by the soak's last round.
    report.probes = r.probes;
    if (r.cancelled) {
      report.ok = false;
      report.cancelled = true;
    } else if (r.failure) {
      report.ok = false;
      const seconds = Math.round(r.failure.atMs / 1000);
      report.failure = { probeId: r.failure.probe.id, reason: `health probe ${r.failure.probe.id} failed ${seconds} s into the soak (round ${r.rounds}): ${r.failure.probe.detail}`, alreadyChanged: [] };
    }
  }

  private async exec(cmd: Command__Output, reportProgress: ReportProgress, signal: AbortSignal): Promise<CommandResultBody> {
    if (cmd.argv.length === 0) return { outcome: 'failed', error: 'exec command without argv' };
    const timeoutMs = cmd.timeoutMs > 0 ? cmd.timeoutMs : this.o.execTimeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
    const controller = new AbortController();
    const onAbort = (): void => controller.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => controller.abort(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    try {
      const r = await runShell(cmd.argv.map(shellQuote).join(' '), {
        cwd: this.o.context.root, env: this.o.context.env, signal: controller.signal,
        onOutput: (chunk) => reportProgress({ unitId: 'exec', status: 'running', message: '', output: chunk }),
      });
      const ok = !r.aborted && r.exitCode === 0;
      return {
        outcome: ok ? 'succeeded' : r.aborted ? (signal.aborted ? 'cancelled' : 'timed_out') : 'failed',
        error: ok ? '' : r.aborted ? errorMessage(controller.signal.reason) : `exit code ${r.exitCode ?? `killed by ${r.signal ?? 'a signal'}`}`,
        exitCode: r.exitCode ?? -1,
        output: r.output.text,
      };
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    }
  }
}
