/**
 * A group's allowed paths: the directories (or files) its bundles' units may write. Checked by
 * the coordinator when a bundle is assigned to the group (group set, bundle push of a version of
 * a bundle the group uses) and again by the agent on the rendered units of every command, before
 * it touches anything: a leader is not trusted blindly.
 *
 * What writes, per unit kind:
 * - `file`, `directory`: their `path`;
 * - `systemd` with `content`: the unit file, `<unit directory>/<unit>` (/etc/systemd/system);
 *   enabling and starting a unit without content writes no file of the bundle's;
 * - `package` and `command`: not restricted. A package writes where its package manager puts
 *   it, and a command can write anything its shell can; what limits command units is the role
 *   needed to push them (admin).
 *
 * Paths are compared after normalisation (`/etc/myapp//./x` is `/etc/myapp/x`), by whole
 * segments (`/etc/myapp` allows `/etc/myapp/x`, not `/etc/myapp2`); a `..` segment or a NUL byte
 * is refused everywhere before this check. Empty list: no restriction beyond those rules.
 */
import { posix } from 'node:path';
import { InvalidArgumentError, safeText } from './errors';
import type { Bundle, UnitSpec } from './bundle/types';

/** Entries in one group's list, and characters of one entry. */
export const MAX_ALLOWED_PATHS = 64;
export const MAX_ALLOWED_PATH_CHARS = 1024;

export const DEFAULT_SYSTEMD_UNIT_DIR = '/etc/systemd/system';

/** Normalised, sorted, without duplicates; InvalidArgumentError naming the first bad entry. */
export function normaliseAllowedPaths(entries: readonly string[]): string[] {
  const list = entries.map((e) => e.trim()).filter((e) => e !== '');
  if (list.length > MAX_ALLOWED_PATHS) throw new InvalidArgumentError(`allowedPaths: at most ${MAX_ALLOWED_PATHS} paths (got ${list.length})`);
  const out = new Set<string>();
  for (const e of list) {
    const shown = JSON.stringify(safeText(e, 80));
    if (e.length > MAX_ALLOWED_PATH_CHARS) throw new InvalidArgumentError(`allowedPaths: a path is longer than ${MAX_ALLOWED_PATH_CHARS} characters`);
    if (e.includes('\0')) throw new InvalidArgumentError('allowedPaths: a path must not contain a NUL byte');
    if (!e.startsWith('/')) throw new InvalidArgumentError(`allowedPaths: ${shown} must be absolute`);
    if (e.split('/').includes('..')) throw new InvalidArgumentError(`allowedPaths: ${shown} must not contain ".." segments`);
    if (e.includes('{{')) throw new InvalidArgumentError(`allowedPaths: ${shown} must not be a template`);
    out.add(normalise(e));
  }
  return [...out].sort();
}

function normalise(path: string): string {
  const n = posix.normalize(path);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

/** Whether `path` (absolute, no `..`) is an allowed entry or lies under one. */
export function pathAllowed(path: string, allowed: readonly string[]): boolean {
  if (allowed.length === 0) return true;
  const p = normalise(path);
  return allowed.some((a) => a === '/' || p === a || p.startsWith(`${a}/`));
}

/** The paths a unit writes (see the file comment); none for package and command units. */
export function unitWrites(unit: UnitSpec, systemdUnitDir = DEFAULT_SYSTEMD_UNIT_DIR): string[] {
  switch (unit.kind) {
    case 'file':
    case 'directory':
      return [unit.path];
    case 'systemd':
      return unit.content !== undefined ? [posix.join(systemdUnitDir, unit.unit)] : [];
    default:
      return [];
  }
}

export interface PathViolation {
  unitId: string;
  path: string;
}

/**
 * The first unit of `bundle` that writes outside `allowed`, or undefined. A templated path (not
 * rendered yet: the coordinator's check) is judged by its fixed directory, the part before the
 * first `{{` up to its last `/`: that directory must itself be allowed, since whatever the
 * template renders to lies under it (a rendered `..` is refused by the agent).
 */
export function firstViolation(bundle: Pick<Bundle, 'units'>, allowed: readonly string[], systemdUnitDir?: string): PathViolation | undefined {
  if (allowed.length === 0) return undefined;
  for (const unit of bundle.units) {
    for (const path of unitWrites(unit, systemdUnitDir)) {
      const t = path.indexOf('{{');
      const fixed = t < 0 ? path : path.slice(0, path.lastIndexOf('/', t) + 1) || '/';
      if (!pathAllowed(fixed, allowed)) return { unitId: unit.id, path };
    }
  }
  return undefined;
}

/** A refusal's text: the unit and path (cut short), and the allowed list. */
export function violationMessage(v: PathViolation, allowed: readonly string[]): string {
  const list = allowed.length > 8 ? `${allowed.slice(0, 8).join(', ')}, … (${allowed.length})` : allowed.join(', ');
  return `unit ${safeText(v.unitId, 80)} writes ${JSON.stringify(safeText(v.path, 200))}, outside the allowed paths (${list})`;
}
