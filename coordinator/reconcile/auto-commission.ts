/**
 * Auto-commission (leader only): a Discovered node, not in maintenance and not held by a live
 * job, whose labels — plus its facts summary fields as labels `facts.<field>` — match one of a
 * group's autoCommission selectors gets a commission job for that group, created through the
 * jobs engine's StartJob path (claims, maintenance and group rules apply).
 *
 * Level-triggered (fleet's reconcile): the pure `planAutoCommission` decides from one etcd
 * snapshot; passes run at leadership gain, on changes under nodes/, facts/ and groups/
 * (debounced) and on a timer. Idempotent: a claimed node is skipped, and a node that left
 * Discovered is no longer a candidate.
 */
import type { Etcd3, Watcher } from 'etcd3';
import {
  decodeNode, errorMessage, matchesSelector, parseSelector, summariseFacts, type Facts, type Keyspace, type Logger, type NodeRecord, type Selector,
} from '../../shared';
import { readPrefixes } from '../etcd-txn';
import { parseFacts } from '../node-view';
import { decodeGroup, type GroupRecord } from '../config/group-store';
import { decodeJob, isActive } from '../jobs/job-record';
import { jobRequest, type StartJob } from './job-request';

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
    if (n.state !== 'Discovered' || n.maintenance) continue;
    if (n.currentJob && input.activeJobs.has(n.currentJob)) continue;
    const labels = selectorLabels(n.labels, facts);
    const hit = rules.find((r) => r.selectors.some((s) => matchesSelector(s, labels)));
    if (hit) plan.set(hit.group, [...(plan.get(hit.group) ?? []), n.id]);
  }
  return plan;
}

export interface AutoCommissionerOptions {
  client: Etcd3;
  keyspace: Keyspace;
  startJob: StartJob;
  isLeader: () => boolean;
  logger: Logger;
  /** Timer pass (default 30 s). */
  intervalMs?: number;
  /** Gathers a burst of changes into one pass (default 200 ms). */
  debounceMs?: number;
}

export class AutoCommissioner {
  private readonly log: Logger;
  private watchers: Watcher[] = [];
  private timer?: NodeJS.Timeout;
  private soon?: NodeJS.Timeout;
  private running?: Promise<string[]>;
  private again = false;
  private active = false;

  constructor(private readonly o: AutoCommissionerOptions) {
    this.log = o.logger.child({ component: 'auto-commission' });
  }

  start(): void {
    if (this.active) return;
    this.active = true;
    const ks = this.o.keyspace;
    for (const prefix of [ks.nodesPrefix(), ks.factsPrefix(), ks.groupsPrefix()]) {
      const w = this.o.client.watch().prefix(prefix).watcher();
      w.on('put', () => this.schedule());
      w.on('connected', () => this.schedule());
      w.on('error', (err) => this.log.warn('watch error; the timer pass will catch up', { prefix, err: errorMessage(err) }));
      this.watchers.push(w);
    }
    this.timer = setInterval(() => this.schedule(), this.o.intervalMs ?? 30_000);
    this.timer.unref();
    this.schedule();
  }

  async stop(): Promise<void> {
    this.active = false;
    clearInterval(this.timer);
    clearTimeout(this.soon);
    this.soon = undefined;
    const ws = this.watchers;
    this.watchers = [];
    await Promise.all(ws.map((w) => { w.removeAllListeners(); return w.cancel().catch(() => undefined); }));
    await this.running?.catch(() => undefined);
  }

  schedule(): void {
    if (!this.active || this.soon) return;
    this.soon = setTimeout(() => {
      this.soon = undefined;
      this.runOnce().catch((err: unknown) => this.log.warn('auto-commission pass failed; will retry', { err: errorMessage(err) }));
    }, this.o.debounceMs ?? 200);
  }

  /** One pass (or the one in progress, then once more). Returns the ids of jobs created. */
  runOnce(): Promise<string[]> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      const created: string[] = [];
      try {
        do {
          this.again = false;
          created.push(...(await this.pass()));
        } while (this.again && this.active);
      } finally {
        this.running = undefined;
      }
      return created;
    })();
    return this.running;
  }

  private async pass(): Promise<string[]> {
    if (!this.o.isLeader()) return [];
    const ks = this.o.keyspace;
    const { kvs } = await readPrefixes(this.o.client, [
      { prefix: ks.nodesPrefix() }, { prefix: ks.factsPrefix() }, { prefix: ks.groupsPrefix() }, { prefix: ks.jobsPrefix() },
    ]);
    const facts = new Map<string, Partial<Facts>>();
    for (const kv of kvs[1]) {
      const id = ks.parseFacts(kv.key.toString());
      const f = id === undefined ? undefined : parseFacts(kv.value.toString());
      if (id !== undefined && f) facts.set(id, f);
    }
    const nodes: { record: NodeRecord; facts?: Partial<Facts> }[] = [];
    for (const kv of kvs[0]) {
      const key = kv.key.toString();
      const id = ks.parseNode(key);
      if (id === undefined) continue;
      try { nodes.push({ record: decodeNode(key, kv.value.toString()), facts: facts.get(id) }); } catch { /* unreadable */ }
    }
    const groups: GroupRecord[] = [];
    for (const kv of kvs[2]) {
      const key = kv.key.toString();
      if (ks.parseGroup(key) === undefined) continue;
      try { groups.push(decodeGroup(key, kv.value.toString())); } catch { /* unreadable */ }
    }
    const activeJobs = new Set<string>();
    for (const kv of kvs[3]) {
      const key = kv.key.toString();
      const parsed = ks.parseJobKey(key);
      if (!parsed || parsed.nodeId !== undefined) continue;
      try {
        const j = decodeJob(key, kv.value.toString());
        if (isActive(j.state)) activeJobs.add(j.id);
      } catch { /* unreadable */ }
    }
    const plan = planAutoCommission({ nodes, groups, activeJobs });
    const created: string[] = [];
    for (const [group, ids] of plan) {
      // One job per group; if the engine refuses it (one node changed meanwhile), try each node
      // alone so one node cannot hold back the others.
      const attempts = ids.length > 1 ? [ids, ...ids.map((id) => [id])] : [ids];
      for (const nodeIds of attempts) {
        if (!this.o.isLeader() || !this.active) return created;
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
