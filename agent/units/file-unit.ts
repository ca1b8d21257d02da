/**
 * `file` units: a file's content, mode, owner and group, or its absence. Content is written
 * atomically (atomic-write.ts); a plan names what differs with line counts and digests, never
 * the content itself. A secret unit's plan has no digest either: a plain hash of a short secret
 * lets whoever reads the plan test guesses of it.
 */
import { closeSync, constants, fstatSync, lstatSync, openSync, promises as fs, readSync, type Stats } from 'node:fs';
import { dirname } from 'node:path';
import { InvalidArgumentError } from '../../shared/errors';
import type { FileUnitSpec } from '../../shared/bundle/types';
import { writeFileAtomic } from './atomic-write';
import { describeContent as describePlain, describeSecret, diffContent } from './content-diff';
import { attributeChanges, describeChanges, fixAttributes, formatMode, resolveAttributes, statOrUndefined, type ResolvedAttributes } from './file-attributes';
import { resolveUnderRoot } from './node-path';
import type { FieldChange, UnitContext, UnitHandler, UnitPlan } from './unit';

const DEFAULT_FILE_MODE = 0o644;

function contentOf(spec: FileUnitSpec): string {
  if (spec.content !== undefined) return spec.content;
  throw new InvalidArgumentError(
    `file unit ${spec.id}: source "${spec.source ?? ''}" was not inlined (the coordinator inlines distributed files; locally pass --files-dir DIR)`,
  );
}

/**
 * The bytes of `full` when it is still a regular file of exactly `size` bytes; undefined when it
 * is anything else by the time it is opened (the caller then reads it the usual way). Read
 * synchronously because a no-op verify reads every managed file, and the promise API's open,
 * fstat, read and close are four thread-pool round trips per file: on a busy machine a 500-unit
 * verify spent most of its wall time waiting for them, not reading. `size` is the wanted
 * content's, so the read is bounded by the bundle's own size limit; O_NONBLOCK keeps a FIFO
 * swapped in since the lstat from blocking the event loop, O_NOFOLLOW a symlink from being followed.
 */
function readIfSameSize(full: string, size: number): Buffer | undefined {
  let fd: number;
  try {
    fd = openSync(full, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  } catch {
    return undefined;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.size !== size) return undefined;
    // One byte more than expected tells a file that grew since the fstat.
    const buf = Buffer.allocUnsafe(size + 1);
    let got = 0;
    for (let n = 1; n > 0 && got <= size; got += n) n = readSync(fd, buf, got, size + 1 - got, got);
    return got === size ? buf.subarray(0, size) : undefined;
  } finally {
    closeSync(fd);
  }
}

interface Observed {
  plan: UnitPlan;
  full: string;
  /** What to write, when the content (or the file type) must change. */
  write?: string;
  fixAttrs: boolean;
  /** The path's lstat as observed (undefined: absent), and the unit's attributes resolved. */
  st?: Stats;
  want?: ResolvedAttributes;
}

async function observe(spec: FileUnitSpec, ctx: UnitContext): Promise<Observed> {
  const describeContent = spec.secret === true ? describeSecret : describePlain;
  const full = resolveUnderRoot(ctx.root, spec.path);
  const st = await statOrUndefined(full);
  const base = { unitId: spec.id, kind: 'file' as const };
  if (st?.isDirectory()) throw new InvalidArgumentError(`file unit ${spec.id}: ${spec.path} is a directory`);

  if (spec.ensure === 'absent') {
    if (!st) return { full, fixAttrs: false, plan: { ...base, action: 'unchanged', changes: [], summary: `${spec.path} is absent` } };
    return {
      full, fixAttrs: false,
      plan: { ...base, action: 'remove', changes: [{ field: 'ensure', before: 'present', after: 'absent' }], summary: `remove ${spec.path}` },
    };
  }

  const content = contentOf(spec);
  const want = await resolveAttributes(spec, ctx.root);
  if (!st) {
    const mode = want.mode ?? DEFAULT_FILE_MODE;
    const changes: FieldChange[] = [
      { field: 'content', before: null, after: describeContent(content) },
      { field: 'mode', before: null, after: formatMode(mode) },
      ...(spec.owner !== undefined ? [{ field: 'owner', before: null, after: spec.owner }] : []),
      ...(spec.group !== undefined ? [{ field: 'group', before: null, after: spec.group }] : []),
    ];
    return { full, write: content, fixAttrs: false, want, plan: { ...base, action: 'create', changes, summary: `create ${spec.path} (${describeContent(content)}, mode ${formatMode(mode)})` } };
  }

  const changes: FieldChange[] = [];
  const parts: string[] = [];
  let write: string | undefined;
  if (st.isSymbolicLink() || !st.isFile()) {
    changes.push({ field: 'type', before: st.isSymbolicLink() ? 'symlink' : 'special', after: 'file' });
    parts.push(`replace ${st.isSymbolicLink() ? 'symlink' : 'special file'} with a file`);
    write = content;
  } else {
    const wanted = Buffer.from(content, 'utf8');
    const current = (st.size === wanted.length ? readIfSameSize(full, wanted.length) : undefined) ?? await fs.readFile(full);
    if (!current.equals(wanted)) {
      const before = current.toString('utf8');
      const d = diffContent(before, content);
      changes.push({ field: 'content', before: describeContent(before), after: describeContent(content) });
      parts.push(`content ${d.beforeLines}→${d.afterLines} lines (+${d.added} -${d.removed})`);
      write = content;
    }
  }
  const attrs = await attributeChanges(st.isSymbolicLink() ? undefined : st, want, spec, ctx.root);
  changes.push(...attrs);
  if (attrs.length > 0) parts.push(describeChanges(attrs));
  if (changes.length === 0) return { full, fixAttrs: false, plan: { ...base, action: 'unchanged', changes, summary: `${spec.path} is up to date` } };
  return { full, write, fixAttrs: attrs.length > 0, st, want, plan: { ...base, action: 'update', changes, summary: `update ${spec.path}: ${parts.join(', ')}` } };
}

export const fileUnit: UnitHandler<FileUnitSpec> = {
  kind: 'file',

  async plan(spec, ctx) {
    return (await observe(spec, ctx)).plan;
  },

  async apply(spec, ctx) {
    const o = await observe(spec, ctx);
    if (o.plan.action === 'unchanged') return o.plan;
    if (o.plan.action === 'remove') {
      await fs.rm(o.full, { force: true });
      return o.plan;
    }
    // What observe() saw: units run one at a time, so nothing changed the path since.
    const st = o.st;
    const want = o.want ?? (await resolveAttributes(spec, ctx.root));
    if (o.write !== undefined) {
      // Most targets' directory exists (/etc): a 2 µs lstat instead of a thread-pool mkdir.
      const dir = dirname(o.full);
      if (!lstatSync(dir, { throwIfNoEntry: false })?.isDirectory()) await fs.mkdir(dir, { recursive: true, mode: 0o755 });
      // A replaced file keeps its owner and mode unless the unit names them.
      const keep = st?.isFile() ? st : undefined;
      await writeFileAtomic(o.full, o.write, {
        mode: want.mode ?? (keep ? keep.mode & 0o7777 : DEFAULT_FILE_MODE),
        uid: want.uid ?? keep?.uid,
        gid: want.gid ?? keep?.gid,
      });
    } else if (o.fixAttrs && st) {
      await fixAttributes(o.full, st, want);
    }
    return o.plan;
  },

  async verify(spec, ctx) {
    return (await observe(spec, ctx)).plan;
  },

  async remove(spec, ctx) {
    const full = resolveUnderRoot(ctx.root, spec.path);
    const base = { unitId: spec.id, kind: 'file' as const };
    if (spec.ensure === 'absent') return { ...base, action: 'unchanged', changes: [], summary: `${spec.path}: nothing to remove (ensure: absent)` };
    const st = await statOrUndefined(full);
    if (!st) return { ...base, action: 'unchanged', changes: [], summary: `${spec.path} is already absent` };
    if (st.isDirectory()) throw new InvalidArgumentError(`file unit ${spec.id}: ${spec.path} is a directory; not removing it`);
    await fs.rm(full, { force: true });
    return { ...base, action: 'remove', changes: [{ field: 'ensure', before: 'present', after: 'absent' }], summary: `remove ${spec.path}` };
  },
};
