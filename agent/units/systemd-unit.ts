/**
 * The `systemd` unit kind: an optional unit file (written atomically into the manager's unit
 * directory, daemon-reload when it changed), enabled or not, running or stopped, and restarted
 * when a unit it depends on changed earlier in the run (`restartWhenChanged`) or its own file
 * changed while it ran. Everything goes through the SystemdManager (D-Bus), never systemctl.
 *
 * A start that systemd accepts is not yet a running service: a Type=simple service whose
 * ExecStart exits at once reports its start job "done" and fails a moment later. So after a
 * start or restart the state is read again for a short settle time, and a unit that is not
 * active is reported as failed with what systemd says (`failed (exit-code)`).
 */
import { randomBytes, createHash } from 'node:crypto';
import { mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FailedPreconditionError, NotFoundError } from '../../shared';
import type { SystemdUnitSpec } from '../../shared/bundle/types';
import { checkUnitName } from '../systemd/unit-name';
import type { SystemdManager, SystemdUnitStatus } from '../systemd/manager';
import type { FieldChange, PlanAction, UnitContext, UnitHandler, UnitPlan } from './unit';

/** A unit systemd could not bring to the wanted state; carries what systemd reported. */
export class SystemdUnitFailedError extends FailedPreconditionError {
  constructor(message: string, readonly status: SystemdUnitStatus, readonly jobResult?: string) {
    super(message);
  }
}

/** How long a freshly started unit must stay up to count as started. @default 1000 */
export const DEFAULT_SETTLE_MS = 1000;

export interface SystemdUnitHandlerOptions {
  /** How long a freshly started unit must stay up to count as started; default 1000 ms. */
  settleMs?: number;
}

/** `active (running)`, `failed (exit-code)`: ActiveState plus SubState, or the service Result when it failed. */
export function describeState(s: SystemdUnitStatus): string {
  if (s.loadState === 'not-found') return 'not-found';
  const detail = s.activeState === 'failed' && s.result !== '' && s.result !== 'success' ? s.result : s.subState;
  return detail ? `${s.activeState} (${detail})` : s.activeState;
}

function isEnabled(s: SystemdUnitStatus): boolean {
  // enabled-runtime counts: the unit starts at boot; alias/static units are not something enable changes.
  return s.unitFileState === 'enabled' || s.unitFileState === 'enabled-runtime';
}

function isRunning(s: SystemdUnitStatus): boolean {
  return s.activeState === 'active' || s.activeState === 'reloading';
}

function describeContent(text: string | null): string | null {
  if (text === null) return null;
  const lines = text === '' ? 0 : text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
  return `${lines} line${lines === 1 ? '' : 's'}, sha256:${createHash('sha256').update(text).digest('hex').slice(0, 12)}`;
}

async function readOrNull(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** Write-then-rename in the same directory: systemd never reads a half-written unit file. */
async function writeAtomically(path: string, dir: string, content: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await writeFile(tmp, content, { mode: 0o644, flush: true });
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

/** What is there now and what the spec asks, decided without changing anything. */
interface Inspection {
  manager: SystemdManager;
  path: string;
  fileBefore: string | null;
  status: SystemdUnitStatus;
  writeFile: boolean;
  enable: boolean | undefined;
  start: 'start' | 'stop' | undefined;
  /** Why a restart is due (a changed unit id, or the unit's own file), when it is. */
  restartBecause: string | undefined;
  changes: FieldChange[];
}

async function inspect(spec: SystemdUnitSpec, ctx: UnitContext, forVerify: boolean): Promise<Inspection> {
  checkUnitName(spec.unit);
  const manager = await ctx.systemd();
  const path = join(manager.unitDir, spec.unit);
  const [fileBefore, status] = await Promise.all([readOrNull(path), manager.status(spec.unit)]);
  const changes: FieldChange[] = [];

  const writeFile = spec.content !== undefined && fileBefore !== spec.content;
  if (writeFile) changes.push({ field: 'content', before: describeContent(fileBefore), after: describeContent(spec.content ?? null) });
  if (spec.content === undefined && status.loadState === 'not-found') {
    // Nothing to write and systemd knows no such unit: apply will refuse (an earlier package unit may still provide it).
    changes.push({ field: 'unit', before: 'not-found', after: 'loaded' });
  }

  let enable: boolean | undefined;
  if (spec.enabled !== undefined && spec.enabled !== isEnabled(status)) {
    enable = spec.enabled;
    changes.push({ field: 'enabled', before: status.unitFileState || 'none', after: spec.enabled ? 'enabled' : 'disabled' });
  }

  let start: Inspection['start'];
  let restartBecause: string | undefined;
  if (spec.state === 'running' && !isRunning(status)) {
    start = 'start';
    changes.push({ field: 'state', before: describeState(status), after: 'active (running)' });
  } else if (spec.state === 'stopped' && status.activeState !== 'inactive' && status.activeState !== 'failed') {
    start = 'stop';
    changes.push({ field: 'state', before: describeState(status), after: 'inactive (dead)' });
  } else if (!forVerify && spec.state !== 'stopped' && isRunning(status)) {
    // A running unit picks up changed configuration only when restarted.
    const trigger = (spec.restartWhenChanged ?? []).find((id) => ctx.changedUnits.has(id));
    if (trigger !== undefined) restartBecause = `${trigger} changed`;
    else if (writeFile) restartBecause = 'its unit file changed';
    if (restartBecause !== undefined) changes.push({ field: 'restart', before: describeState(status), after: `restart (${restartBecause})` });
  }

  return { manager, path, fileBefore, status, writeFile, enable, start, restartBecause, changes };
}

function planFrom(spec: SystemdUnitSpec, ins: Inspection, action?: PlanAction): UnitPlan {
  const act: PlanAction = action ?? (ins.changes.length === 0 ? 'unchanged' : spec.content !== undefined && ins.fileBefore === null ? 'create' : 'update');
  const parts = ins.changes.map((c) => {
    if (c.field === 'content') return c.before === null ? 'unit file written' : 'unit file changed';
    if (c.field === 'restart') return c.after ?? 'restart';
    return `${c.field} ${c.before ?? 'none'}→${c.after ?? 'none'}`;
  });
  return {
    unitId: spec.id,
    kind: 'systemd',
    action: act,
    changes: ins.changes,
    summary: act === 'unchanged' ? `${spec.unit}: unchanged, ${describeState(ins.status)}` : `${act} ${spec.unit}: ${parts.join(', ')}`,
  };
}

async function settle(manager: SystemdManager, unit: string, settleMs: number, signal: AbortSignal): Promise<SystemdUnitStatus> {
  const deadline = Date.now() + settleMs;
  let status = await manager.status(unit);
  while (Date.now() < deadline && !signal.aborted) {
    if (status.activeState === 'failed') return status;
    await new Promise((r) => setTimeout(r, Math.min(200, Math.max(0, deadline - Date.now()))));
    status = await manager.status(unit);
  }
  return status;
}

export function createSystemdUnitHandler(options: SystemdUnitHandlerOptions = {}): UnitHandler<SystemdUnitSpec> {
  const settleMs = options.settleMs ?? DEFAULT_SETTLE_MS;

  const bringUp = async (spec: SystemdUnitSpec, ctx: UnitContext, manager: SystemdManager, verb: 'start' | 'restart'): Promise<void> => {
    const jobResult = verb === 'start' ? await manager.start(spec.unit, ctx.signal) : await manager.restart(spec.unit, ctx.signal);
    const status = await settle(manager, spec.unit, jobResult === 'done' ? settleMs : 0, ctx.signal);
    if (jobResult !== 'done' || !isRunning(status)) {
      throw new SystemdUnitFailedError(
        `systemd unit ${spec.unit} failed to ${verb}: ${describeState(status)} (job ${jobResult})`, status, jobResult,
      );
    }
    ctx.logger.info('systemd unit started', { unit: spec.unit, verb, state: describeState(status) });
  };

  return {
    kind: 'systemd',

    async plan(spec, ctx) {
      return planFrom(spec, await inspect(spec, ctx, false));
    },

    async apply(spec, ctx) {
      const ins = await inspect(spec, ctx, false);
      if (ins.changes.length === 0) return planFrom(spec, ins);
      const { manager } = ins;
      if (ins.writeFile) {
        await writeAtomically(ins.path, manager.unitDir, spec.content ?? '');
        await manager.reload();
      }
      if (spec.content === undefined && ins.status.loadState === 'not-found') {
        throw new NotFoundError(`systemd unit ${spec.unit} not found (no unit file for it, and the unit gives no content)`);
      }
      if (ins.enable === true) {
        await manager.enable(spec.unit);
        const after = await manager.status(spec.unit);
        if (!isEnabled(after)) {
          throw new FailedPreconditionError(`systemd unit ${spec.unit} cannot be enabled (unit file state ${after.unitFileState || 'none'}): it needs an [Install] section with WantedBy=`);
        }
      } else if (ins.enable === false) {
        await manager.disable(spec.unit);
      }
      if (ins.start === 'start') await bringUp(spec, ctx, manager, 'start');
      else if (ins.restartBecause !== undefined) await bringUp(spec, ctx, manager, 'restart');
      else if (ins.start === 'stop') {
        const result = await manager.stop(spec.unit, ctx.signal);
        if (result !== 'done') throw new SystemdUnitFailedError(`systemd unit ${spec.unit} failed to stop (job ${result})`, await manager.status(spec.unit), result);
      }
      return planFrom(spec, ins);
    },

    async verify(spec, ctx) {
      const ins = await inspect(spec, ctx, true);
      const plan = planFrom(spec, ins, ins.changes.length === 0 ? 'unchanged' : 'update');
      return ins.changes.length === 0 ? plan : { ...plan, summary: `drift ${spec.unit}: ${plan.summary.replace(/^update [^:]+: /, '')}` };
    },

    async remove(spec, ctx) {
      checkUnitName(spec.unit);
      const manager = await ctx.systemd();
      const path = join(manager.unitDir, spec.unit);
      const status = await manager.status(spec.unit);
      const fileBefore = spec.content !== undefined ? await readOrNull(path) : null;
      const changes: FieldChange[] = [];
      if (status.activeState !== 'inactive' && status.activeState !== 'failed' && status.loadState !== 'not-found') {
        const result = await manager.stop(spec.unit, ctx.signal);
        if (result !== 'done') throw new SystemdUnitFailedError(`systemd unit ${spec.unit} failed to stop (job ${result})`, await manager.status(spec.unit), result);
        changes.push({ field: 'state', before: describeState(status), after: 'inactive (dead)' });
      }
      if (isEnabled(status)) {
        await manager.disable(spec.unit);
        changes.push({ field: 'enabled', before: status.unitFileState, after: 'disabled' });
      }
      // Only a file this bundle wrote is deleted; a packaged unit file belongs to its package.
      if (fileBefore !== null) {
        await unlink(path);
        await manager.reload();
        changes.push({ field: 'content', before: describeContent(fileBefore), after: null });
      }
      const action: PlanAction = changes.length === 0 ? 'unchanged' : 'remove';
      return {
        unitId: spec.id, kind: 'systemd', action, changes,
        summary: action === 'unchanged'
          ? `${spec.unit}: nothing to remove`
          : `remove ${spec.unit}: ${changes.map((c) => (c.field === 'content' ? 'unit file deleted' : `${c.field} ${c.before ?? 'none'}→${c.after ?? 'none'}`)).join(', ')}`,
      };
    },
  };
}

/** The handler with default settings, for the executor's handler table. */
export const systemdUnitHandler: UnitHandler<SystemdUnitSpec> = createSystemdUnitHandler();

