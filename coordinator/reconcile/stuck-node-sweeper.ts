/**
 * The stuck-state sweeper (leader only; DESIGN.md, Contiv #158 "a node rebooted mid-commission
 * is stuck forever" and #114 "decommission stuck forever"). A node in a *-ing state
 * (Commissioning / Upgrading / Decommissioning) is stuck when
 *   - it names no job, or its job is gone, or its job has finished (the runner always moves
 *     its nodes out of the *-ing state before the job itself finishes), or
 *   - its agent came back with a NEW boot id while the job's command for it was running
 *     (the machine rebooted under the command; whatever it was doing did not finish).
 * Such a node moves to Failed with the reason as lastError (one txn + event, checked by the
 * lifecycle table), and from Failed every path stays open (commission, upgrade, decommission).
 *
 * Level-triggered: the pure `planSweep` decides from one etcd snapshot; it runs at leadership
 * gain, on a timer, and shortly after an agent reconnects. The boot id a node had when the
 * sweeper first saw it working for a job is remembered in memory: a new leader starts from the
 * boot id it sees, so a reboot exactly during a failover is caught by the job's own timeouts.
 */
import { errorMessage, isBusyState, NotLeaderError, ReconcileLoop, type Logger, type NodeRecord } from '../../shared';
import type { Compare } from '../etcd-txn';
import type { NodeStore } from '../node-store';
import { isFinished, type JobState } from '../jobs/job-record';
import { readSnapshot, recordsOf } from '../snapshot';
import type { ReconcilerOptions } from './reconciler-options';

export interface JobView {
  state: JobState;
  modRevision: string;
}

/** Per node: the job and boot id seen when the node was first seen working for that job. */
export type BootMemory = Map<string, { jobId: string; bootId: string }>;

export interface SweepAction {
  nodeId: string;
  /** The job the node named when planned ('' = none); the mutation re-checks it. */
  jobId: string;
  reason: string;
  /** Clear currentJob too: the claim is stale (job gone/finished). Kept while the job still runs. */
  clearClaim: boolean;
}

/** Pure: which busy nodes are stuck. Updates `memory` (forgets nodes no longer busy). */
export function planSweep(nodes: readonly NodeRecord[], jobs: ReadonlyMap<string, JobView>, memory: BootMemory): SweepAction[] {
  const actions: SweepAction[] = [];
  const busy = new Set<string>();
  for (const n of [...nodes].sort((a, b) => (a.id < b.id ? -1 : 1))) {
    if (!isBusyState(n.state)) continue;
    busy.add(n.id);
    const jobId = n.currentJob ?? '';
    const job = jobId ? jobs.get(jobId) : undefined;
    const verb = n.state.toLowerCase();
    if (!jobId) {
      actions.push({ nodeId: n.id, jobId, reason: `stuck in ${n.state}: no job is ${verb} it`, clearClaim: true });
      continue;
    }
    if (!job) {
      actions.push({ nodeId: n.id, jobId, reason: `stuck in ${n.state}: its job ${jobId} no longer exists`, clearClaim: true });
      continue;
    }
    if (isFinished(job.state)) {
      actions.push({ nodeId: n.id, jobId, reason: `stuck in ${n.state}: its job ${jobId} ended (${job.state}) without finishing this node`, clearClaim: true });
      continue;
    }
    const seen = memory.get(n.id);
    const boot = n.bootId ?? '';
    if (seen && seen.jobId === jobId && seen.bootId && boot && seen.bootId !== boot) {
      actions.push({
        nodeId: n.id, jobId,
        reason: `${n.state} interrupted: the agent came back with a new boot id (${seen.bootId} → ${boot}) while job ${jobId}'s command was running`,
        clearClaim: false,
      });
      memory.delete(n.id);
      continue;
    }
    if (!seen || seen.jobId !== jobId || !seen.bootId) memory.set(n.id, { jobId, bootId: boot });
  }
  for (const id of [...memory.keys()]) if (!busy.has(id)) memory.delete(id);
  return actions;
}

export interface StuckNodeSweeperOptions extends ReconcilerOptions {
  /** Fenced by the election. */
  nodes: NodeStore;
  /** Timer pass. @default 30000 */
  intervalMs?: number;
  /**
   * Delay of a pass asked for by `schedule()`. Longer than DEFAULT_DEBOUNCE_MS on purpose: it
   * is asked for when an agent's stream registers, which is before the agent-service records
   * its hello (the new boot id), and the pass must read the record after that write.
   * @default 500
   */
  debounceMs?: number;
}

export class StuckNodeSweeper {
  private readonly log: Logger;
  private readonly memory: BootMemory = new Map();
  private readonly loop: ReconcileLoop;
  private last: SweepAction[] = [];

  constructor(private readonly o: StuckNodeSweeperOptions) {
    this.log = o.logger.child({ component: 'stuck-node-sweeper' });
    this.loop = new ReconcileLoop({
      name: 'stuck-node sweep', clock: o.clock, logger: this.log, intervalMs: o.intervalMs, debounceMs: o.debounceMs ?? 500, when: o.isLeader,
      pass: async () => { this.last = await this.pass(); },
    });
  }

  /** On leadership gain: a pass now, then on the timer. */
  start(): void {
    if (this.loop.started) return;
    this.memory.clear();
    void this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  /** Asks for a pass (after an agent reconnected: see `debounceMs`). */
  schedule(): void {
    this.loop.trigger();
  }

  /** Passes completed (tests). */
  get passes(): number {
    return this.loop.completedPasses;
  }

  /** A pass now (after the one in flight, if any). Returns the actions the last pass applied. */
  async runOnce(): Promise<SweepAction[]> {
    this.last = [];
    await this.loop.runNow();
    return this.last;
  }

  private async pass(): Promise<SweepAction[]> {
    const snap = await readSnapshot(this.o.client, this.o.keyspace, ['nodes', 'jobRecords'], this.log);
    // An unreadable job is treated as gone.
    const jobs = new Map<string, JobView>([...snap.jobs].map(([id, j]) => [id, { state: j.record.state, modRevision: j.modRevision }]));
    const actions = planSweep(recordsOf(snap.nodes), jobs, this.memory);
    const done: SweepAction[] = [];
    for (const a of actions) {
      try {
        if (await this.apply(a, jobs.get(a.jobId))) done.push(a);
      } catch (err) {
        if (err instanceof NotLeaderError) return done;
        this.log.warn('could not fail stuck node', { nodeId: a.nodeId, err: errorMessage(err) });
      }
    }
    return done;
  }

  private async apply(a: SweepAction, job: JobView | undefined): Promise<boolean> {
    // The job must be as judged when the node is written: absent stays absent, else unchanged.
    const guards: Compare[] = a.jobId
      ? [job
        ? { key: this.o.keyspace.job(a.jobId), target: 'Mod', op: '==', value: job.modRevision, reason: 'job-unchanged' }
        : { key: this.o.keyspace.job(a.jobId), target: 'Create', op: '==', value: '0', reason: 'job-absent' }]
      : [];
    const res = await this.o.nodes.mutate(a.nodeId, (cur) => {
      if (!cur || !isBusyState(cur.state) || (cur.currentJob ?? '') !== a.jobId) return undefined;
      const next: NodeRecord = { ...cur, state: 'Failed', lastError: a.reason };
      if (a.clearClaim) delete next.currentJob;
      return { next, event: { type: 'node.state', ...(a.jobId ? { jobId: a.jobId } : {}), message: a.reason } };
    }, { guards });
    if (res.changed) this.log.warn('stuck node moved to Failed', { nodeId: a.nodeId, reason: a.reason });
    return res.changed;
  }
}
