/**
 * Paths of units live under the node root ('/' in production, a sandbox directory under test),
 * so a whole simulated fleet can run on one machine. A unit's path is absolute in the bundle;
 * it is joined under the root and may never climb out of it (`/../etc` is refused).
 */
import { isAbsolute, normalize, join, relative, sep } from 'node:path';
import { InvalidArgumentError } from '../../shared/errors';

export function resolveUnderRoot(root: string, path: string): string {
  if (!isAbsolute(path)) throw new InvalidArgumentError(`path ${JSON.stringify(path)} must be absolute`);
  const clean = normalize(path);
  if (root === '/' || root === '') return clean;
  const full = join(root, clean);
  const rel = relative(root, full);
  if (rel.startsWith('..') || rel.split(sep).includes('..')) {
    throw new InvalidArgumentError(`path ${JSON.stringify(path)} leaves the node root ${root}`);
  }
  return full;
}
