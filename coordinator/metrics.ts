/**
 * The coordinator's Prometheus metrics (prom-client, one Registry per replica; served by
 * shared/metrics-server.ts on --metrics-listen). Names follow the Prometheus conventions:
 * `cluster_` namespace, base units (`_seconds`, `_bytes`), `_total` on counters, and no
 * node-id label anywhere (10,000 nodes would be 10,000 series per histogram bucket).
 *
 * Two sources:
 * - fleet gauges (nodes by state and reachability, drift, maintenance, jobs by kind and state,
 *   event-log size) are read from etcd at scrape time, nodes through the one snapshot decoder
 *   (snapshot.ts) and only the job records, not their per-node ones (jobs/job-record-scan.ts),
 *   by EVERY replica that can read etcd, leader or not: they describe the
 *   cluster, not the replica, so dashboards and rules aggregate them with `max`, never `sum`.
 *   When etcd cannot be read they are absent from that scrape (no stale numbers);
 * - the replica's own work (leadership, agent streams, commands in flight, job durations, etcd
 *   transactions) is counted where it happens. Only the leader runs jobs and holds streams, so
 *   a follower reports 0 for those and `cluster_coordinator_leader 0`.
 *
 * docs/operations.md ("Metrics") lists every name; a test checks that it does.
 */
import type { Etcd3 } from 'etcd3';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { errorMessage, LIFECYCLE_STATES, VERSION, type Keyspace, type Logger } from '../shared';
import { isFinished, JOB_KINDS, JOB_STATES, type JobObserver } from './jobs';
import { scanJobRecords } from './jobs/job-record-scan';
import { decodeSnapshot, recordsOf } from './snapshot';

/** Buckets of job and node durations: a verify takes seconds, a rolling upgrade of a rack hours. */
const JOB_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600];
/** Buckets of one etcd transaction: ~1 ms on a healthy local member, seconds when it struggles. */
const ETCD_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

const FINAL_JOB_STATES = JOB_STATES.filter(isFinished);

const FLEET_HELP = 'Read from etcd at scrape time (at most every few seconds) by every replica, leader or not; absent when this replica cannot read etcd. Aggregate replicas with max, not sum.';

export interface CoordinatorMetricsOptions {
  client: Etcd3;
  keyspace: Keyspace;
  logger: Logger;
  replicaId: string;
  /** Whether this replica leads now (the election's isLeader). */
  isLeader: () => boolean;
  /** Agent streams open on this replica now. */
  streamsAttached: () => number;
  /** A scrape within this long of the last fleet read reuses it (CoordinatorSettings). */
  fleetReadIntervalMs: number;
  /** Time of the reuse window. @default Date.now */
  now?: () => number;
}

export class CoordinatorMetrics implements JobObserver {
  /** This replica's own metrics. */
  readonly registry = new Registry();
  /** The fleet gauges: rendered only after a good read, so a failed read leaves them out. */
  private readonly fleetRegistry = new Registry();
  private readonly log: Logger;
  private readonly nodes: Gauge<'state' | 'reachable'>;
  private readonly drifted: Gauge;
  private readonly maintenance: Gauge;
  private readonly jobs: Gauge<'kind' | 'state'>;
  private readonly eventLog: Gauge;
  private readonly fleetReadErrors: Counter;
  private readonly leaderChanges: Counter;
  private readonly jobDuration: Histogram<'kind' | 'state'>;
  private readonly nodeDuration: Histogram<'kind' | 'state'>;
  private readonly inFlight: Gauge;
  private readonly etcdDuration: Histogram;
  private readonly etcdErrors: Counter;
  private lastFleetRead?: { at: number; read: Promise<boolean> };

  constructor(private readonly o: CoordinatorMetricsOptions) {
    this.log = o.logger.child({ component: 'metrics' });
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    new Gauge({
      name: 'cluster_coordinator_info', help: 'Always 1; labels name this replica and its version.', labelNames: ['replica', 'version'], registers,
    }).set({ replica: o.replicaId, version: VERSION }, 1);
    new Gauge({
      name: 'cluster_coordinator_leader', help: '1 while this replica is the elected leader (and its lease is fresh), else 0.', registers,
      collect() { this.set(o.isLeader() ? 1 : 0); },
    });
    this.leaderChanges = new Counter({
      name: 'cluster_coordinator_leader_changes_total', help: 'Times this replica saw the elected leader change (including to none), since it started.', registers,
    });
    new Gauge({
      name: 'cluster_agent_streams_attached', help: 'Agent command streams open on this replica (only the leader holds any).', registers,
      collect() { this.set(o.streamsAttached()); },
    });
    this.inFlight = new Gauge({ name: 'cluster_commands_in_flight', help: 'Commands sent to agents by this replica\'s job runner and not answered yet (leader only).', registers });
    this.jobDuration = new Histogram({
      name: 'cluster_job_duration_seconds', help: 'Jobs finished by this replica (the leader), from start to end, by kind and final state (Succeeded, Failed, Cancelled).',
      labelNames: ['kind', 'state'], buckets: JOB_BUCKETS, registers,
    });
    // Every final state of every kind starts at 0, so the first failed job is an increase
    // (ClusterJobFailed uses increase(); a series born at 1 would not show one).
    for (const kind of JOB_KINDS) for (const state of FINAL_JOB_STATES) this.jobDuration.zero({ kind, state });
    this.nodeDuration = new Histogram({
      name: 'cluster_job_node_duration_seconds', help: 'One node\'s part of a job, from its command\'s first send to its end, by job kind and node outcome (succeeded, failed, cancelled).',
      labelNames: ['kind', 'state'], buckets: JOB_BUCKETS, registers,
    });
    this.etcdDuration = new Histogram({
      name: 'cluster_etcd_txn_duration_seconds', help: 'Latency of this replica\'s etcd transactions (every guarded write and every snapshot read is one).', buckets: ETCD_BUCKETS, registers,
    });
    this.etcdErrors = new Counter({ name: 'cluster_etcd_txn_errors_total', help: 'etcd transactions of this replica that failed with an error (not a failed guard: etcd did not answer or refused).', registers });
    const fleet = [this.fleetRegistry];
    this.nodes = new Gauge({ name: 'cluster_nodes', help: `Nodes by lifecycle state and reachability (reachable="true"|"false"). ${FLEET_HELP}`, labelNames: ['state', 'reachable'], registers: fleet });
    this.drifted = new Gauge({ name: 'cluster_nodes_drifted', help: `Nodes whose last verification or agent report found drift not repaired since. ${FLEET_HELP}`, registers: fleet });
    this.maintenance = new Gauge({ name: 'cluster_nodes_maintenance', help: `Nodes in maintenance (cordoned). ${FLEET_HELP}`, registers: fleet });
    this.jobs = new Gauge({ name: 'cluster_jobs', help: `Jobs kept in etcd by kind and state. ${FLEET_HELP}`, labelNames: ['kind', 'state'], registers: fleet });
    this.eventLog = new Gauge({ name: 'cluster_event_log_events', help: `Events kept in the audit trail (trimmed to --event-retention). ${FLEET_HELP}`, registers: fleet });
    this.fleetReadErrors = new Counter({ name: 'cluster_metrics_fleet_read_errors_total', help: 'Scrapes at which this replica could not read the fleet gauges from etcd (they were left out).', registers });
  }

  /** Every metric name this replica serves (docs/operations.md lists them; a test checks). */
  metricNames(): string[] {
    return [...this.registry.getMetricsAsArray(), ...this.fleetRegistry.getMetricsAsArray()].map((m) => m.name);
  }

  /** The election saw another leader (or none). */
  leaderChanged(): void {
    this.leaderChanges.inc();
  }

  /** One etcd transaction ended (etcd-metrics.ts times them). */
  etcdTxn(seconds: number, failed: boolean): void {
    this.etcdDuration.observe(seconds);
    if (failed) this.etcdErrors.inc();
  }

  jobFinished(kind: string, state: string, seconds: number): void {
    this.jobDuration.observe({ kind, state }, seconds);
  }

  nodeFinished(kind: string, state: string, seconds: number): void {
    this.nodeDuration.observe({ kind, state }, seconds);
  }

  commandStarted(): void {
    this.inFlight.inc();
  }

  commandSettled(): void {
    this.inFlight.dec();
  }

  /**
   * One scrape: the replica's metrics, then the fleet gauges read from etcd (nodes and the job
   * records at one revision, and a count of the events), at most once per
   * fleetReadIntervalMs. On an etcd error the fleet gauges are left out rather than kept stale.
   */
  async render(): Promise<string> {
    const now = (this.o.now ?? Date.now)();
    // Concurrent and close scrapes share one read (single flight, reused for the interval).
    if (!this.lastFleetRead || now - this.lastFleetRead.at >= this.o.fleetReadIntervalMs) {
      this.lastFleetRead = { at: now, read: this.refreshFleet() };
    }
    const fleetRead = await this.lastFleetRead.read;
    return (await this.registry.metrics()) + (fleetRead ? await this.fleetRegistry.metrics() : '');
  }

  private async refreshFleet(): Promise<boolean> {
    const { client, keyspace } = this.o;
    try {
      const [scan, events] = await Promise.all([
        // The job records only, not their per-node records: kind and state are all the gauges need.
        scanJobRecords(client, keyspace, [keyspace.nodesPrefix()]),
        client.getAll().prefix(keyspace.eventsPrefix()).count(),
      ]);
      const snapshot = decodeSnapshot(keyspace, scan.revision, ['nodes'], scan.alongside);
      const skipped = [...snapshot.skipped, ...scan.skipped];
      if (skipped.length > 0) this.log.warn('unreadable records skipped', { count: skipped.length, first: skipped[0].key, reason: skipped[0].reason });
      const nodes = recordsOf(snapshot.nodes);
      this.nodes.reset();
      for (const state of LIFECYCLE_STATES) {
        for (const reachable of [true, false]) {
          this.nodes.set({ state, reachable: String(reachable) }, nodes.filter((n) => n.state === state && n.reachable === reachable).length);
        }
      }
      this.drifted.set(nodes.filter((n) => (n.driftSummary ?? '') !== '').length);
      this.maintenance.set(nodes.filter((n) => n.maintenance).length);
      const jobs = [...scan.jobs.values()];
      this.jobs.reset();
      for (const kind of JOB_KINDS) {
        for (const state of JOB_STATES) this.jobs.set({ kind, state }, jobs.filter((j) => j.kind === kind && j.state === state).length);
      }
      this.eventLog.set(events);
      return true;
    } catch (err) {
      this.fleetReadErrors.inc();
      this.log.warn('fleet gauges left out of this scrape: etcd read failed', { err: errorMessage(err) });
      return false;
    }
  }
}
