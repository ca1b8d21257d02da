/**
 * Atomic file replacement: the new content goes to a temporary file in the same directory
 * (same filesystem, so rename is atomic), with its final mode and owner set *before* it is
 * renamed over the target, fsync'd, renamed, and the directory fsync'd so the rename itself
 * survives a power cut. A reader (or a crash) sees the old file or the new one, never half of
 * one. Temporaries left by a killed writer are recognisable by name (with its pid) and swept at
 * this process's first write in their directory.
 */
import { promises as fs } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';

const TMP_MARK = '.cluster-tmp-';
/** `.<name>.cluster-tmp-<pid>-<8 hex>`, as writeFileAtomic names them, with the writer's pid. */
const TMP_NAME = /^\..+\.cluster-tmp-(\d+)-[0-9a-f]{8}$/;

export function isTemporaryName(name: string): boolean {
  return TMP_NAME.test(name);
}

export interface AtomicWriteOptions {
  mode: number;
  uid?: number;
  gid?: number;
  /** fsync file and directory (default true; tests of huge bundles may turn it off). */
  durable?: boolean;
}

/** The temporaries this process is writing now (full paths). */
const writing = new Set<string>();

/**
 * Whether the temporary `path` of the writer `pid` is a leftover: of this process, one it is
 * not writing (an agent restarted in a container often gets its predecessor's pid); of another,
 * one whose writer is gone (`cluster-agent apply` running beside the agent keeps its own).
 */
function leftover(path: string, pid: number): boolean {
  if (pid === process.pid) return !writing.has(path);
  if (!Number.isSafeInteger(pid) || pid <= 0) return true;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'EPERM';
  }
}

/**
 * Directories this process has swept of killed writers' temporaries. One sweep per directory
 * and process finds every leftover in it, whatever file it was for: a readdir per written file
 * (152 µs in /etc) was a large part of a file unit's cost, and per target it was still one per
 * file of a first apply (50 readdirs of /etc for a 50-file bundle). Only names exactly of
 * writeFileAtomic's form are touched, and only files and symlinks (unlinked, never followed);
 * a sweep that fails does not fail the write. Bounded by the directories the agent writes in.
 */
const swept = new Set<string>();

async function sweepStale(dir: string): Promise<void> {
  if (swept.has(dir)) return;
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    return;
  }
  await Promise.all(names.map(async (name) => {
    const m = TMP_NAME.exec(name);
    const path = join(dir, name);
    if (!m || !leftover(path, Number(m[1]))) return;
    try {
      const st = await fs.lstat(path);
      if (st.isFile() || st.isSymbolicLink()) await fs.unlink(path);
    } catch {
      // Gone meanwhile, or not ours to remove: left as it is.
    }
  }));
  swept.add(dir);
}

export async function writeFileAtomic(path: string, data: string | Buffer, options: AtomicWriteOptions): Promise<void> {
  const dir = dirname(path);
  const base = basename(path);
  await sweepStale(dir);
  const tmp = join(dir, `.${base}${TMP_MARK}${process.pid}-${randomBytes(4).toString('hex')}`);
  const durable = options.durable ?? true;
  writing.add(tmp);
  try {
    await writeThenRename(tmp, path, data, options, durable);
  } finally {
    writing.delete(tmp);
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

async function writeThenRename(tmp: string, path: string, data: string | Buffer, options: AtomicWriteOptions, durable: boolean): Promise<void> {
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
}
