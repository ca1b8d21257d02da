/**
 * Scheduled verification (leader only): each group's `verifySchedule` (a node-cron expression)
 * starts a verify job on the group's in-service nodes, skipping nodes in maintenance and nodes
 * held by a live job, through the jobs engine's StartJob path. Drift the job finds is recorded
 * (and repaired, by policy) by the drift watcher like any other verification.
 *
 * Schedules follow the groups: a watch on groups/ (and a timer) re-reads them and adds, removes
 * or replaces cron tasks (`planSchedules`, pure); every task stops when leadership is lost.
 */
import type { Etcd3, Watcher } from 'etcd3';
import { schedule as cronSchedule, type ScheduledTask } from 'node-cron';
import { decodeNode, errorMessage, type Keyspace, type Logger, type NodeRecord } from '../../shared';
import { readPrefixes } from '../etcd-txn';
import { decodeGroup, type GroupRecord } from '../config/group-store';
import { inService } from '../jobs/group-rules';
import { decodeJob, isActive } from '../jobs/job-record';
import { jobRequest, type StartJob } from './job-request';

/** Pure: which tasks to add, remove or replace, given the running ones (group → expression). */
export function planSchedules(
  running: ReadonlyMap<string, string>,
  groups: readonly Pick<GroupRecord, 'name' | 'verifySchedule'>[],
): { add: [string, string][]; remove: string[] } {
  const want = new Map(groups.filter((g) => g.verifySchedule).map((g) => [g.name, g.verifySchedule as string]));
  const add: [string, string][] = [];
  const remove: string[] = [];
  for (const [name, expr] of running) if (want.get(name) !== expr) remove.push(name);
  for (const [name, expr] of want) if (running.get(name) !== expr) add.push([name, expr]);
  return { add: add.sort(), remove: remove.sort() };
}

/** Pure: the nodes a scheduled verification of `group` targets. */
export function verifyTargets(group: string, nodes: readonly NodeRecord[], activeJobs: ReadonlySet<string>): string[] {
  return nodes
    .filter((n) => n.group === group && inService(n.state) && n.state !== 'Upgrading' && !n.maintenance)
    .filter((n) => !n.currentJob || !activeJobs.has(n.currentJob))
    .map((n) => n.id)
    .sort();
}

export interface VerifySchedulerOptions {
  client: Etcd3;
  keyspace: Keyspace;
  startJob: StartJob;
  isLeader: () => boolean;
  logger: Logger;
  /** Re-read of groups besides the watch (default 60 s). */
  resyncIntervalMs?: number;
}

export class VerifyScheduler {
  private readonly log: Logger;
  private readonly tasks = new Map<string, { expr: string; task: ScheduledTask }>();
  private watcher?: Watcher;
  private timer?: NodeJS.Timeout;
  private syncing?: Promise<void>;
  private again = false;
  private active = false;
  /** Groups whose verification is being started (a slow start is not doubled by the next tick). */
  private readonly inFlight = new Set<string>();

  constructor(private readonly o: VerifySchedulerOptions) {
    this.log = o.logger.child({ component: 'verify-scheduler' });
  }

  start(): void {
    if (this.active) return;
    this.active = true;
    const w = this.o.client.watch().prefix(this.o.keyspace.groupsPrefix()).watcher();
    w.on('put', () => this.syncSoon());
    w.on('delete', () => this.syncSoon());
    w.on('connected', () => this.syncSoon());
    w.on('error', (err) => this.log.warn('groups watch error; the timer re-reads', { err: errorMessage(err) }));
    this.watcher = w;
    this.timer = setInterval(() => this.syncSoon(), this.o.resyncIntervalMs ?? 60_000);
    this.timer.unref();
    this.syncSoon();
  }

  async stop(): Promise<void> {
    this.active = false;
    clearInterval(this.timer);
    const w = this.watcher;
    this.watcher = undefined;
    w?.removeAllListeners();
    await w?.cancel().catch(() => undefined);
    await this.syncing?.catch(() => undefined);
    for (const name of [...this.tasks.keys()]) await this.unschedule(name);
  }

  /** Group → expression of the running tasks (tests, status). */
  scheduled(): Map<string, string> {
    return new Map([...this.tasks].map(([name, t]) => [name, t.expr]));
  }

  /** Re-reads groups and brings the tasks in line; resolves when done. */
  sync(): Promise<void> {
    if (this.syncing) {
      this.again = true;
      return this.syncing;
    }
    this.syncing = (async () => {
      try {
        do {
          this.again = false;
          await this.syncOnce();
        } while (this.again && this.active);
      } finally {
        this.syncing = undefined;
      }
    })();
    return this.syncing;
  }

  private syncSoon(): void {
    this.sync().catch((err: unknown) => this.log.warn('reading groups failed; the timer retries', { err: errorMessage(err) }));
  }

  private async syncOnce(): Promise<void> {
    if (!this.active) return;
    const { kvs } = await readPrefixes(this.o.client, [{ prefix: this.o.keyspace.groupsPrefix() }]);
    const groups: GroupRecord[] = [];
    for (const kv of kvs[0]) {
      const key = kv.key.toString();
      if (this.o.keyspace.parseGroup(key) === undefined) continue;
      try { groups.push(decodeGroup(key, kv.value.toString())); } catch { /* unreadable: no schedule */ }
    }
    if (!this.active) return;
    const { add, remove } = planSchedules(this.scheduled(), groups);
    for (const name of remove) await this.unschedule(name);
    for (const [name, expr] of add) {
      try {
        const task = cronSchedule(expr, () => this.tick(name), { name: `verify-${name}`, noOverlap: true });
        this.tasks.set(name, { expr, task });
        this.log.info('verification scheduled', { group: name, schedule: expr });
      } catch (err) {
        this.log.warn('cannot schedule verification', { group: name, schedule: expr, err: errorMessage(err) });
      }
    }
  }

  private async unschedule(name: string): Promise<void> {
    const t = this.tasks.get(name);
    this.tasks.delete(name);
    if (t) await Promise.resolve(t.task.destroy()).catch(() => undefined);
  }

  /** One scheduled run for `group`: a verify job on its eligible nodes, if any. */
  async tick(group: string): Promise<string | undefined> {
    if (!this.active || !this.o.isLeader() || this.inFlight.has(group)) return undefined;
    this.inFlight.add(group);
    try {
      const ks = this.o.keyspace;
      const { kvs } = await readPrefixes(this.o.client, [{ prefix: ks.nodesPrefix() }, { prefix: ks.jobsPrefix() }]);
      const nodes: NodeRecord[] = [];
      for (const kv of kvs[0]) {
        const key = kv.key.toString();
        if (ks.parseNode(key) === undefined) continue;
        try { nodes.push(decodeNode(key, kv.value.toString())); } catch { /* unreadable */ }
      }
      const activeJobs = new Set<string>();
      for (const kv of kvs[1]) {
        const parsed = ks.parseJobKey(kv.key.toString());
        if (!parsed || parsed.nodeId !== undefined) continue;
        try {
          const j = decodeJob(kv.key.toString(), kv.value.toString());
          if (isActive(j.state)) activeJobs.add(j.id);
        } catch { /* unreadable */ }
      }
      const targets = verifyTargets(group, nodes, activeJobs);
      if (targets.length === 0 || !this.o.isLeader()) return undefined;
      const job = await this.o.startJob(jobRequest({ kind: 'verify', nodeIds: targets, requestedBy: `verify-schedule/${group}` }));
      this.log.info('scheduled verification started', { group, jobId: job.record.id, nodes: targets.length });
      return job.record.id;
    } catch (err) {
      this.log.warn('scheduled verification refused', { group, err: errorMessage(err) });
      return undefined;
    } finally {
      this.inFlight.delete(group);
    }
  }
}
