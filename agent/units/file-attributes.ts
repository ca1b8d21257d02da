/**
 * Mode, owner and group of files and directories: reading them as a person reads them
 * (`0644`, `root`), comparing with a unit's wishes, and fixing them. Names resolve through the
 * node root's /etc/passwd and /etc/group first (a sandboxed node may carry its own), then the
 * host's; numeric ids are accepted as they are.
 */
import { lstatSync, promises as fs, type Stats } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError } from '../../shared/errors';
import type { FieldChange } from './unit';

export interface AttributeSpec {
  mode?: string;
  owner?: string;
  group?: string;
}

export interface ResolvedAttributes {
  mode?: number;
  uid?: number;
  gid?: number;
}

export function formatMode(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

export function parseMode(text: string): number {
  return parseInt(text, 8);
}

async function readDb(root: string, file: 'passwd' | 'group'): Promise<string[][]> {
  const candidates = root === '/' ? [`/etc/${file}`] : [join(root, 'etc', file), `/etc/${file}`];
  const rows: string[][] = [];
  for (const path of candidates) {
    try {
      const text = await fs.readFile(path, 'utf8');
      for (const line of text.split('\n')) if (line && !line.startsWith('#')) rows.push(line.split(':'));
    } catch {
      // absent in this root: fall through to the next
    }
  }
  return rows;
}

async function lookupId(root: string, file: 'passwd' | 'group', name: string): Promise<number> {
  if (/^\d+$/.test(name)) return Number(name);
  const row = (await readDb(root, file)).find((r) => r[0] === name);
  if (!row) throw new InvalidArgumentError(`unknown ${file === 'passwd' ? 'user' : 'group'} "${name}" on this node`);
  return Number(row[2]);
}

async function lookupName(root: string, file: 'passwd' | 'group', id: number): Promise<string> {
  const row = (await readDb(root, file)).find((r) => Number(r[2]) === id);
  return row ? row[0] : String(id);
}

export async function resolveAttributes(spec: AttributeSpec, root: string): Promise<ResolvedAttributes> {
  return {
    mode: spec.mode !== undefined ? parseMode(spec.mode) : undefined,
    uid: spec.owner !== undefined ? await lookupId(root, 'passwd', spec.owner) : undefined,
    gid: spec.group !== undefined ? await lookupId(root, 'group', spec.group) : undefined,
  };
}

/** Fields where `st` differs from `want` (only fields the unit names are compared). */
export async function attributeChanges(st: Stats | undefined, want: ResolvedAttributes, spec: AttributeSpec, root: string): Promise<FieldChange[]> {
  const changes: FieldChange[] = [];
  if (want.mode !== undefined && (!st || (st.mode & 0o7777) !== want.mode)) {
    changes.push({ field: 'mode', before: st ? formatMode(st.mode) : null, after: formatMode(want.mode) });
  }
  if (want.uid !== undefined && (!st || st.uid !== want.uid)) {
    changes.push({ field: 'owner', before: st ? await lookupName(root, 'passwd', st.uid) : null, after: spec.owner ?? String(want.uid) });
  }
  if (want.gid !== undefined && (!st || st.gid !== want.gid)) {
    changes.push({ field: 'group', before: st ? await lookupName(root, 'group', st.gid) : null, after: spec.group ?? String(want.gid) });
  }
  return changes;
}

/** Sets what differs; lchown/chmod on the path itself. */
export async function fixAttributes(path: string, st: Stats, want: ResolvedAttributes): Promise<void> {
  if ((want.uid !== undefined && st.uid !== want.uid) || (want.gid !== undefined && st.gid !== want.gid)) {
    await fs.chown(path, want.uid ?? st.uid, want.gid ?? st.gid);
  }
  // After chown: chown clears setuid/setgid bits, so the mode is set last.
  if (want.mode !== undefined && (st.mode & 0o7777) !== want.mode) await fs.chmod(path, want.mode);
}

/**
 * lstat(2), undefined when the path does not exist. Synchronous on purpose: one lstat of a
 * local path takes 2 µs, while the promise form took 55-65 µs (a thread-pool round trip, and
 * for a missing path an Error with its stack trace), several times per unit: a no-op verify of
 * 500 units went from 75-104 ms to 31-37 ms (bench/units-bench). Units run one at a time, so
 * only the agent's own stream waits behind it; the trade-off is the one file-unit.ts's
 * readIfSameSize makes (a path on a hung network mount holds the loop, not a pool thread).
 */
export async function statOrUndefined(path: string): Promise<Stats | undefined> {
  return lstatSync(path, { throwIfNoEntry: false });
}

/** `content 3→4 lines (+2 -1), mode 0600→0644`. */
export function describeChanges(changes: FieldChange[]): string {
  return changes.map((c) => (c.field === 'content' ? `content ${c.before ?? 'none'}→${c.after ?? 'none'}` : `${c.field} ${c.before ?? 'none'}→${c.after ?? 'none'}`)).join(', ');
}
