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

/** `.<name>.cluster-tmp-<pid>-<hex>`: the pid of the process that was writing it. */
const TMP_PID = /\.cluster-tmp-(\d+)-[^/]*$/;

/** Whether `pid` is a live process (this one included); a name without a pid counts as dead. */
function alive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Directories this process has swept of a killed writer's temporaries. One sweep per directory
 * and process finds every leftover in it, whatever file it was for: a live process's
 * temporaries (this one's own, or `cluster-agent apply` running beside the agent) are spared,
 * and this process's never outlive the write that made them. A readdir per written file (152
 * µs in /etc) was a large part of a file unit's cost; per target it was still one per file of
 * a first apply (50 readdirs of /etc for a 50-file bundle). Bounded by the directories the
 * agent writes in.
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
  const stale = names.filter((n) => isTemporaryName(n) && !alive(Number(TMP_PID.exec(n)?.[1])));
  await Promise.all(stale.map((n) => fs.rm(join(dir, n), { force: true })));
  swept.add(dir);
}

export async function writeFileAtomic(path: string, data: string | Buffer, options: AtomicWriteOptions): Promise<void> {
  const dir = dirname(path);
  const base = basename(path);
  await sweepStale(dir);
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
