/**
 * jobs/<jobId> and jobs/<jobId>/nodes/<nodeId> in etcd. Job state changes are one transaction
 * with their event (EventLog.commit) and a CAS on the job record; per-node progress is a plain
 * put. Leader-only writers pass the election's fence, and every write of theirs carries it, so
 * a deposed leader's late write is refused by etcd.
 */
import type { Etcd3 } from 'etcd3';
import { ConflictError, errorMessage, NotFoundError, type Keyspace, type Logger } from '../../shared';
import { readPrefixes, readRecord, runTxn, type Compare, type TxnOp } from '../etcd-txn';
import type { EventInput, EventLog } from '../event-log';
import type { Fence } from '../node-store';
import { DEFAULT_SETTINGS } from '../options';
import { PutBatcher, type TxnLimits } from '../txn-batch';
import { decodeJob, decodeJobNode, type JobNodeRecord, type JobRecord } from './job-record';
import { readSnapshot } from '../snapshot';

export interface VersionedJob {
  record: JobRecord;
  modRevision: string;
  /** When listed: etcd's create revision of the job key (creation order). */
  createRevision?: string;
}

export interface JobStoreOptions {
  client: Etcd3;
  keyspace: Keyspace;
  events: EventLog;
  logger: Logger;
  /** Set for the leader's runner; absent for a follower's JobService (StartJob, CancelJob). */
  fence?: Fence;
  /** Size of one group-committed transaction of per-node records (default: settings.txnMaxOps, settings.txnMaxBytes). */
  limits?: TxnLimits;
}

export class JobStore {
  readonly client: Etcd3;
  readonly keyspace: Keyspace;
  private readonly events: EventLog;
  private readonly log: Logger;
  private readonly fence?: Fence;
  /** What one transaction of this store may hold (etcd's limits). */
  readonly limits: TxnLimits;
  private readonly nodeWrites: PutBatcher;

  constructor(options: JobStoreOptions) {
    this.client = options.client;
    this.keyspace = options.keyspace;
    this.events = options.events;
    this.log = options.logger;
    this.fence = options.fence;
    this.limits = options.limits ?? { maxOps: DEFAULT_SETTINGS.txnMaxOps, maxBytes: DEFAULT_SETTINGS.txnMaxBytes };
    const fenceRef = this.fence;
    this.nodeWrites = new PutBatcher((compares, ops) => runTxn(this.client, compares, ops), this.limits, (failed) => {
      if (fenceRef && failed.some((c) => c.reason === 'fence')) return fenceRef.fenceFailed();
      return new ConflictError(`job node record write refused (${failed.map((c) => c.reason).join(', ')}); retry`);
    });
  }

  /** The same store writing with `fence` (the runner's view). */
  fenced(fence: Fence): JobStore {
    return new JobStore({ client: this.client, keyspace: this.keyspace, events: this.events, logger: this.log, fence, limits: this.limits });
  }

  get(jobId: string): Promise<VersionedJob | undefined> {
    return readRecord(this.client, this.keyspace.job(jobId), decodeJob);
  }

  async require(jobId: string): Promise<VersionedJob> {
    const j = await this.get(jobId);
    if (!j) throw new NotFoundError(`job ${jobId} not found (list jobs with \`clusterctl jobs\`)`);
    return j;
  }

  /** Every job record (not the per-node records), oldest first. */
  async list(): Promise<VersionedJob[]> {
    const snap = await readSnapshot(this.client, this.keyspace, ['jobRecords'], this.log);
    const out: VersionedJob[] = [...snap.jobs.values()];
    // Creation order is etcd's create revision: ids sort by time only to the second, and two
    // jobs started in one second ("job get last") must still come out in the order they began.
    return out.sort((a, b) => {
      const d = BigInt(a.createRevision ?? '0') - BigInt(b.createRevision ?? '0');
      return d < 0n ? -1 : d > 0n ? 1 : 0;
    });
  }

  async nodes(jobId: string): Promise<Map<string, JobNodeRecord>> {
    const { kvs } = await readPrefixes(this.client, [{ prefix: this.keyspace.jobNodesPrefix(jobId) }]);
    const out = new Map<string, JobNodeRecord>();
    for (const kv of kvs[0]) {
      const key = kv.key.toString();
      const parsed = this.keyspace.parseJobKey(key);
      if (parsed?.jobId !== jobId || !parsed.nodeId) continue;
      try {
        out.set(parsed.nodeId, decodeJobNode(key, kv.value.toString()));
      } catch (err) {
        this.log.warn('skipping unreadable job node record', { key, err: errorMessage(err) });
      }
    }
    return out;
  }

  private fenceCompares(): Compare[] {
    return this.fence ? [this.fence.fenceCompare()] : [];
  }

  /**
   * Writes the job record (CAS on `expected`: a mod revision, or '0' for "absent") with its event
   * and extra ops, as one transaction. ConflictError when the job changed meanwhile or one of
   * `extraCompares` did not hold.
   */
  async commit(next: JobRecord, expected: string, event: Omit<EventInput, 'jobId'>, extraOps: readonly TxnOp[] = [], extraCompares: readonly Compare[] = []): Promise<VersionedJob> {
    const key = this.keyspace.job(next.id);
    const cas: Compare = expected === '0'
      ? { key, target: 'Create', op: '==', value: '0', reason: 'cas' }
      : { key, target: 'Mod', op: '==', value: expected, reason: 'cas' };
    const fence = this.fenceCompares();
    const outcome = await this.events.commit({
      compares: [cas, ...fence, ...extraCompares],
      ops: [{ kind: 'put', key, value: JSON.stringify(next) }, ...extraOps],
      event: { ...event, jobId: next.id },
    });
    if (outcome.succeeded) return { record: next, modRevision: outcome.revision };
    if (fence.length > 0 && outcome.failed.includes(fence[0]) && this.fence) throw this.fence.fenceFailed();
    throw new ConflictError(`job ${next.id} changed while being updated; retry`);
  }

  /** Per-node progress: a plain (fenced) put, group-committed with other nodes' (see file comment). */
  putNode(jobId: string, rec: JobNodeRecord): Promise<void> {
    return this.nodeWrites.put(this.keyspace.jobNode(jobId, rec.nodeId), JSON.stringify(rec), this.fenceCompares());
  }

  /** The put of a node's job record, for a caller's own transaction (fenced by that caller). */
  nodeRecordOp(jobId: string, rec: JobNodeRecord): TxnOp {
    return { kind: 'put', key: this.keyspace.jobNode(jobId, rec.nodeId), value: JSON.stringify(rec) };
  }

  /** A raw transaction with this store's fence added (claims, provisional records). */
  async txn(compares: readonly Compare[], ops: readonly TxnOp[]): ReturnType<typeof runTxn> {
    return runTxn(this.client, [...compares, ...this.fenceCompares()], ops);
  }
}
