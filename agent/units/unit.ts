/**
 * The contract every unit kind implements (../../../shared/DESIGN.md, "Config units and
 * bundles"): check → plan (a readable diff) → apply → verify, and remove. Handlers are
 * stateless objects; everything a run needs comes in the UnitContext, so many agents (and
 * many runs) can share one handler in one process.
 */
import type { RunMode, RunReport, UnitResult } from './executor';
import type { Logger } from '../../shared';
import type { UnitSpec } from '../../shared/bundle/types';
import type { PackageBackend } from '../packages/backend';
import type { SystemdManager } from '../systemd/manager';

/** One field that differs: what is there now, what the unit wants. */
export interface FieldChange {
  field: string;
  before: string | null;
  after: string | null;
}

export type PlanAction = 'create' | 'update' | 'unchanged' | 'remove' | 'skip';

/** What a unit would do (plan), did (apply/remove), or found (verify: anything but unchanged is drift). */
export interface UnitPlan {
  unitId: string;
  kind: UnitSpec['kind'];
  action: PlanAction;
  changes: FieldChange[];
  /** One line a person reads: `update /etc/chrony.conf: content 3 lines changed, mode 0600→0644`. */
  summary: string;
}

/** Output of commands run by a unit, bounded (head and tail kept). */
export interface UnitOutput {
  text: string;
  truncated: boolean;
}

/** Abstract over the parts a unit talks to, so the same handler runs in production and in a sandbox. */
export interface UnitContext {
  /** Node root: '/' in production, a sandbox directory under test. File paths resolve under it. */
  root: string;
  logger: Logger;
  /** Aborted on cancel or unit timeout; the running unit must stop (kill its child process). */
  signal: AbortSignal;
  /** Ids of units that changed earlier in this run (for restartWhenChanged). */
  changedUnits: ReadonlySet<string>;
  /** Environment for commands (the node's). */
  env: NodeJS.ProcessEnv;
  /** Lazily connected systemd manager (system bus in production, a user manager under test). */
  systemd(): Promise<SystemdManager>;
  /** Package backend detected or configured for this node. */
  packages(): Promise<PackageBackend>;
  /** Called with output chunks (commands) as they arrive, for live progress. */
  onOutput?(chunk: string): void;
  /** Told of every unit a run ran and of every run's end (the agent's metrics). */
  observer?: RunObserver;
}

/** What the executor reports to whoever measures it (agent/metrics.ts); a narrow interface. */
export interface RunObserver {
  /** A unit ran (units skipped because an earlier one failed are not reported). */
  unitFinished(mode: RunMode, result: UnitResult): void;
  runFinished(report: RunReport): void;
}

export interface UnitHandler<S extends UnitSpec = UnitSpec> {
  readonly kind: S['kind'];
  /** What would change; reads only. */
  plan(spec: S, ctx: UnitContext): Promise<UnitPlan>;
  /** Converges; returns what it did (action 'unchanged' when nothing). */
  apply(spec: S, ctx: UnitContext): Promise<UnitPlan & { output?: UnitOutput }>;
  /** Checks the unit is as specified; action 'unchanged' means no drift. */
  verify(spec: S, ctx: UnitContext): Promise<UnitPlan>;
  /** Undoes the unit (decommission, or a new version dropped it); 'unchanged' when nothing was there. */
  remove(spec: S, ctx: UnitContext): Promise<UnitPlan & { output?: UnitOutput }>;
}

/** The per-node part of a UnitContext; the executor adds the per-run parts (signal, changedUnits, onOutput). */
export type BaseUnitContext = Omit<UnitContext, 'signal' | 'changedUnits' | 'onOutput'>;
