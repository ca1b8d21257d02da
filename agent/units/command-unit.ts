/**
 * `command` units: a shell command made idempotent by guards, as in Puppet's exec and
 * Ansible's command module: `creates` (skip when the path exists), `unless` (skip when it exits
 * 0), `onlyIf` (run only when it exits 0). Verify asks the same guards whether the command's
 * effect is there. A command with no guard at all runs once per rendered spec: the executor
 * compares the unit's digest with the applied record (executor.ts), since nothing on the
 * machine can tell whether it ran.
 */
import { ClusterError, InvalidArgumentError } from '../../shared/errors';
import type { CommandUnitSpec } from '../../shared/bundle/types';
import { statOrUndefined } from './file-attributes';
import { resolveUnderRoot } from './node-path';
import { runShell, type ShellResult } from './run-shell';
import type { UnitContext, UnitHandler, UnitOutput, UnitPlan } from './unit';

/** A command (run or undo) exited non-zero or was stopped; carries its bounded output. */
export class CommandFailedError extends ClusterError {
  constructor(message: string, readonly output: UnitOutput, readonly exitCode: number | null) {
    super(message);
  }
}

export function hasGuard(spec: CommandUnitSpec): boolean {
  return spec.creates !== undefined || spec.unless !== undefined || spec.onlyIf !== undefined;
}

function short(cmd: string): string {
  const one = cmd.replace(/\s+/g, ' ').trim();
  return one.length > 72 ? `${one.slice(0, 69)}...` : one;
}

async function shellOptions(spec: CommandUnitSpec, ctx: UnitContext): Promise<{ cwd: string; env: NodeJS.ProcessEnv }> {
  const cwd = spec.cwd !== undefined ? resolveUnderRoot(ctx.root, spec.cwd) : ctx.root;
  const st = await statOrUndefined(cwd);
  if (!st?.isDirectory()) throw new InvalidArgumentError(`command unit ${spec.id}: working directory ${spec.cwd ?? cwd} does not exist`);
  return { cwd, env: { ...ctx.env, ...(spec.env ?? {}) } };
}

function failureText(what: string, r: ShellResult): string {
  if (r.aborted) return `${what} was stopped`;
  if (r.exitCode === null) return `${what} was killed by ${r.signal ?? 'a signal'}`;
  const lastLine = r.output.text.trimEnd().split('\n').pop() ?? '';
  return `${what} exited with status ${r.exitCode}${lastLine ? `: ${lastLine.slice(0, 200)}` : ''}`;
}

/** Throws the abort reason when the signal fired (timeout or cancel), so the executor can say which. */
function throwIfAborted(r: ShellResult, ctx: UnitContext): void {
  if (r.aborted) {
    const reason: unknown = ctx.signal.reason;
    if (reason instanceof Error) throw Object.assign(reason, { output: r.output });
    throw new CommandFailedError('command was stopped', r.output, null);
  }
}

/** Whether the guards say the command need not run, and why (or why it must). */
async function guardVerdict(spec: CommandUnitSpec, ctx: UnitContext): Promise<{ satisfied: boolean; why: string }> {
  if (spec.creates !== undefined) {
    const full = resolveUnderRoot(ctx.root, spec.creates);
    if (await statOrUndefined(full)) return { satisfied: true, why: `${spec.creates} exists` };
  }
  if (spec.unless === undefined && spec.onlyIf === undefined) return { satisfied: false, why: spec.creates !== undefined ? `${spec.creates} missing` : 'no guard' };
  const cwd = spec.cwd !== undefined ? resolveUnderRoot(ctx.root, spec.cwd) : ctx.root;
  // In a plan, an earlier unit may be what creates the working directory: the guard cannot run yet.
  if (!(await statOrUndefined(cwd))?.isDirectory()) return { satisfied: false, why: `guards not evaluated: ${spec.cwd ?? 'the node root'} does not exist yet` };
  const opts = await shellOptions(spec, ctx);
  if (spec.unless !== undefined) {
    const r = await runShell(spec.unless, { ...opts, signal: ctx.signal });
    throwIfAborted(r, ctx);
    if (r.exitCode === 0) return { satisfied: true, why: `unless "${short(spec.unless)}" succeeded` };
  }
  if (spec.onlyIf !== undefined) {
    const r = await runShell(spec.onlyIf, { ...opts, signal: ctx.signal });
    throwIfAborted(r, ctx);
    if (r.exitCode !== 0) return { satisfied: true, why: `onlyIf "${short(spec.onlyIf)}" exited ${r.exitCode ?? r.signal ?? '?'}` };
  }
  const missing = spec.creates !== undefined ? `${spec.creates} missing` : spec.unless !== undefined ? 'unless failed' : spec.onlyIf !== undefined ? 'onlyIf succeeded' : 'no guard';
  return { satisfied: false, why: missing };
}

function base(spec: CommandUnitSpec): Pick<UnitPlan, 'unitId' | 'kind'> {
  return { unitId: spec.id, kind: 'command' };
}

export const commandUnit: UnitHandler<CommandUnitSpec> = {
  kind: 'command',

  async plan(spec, ctx) {
    const g = await guardVerdict(spec, ctx);
    if (g.satisfied) return { ...base(spec), action: spec.onlyIf !== undefined && g.why.startsWith('onlyIf') ? 'skip' : 'unchanged', changes: [], summary: `skip "${short(spec.run)}": ${g.why}` };
    return { ...base(spec), action: 'create', changes: [{ field: 'run', before: null, after: short(spec.run) }], summary: `run "${short(spec.run)}" (${g.why})` };
  },

  async apply(spec, ctx) {
    const planned = await commandUnit.plan(spec, ctx);
    if (planned.action !== 'create') return planned;
    const opts = await shellOptions(spec, ctx);
    const r = await runShell(spec.run, { ...opts, signal: ctx.signal, onOutput: (chunk) => ctx.onOutput?.(chunk) });
    throwIfAborted(r, ctx);
    if (r.exitCode !== 0) throw new CommandFailedError(`command unit ${spec.id}: ${failureText(`"${short(spec.run)}"`, r)}`, r.output, r.exitCode);
    if (spec.creates !== undefined && !(await statOrUndefined(resolveUnderRoot(ctx.root, spec.creates)))) {
      // Otherwise the next apply would run it again, forever "changed".
      throw new CommandFailedError(`command unit ${spec.id}: "${short(spec.run)}" succeeded but did not create ${spec.creates}`, r.output, 0);
    }
    return { ...planned, summary: `ran "${short(spec.run)}"`, output: r.output };
  },

  async verify(spec, ctx) {
    const g = await guardVerdict(spec, ctx);
    if (g.satisfied) return { ...base(spec), action: 'unchanged', changes: [], summary: `satisfied: ${g.why}` };
    if (!hasGuard(spec)) return { ...base(spec), action: 'create', changes: [], summary: `no guard and no record of "${short(spec.run)}" having run` };
    return { ...base(spec), action: 'create', changes: [{ field: 'run', before: null, after: short(spec.run) }], summary: `drift: ${g.why}; "${short(spec.run)}" would run` };
  },

  async remove(spec, ctx) {
    if (spec.undo === undefined) return { ...base(spec), action: 'unchanged', changes: [], summary: 'no undo command' };
    if (spec.creates !== undefined && !(await statOrUndefined(resolveUnderRoot(ctx.root, spec.creates)))) {
      return { ...base(spec), action: 'unchanged', changes: [], summary: `nothing to undo: ${spec.creates} is absent` };
    }
    const opts = await shellOptions(spec, ctx);
    const r = await runShell(spec.undo, { ...opts, signal: ctx.signal, onOutput: (chunk) => ctx.onOutput?.(chunk) });
    throwIfAborted(r, ctx);
    if (r.exitCode !== 0) throw new CommandFailedError(`command unit ${spec.id}: undo ${failureText(`"${short(spec.undo)}"`, r)}`, r.output, r.exitCode);
    return { ...base(spec), action: 'remove', changes: [{ field: 'undo', before: null, after: short(spec.undo) }], summary: `ran undo "${short(spec.undo)}"`, output: r.output };
  },
};

