/**
 * `directory` units: a directory (created with its parents), its mode, owner and group, or its
 * absence. Removal at decommission deletes the directory only when it is empty: the units
 * that put files in it are removed first (reverse order), so anything still inside belongs to
 * someone else, and wiping it (think `/etc`) would be the one unrecoverable mistake.
 * `ensure: absent` in a bundle is an explicit wish and removes the tree.
 */
import { promises as fs } from 'node:fs';
import { InvalidArgumentError } from '../../shared/errors';
import type { DirectoryUnitSpec } from '../../shared/bundle/types';
import { attributeChanges, describeChanges, fixAttributes, formatMode, resolveAttributes, statOrUndefined } from './file-attributes';
import { resolveUnderRoot } from './node-path';
import type { FieldChange, UnitContext, UnitHandler, UnitPlan } from './unit';

const DEFAULT_DIR_MODE = 0o755;

async function observe(spec: DirectoryUnitSpec, ctx: UnitContext): Promise<{ plan: UnitPlan; full: string }> {
  const full = resolveUnderRoot(ctx.root, spec.path);
  const st = await statOrUndefined(full);
  const base = { unitId: spec.id, kind: 'directory' as const };
  if (st && !st.isDirectory()) throw new InvalidArgumentError(`directory unit ${spec.id}: ${spec.path} exists and is not a directory`);
  if (spec.ensure === 'absent') {
    if (!st) return { full, plan: { ...base, action: 'unchanged', changes: [], summary: `${spec.path} is absent` } };
    return { full, plan: { ...base, action: 'remove', changes: [{ field: 'ensure', before: 'present', after: 'absent' }], summary: `remove ${spec.path} and everything in it` } };
  }
  const want = await resolveAttributes(spec, ctx.root);
  if (!st) {
    const mode = want.mode ?? DEFAULT_DIR_MODE;
    const changes: FieldChange[] = [
      { field: 'mode', before: null, after: formatMode(mode) },
      ...(spec.owner !== undefined ? [{ field: 'owner', before: null, after: spec.owner }] : []),
      ...(spec.group !== undefined ? [{ field: 'group', before: null, after: spec.group }] : []),
    ];
    return { full, plan: { ...base, action: 'create', changes, summary: `create directory ${spec.path} (mode ${formatMode(mode)})` } };
  }
  const changes = await attributeChanges(st, want, spec, ctx.root);
  if (changes.length === 0) return { full, plan: { ...base, action: 'unchanged', changes, summary: `${spec.path} is up to date` } };
  return { full, plan: { ...base, action: 'update', changes, summary: `update ${spec.path}: ${describeChanges(changes)}` } };
}

export const directoryUnit: UnitHandler<DirectoryUnitSpec> = {
  kind: 'directory',

  async plan(spec, ctx) {
    return (await observe(spec, ctx)).plan;
  },

  async apply(spec, ctx) {
    const { plan, full } = await observe(spec, ctx);
    if (plan.action === 'unchanged') return plan;
    if (plan.action === 'remove') {
      await fs.rm(full, { recursive: true, force: true });
      return plan;
    }
    const want = await resolveAttributes(spec, ctx.root);
    if (plan.action === 'create') await fs.mkdir(full, { recursive: true, mode: want.mode ?? DEFAULT_DIR_MODE });
    const st = await fs.lstat(full);
    // mkdir's mode passes through the umask; set the exact mode (and owner) afterwards.
    await fixAttributes(full, st, { ...want, mode: want.mode ?? (plan.action === 'create' ? DEFAULT_DIR_MODE : undefined) });
    return plan;
  },

  async verify(spec, ctx) {
    return (await observe(spec, ctx)).plan;
  },

  async remove(spec, ctx) {
    const full = resolveUnderRoot(ctx.root, spec.path);
    const base = { unitId: spec.id, kind: 'directory' as const };
    if (spec.ensure === 'absent') return { ...base, action: 'unchanged', changes: [], summary: `${spec.path}: nothing to remove (ensure: absent)` };
    const st = await statOrUndefined(full);
    if (!st) return { ...base, action: 'unchanged', changes: [], summary: `${spec.path} is already absent` };
    if (!st.isDirectory()) throw new InvalidArgumentError(`directory unit ${spec.id}: ${spec.path} is not a directory; not removing it`);
    const entries = await fs.readdir(full);
    if (entries.length > 0) {
      ctx.logger.warn('directory kept at removal: not empty', { unit: spec.id, path: spec.path, entries: entries.length });
      return { ...base, action: 'unchanged', changes: [], summary: `kept ${spec.path}: not empty (${entries.length} entr${entries.length === 1 ? 'y' : 'ies'} not created by this bundle)` };
    }
    await fs.rmdir(full);
    return { ...base, action: 'remove', changes: [{ field: 'ensure', before: 'present', after: 'absent' }], summary: `remove directory ${spec.path}` };
  },
};
