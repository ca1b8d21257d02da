/**
 * Scheduled verification (leader only): each group's `verifySchedule` (a node-cron expression)
 * starts a verify job on the group's in-service nodes, skipping nodes in maintenance and nodes
 * held by a live job, through the jobs engine's StartJob path. Drift the job finds is recorded
 * (and repaired, by policy) by the drift watcher like any other verification.
 *
 * Schedules follow the groups: a watch on groups/ (and a timer) re-reads them and adds, removes
 * or replaces cron tasks (`planSchedules`, pure); every task stops when leadership is lost.
 */
import { schedule as cronSchedule, type ScheduledTask } from 'node-cron';
import { errorMessage, ReconcileLoop, watchPrefixes, type Logger, type NodeRecord, type PrefixWatch } from '../../shared';
import type { GroupRecord } from '../config/group-store';
import { inService } from '../jobs/group-rules';
import { isActive } from '../jobs/job-record';
import { readSnapshot, recordsOf } from '../snapshot';
import { jobRequest, type StartJob } from './job-request';
import type { ReconcilerOptions } from './reconciler-options';

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

export interface VerifySchedulerOptions extends ReconcilerOptions {
  startJob: StartJob;
  /** Re-read of groups besides the watch. @default 60000 */
  intervalMs?: number;
}

export class VerifyScheduler {
  private readonly log: Logger;
  private readonly tasks = new Map<string, { expr: string; task: ScheduledTask }>();
  private readonly loop: ReconcileLoop;
  private watch?: PrefixWatch;
  /** Groups whose verification is being started (a slow start is not doubled by the next tick). */
  private readonly inFlight = new Set<string>();

  constructor(private readonly o: VerifySchedulerOptions) {
    this.log = o.logger.child({ component: 'verify-scheduler' });
    this.loop = new ReconcileLoop({
      name: 'verify schedules', clock: o.clock, logger: this.log, intervalMs: o.intervalMs ?? 60_000, debounceMs: o.debounceMs,
      pass: () => this.syncOnce(),
    });
  }

  start(): void {
    if (this.loop.started) return;
    void this.loop.start();
    this.watch = watchPrefixes(this.o.client, [this.o.keyspace.groupsPrefix()], () => this.loop.trigger(), this.log);
  }

  async stop(): Promise<void> {
    const w = this.watch;
    this.watch = undefined;
    await w?.stop();
    await this.loop.stop();
    for (const name of [...this.tasks.keys()]) await this.unschedule(name);
  }

  /** Asks for a re-read of the groups. */
  schedule(): void {
    this.loop.trigger();
  }

  /** Passes completed (tests). */
  get passes(): number {
    return this.loop.completedPasses;
  }

  /** A pass is running (tests). */
  get busy(): boolean {
    return this.loop.state === 'running';
  }

  /** Group → expression of the running tasks (tests, status). */
  scheduled(): Map<string, string> {
    return new Map([...this.tasks].map(([name, t]) => [name, t.expr]));
  }

  /** Re-reads groups and brings the tasks in line; resolves when done. */
  sync(): Promise<void> {
    return this.loop.runNow();
  }

  private async syncOnce(): Promise<void> {
    if (!this.loop.started) return;
    const groups = recordsOf((await readSnapshot(this.o.client, this.o.keyspace, ['groups'], this.log)).groups);
    if (!this.loop.started) return;
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
    if (!this.loop.started || !this.o.isLeader() || this.inFlight.has(group)) return undefined;
    this.inFlight.add(group);
    try {
      const snap = await readSnapshot(this.o.client, this.o.keyspace, ['nodes', 'jobRecords'], this.log);
      const activeJobs = new Set([...snap.jobs].filter(([, j]) => isActive(j.record.state)).map(([id]) => id));
      const targets = verifyTargets(group, recordsOf(snap.nodes), activeJobs);
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
