/**
 * Auto-commission (leader only): a Discovered node, not in maintenance and not held by a live
 * job, whose labels — plus its facts summary fields as labels `facts.<field>` — match one of a
 * group's autoCommission selectors gets a commission job for that group, created through the
 * jobs engine's StartJob path (claims, maintenance and group rules apply).
 *
 * Level-triggered (fleet's reconcile): the pure `planAutoCommission` decides from one etcd
 * snapshot; passes run at leadership gain, on changes (puts and deletes) under nodes/ (puts of
 * Discovered records only), facts/, groups/, jobs/ (job records, not their per-node records) and
 * of the manager config (autoCommission=paused stops every rule) (a deleted or finished job frees
 * its nodes), debounced, and on a timer. Idempotent: a claimed node is skipped, and a node that left
 * Discovered is no longer a candidate.
 */
import {
  errorMessage, matchesSelector, parseSelector, ReconcileLoop, summariseFacts, watchPrefixes,
  type Facts, type Logger, type NodeRecord, type PrefixWatch, type Selector,
} from '../../shared';
import type { GroupRecord } from '../config/group-store';
import { isActive } from '../jobs/job-record';
import { readSnapshot, recordsOf } from '../snapshot';
import { jobRequest, type StartJob } from './job-request';
import { ConfigReader } from '../jobs/config-records';
import type { ReconcilerOptions } from './reconciler-options';
import { DEFAULT_SETTINGS } from '../options';

/** Node labels plus `facts.<field>` for every facts summary field (numbers as text). */
export function selectorLabels(labels: Readonly<Record<string, string>>, facts: Partial<Facts> | undefined): Record<string, string> {
  const out: Record<string, string> = { ...labels };
  if (facts) {
    for (const [k, v] of Object.entries(summariseFacts(facts))) {
      if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[`facts.${k}`] = String(v);
    }
  }
  return out;
}

export interface AutoCommissionInput {
  nodes: readonly { record: NodeRecord; facts?: Partial<Facts> }[];
  groups: readonly GroupRecord[];
  /** Ids of jobs that are Pending/Running/Cancelling. */
  activeJobs: ReadonlySet<string>;
}

/** Whether a rule may take the node: Discovered, not in maintenance, not held by a live job. */
export function isCandidate(n: NodeRecord, activeJobs: ReadonlySet<string>): boolean {
  return n.state === 'Discovered' && !n.maintenance && !(n.currentJob && activeJobs.has(n.currentJob));
}

/**
 * Whether a put of a node record can give a rule something to do: only a record that is
 * Discovered after it (a node leaving Discovered, e.g. into the Commissioning of a fan-out,
 * takes no candidate away that a pass would need to see). Unreadable: yes.
 */
export function nodePutMatters(value: string): boolean {
  try {
    return (JSON.parse(value) as { state?: unknown } | null)?.state === 'Discovered';
  } catch {
    return true;
  }
}

/** group → node ids to commission into it. Pure. A node matching several groups goes to the first by name. */
export function planAutoCommission(input: AutoCommissionInput): Map<string, string[]> {
  const rules: { group: string; selectors: Selector[] }[] = [];
  for (const g of [...input.groups].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const selectors: Selector[] = [];
    for (const r of g.autoCommission ?? []) {
      try {
        const s = parseSelector(r.selector);
        if (s.length > 0) selectors.push(s); // an empty selector never auto-commissions everything
      } catch {
        // Stored selectors were validated by SetGroup; an unreadable one matches nothing.
      }
    }
    if (selectors.length > 0) rules.push({ group: g.name, selectors });
  }
  const plan = new Map<string, string[]>();
  for (const { record: n, facts } of [...input.nodes].sort((a, b) => (a.record.id < b.record.id ? -1 : 1))) {
    if (!isCandidate(n, input.activeJobs)) continue;
    const labels = selectorLabels(n.labels, facts);
    const hit = rules.find((r) => r.selectors.some((s) => matchesSelector(s, labels)));
    if (hit) plan.set(hit.group, [...(plan.get(hit.group) ?? []), n.id]);
  }
  return plan;
}

export interface AutoCommissionerOptions extends ReconcilerOptions {
  startJob: StartJob;
  /** Timer pass. @default 30000 */
  intervalMs?: number;
  /** Keys one read transaction holds (the candidates' facts): etcd's --max-txn-ops. @default settings.txnMaxOps */
  maxOps?: number;
}

export class AutoCommissioner {
  private readonly log: Logger;
  private readonly loop: ReconcileLoop;
  private watch?: PrefixWatch;
  private created: string[] = [];

  constructor(private readonly o: AutoCommissionerOptions) {
    this.log = o.logger.child({ component: 'auto-commission' });
    this.loop = new ReconcileLoop({
      name: 'auto-commission', clock: o.clock, logger: this.log, intervalMs: o.intervalMs, debounceMs: o.debounceMs, when: o.isLeader,
      pass: async () => { this.created.push(...(await this.pass())); },
    });
  }

  start(): void {
    if (this.loop.started) return;
    void this.loop.start();
    const ks = this.o.keyspace;
    // jobs/ too: a job that ends or is deleted frees its nodes (its record, not its per-node
    // records). Of the node records only those written as Discovered (nodePutMatters): a fan-out
    // rewrites every node it runs on, twice, and none of those writes makes a candidate.
    this.watch = watchPrefixes(this.o.client, [ks.nodesPrefix(), ks.factsPrefix(), ks.groupsPrefix(), ks.jobsPrefix(), ks.managerConfig()], () => this.loop.trigger(), this.log, {
      keyFilter: (key) => !ks.isJobNodeKey(key),
      putFilter: (key, value) => !key.startsWith(ks.nodesPrefix()) || nodePutMatters(value.toString()),
      previousValues: false,
    });
  }

  async stop(): Promise<void> {
    const w = this.watch;
    this.watch = undefined;
    await w?.stop();
    await this.loop.stop();
  }

  schedule(): void {
    this.loop.trigger();
  }

  /** Passes completed (tests). */
  get passes(): number {
    return this.loop.completedPasses;
  }

  /** A pass now (after the one in flight, then once more). Returns the ids of jobs created meanwhile. */
  async runOnce(): Promise<string[]> {
    this.created = [];
    await this.loop.runNow();
    const out = this.created;
    this.created = [];
    return out;
  }

  private async pass(): Promise<string[]> {
    // `clusterctl config set autoCommission=paused`: the rules stay, nothing is started.
    if ((await new ConfigReader(this.o.client, this.o.keyspace).managerConfig()).autoCommission === 'paused') return [];
    // Without a rule nothing else is read (the usual case: a pass then costs one small read).
    const rules = recordsOf((await readSnapshot(this.o.client, this.o.keyspace, ['groups'], this.log)).groups);
    if (!rules.some((g) => (g.autoCommission ?? []).length > 0)) return [];
    // Nodes, groups and the job records (not their per-node records) at one revision; facts,
    // the largest records, only of the nodes a rule could take.
    const snap = await readSnapshot(this.o.client, this.o.keyspace, ['nodes', 'groups', 'jobRecords'], this.log);
    const groups = recordsOf(snap.groups);
    const activeJobs = new Set([...snap.jobs].filter(([, j]) => isActive(j.record.state)).map(([id]) => id));
    const candidates = recordsOf(snap.nodes).filter((n) => isCandidate(n, activeJobs));
    const facts = await new ConfigReader(this.o.client, this.o.keyspace).factsOf(candidates.map((n) => n.id), this.o.maxOps ?? DEFAULT_SETTINGS.txnMaxOps);
    const nodes = candidates.map((n) => ({ record: n, facts: facts.get(n.id) }));
    const plan = planAutoCommission({ nodes, groups, activeJobs });
    const created: string[] = [];
    for (const [group, ids] of plan) {
      // One job per group; if the engine refuses it (one node changed meanwhile), try each node
      // alone so one node cannot hold back the others.
      const attempts = ids.length > 1 ? [ids, ...ids.map((id) => [id])] : [ids];
      for (const nodeIds of attempts) {
        if (!this.o.isLeader() || !this.loop.started) return created;
        try {
          const job = await this.o.startJob(jobRequest({ kind: 'commission', nodeIds, group, requestedBy: 'auto-commission' }));
          created.push(job.record.id);
          this.log.info('auto-commission job created', { group, nodes: nodeIds, jobId: job.record.id });
          if (nodeIds === ids) break;
        } catch (err) {
          this.log.warn('auto-commission refused', { group, nodes: nodeIds, err: errorMessage(err) });
        }
      }
    }
    return created;
  }
}
