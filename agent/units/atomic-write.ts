/**
 * Atomic file replacement: the new content goes to a temporary file in the same directory
 * (same filesystem, so rename is atomic), with its final mode and owner set *before* it is
 * renamed over the target, fsync'd, renamed, and the directory fsync'd so the rename itself
 * survives a power cut. A reader (or a crash) sees the old file or the new one, never half of
 * one. Temporaries left by a killed agent are recognisable by name and swept on the next write.
 */
import { promises as fs } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';

const TMP_MARK = '.cluster-tmp-';

export function isTemporaryName(name: string): boolean {
  return name.startsWith('.') && name.includes(TMP_MARK);
}

export interface AtomicWriteOptions {
  mode: number;
  uid?: number;
  gid?: number;
  /** fsync file and directory (default true; tests of huge bundles may turn it off). */
  durable?: boolean;
}

/**
 * Directories this process has swept of a killed agent's temporaries (`dir\0base`). This
 * process's own never outlive the write that made them, so one sweep per target and process
 * finds every leftover: a readdir per write (152 µs in /etc) was a large part of a file unit's
 * cost. Bounded by the distinct targets the agent writes.
 */
const swept = new Set<string>();

async function sweepStale(dir: string, base: string): Promise<void> {
  const key = `${dir}\u0000${base}`;
  if (swept.has(key)) return;
  const prefix = `.${base}${TMP_MARK}`;
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    return;
  }
  await Promise.all(names.filter((n) => n.startsWith(prefix)).map((n) => fs.rm(join(dir, n), { force: true })));
  swept.add(key);
}

export async function writeFileAtomic(path: string, data: string | Buffer, options: AtomicWriteOptions): Promise<void> {
  const dir = dirname(path);
  const base = basename(path);
  await sweepStale(dir, base);
  const tmp = join(dir, `.${base}${TMP_MARK}${process.pid}-${randomBytes(4).toString('hex')}`);
  const durable = options.durable ?? true;
  const handle = await fs.open(tmp, 'wx', options.mode);
  try {
    await handle.writeFile(data);
    // open()'s mode is filtered by the umask; chmod is not.
    await handle.chmod(options.mode);
    if (options.uid !== undefined || options.gid !== undefined) await handle.chown(options.uid ?? -1, options.gid ?? -1);
    if (durable) await handle.sync();
  } catch (err) {
    await handle.close();
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  try {
    await fs.rename(tmp, path);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
  if (durable) {
    const d = await fs.open(dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  }
}
