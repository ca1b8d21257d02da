/**
 * Job retention (issue 12 §5): finished jobs and everything under them (per-node records with
 * their bounded output, plans and drift) would otherwise stay in etcd forever. The leader keeps
 * the newest `keep` finished jobs and none finished more than `maxAgeMs` ago; unfinished jobs
 * are never trimmed and do not count. A pass runs on leadership gain, on a timer and after a
 * job ends (a job record's put); each deletion is fenced by the election, many jobs per
 * transaction (a finished job never changes again, so no per-job guard is needed), and one
 * `job.trimmed` event says how many went.
 */
import { Range, type Etcd3 } from 'etcd3';
import { ReconcileLoop, watchPrefixes, type Clock, type Keyspace, type Logger, type PrefixWatch } from '../../shared';
import type { EventLog } from '../event-log';
import type { Fence } from '../node-store';
import { runTxn, type TxnOp } from '../etcd-txn';
import { isFinished, type JobRecord } from './job-record';
import type { JobStore } from './job-store';

export interface RetentionPolicy {
  /** Finished jobs kept, newest first. */
  keep: number;
  /** Finished jobs older than this (by finish time) go whatever their number. */
  maxAgeMs: number;
}

/**
 * The finished jobs to trim, given every job oldest first (pure; tested by table). A finished
 * job without a readable finish time is aged by its creation time.
 */
export function jobsToTrim(jobs: readonly Pick<JobRecord, 'id' | 'state' | 'createdAt' | 'finishedAt'>[], policy: RetentionPolicy, nowMs: number): string[] {
  const finished = jobs.filter((j) => isFinished(j.state));
  const overCount = finished.length - policy.keep;
  return finished.filter((j, i) => {
    const at = Date.parse(j.finishedAt ?? j.createdAt);
    return i < overCount || (Number.isFinite(at) && nowMs - at > policy.maxAgeMs);
  }).map((j) => j.id);
}

export interface JobRetentionOptions {
  client: Etcd3;
  keyspace: Keyspace;
  store: JobStore;
  events: EventLog;
  fence: Fence;
  policy: RetentionPolicy;
  /** The policy in force at each pass (`clusterctl config set jobRetention=...`); without it, `policy`. */
  policyNow?: () => Promise<RetentionPolicy>;
  /** Period of the timer pass. */
  intervalMs: number;
  /** Most operations of one transaction (etcd's --max-txn-ops): two per job. */
  maxOps: number;
  isLeader: () => boolean;
  clock: Clock;
  logger: Logger;
}

export class JobRetention {
  private readonly log: Logger;
  private readonly loop: ReconcileLoop;
  private watcher?: PrefixWatch;

  constructor(private readonly o: JobRetentionOptions) {
    this.log = o.logger.child({ component: 'job-retention' });
    this.loop = new ReconcileLoop({
      name: 'job retention', pass: async () => { await this.trim(); }, clock: o.clock, logger: this.log, intervalMs: o.intervalMs, when: o.isLeader,
    });
  }

  start(): void {
    const ks = this.o.keyspace;
    // Only job records (not the per-node records, which change with every progress write).
    this.watcher ??= watchPrefixes(this.o.client, [ks.jobsPrefix()], () => this.loop.trigger(), this.log, {
      keyFilter: (key) => { const parsed = ks.parseJobKey(key); return parsed !== undefined && parsed.nodeId === undefined; },
    });
    void this.loop.start();
  }

  async stop(): Promise<void> {
    const w = this.watcher;
    this.watcher = undefined;
    await Promise.all([this.loop.stop(), w?.stop()]);
  }

  /** One pass: deletes what the policy says; returns the trimmed job ids. */
  async trim(): Promise<string[]> {
    const policy = this.o.policyNow ? await this.o.policyNow() : this.o.policy;
    const jobs = await this.o.store.list();
    const ids = jobsToTrim(jobs.map((j) => j.record), policy, this.o.clock.now());
    if (ids.length === 0) return [];
    const ks = this.o.keyspace;
    const perTxn = Math.max(1, Math.floor(this.o.maxOps / 2));
    for (let i = 0; i < ids.length; i += perTxn) {
      const ops: TxnOp[] = ids.slice(i, i + perTxn).flatMap((id): TxnOp[] => {
        const nodes = Range.prefix(ks.jobNodesPrefix(id));
        return [{ kind: 'delete', key: ks.job(id) }, { kind: 'delete-range', from: nodes.start.toString(), to: nodes.end.toString() }];
      });
      const fence = this.o.fence.fenceCompare(); // throws NotLeaderError when not leading
      const outcome = await runTxn(this.o.client, [fence], ops);
      if (!outcome.succeeded) throw this.o.fence.fenceFailed();
    }
    const { keep, maxAgeMs } = policy;
    const message = `trimmed ${ids.length} finished job(s) and their node records (keeping the newest ${keep}, none older than ${Math.round(maxAgeMs / 3_600_000)} h): ${summarise(ids)}`;
    await this.o.events.commit({ compares: [this.o.fence.fenceCompare()], ops: [], event: { type: 'job.trimmed', message } });
    this.log.info('trimmed jobs', { count: ids.length });
    return ids;
  }
}

function summarise(ids: readonly string[]): string {
  return ids.length <= 5 ? ids.join(', ') : `${ids.slice(0, 3).join(', ')} … ${ids[ids.length - 1]}`;
}
