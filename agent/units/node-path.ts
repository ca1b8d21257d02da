/**
 * Paths of units live under the node root ('/' in production, a sandbox directory under test),
 * so a whole simulated fleet can run on one machine. A unit's path is absolute in the bundle;
 * it is joined under the root and may never leave it:
 *
 * - a NUL byte or a `..` segment is refused outright (not normalised away: a path that says
 *   `..` is a mistake or an attack, Salt's CVE-2024-38824 was a traversal);
 * - under a sandbox root, the deepest part of the path that exists is resolved with realpath
 *   and must still be under the root's own real path, so a symlink made by an earlier unit
 *   (`ln -sfn /outside /root/escape`) cannot lead a later unit's `/escape/x` outside it.
 *   Units run one at a time, so nothing changes the tree between this check and the write.
 */
import { existsSync, lstatSync, readlinkSync, realpathSync } from 'node:fs';
import { dirname, isAbsolute, join, normalize, relative, resolve, sep } from 'node:path';
import { InvalidArgumentError } from '../../shared/errors';

function outside(root: string, full: string): boolean {
  const rel = relative(root, full);
  return rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel);
}

/**
 * The real path of `full`, or of its deepest existing ancestor; undefined when nothing of it
 * exists. A dangling symlink on the way is followed by hand (realpath fails on it, but a write
 * through it would create its target).
 */
function realPrefix(full: string, hops = 0): string | undefined {
  if (hops > 40) throw new InvalidArgumentError('too many levels of symbolic links');
  for (let p = full; ; p = dirname(p)) {
    try {
      // realpath(3) in one call: the JavaScript realpathSync lstat()s every component of the
      // path, which was the largest CPU cost of a no-op verify under a sandbox root.
      return realpathSync.native(p);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
      let link: string | undefined;
      try {
        if (lstatSync(p).isSymbolicLink()) link = readlinkSync(p);
      } catch {
        // Absent: look at the parent.
      }
      if (link !== undefined) return realPrefix(resolve(dirname(p), link), hops + 1);
      if (dirname(p) === p) return undefined;
    }
  }
}

/**
 * The root's own real path, resolved once per root and process: it is the agent's configured
 * node root, not something a unit changes (a unit that swapped it for a link elsewhere would
 * only make every later path look outside, which refuses it). Bounded by the roots in use.
 */
const realRoots = new Map<string, string>();
function realRootOf(root: string): string {
  let real = realRoots.get(root);
  if (real === undefined) {
    real = realPrefix(root) ?? root;
    // Only a root that exists (a missing one resolves to its deepest ancestor): one made later resolves again.
    if (existsSync(root)) realRoots.set(root, real);
  }
  return real;
}

export function resolveUnderRoot(root: string, path: string): string {
  if (path.includes('\0')) throw new InvalidArgumentError('a unit path must not contain a NUL byte');
  if (!isAbsolute(path)) throw new InvalidArgumentError(`path ${JSON.stringify(path)} must be absolute`);
  if (path.split('/').includes('..')) throw new InvalidArgumentError(`path ${JSON.stringify(path)} must not contain ".." segments`);
  const clean = normalize(path);
  if (root === '/' || root === '') return clean;
  const full = join(root, clean);
  if (outside(root, full)) throw new InvalidArgumentError(`path ${JSON.stringify(path)} leaves the node root ${root}`);
  const realRoot = realRootOf(root);
  const real = realPrefix(full);
  if (real !== undefined && outside(realRoot, real)) {
    throw new InvalidArgumentError(`path ${JSON.stringify(path)} leads out of the node root ${root} through a symbolic link`);
  }
  return full;
}
