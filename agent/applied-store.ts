/**
 * Where the daemon keeps its applied record (agent/applied-record.ts, the ONE format that
 * `cluster-agent apply|verify|remove` reads and writes too) behind a narrow interface:
 *  - FileAppliedStore: `<stateDir>/applied.json`, shared with the local CLI. A record in the old
 *    daemon format is converted and written back in the current one; a record that cannot be
 *    used at all is reported (`problem()`, logged) and left on disk for the operator, never
 *    silently taken for "nothing applied".
 *  - MemoryAppliedStore: benchmarks with thousands of in-process agents, and tests.
 */
import type { Logger } from '../shared/logger';
import { errorMessage } from '../shared/errors';
import {
  AppliedRecordError, clearAppliedRecord, loadAppliedRecord, recordPath, writeAppliedRecord, type AppliedRecord,
} from './applied-record';
import type { AppliedState } from './coordinator-link';

export interface AppliedStore {
  current(): AppliedRecord | undefined;
  write(record: AppliedRecord): Promise<void>;
  clear(): Promise<void>;
  /** Re-reads the backing storage: `cluster-agent apply` may have written the same state dir. */
  refresh?(): Promise<void>;
  /** Why the stored record cannot be used ("... re-apply needed"), when it cannot. */
  problem?(): string | undefined;
}

/** The applied record as `<stateDir>/applied.json` (written atomically, mode 0600). */
export class FileAppliedStore implements AppliedStore {
  private record?: AppliedRecord;
  private unusable?: string;

  private readonly log: Logger;

  /** Reads nothing yet: call refresh() (or use open()). */
  constructor(private readonly dir: string, logger: Logger) {
    this.log = logger.child({ component: 'applied-store' });
  }

  /** Never throws for a bad record: see problem(). */
  static async open(stateDir: string, logger: Logger): Promise<FileAppliedStore> {
    const s = new FileAppliedStore(stateDir, logger);
    await s.refresh();
    return s;
  }

  get path(): string {
    return recordPath(this.dir);
  }

  current(): AppliedRecord | undefined {
    return this.record;
  }

  problem(): string | undefined {
    return this.unusable;
  }

  async refresh(): Promise<void> {
    try {
      const loaded = await loadAppliedRecord(this.dir);
      if (loaded.migrated && loaded.record) {
        // Written back at once so `cluster-agent verify` and the next start read the new format.
        let written = true;
        await writeAppliedRecord(this.dir, loaded.record).catch((err: unknown) => {
          written = false;
          this.log.error('cannot write the converted applied record; using it from memory', { path: this.path, error: errorMessage(err) });
        });
        this.log.warn('applied record converted from the old daemon format', {
          path: this.path, bundle: `${loaded.record.bundleName}@${loaded.record.bundleVersion}`, appliedDigest: loaded.record.digest, written,
        });
      }
      if (this.unusable && loaded.record) this.log.info('applied record usable again', { path: this.path });
      this.record = loaded.record;
      this.unusable = undefined;
    } catch (err) {
      if (!(err instanceof AppliedRecordError)) throw err;
      const problem = errorMessage(err);
      if (problem !== this.unusable) this.log.error('applied record unusable: re-apply needed', { path: this.path, problem });
      this.record = undefined;
      this.unusable = problem;
    }
  }

  async write(record: AppliedRecord): Promise<void> {
    await writeAppliedRecord(this.dir, record);
    this.record = record;
    this.unusable = undefined;
  }

  async clear(): Promise<void> {
    await clearAppliedRecord(this.dir);
    this.record = undefined;
    this.unusable = undefined;
  }
}

/** In memory (benchmarks with thousands of agents in one process; tests). */
export class MemoryAppliedStore implements AppliedStore {
  private record?: AppliedRecord;
  constructor(initial?: AppliedRecord) { this.record = initial; }
  current(): AppliedRecord | undefined { return this.record; }
  write(record: AppliedRecord): Promise<void> { this.record = record; return Promise.resolve(); }
  clear(): Promise<void> { this.record = undefined; return Promise.resolve(); }
}

/** For CoordinatorLink's Hello and the membership record. */
export function appliedState(store: AppliedStore): AppliedState {
  const r = store.current();
  return r ? { digest: r.digest, bundle: r.bundleName, version: r.bundleVersion } : { digest: '', bundle: '', version: '' };
}
