/**
 * Reload and drift (leader only; DESIGN.md lessons #123/#169: a rebooted or returning node is
 * re-verified, drift is reported and, by policy, repaired).
 *
 * Level-triggered on the node records, pure decisions in `planReverify` / `driftOf`:
 *  - an in-service node (Commissioned/Upgraded, in a group, connected, not in maintenance, not
 *    held by a live job) whose bootId differs from `verifiedBootId` gets a verify job through the
 *    jobs engine; the record then takes the new boot id as verified-for (one txn + event). A node
 *    never verified before takes its current boot as the baseline (it was just commissioned).
 *  - a finished verify job newer than the node's `driftJob` is read: drift is recorded as event
 *    `node.drift` (what differs) and on the record (driftSummary; lastError unless it holds another
 *    error); no drift clears it.
 *    With the group's repairPolicy "repair", drifted nodes get a repair job; the manager's
 *    repairPolicy setting (`clusterctl config set repairPolicy=report|repair|group`), read at each
 *    finding, can stop or force that for every group.
 *  - an agent's DriftReport (sent after its own start-up reverify) is recorded the same way.
 */
import type { Etcd3 } from 'etcd3';
import {
  decodeNode, errorMessage, NotLeaderError, ReconcileLoop, watchPrefixes, type Clock, type Keyspace, type Logger, type NodeRecord, type PrefixWatch,
} from '../../shared';
import type { DriftReport__Output } from '../../generated/cluster/v1/DriftReport';
import { decodeDriftDetail, driftDetailLine, driftLines } from '../../shared/command-report';
import type { NodeStore, VersionedNode } from '../node-store';
import type { GroupRecord } from '../config/group-store';
import { decodeJob, decodeJobNode, isActive, isFinished, type JobNodeRecord, type JobRecord } from '../jobs/job-record';
import { readKeysChunked } from '../etcd-txn';
import { DEFAULT_SETTINGS } from '../options';
import { readSnapshot, recordsOf, jobNodeKey } from '../snapshot';
import { jobRequest, type StartJob } from './job-request';
import { ConfigReader } from '../jobs/config-records';
import { repairsAutomatically, type ManagerConfig } from '../../shared/manager-config';

export type ReverifyAction =
  | { kind: 'baseline'; nodeId: string; bootId: string }
  | { kind: 'reverify'; nodeId: string; group: string; bootId: string; reason: string };

/** Whether the node's own record could ask for a reverify or a baseline (the jobs holding it aside). */
export function mayNeedVerify(n: NodeRecord): boolean {
  return (n.state === 'Commissioned' || n.state === 'Upgraded') && !!n.group && n.connected && !n.maintenance && !!n.bootId && n.bootId !== n.verifiedBootId;
}

/** Whether a node record as put (its key and JSON) may need a verify or a baseline; true when it does not decode. */
export function nodePutMayNeedVerify(key: string, text: string): boolean {
  try {
    return mayNeedVerify(decodeNode(key, text));
  } catch {
    return true;
  }
}

function eligible(n: NodeRecord, activeJobs: ReadonlySet<string>): boolean {
  return mayNeedVerify(n) && !(n.currentJob && activeJobs.has(n.currentJob));
}

/** Pure: which nodes to reverify (new boot id) or baseline (never verified). */
export function planReverify(nodes: readonly NodeRecord[], activeJobs: ReadonlySet<string>): ReverifyAction[] {
  const out: ReverifyAction[] = [];
  for (const n of [...nodes].sort((a, b) => (a.id < b.id ? -1 : 1))) {
    if (!eligible(n, activeJobs) || n.bootId === n.verifiedBootId) continue;
    const bootId = n.bootId as string;
    if (!n.verifiedBootId) out.push({ kind: 'baseline', nodeId: n.id, bootId });
    else out.push({ kind: 'reverify', nodeId: n.id, group: n.group as string, bootId, reason: `new boot id (${n.verifiedBootId} → ${bootId})` });
  }
  return out;
}

/** Pure: the drift a verify job's node record shows; '' = none. */
export function driftOf(rec: Pick<JobNodeRecord, 'state' | 'error' | 'drift'>): string {
  const parts = rec.drift ? driftLines(rec.drift) : [];
  if (parts.length === 0 && rec.state === 'failed') parts.push(rec.error ?? 'verification failed');
  return parts.join('; ');
}

/**
 * Pure: a DriftReport message from an agent, as one line ('' = no drift). A detail that does
 * not decode is drift too (the agent found something it could not say), named as such.
 */
export function driftOfReport(report: Pick<DriftReport__Output, 'drift'>): string {
  if (!report.drift) return '';
  try {
    return driftDetailLine(decodeDriftDetail(report.drift));
  } catch (err) {
    return `drift reported, but the report is malformed: ${errorMessage(err)}`;
  }
}

export interface DriftWatcherOptions {
  client: Etcd3;
  keyspace: Keyspace;
  /** Fenced by the election. */
  nodes: NodeStore;
  startJob: StartJob;
  /** The leader's agent streams, for DriftReport messages (optional in tests). */
  streams?: { on(event: 'drift', fn: (nodeId: string, drift: DriftReport__Output) => void): unknown; off(event: 'drift', fn: (nodeId: string, drift: DriftReport__Output) => void): unknown };
  isLeader: () => boolean;
  clock: Clock;
  logger: Logger;
  /** Timer pass. @default 30000 */
  intervalMs?: number;
  /** Keys one read transaction holds (job and job node records by key): etcd's --max-txn-ops. @default settings.txnMaxOps */
  maxOps?: number;
  /** @default DEFAULT_DEBOUNCE_MS */
  debounceMs?: number;
}

export class DriftWatcher {
  private readonly log: Logger;
  private readonly loop: ReconcileLoop;
  private readonly configs: ConfigReader;
  private watch?: PrefixWatch;
  private readonly intervalMs: number;
  private readonly maxOps: number;
  /** Nodes whose records were written or deleted since the last pass (the watch's events). */
  private changedNodes = new Set<string>();
  /** The next pass reads everything: at start, after a job record, group or watch (re)connect changed. */
  private fullDue = true;
  private lastFullAt = -Infinity;
  private readonly onDrift = (nodeId: string, drift: DriftReport__Output): void => {
    this.recordReport(nodeId, drift).catch((err: unknown) => this.log.warn('could not record drift report', { nodeId, err: errorMessage(err) }));
  };

  constructor(private readonly o: DriftWatcherOptions) {
    this.log = o.logger.child({ component: 'drift-watcher' });
    this.configs = new ConfigReader(o.client, o.keyspace);
    this.intervalMs = o.intervalMs ?? 30_000;
    this.maxOps = o.maxOps ?? DEFAULT_SETTINGS.txnMaxOps;
    this.loop = new ReconcileLoop({
      name: 'drift', clock: o.clock, logger: this.log, intervalMs: o.intervalMs, debounceMs: o.debounceMs, when: o.isLeader,
      pass: () => this.pass(),
    });
  }

  start(): void {
    if (this.loop.started) return;
    this.fullDue = true;
    void this.loop.start();
    const ks = this.o.keyspace;
    // A reconnect of the watch triggers a (full) pass too: what changed while it was down is read then.
    // Job records, not the per-node records under them (a verify job's are final before its record is).
    this.watch = watchPrefixes(this.o.client, [ks.nodesPrefix(), ks.jobsPrefix(), ks.groupsPrefix()], (key) => this.changed(key), this.log, {
      keyFilter: (key) => !ks.isJobNodeKey(key),
      // A node put asks for a pass over that node only if the record as written could need a
      // verify or a baseline: a fan-out writes every node it runs on two or three times, and
      // each of those made a read of the node here. Level-triggered as before: a later write
      // that could need one asks then. Unreadable: asked, the pass logs it.
      putFilter: (key, value) => !key.startsWith(ks.nodesPrefix()) || nodePutMayNeedVerify(key, value.toString()),
      previousValues: false,
    });
    this.o.streams?.on('drift', this.onDrift);
  }

  async stop(): Promise<void> {
    this.o.streams?.off('drift', this.onDrift);
    const w = this.watch;
    this.watch = undefined;
    await w?.stop();
    await this.loop.stop();
  }

  schedule(): void {
    this.fullDue = true;
    this.loop.trigger();
  }

  /**
   * A watch event: a node record's (put or delete) asks for a pass over that node only; any
   * other (a job record, a group, the watch's (re)connect: `key` undefined) for a full pass.
   */
  private changed(key: string | undefined): void {
    const ks = this.o.keyspace;
    const id = key !== undefined && key.startsWith(ks.nodesPrefix()) ? ks.parseNode(key) : undefined;
    if (id !== undefined) this.changedNodes.add(id);
    else this.fullDue = true;
    this.loop.trigger();
  }

  /** Passes completed (tests). */
  get passes(): number {
    return this.loop.completedPasses;
  }

  /** A full pass now (after the one in flight, if any). */
  runOnce(): Promise<void> {
    this.fullDue = true;
    return this.loop.runNow();
  }

  /**
   * A full pass when one is due (see `fullDue`; also with nothing else asked, as the timer's
   * safety net does, and at least once per interval); otherwise a pass over the nodes whose
   * records changed. A fan-out rewrites every node it runs on, several times: a full pass
   * for each burst would read the whole fleet again and again (at 10,000 nodes, 10,000
   * records per pass while they finish), where only the nodes written can need a verify.
   */
  private async pass(): Promise<void> {
    const now = this.o.clock.now();
    const changed = this.changedNodes;
    const full = this.fullDue || changed.size === 0 || now - this.lastFullAt >= this.intervalMs;
    this.changedNodes = new Set();
    this.fullDue = false;
    try {
      if (full) {
        this.lastFullAt = now;
        await this.fullPass();
      } else {
        await this.nodesPass([...changed]);
      }
    } catch (err) {
      // Asked again: the next trigger or tick retries what this pass did not finish.
      if (full) this.fullDue = true;
      else for (const id of changed) this.changedNodes.add(id);
      throw err;
    }
  }

  /**
   * The reverify decisions for these nodes alone: their records, and the records of the jobs
   * holding them (is the job still live?), read by key. recordResults waits for a full pass: a
   * verify job's results are read when its record changes, which asks for one.
   */
  private async nodesPass(ids: readonly string[]): Promise<void> {
    const read = [...(await this.o.nodes.getMany(ids)).values()].filter((v) => mayNeedVerify(v.record));
    const nodes = read.map((v) => v.record);
    const holding = [...new Set(nodes.map((n) => n.currentJob).filter((j): j is string => j !== undefined))];
    const activeJobs = holding.length > 0 ? await this.activeAmong(holding) : new Set<string>();
    const actions = planReverify(nodes, activeJobs);
    if (actions.length === 0) return;
    // The group names the repair policy in a reverify's event; a baseline needs none.
    const groups = actions.some((a) => a.kind === 'reverify') ? recordsOf((await readSnapshot(this.o.client, this.o.keyspace, ['groups'], this.log)).groups) : [];
    try {
      await this.actAll(actions, (id) => groups.find((g) => g.name === nodes.find((n) => n.id === id)?.group), new Map(read.map((v) => [v.record.id, v])));
    } catch (err) {
      if (!(err instanceof NotLeaderError)) throw err;
    }
  }

  /**
   * The baselines together (each its own guarded write; the event log commits them in a few
   * transactions, from the records as read: no read each), then the reverifies one by one (each
   * starts a job).
   */
  private async actAll(actions: readonly ReverifyAction[], groupOf: (nodeId: string) => GroupRecord | undefined, known: ReadonlyMap<string, VersionedNode>): Promise<void> {
    if (actions.length === 0 || !this.o.isLeader() || !this.loop.started) return;
    await Promise.all(actions.filter((a) => a.kind === 'baseline').map((a) => this.act(a, undefined, known.get(a.nodeId))));
    for (const a of actions) {
      if (a.kind !== 'reverify') continue;
      if (!this.o.isLeader() || !this.loop.started) return;
      await this.act(a, groupOf(a.nodeId));
    }
  }

  /** Which of these jobs are live (Pending/Running/...), from their records read by key; a missing one is not. */
  private async activeAmong(jobIds: readonly string[]): Promise<Set<string>> {
    const out = new Set<string>();
    const ks = this.o.keyspace;
    const kvs = await readKeysChunked(this.o.client, jobIds.map((id) => ks.job(id)), this.maxOps);
    kvs.forEach((kv, j) => {
      if (!kv) return;
      try {
        if (isActive(decodeJob(kv.key.toString(), kv.value.toString()).state)) out.add(jobIds[j]);
      } catch (err) {
        // An unreadable job is treated as gone, as a full pass's snapshot does.
        this.log.warn('unreadable job record skipped', { key: kv.key.toString(), err: errorMessage(err) });
      }
    });
    return out;
  }

  private async fullPass(): Promise<void> {
    // The job records without their per-node records: a fan-out rewrites every node record and
    // so asks for pass after pass, and each would otherwise read the job's node records too.
    // The few node records recordResults needs are read by key.
    const snap = await readSnapshot(this.o.client, this.o.keyspace, ['nodes', 'jobRecords', 'groups'], this.log);
    const nodes = recordsOf(snap.nodes);
    const jobs = new Map([...snap.jobs].map(([id, j]) => [id, j.record]));
    const groups = new Map([...snap.groups].map(([name, g]) => [name, g.record]));
    const activeJobs = new Set([...jobs.values()].filter((j) => isActive(j.state)).map((j) => j.id));

    try {
      await this.recordResults(nodes, jobs, groups);
      await this.actAll(planReverify(nodes, activeJobs), (id) => groups.get(nodes.find((n) => n.id === id)?.group ?? ''), snap.nodes);
    } catch (err) {
      if (!(err instanceof NotLeaderError)) throw err;
    }
  }

  /** The job node records of these (job, node) pairs, read by key (absent and unreadable ones are missing). */
  private async jobNodeRecords(pairs: readonly { jobId: string; nodeId: string }[]): Promise<Map<string, JobNodeRecord>> {
    const out = new Map<string, JobNodeRecord>();
    const ks = this.o.keyspace;
    const kvs = await readKeysChunked(this.o.client, pairs.map((p) => ks.jobNode(p.jobId, p.nodeId)), this.maxOps);
    kvs.forEach((kv, j) => {
      if (!kv) return;
      try {
        out.set(jobNodeKey(pairs[j].jobId, pairs[j].nodeId), decodeJobNode(kv.key.toString(), kv.value.toString()));
      } catch (err) {
        this.log.warn('unreadable job node record skipped', { key: kv.key.toString(), err: errorMessage(err) });
      }
    });
    return out;
  }

  /** `known`: the node's record as read (a stale one costs a compare-and-swap retry). */
  private async act(a: ReverifyAction, group: GroupRecord | undefined, known?: VersionedNode): Promise<void> {
    if (a.kind === 'baseline') {
      await this.o.nodes.mutate(a.nodeId, (cur) => (!cur || cur.verifiedBootId || cur.bootId !== a.bootId ? undefined : {
        next: { ...cur, verifiedBootId: a.bootId },
        event: { type: 'node.verify-baseline', message: `boot ${a.bootId} taken as verified (in service on this boot)` },
      }), known ? { known } : {});
      return;
    }
    let jobId: string;
    try {
      const job = await this.o.startJob(jobRequest({ kind: 'verify', nodeIds: [a.nodeId], requestedBy: 'drift-watcher' }));
      jobId = job.record.id;
    } catch (err) {
      this.log.warn('reverify refused', { nodeId: a.nodeId, err: errorMessage(err) });
      return;
    }
    await this.o.nodes.mutate(a.nodeId, (cur) => (!cur || cur.bootId !== a.bootId ? undefined : {
      next: { ...cur, verifiedBootId: a.bootId },
      event: { type: 'node.reverify', jobId, message: `${a.reason}: verify job ${jobId} started (repair policy ${group?.repairPolicy ?? 'report'})` },
    }));
  }

  /** Finished verify jobs newer than each node's recorded one → drift recorded, repair by policy. */
  private async recordResults(nodes: readonly NodeRecord[], jobs: ReadonlyMap<string, JobRecord>, groups: ReadonlyMap<string, GroupRecord>): Promise<void> {
    const finishedVerifies = [...jobs.values()].filter((j) => j.kind === 'verify' && !j.dryRun && isFinished(j.state)).sort((a, b) => (a.id < b.id ? -1 : 1));
    const toRepair = new Map<string, string[]>();
    let config: ManagerConfig | undefined;
    const newestOf = new Map<string, JobRecord>();
    if (finishedVerifies.length > 0) {
      for (const n of nodes) {
        const newest = finishedVerifies.filter((j) => j.nodeIds.includes(n.id) && (!n.driftJob || j.id > n.driftJob)).pop();
        if (newest) newestOf.set(n.id, newest);
      }
    }
    const jobNodes = await this.jobNodeRecords([...newestOf].map(([nodeId, j]) => ({ jobId: j.id, nodeId })));
    for (const n of nodes) {
      const newest = newestOf.get(n.id);
      const rec = newest ? jobNodes.get(jobNodeKey(newest.id, n.id)) : undefined;
      if (!newest || !rec || (rec.state !== 'succeeded' && rec.state !== 'failed')) continue;
      const drift = driftOf(rec);
      const res = await this.record(n.id, drift, newest.id);
      const g = n.group ? groups.get(n.group) : undefined;
      if (!res || !drift || !g || n.maintenance) continue;
      config ??= await this.configs.managerConfig();
      if (repairsAutomatically(config, g.repairPolicy)) toRepair.set(g.name, [...(toRepair.get(g.name) ?? []), n.id]);
    }
    for (const [group, ids] of toRepair) await this.repair(group, ids);
  }

  private async repair(group: string, nodeIds: string[]): Promise<void> {
    try {
      const job = await this.o.startJob(jobRequest({ kind: 'repair', nodeIds, requestedBy: 'drift-watcher' }));
      this.log.info('repair started', { group, nodeIds, jobId: job.record.id });
    } catch (err) {
      this.log.warn('repair refused', { group, nodeIds, err: errorMessage(err) });
    }
  }

  /** Writes the drift finding (or its absence) on the node, with its event. */
  private async record(nodeId: string, drift: string, jobId: string | undefined): Promise<boolean> {
    const res = await this.o.nodes.mutate(nodeId, (cur) => {
      if (!cur) return undefined;
      if (jobId && cur.driftJob && cur.driftJob >= jobId) return undefined;
      const next: NodeRecord = { ...cur, ...(jobId ? { driftJob: jobId } : {}) };
      if (drift) {
        next.driftSummary = drift;
        // A failure reason already there (e.g. why a commission failed) stays: it is what an
        // operator needs to recover the node; the drift has its own field.
        if (!cur.lastError || cur.lastError.startsWith('drift: ')) next.lastError = `drift: ${drift}`;
      } else {
        delete next.driftSummary;
        if (cur.lastError?.startsWith('drift: ')) delete next.lastError;
      }
      return {
        next,
        event: drift
          ? { type: 'node.drift', ...(jobId ? { jobId } : {}), message: drift }
          : { type: 'node.verified', ...(jobId ? { jobId } : {}), message: 'no drift' },
      };
    });
    return res.changed;
  }

  private async recordReport(nodeId: string, report: DriftReport__Output): Promise<void> {
    if (!this.o.isLeader()) return;
    const drift = driftOfReport(report);
    if (!drift) return;
    await this.record(nodeId, drift, undefined);
    const cur = (await this.o.nodes.get(nodeId))?.record;
    if (!cur?.group || cur.maintenance) return;
    const g = (await readSnapshot(this.o.client, this.o.keyspace, ['groups'], this.log)).groups.get(cur.group)?.record;
    if (g && repairsAutomatically(await this.configs.managerConfig(), g.repairPolicy)) await this.repair(g.name, [nodeId]);
  }
}
