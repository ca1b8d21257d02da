/**
 * `source:` in a file unit names a distributed file (files/<name> in etcd). The coordinator
 * inlines it before sending a bundle to an agent, so agents never read etcd for content; the
 * local CLI does the same from a directory (`--files-dir`). One function for both, with the
 * lookup injected.
 */
import { InvalidArgumentError } from '../errors';
import type { Bundle, UnitSpec } from './types';

/** Returns the content of a named file, or undefined when there is no such file. */
export type SourceLookup = (name: string) => string | undefined;

/** Replaces every `source` with `content`. Throws listing every unresolved name. */
export function inlineSources(bundle: Bundle, lookup: SourceLookup | undefined, hint = 'no distributed files are available here'): Bundle {
  const missing: string[] = [];
  const units = bundle.units.map((u): UnitSpec => {
    if (u.kind !== 'file' || u.source === undefined) return u;
    const content = lookup ? lookup(u.source) : undefined;
    if (content === undefined) {
      missing.push(`unit ${u.id}: source file "${u.source}" not found${lookup ? '' : ` (${hint})`}`);
      return u;
    }
    const { source: _s, ...rest } = u;
    return { ...rest, content };
  });
  if (missing.length > 0) throw new InvalidArgumentError(`bundle ${bundle.name}: ${missing.join('; ')}`);
  return { ...bundle, units };
}
