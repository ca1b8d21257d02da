/**
 * Runs a rendered bundle's units in order, in one of four modes:
 * - apply: converge each unit; the first failure stops the run and the report says which unit,
 *   why, and what had already changed. Then the verify probes (retried within their timeouts).
 * - plan: what apply would do; nothing changes.
 * - verify: is every unit as specified (drift otherwise) and does every probe pass; reads only,
 *   so it keeps going past drift to report all of it.
 * - remove: undo the units in reverse order (decommission; units a new version dropped, agent/dropped-units.ts).
 * Every unit runs under a timeout (its own or the default) and the run's AbortSignal: either
 * aborts the unit's signal, which stops its child process. Progress is reported per unit, for
 * the agent's stream to forward as CommandProgress.
 */
import { CancelledError, DeadlineExceededError } from '../../shared/errors';
import { digestOf } from '../../shared/bundle/digest';
import type { Bundle, UnitKind, UnitSpec } from '../../shared/bundle/types';
import type { BaseUnitContext } from './unit';
import { hasGuard } from './command-unit';
import { runProbe, type ProbeResult } from './verify-probes';
import type { UnitContext, UnitHandler, UnitOutput, UnitPlan } from './unit';

export type RunMode = 'apply' | 'plan' | 'verify' | 'remove';
export type UnitState = 'running' | 'changed' | 'unchanged' | 'failed' | 'skipped' | 'removed';
export type HandlerRegistry = ReadonlyMap<UnitKind, UnitHandler>;

export const DEFAULT_UNIT_TIMEOUT_MS = 5 * 60_000;
/** After a run is aborted, how long a unit may take to stop before the run gives up on it. @default 10000 */
export const DEFAULT_STOP_GRACE_MS = 10_000;

export interface UnitResult {
  unitId: string;
  kind: UnitKind;
  state: Exclude<UnitState, 'running'>;
  /** What the unit did / would do / found; absent when it failed before knowing. */
  plan?: UnitPlan;
  error?: string;
  output?: UnitOutput;
  durationMs: number;
  /** Digest of the rendered spec (what the applied record keeps). */
  digest: string;
}

export interface UnitProgress extends Partial<Omit<UnitResult, 'state'>> {
  mode: RunMode;
  unitId: string;
  kind: UnitKind;
  /** 0-based position in the bundle. */
  index: number;
  total: number;
  state: UnitState;
}

export interface RunFailure {
  unitId?: string;
  probeId?: string;
  reason: string;
  /** Units that had changed (or been removed) before the failure, in order. */
  alreadyChanged: string[];
}

export interface RunReport {
  mode: RunMode;
  bundle: { name: string; version: string };
  /** apply/remove: finished without failure; verify: no drift and every probe passed; plan: could be planned. */
  ok: boolean;
  /** Ids that changed (apply), would change (plan), drifted (verify), were removed (remove). */
  changed: string[];
  units: UnitResult[];
  probes: ProbeResult[];
  failure?: RunFailure;
  cancelled: boolean;
  durationMs: number;
}

export interface ExecutorOptions {
  handlers: HandlerRegistry;
  context: BaseUnitContext;
  signal?: AbortSignal;
  defaultTimeoutMs?: number;
  onProgress?: (p: UnitProgress) => void;
  onOutput?: (unitId: string, chunk: string) => void;
  /**
   * Digests of units converged by the last apply (from the applied record). A command with no
   * guard counts as done when its digest is here: it runs again only when its spec changes.
   */
  previousDigests?: ReadonlyMap<string, string>;
  /** Run verify probes after apply and in verify (default true). */
  runProbes?: boolean;
  /** After the signal aborts, how long a unit may take to stop before the run gives up on it (default 10 s). */
  stopGraceMs?: number;
  now?: () => number;
}

/** Digest of one rendered unit spec. */
export function unitDigest(spec: UnitSpec): string {
  return digestOf(spec);
}

function stateFor(mode: RunMode, plan: UnitPlan): Exclude<UnitState, 'running' | 'failed'> {
  if (plan.action === 'unchanged') return 'unchanged';
  if (plan.action === 'skip') return 'skipped';
  if (mode === 'remove') return plan.action === 'remove' ? 'removed' : 'changed';
  return 'changed';
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function outputOf(err: unknown): UnitOutput | undefined {
  const o = (err as { output?: unknown } | null)?.output;
  return o && typeof o === 'object' && typeof (o as UnitOutput).text === 'string' ? (o as UnitOutput) : undefined;
}

function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/** Runs `work` with a signal that aborts on the run's signal or after `timeoutMs`; gives up `graceMs` after an abort. */
async function withDeadline<T>(
  unitId: string,
  timeoutMs: number,
  runSignal: AbortSignal | undefined,
  graceMs: number,
  work: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DeadlineExceededError(`unit ${unitId} timed out after ${formatMs(timeoutMs)}`)), timeoutMs);
  const onRunAbort = (): void => controller.abort(new CancelledError(`unit ${unitId} stopped: run cancelled`));
  if (runSignal?.aborted) onRunAbort();
  else runSignal?.addEventListener('abort', onRunAbort, { once: true });
  let graceTimer: NodeJS.Timeout | undefined;
  // A handler that ignores its signal must not hold the run forever.
  const gaveUp = new Promise<never>((_, reject) => {
    controller.signal.addEventListener('abort', () => {
      graceTimer = setTimeout(() => reject(controller.signal.reason instanceof Error ? controller.signal.reason : new CancelledError(`unit ${unitId} stopped`)), graceMs);
    }, { once: true });
  });
  gaveUp.catch(() => undefined);
  try {
    const result = await Promise.race([work(controller.signal), gaveUp]);
    // Work that finished but was aborted meanwhile (e.g. a guard cut short) still counts as stopped.
    if (controller.signal.aborted) throw controller.signal.reason instanceof Error ? controller.signal.reason : new CancelledError(`unit ${unitId} stopped`);
    return result;
  } catch (err) {
    // Name the timeout or the cancel rather than the child's "killed by SIGTERM".
    if (controller.signal.aborted && controller.signal.reason instanceof Error) {
      throw Object.assign(controller.signal.reason, { output: outputOf(err) });
    }
    throw err;
  } finally {
    clearTimeout(timer);
    if (graceTimer) clearTimeout(graceTimer);
    runSignal?.removeEventListener('abort', onRunAbort);
  }
}

export async function runBundle(bundle: Bundle, mode: RunMode, options: ExecutorOptions): Promise<RunReport> {
  const now = options.now ?? Date.now;
  const started = now();
  const changed = new Set<string>();
  const results: UnitResult[] = [];
  const order = mode === 'remove' ? [...bundle.units].reverse() : bundle.units;
  const total = order.length;
  let failure: RunFailure | undefined;
  let cancelled = false;

  // Measuring must never change a run's outcome.
  const observe = (report: () => void): void => {
    try {
      report();
    } catch (err) {
      options.context.logger.warn('run observer failed', { error: errorText(err) });
    }
  };
  const progress = (p: Omit<UnitProgress, 'mode' | 'total'>): void => {
    try {
      options.onProgress?.({ ...p, mode, total });
    } catch (err) {
      options.context.logger.warn('progress callback failed', { error: errorText(err) });
    }
  };

  for (let index = 0; index < order.length; index++) {
    const spec = order[index];
    const digest = unitDigest(spec);
    const base = { unitId: spec.id, kind: spec.kind, digest };

    if (failure && (mode !== 'verify' || cancelled)) {
      const r: UnitResult = { ...base, state: 'skipped', durationMs: 0, error: `not run: ${failure.unitId ?? failure.probeId ?? 'run'} failed first` };
      results.push(r);
      progress({ ...r, index });
      continue;
    }

    const unitStarted = now();
    progress({ ...base, index, state: 'running' });
    const handler = options.handlers.get(spec.kind);
    try {
      if (!handler) throw new Error(`no handler for ${spec.kind} units in this agent`);
      const ranOnce = spec.kind === 'command' && !hasGuard(spec) && options.previousDigests?.get(spec.id) === digest;
      let plan: UnitPlan & { output?: UnitOutput };
      if (ranOnce && mode !== 'remove') {
        plan = { unitId: spec.id, kind: spec.kind, action: 'unchanged', changes: [], summary: 'already ran (no guard: runs again when its spec changes)' };
      } else {
        plan = await withDeadline(spec.id, spec.timeoutMs ?? options.defaultTimeoutMs ?? DEFAULT_UNIT_TIMEOUT_MS, options.signal, options.stopGraceMs ?? DEFAULT_STOP_GRACE_MS, (signal) => {
          const ctx: UnitContext = {
            ...options.context,
            signal,
            // Plan counts what *would* change, so a systemd unit's planned restart shows too.
            changedUnits: changed,
            onOutput: options.onOutput ? (chunk: string) => options.onOutput?.(spec.id, chunk) : undefined,
          };
          switch (mode) {
            case 'apply': return handler.apply(spec, ctx);
            case 'plan': return handler.plan(spec, ctx);
            case 'verify': return handler.verify(spec, ctx);
            case 'remove': return handler.remove(spec, ctx);
          }
        });
      }
      const state = stateFor(mode, plan);
      if (state === 'changed' || state === 'removed') changed.add(spec.id);
      const { output, ...planOnly } = plan;
      const r: UnitResult = { ...base, state, plan: planOnly, durationMs: now() - unitStarted, ...(output ? { output } : {}) };
      results.push(r);
      observe(() => options.context.observer?.unitFinished(mode, r));
      progress({ ...r, index });
    } catch (err) {
      const reason = errorText(err);
      const output = outputOf(err);
      const r: UnitResult = { ...base, state: 'failed', error: reason, durationMs: now() - unitStarted, ...(output ? { output } : {}) };
      results.push(r);
      observe(() => options.context.observer?.unitFinished(mode, r));
      progress({ ...r, index });
      if (options.signal?.aborted) cancelled = true;
      // verify only reads: keep going to report all drift; apply/plan/remove stop here.
      if (mode !== 'verify' || cancelled) {
        failure = { unitId: spec.id, reason, alreadyChanged: mode === 'plan' ? [] : [...changed] };
      } else {
        failure ??= { unitId: spec.id, reason, alreadyChanged: [] };
      }
    }
  }

  const probes: ProbeResult[] = [];
  const wantProbes = (options.runProbes ?? true) && (mode === 'apply' || mode === 'verify') && bundle.verify.length > 0;
  if (wantProbes && !(mode === 'apply' && failure) && !cancelled) {
    const ctx: UnitContext = { ...options.context, signal: options.signal ?? new AbortController().signal, changedUnits: changed };
    for (const probe of bundle.verify) {
      const r = await runProbe(probe, ctx, { retry: mode === 'apply' });
      probes.push(r);
      if (!r.ok && !failure) failure = { probeId: probe.id, reason: `verify probe ${probe.id} failed: ${r.detail}`, alreadyChanged: mode === 'apply' ? [...changed] : [] };
    }
  }
  if (options.signal?.aborted) cancelled = true;

  const ok = failure === undefined && !cancelled && (mode !== 'verify' || changed.size === 0);
  const report: RunReport = {
    mode,
    bundle: { name: bundle.name, version: bundle.version },
    ok,
    changed: [...changed],
    units: results,
    probes,
    ...(failure ? { failure } : {}),
    cancelled,
    durationMs: now() - started,
  };
  observe(() => options.context.observer?.runFinished(report));
  return report;
}
