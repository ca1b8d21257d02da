/**
 * The dashboard server's picture of the cluster, kept live from the coordinator's watch streams
 * (ONE set of streams per `clusterctl dashboard`, however many pages are open):
 *
 *  - WatchNodes: every node as a tile (protocol.ts Tile), changes coalesced for COALESCE_MS so a
 *    burst (10,000 ADDED at start, a rolling job's wave) reaches the page as a few messages;
 *  - WatchEvents: the newest EVENTS_KEPT events, then each new one;
 *  - jobs: the newest JOBS_KEPT jobs from ListJobs, and a WatchJob stream for each active one. A
 *    job started later is noticed by its events (job.created, job.started, ... carry its id).
 *
 * When a stream fails (no replica reachable), the feed says so (status) and starts again after
 * RETRY_MS: the node list is read whole again, so nodes deleted meanwhile go away.
 */
import type { Event__Output } from '../../generated/cluster/v1/Event';
import type { JobDetail__Output } from '../../generated/cluster/v1/JobDetail';
import type { Job__Output } from '../../generated/cluster/v1/Job';
import type { Node__Output } from '../../generated/cluster/v1/Node';
import type { NodeEvent__Output } from '../../generated/cluster/v1/NodeEvent';
import { systemClock, type Clock, type Timer } from '../../shared/clock';
import { errorMessage } from '../../shared/errors';
import { isActive, isJobState } from '../../shared/job-states';
import type { CoordinatorClient, WatchHandle } from '../coordinator-client';
import type { BatchProgress, EventItem, FeedStatus, JobNodeView, JobPage, JobSummary, NodeDelta, NodePage, RollbackProgress, Snapshot, StreamMessageName, StreamMessages, Tile } from './protocol';

/** The calls the feed makes: the CLI's coordinator client (tests and the benchmark pass a real one). */
export type DashboardSource = Pick<CoordinatorClient, 'listNodes' | 'watchNodes' | 'listEvents' | 'watchEvents' | 'listJobs' | 'getJob' | 'watchJob' | 'getNode' | 'addresses'>;

export interface DashboardFeedOptions {
  source: DashboardSource;
  /** The coalescing and retry timers. @default systemClock */
  clock?: Clock;
  /** Node changes within this window go out as one message. @default 25 */
  coalesceMs?: number;
  /** Events kept for a page that opens. @default 300 */
  eventsKept?: number;
  /** Finished jobs kept (active jobs are always kept). @default 20 */
  jobsKept?: number;
  /** Wait before starting the streams again after one failed. @default 2000 */
  retryMs?: number;
  /** A line for the operator (stream lost, back). */
  note?: (text: string) => void;
}

/** Unfinished, by the one definition of job states (a state this clusterctl does not know is not). */
function isActiveState(state: string): boolean {
  return isJobState(state) && isActive(state);
}

const FINISHED_NODE_STATES = new Set(['succeeded', 'failed', 'cancelled', 'skipped']);

/** Pure: the tile of a node. */
export function tileOf(n: Node__Output): Tile {
  return {
    id: n.id,
    state: n.state,
    reachable: n.reachable,
    connected: n.connected,
    maintenance: n.maintenance,
    drift: n.driftSummary,
    group: n.group,
    labels: { ...n.labels },
    hostname: n.facts?.hostname ?? '',
    ip: n.facts?.primaryIp ?? '',
    job: n.currentJob,
    lastError: n.lastError,
  };
}

export function eventItem(e: Event__Output): EventItem {
  return { seq: Number(e.seq), at: e.at, type: e.type, nodeId: e.nodeId, jobId: e.jobId, from: e.from, to: e.to, message: e.message, actor: e.actor };
}

/** Pure: a job and its progress, overall and per batch, from its nodes (none for a listed job). */
export function jobSummaryOf(job: Job__Output, nodes: JobDetail__Output['nodes'] | undefined): JobSummary {
  const perBatch = new Map<number, BatchProgress>();
  let done = 0;
  let failed = 0;
  let running = 0;
  let rollback: RollbackProgress | null = null;
  for (const n of nodes ?? []) {
    if (n.rollbackState) {
      rollback ??= { total: 0, done: 0, failed: 0, running: 0 };
      rollback.total++;
      if (n.rollbackState === 'running') rollback.running++;
      else rollback.done++;
      if (n.rollbackState === 'failed') rollback.failed++;
    }
    let b = perBatch.get(n.batch);
    if (!b) perBatch.set(n.batch, (b = { batch: n.batch, total: 0, done: 0, failed: 0, running: 0 }));
    b.total++;
    if (FINISHED_NODE_STATES.has(n.state)) { b.done++; done++; }
    if (n.state === 'failed') { b.failed++; failed++; }
    if (n.state === 'running') { b.running++; running++; }
  }
  // A listed job has no nodes: its counts map says the same per state.
  if (!nodes) {
    for (const [state, count] of Object.entries(job.counts)) {
      if (FINISHED_NODE_STATES.has(state)) done += count;
      if (state === 'failed') failed += count;
      if (state === 'running') running += count;
    }
  }
  return {
    id: job.id,
    kind: job.kind,
    state: job.state,
    active: isActiveState(job.state),
    group: job.group,
    bundle: job.bundle,
    message: job.message,
    requestedBy: job.requestedBy,
    createdAt: job.createdAt,
    finishedAt: job.finishedAt,
    batches: job.batches,
    currentBatch: job.currentBatch,
    total: nodes ? nodes.length : job.nodeIds.length,
    done,
    failed,
    running,
    perBatch: [...perBatch.values()].sort((a, b) => a.batch - b.batch),
    rollback,
  };
}

export function jobPageOf(d: JobDetail__Output): JobPage {
  if (!d.job) throw new Error('job detail without a job');
  return {
    job: jobSummaryOf(d.job, d.nodes),
    nodes: d.nodes.map((n): JobNodeView => ({
      nodeId: n.nodeId, batch: n.batch, state: n.state, startedAt: n.startedAt, finishedAt: n.finishedAt, error: n.error, output: n.output,
      exitCode: n.hasExitCode ? n.exitCode : null,
      units: n.units.map((u) => ({ unitId: u.unitId, status: u.status, message: u.message })),
      rollbackState: n.rollbackState, rollbackError: n.rollbackError, previousBundle: n.previousBundle,
    })),
  };
}

type Listener = <K extends StreamMessageName>(name: K, data: StreamMessages[K]) => void;

export class DashboardFeed {
  private readonly tiles = new Map<string, Tile>();
  private readonly events: EventItem[] = [];
  private readonly jobs = new Map<string, JobSummary>();
  private readonly jobWatches = new Map<string, WatchHandle>();
  /** Jobs with a WatchJob stream open or opening. */
  private readonly followed = new Set<string>();
  private readonly jobLookups = new Set<string>();
  private readonly listeners = new Set<Listener>();
  private pending: { upsert: Map<string, Tile>; remove: Set<string> } = { upsert: new Map(), remove: new Set() };
  private flushTimer: Timer | undefined;
  private retryTimer: Timer | undefined;
  private nodeWatch: WatchHandle | undefined;
  private eventWatch: WatchHandle | undefined;
  private status: FeedStatus = { live: false, message: 'connecting to the coordinator' };
  private stopped = false;
  private generation = 0;
  private readonly coalesceMs: number;
  private readonly eventsKept: number;
  private readonly jobsKept: number;
  private readonly retryMs: number;
  private readonly clock: Clock;

  constructor(private readonly options: DashboardFeedOptions) {
    this.coalesceMs = options.coalesceMs ?? 25;
    this.eventsKept = options.eventsKept ?? 300;
    this.jobsKept = options.jobsKept ?? 20;
    this.retryMs = options.retryMs ?? 2000;
    this.clock = options.clock ?? systemClock;
  }

  /** Starts the streams; resolves when the first node list is in (rejects when the coordinator cannot be reached at all). */
  async start(): Promise<void> {
    await this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.flushTimer?.cancel();
    this.retryTimer?.cancel();
    this.closeStreams();
  }

  snapshot(): Snapshot {
    this.flush();
    return {
      nodes: [...this.tiles.values()],
      events: [...this.events],
      jobs: [...this.jobs.values()],
      status: this.status,
    };
  }

  /** Every message after the snapshot; returns the unsubscribe function. */
  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async nodePage(id: string): Promise<NodePage> {
    const [detail, events] = await Promise.all([this.options.source.getNode(id), this.options.source.listEvents({ nodeId: id, limit: 100 })]);
    if (!detail.node) throw new Error(`node ${id}: the coordinator sent no record`);
    return { node: detail.node, factsJson: detail.factsJson, events: events.map(eventItem) };
  }

  async jobPage(id: string): Promise<JobPage> {
    return jobPageOf(await this.options.source.getJob(id));
  }

  private emit<K extends StreamMessageName>(name: K, data: StreamMessages[K]): void {
    for (const l of this.listeners) l(name, data);
  }

  private setStatus(status: FeedStatus): void {
    this.status = status;
    this.emit('status', status);
  }

  private closeStreams(): void {
    this.nodeWatch?.cancel();
    this.eventWatch?.cancel();
    for (const w of this.jobWatches.values()) w.cancel();
    this.nodeWatch = undefined;
    this.eventWatch = undefined;
    this.jobWatches.clear();
    this.followed.clear();
  }

  private async connect(): Promise<void> {
    this.closeStreams();
    const generation = ++this.generation;
    const source = this.options.source;
    // The whole list first, so a node deleted while the streams were down goes away.
    const nodes = await source.listNodes('');
    const ids = new Set(nodes.map((n) => n.id));
    for (const id of this.tiles.keys()) if (!ids.has(id)) this.queueRemove(id);
    for (const n of nodes) this.queueUpsert(tileOf(n));
    const events = await source.listEvents({ limit: this.eventsKept });
    this.addEvents(events.map(eventItem), false);
    const jobs = await source.listJobs('', this.jobsKept);
    for (const j of jobs) this.putJob(jobSummaryOf(j, undefined));
    for (const j of jobs) if (isActiveState(j.state)) this.watchJob(j.id);
    this.nodeWatch = await source.watchNodes('', (e) => this.onNodeEvent(e));
    const lastSeq = this.events.length ? this.events[this.events.length - 1].seq : 0;
    this.eventWatch = await source.watchEvents({ afterSeq: String(lastSeq) }, (e) => this.onEvent(eventItem(e)));
    for (const w of [this.nodeWatch, this.eventWatch]) w.done.then(() => this.lost(generation, 'the coordinator closed the stream'), (err: unknown) => this.lost(generation, errorMessage(err)));
    this.setStatus({ live: true, message: `coordinator ${source.addresses.join(', ')}` });
  }

  private lost(generation: number, why: string): void {
    if (this.stopped || generation !== this.generation) return;
    this.generation++;
    this.closeStreams();
    this.options.note?.(`dashboard: lost the watch streams (${why}); trying again in ${this.retryMs} ms`);
    this.setStatus({ live: false, message: why });
    this.retry();
  }

  private retry(): void {
    this.retryTimer = this.clock.setTimeout(() => {
      if (this.stopped) return;
      this.connect().then(
        () => this.options.note?.('dashboard: watch streams back'),
        (err: unknown) => {
          this.setStatus({ live: false, message: errorMessage(err) });
          this.retry();
        },
      );
    }, this.retryMs);
  }

  private onNodeEvent(e: NodeEvent__Output): void {
    if (!e.node) return;
    if (e.type === 'DELETED') this.queueRemove(e.node.id);
    else this.queueUpsert(tileOf(e.node));
  }

  private queueUpsert(t: Tile): void {
    this.tiles.set(t.id, t);
    this.pending.remove.delete(t.id);
    this.pending.upsert.set(t.id, t);
    this.scheduleFlush();
  }

  private queueRemove(id: string): void {
    this.tiles.delete(id);
    this.pending.upsert.delete(id);
    this.pending.remove.add(id);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    this.flushTimer ??= this.clock.setTimeout(() => this.flush(), this.coalesceMs);
  }

  /** Sends the coalesced node changes (also before a snapshot, so no page sees a change twice or never). */
  private flush(): void {
    this.flushTimer?.cancel();
    this.flushTimer = undefined;
    const { upsert, remove } = this.pending;
    if (upsert.size === 0 && remove.size === 0) return;
    this.pending = { upsert: new Map(), remove: new Set() };
    const delta: NodeDelta = { upsert: [...upsert.values()], remove: [...remove] };
    this.emit('nodes', delta);
  }

  private addEvents(items: readonly EventItem[], emit: boolean): void {
    const last = this.events.length ? this.events[this.events.length - 1].seq : 0;
    const fresh = items.filter((e) => e.seq > last);
    if (fresh.length === 0) return;
    this.events.push(...fresh);
    if (this.events.length > this.eventsKept) this.events.splice(0, this.events.length - this.eventsKept);
    if (emit) this.emit('events', fresh);
  }

  private onEvent(e: EventItem): void {
    this.addEvents([e], true);
    // A job this feed does not follow yet (started after the page opened): look it up once.
    if (e.jobId && !this.followed.has(e.jobId) && !this.jobLookups.has(e.jobId)) {
      const known = this.jobs.get(e.jobId);
      if (!known || known.active) this.lookUpJob(e.jobId);
    }
  }

  private lookUpJob(id: string): void {
    this.jobLookups.add(id);
    this.options.source.getJob(id).then(
      (d) => {
        this.jobLookups.delete(id);
        if (!d.job || this.stopped) return;
        this.putJob(jobSummaryOf(d.job, d.nodes));
        if (isActiveState(d.job.state)) this.watchJob(id);
      },
      (err: unknown) => {
        this.jobLookups.delete(id);
        this.options.note?.(`dashboard: cannot read job ${id}: ${errorMessage(err)}`);
      },
    );
  }

  private watchJob(id: string): void {
    if (this.followed.has(id)) return;
    this.followed.add(id);
    const generation = this.generation;
    this.options.source.watchJob(id, (d) => {
      if (d.job) this.putJob(jobSummaryOf(d.job, d.nodes));
    }).then(
      (w) => {
        if (this.stopped || generation !== this.generation) return w.cancel();
        this.jobWatches.set(id, w);
        const forget = (): void => {
          if (this.jobWatches.get(id) !== w) return;
          this.jobWatches.delete(id);
          this.followed.delete(id);
        };
        w.done.then(forget, (err: unknown) => {
          forget();
          this.options.note?.(`dashboard: job ${id} stream ended: ${errorMessage(err)}`);
        });
      },
      (err: unknown) => {
        this.followed.delete(id);
        this.options.note?.(`dashboard: cannot follow job ${id}: ${errorMessage(err)}`);
      },
    );
  }

  private putJob(j: JobSummary): void {
    this.jobs.set(j.id, j);
    // Keep every active job and the newest finished ones (ids sort by creation time).
    const finished = [...this.jobs.values()].filter((x) => !x.active).sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));
    for (const old of finished.slice(this.jobsKept)) this.jobs.delete(old.id);
    if (this.jobs.has(j.id)) this.emit('job', j);
  }
}
