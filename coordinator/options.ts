/**
 * cluster-coordinator's options, declared once (flags, CLUSTER_* environment, YAML config
 * file) and compiled into `CoordinatorConfig` for main.ts; and every knob of a replica,
 * defaults included, in ONE documented object (`CoordinatorSettings`) that coordinator.ts
 * compiles once and passes down, so no component keeps a private default.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PKI_FILES } from './pki/pki-dir';
import { formatHelp, InvalidArgumentError, isLogLevel, isValidSegment, parseOptions, DEFAULT_PREFIX, DEFAULT_DEBOUNCE_MS, type LogLevel, type OptionSpecs } from '../shared';
import { parseHostPort } from './grpc-server';
import { DEFAULT_PKI_DIR } from '../shared/pki/credentials-file';
import { parseMetricsListen, type MetricsListen } from '../shared/metrics-server';
import { parseCpuProfileSpec, type CpuProfileSpec } from './cpu-profile';

/**
 * Every knob of one coordinator replica, durations in ms. `compileSettings` fills the
 * defaults; components read their values from here, not from literals of their own.
 */
export interface CoordinatorSettings {
  /**
   * Election lease TTL: a crashed leader is replaced within about this long (`--election-ttl`).
   * 2 s, etcd's smallest lease (its minimum is 1.5 × its election timeout, rounded up): a
   * SIGKILLed leader is replaced in about 2.5 s (the lease, plus etcd's 0.5 s expiry sweep).
   * Keepalives every TTL/3 leave two retries; a keepalive is not a raft write, and a new etcd
   * leader extends every lease, so an etcd leader change does not depose the coordinator
   * (bench/soak.ts moves etcd's leader every 2 minutes). etcd3's Election default of 60 s
   * would stall agents for a minute.
   * @default 2_000
   */
  electionTtlMs: number;
  /**
   * Election keepalive period (leader-election.ts; its retry backoff is capped at the larger
   * of this and 1 s).
   * @default electionTtlMs / 3, at least 200
   */
  electionKeepaliveIntervalMs: number;
  /**
   * First delay of the election's retry backoff after an etcd error (leader-election.ts).
   * @default 200
   */
  electionRetryInitialMs: number;
  /**
   * How long the main event loop may go without running before the election keepalives (sent
   * from a worker thread, lease-keeper.ts) stop: a loop blocked for longer than the TTL but not
   * this long keeps the leadership; a hung replica loses it within this plus the TTL. At load
   * 30–45 on the 2-core bench box a starved coordinator's loop went 4.8–5.3 s without running
   * while hundreds of agents attached (bench/failover.ts), so the limit is twice that.
   * @default 10_000
   */
  electionStallLimitMs: number;
  /**
   * How often the leader pings each agent stream (`--ping-interval`); 3 missed pongs close it.
   * A dead peer is found by the transport keepalive in seconds (connection-keepalive.ts; the
   * agents' own every 15 s); this checks that the program at the other end still answers, and
   * is a protobuf message each way per agent: every 10 s was ~10 % of a 10,000-agent leader's CPU.
   * @default 30_000
   */
  pingIntervalMs: number;
  /**
   * How long an agent's stream may be gone (closed, or cut by the gRPC keepalive) without a new
   * one before the node is Unreachable with signal "stream" (`--stream-grace`). Longer than an
   * agent's redial after a dropped stream (its first backoff step, 250 ms), short enough that a
   * SIGKILLed agent shows in about 2 s.
   * @default 1_500
   */
  streamGraceMs: number;
  /**
   * After this replica becomes leader, how long agents have to re-attach their streams before
   * a missing stream counts (`--reattach-grace`). Covers a fleet's re-attach after a failover
   * (1,000 agents in about 1 s, bench/failover.ts) with room for a loaded box.
   * @default 10_000
   */
  reattachGraceMs: number;
  /**
   * How long a new agent stream may stay silent before its Hello.
   * @default 3 * pingIntervalMs, at most 30 s
   */
  helloTimeoutMs: number;
  /**
   * Period of the full inventory pass (`--resync-interval`); watch events trigger passes too.
   * @default 30_000
   */
  resyncIntervalMs: number;
  /**
   * Quiet time after a watch event before the inventory pass (inventory-reconciler.ts).
   * @default 100
   */
  inventoryDebounceMs: number;
  /**
   * Node actions the inventory pass runs at once (inventory-reconciler.ts).
   * @default 16
   */
  inventoryConcurrency: number;
  /**
   * Events kept in etcd (`--event-retention`); older ones are trimmed.
   * @default 10_000
   */
  eventRetention: number;
  /**
   * Period of the background event trim (appends also trigger one every retention/10).
   * @default 60_000
   */
  eventTrimIntervalMs: number;
  /**
   * Times one event commit re-reads a moved event counter before ConflictError.
   * @default 20
   */
  eventCounterRetries: number;
  /**
   * Events `ListEvents` returns when the request gives no limit.
   * @default 100
   */
  eventListDefaultLimit: number;
  /**
   * Most events one `ListEvents` returns, whatever the request asks.
   * @default 10_000
   */
  eventListMaxLimit: number;
  /**
   * Most compares, most writes and most reads of one transaction (event-log.ts, txn-batch.ts,
   * the claims of a job, the chunked reads of many keys): etcd's `--max-txn-ops`, which etcd
   * checks against each of the three lists. Set from `--etcd-max-txn-ops` (etcdTxnLimits).
   * @default 128 (etcd's default)
   */
  txnMaxOps: number;
  /**
   * Most bytes one group-committed transaction writes: two thirds of etcd's
   * `--max-request-bytes` (`--etcd-max-request-bytes`), the rest room for the request's framing,
   * compares and the events written with it.
   * @default 1_048_576 (two thirds of etcd's default 1.5 MiB)
   */
  txnMaxBytes: number;
  /**
   * Compare-and-swap attempts of one node mutation before ConflictError.
   * @default 5
   */
  nodeCasAttempts: number;
  /**
   * Compare-and-swap attempts of a bundle push and a declarative apply before ConflictError.
   * @default 3
   */
  configCasAttempts: number;
  /**
   * Most operations a declarative apply writes as one transaction; a larger apply pushes its
   * new bundle versions first. 100/128 of `txnMaxOps`, and at least 2 below it: the commit adds
   * its event and the event counter (event-log.ts).
   * @default 100
   */
  applyTxnMaxOps: number;
  /**
   * Most bytes a declarative apply writes as one transaction: two thirds of etcd's
   * `--max-request-bytes`, like txnMaxBytes.
   * @default 1_048_576
   */
  applyTxnMaxBytes: number;
  /**
   * Deadline of each etcd member's status probe in `GetStatus`: a dead member must not
   * stall `clusterctl status`.
   * @default 2_000
   */
  etcdProbeTimeoutMs: number;
  /**
   * etcd's backend quota (its `--quota-backend-bytes`), shown by `status` next to each member's
   * database size: past it etcd raises NOSPACE and refuses every write. etcd 3.4 does not
   * report it, so the coordinator is told (`--etcd-quota-bytes`).
   * @default 2_147_483_648 (etcd's default, 2 GiB)
   */
  etcdQuotaBytes: number;
  /**
   * Keepalive PING period (connection-keepalive.ts): an HTTP/2 PING once a connection has not
   * answered one for this long. With the kernel's TCP liveness on (`tcpLivenessMs`) a dead or
   * cut peer is found by the kernel, and the PING only checks that the agent's HTTP/2 layer
   * still reads its connection; each PING costs the leader a write, a read and a TLS record
   * each way (5,000 a second at 10,000 agents every 2 s, the largest idle cost of such a
   * leader). With `--tcp-liveness 0`, set it to 2 s to find a partitioned agent in seconds.
   * @default 30_000
   */
  grpcKeepaliveTimeMs: number;
  /**
   * How long the leader waits for a keepalive answer before it drops the connection (counted
   * from the agent's last answer, so the node is Unreachable as its stream ends).
   * @default 10_000
   */
  grpcKeepaliveTimeoutMs: number;
  /**
   * The kernel's liveness window on every client connection (tcp-liveness.ts): keepalive
   * probes once nothing has been received for half of it, one a second, and the connection
   * closed when nothing (no answer to a probe, no ACK of sent data) has been received for the
   * whole window. A power cut or a partition ends an agent's stream within it, and its node is
   * Unreachable at once (signal "stream", since the window began). The kernels send and answer
   * the probes: no process wakes up for them. 0 turns it off (then lower `--grpc-keepalive`).
   * @default 3_000
   */
  tcpLivenessMs: number;
  /**
   * Shortest ping interval the gRPC server accepts from a client without data.
   * @default 10_000
   */
  grpcMinPingIntervalMs: number;
  /**
   * On stop: time open calls get to finish before they are cut (`--shutdown-grace`).
   * @default 5_000
   */
  shutdownGraceMs: number;
  /**
   * Period of the job runner's full pass (coordinator/jobs/job-runner.ts).
   * @default 10_000
   */
  jobResyncIntervalMs: number;
  /**
   * Time an agent has to (re)connect before its node's part of a job fails (job-runner.ts),
   * while the node is not found Unreachable: one that is (its stream gone past
   * streamGraceMs, or its lease expired) fails at once (command-dispatch.ts).
   * @default 60_000
   */
  jobConnectTimeoutMs: number;
  /**
   * Deadline of one apply/verify command on an agent (job-runner.ts).
   * @default 3_600_000
   */
  jobCommandTimeoutMs: number;
  /**
   * Extra time past a command's deadline before the runner marks it timed out, so the
   * agent's own timeout report arrives first (job-runner.ts).
   * @default 30_000
   */
  jobResultGraceMs: number;
  /**
   * Time an agent has to confirm a cancelled command before the runner gives up (job-runner.ts).
   * @default 15_000
   */
  jobCancelGraceMs: number;
  /**
   * Batching period of a job's progress writes (job-runner.ts).
   * @default 250
   */
  jobProgressFlushMs: number;
  /**
   * Progress writes a second of all running commands together: past it each node's progress is
   * written less often than jobProgressFlushMs (job-runner.ts).
   * @default 200
   */
  jobProgressWritesPerSecond: number;
  /**
   * Finished jobs kept in etcd with their per-node records and output (`--job-retention`);
   * the leader trims older ones (jobs/job-retention.ts). Unfinished jobs are always kept.
   * @default 500
   */
  jobRetention: number;
  /**
   * Finished jobs older than this are trimmed whatever their number (`--job-retention-age`).
   * @default 2_592_000_000 (30 days)
   */
  jobRetentionAgeMs: number;
  /**
   * Period of the leader's job trim (it also runs after every job record change).
   * @default 600_000
   */
  jobTrimIntervalMs: number;
  /**
   * History entries kept per node, newest first (`--history-retention`; history-retention.ts).
   * @default 500
   */
  historyRetention: number;
  /**
   * History entries older than this are trimmed, except the one that still describes the node
   * at that age (`--history-retention-age`). About 38 KiB of etcd per node per day at 13
   * changes a day (bench/history-cost.ts), so 7 days of 1,000 nodes is about 260 MiB.
   * @default 604_800_000 (7 days)
   */
  historyRetentionAgeMs: number;
  /**
   * Period of the leader's history trim.
   * @default 600_000
   */
  historyTrimIntervalMs: number;
  /**
   * Deadline of an exec job's command when the request gives none (job-starter.ts).
   * @default 600_000
   */
  jobExecTimeoutMs: number;
  /**
   * Compare-and-swap attempts of starting a job before ConflictError (job-starter.ts).
   * @default 3
   */
  jobStartAttempts: number;
  /**
   * Periods of the leader's reconcile loops (coordinator/reconcile/): auto-commission,
   * drift watcher and stuck-node sweeper.
   * @default 30_000
   */
  reconcileIntervalMs: number;
  /**
   * Quiet time after a watch event before a reconcile pass (auto-commission, drift watcher,
   * verify scheduler): shared/reconcile-loop.ts DEFAULT_DEBOUNCE_MS.
   * @default 100
   */
  reconcileDebounceMs: number;
  /**
   * Delay of the stuck-node sweep asked for when an agent reconnects (stuck-node-sweeper.ts).
   * @default 500
   */
  sweepDelayMs: number;
  /**
   * Period of the verify scheduler's resync of group verify schedules (verify-scheduler.ts).
   * @default 60_000
   */
  verifyResyncIntervalMs: number;
  /**
   * How often a replica checks whether its serving certificate is past two thirds of its
   * validity; it then issues itself a new one and serves it to new connections (coordinator.ts).
   * @default 3_600_000
   */
  servingRenewCheckMs: number;
  /**
   * Scrapes within this long of the last fleet read (metrics.ts) reuse it instead of reading
   * nodes and jobs from etcd again: several Prometheus servers scraping every replica must not
   * multiply full reads of a 10,000-node fleet.
   * @default 5_000
   */
  metricsFleetReadIntervalMs: number;
  /**
   * Window of the main event loop's delay log (loop-delay.ts): a window whose longest block
   * reached `loopDelayLogThresholdMs` is logged as "event loop delay" with its max and p99.
   * @default 5_000
   */
  loopDelayWindowMs: number;
  /** @default 100 */
  loopDelayLogThresholdMs: number;
}

/** etcd's own defaults of the limits the coordinator must stay within (etcd's `embed` config). */
export const ETCD_DEFAULT_MAX_TXN_OPS = 128;
export const ETCD_DEFAULT_MAX_REQUEST_BYTES = 1.5 * 1024 * 1024;

/**
 * The smallest `--etcd-max-txn-ops`: some of the coordinator's transactions cannot be cut in
 * smaller ones: a declarative plan reads 8 prefixes at one revision (declarative/apply.ts
 * snapshot), a node change writes its record, event, history (2) and the event counter under 3
 * compares (event-log.ts).
 */
export const MIN_ETCD_MAX_TXN_OPS = 8;

/**
 * The smallest `--etcd-max-request-bytes`: a job's per-node record keeps 64 KiB of output, a
 * secret file of 256 KiB is written twice as a sealed envelope (its current value and its
 * edition), and each must go in one request.
 */
export const MIN_ETCD_MAX_REQUEST_BYTES = 1024 * 1024;

/**
 * The transaction limits of CoordinatorSettings, from etcd's `--max-txn-ops` and
 * `--max-request-bytes` as the operator gives them (`--etcd-max-txn-ops`,
 * `--etcd-max-request-bytes`). At etcd's defaults they are DEFAULT_SETTINGS' values.
 */
export function etcdTxnLimits(maxTxnOps: number, maxRequestBytes: number): Pick<CoordinatorSettings, 'txnMaxOps' | 'txnMaxBytes' | 'applyTxnMaxOps' | 'applyTxnMaxBytes'> {
  const bytes = Math.floor((maxRequestBytes * 2) / 3);
  return {
    txnMaxOps: maxTxnOps,
    txnMaxBytes: bytes,
    // 100 at 128; the event and the counter write (2) always fit beside it.
    applyTxnMaxOps: Math.max(1, Math.min(maxTxnOps - 2, Math.floor((maxTxnOps * 100) / ETCD_DEFAULT_MAX_TXN_OPS))),
    applyTxnMaxBytes: bytes,
  };
}

/** Every field of CoordinatorSettings that has a fixed default (the others derive from these). */
export const DEFAULT_SETTINGS: Readonly<Omit<CoordinatorSettings, 'electionKeepaliveIntervalMs' | 'helloTimeoutMs'>> = {
  electionTtlMs: 2_000,
  electionRetryInitialMs: 200,
  electionStallLimitMs: 10_000,
  pingIntervalMs: 30_000,
  streamGraceMs: 1_500,
  reattachGraceMs: 10_000,
  resyncIntervalMs: 30_000,
  inventoryDebounceMs: DEFAULT_DEBOUNCE_MS,
  inventoryConcurrency: 16,
  eventRetention: 10_000,
  eventTrimIntervalMs: 60_000,
  eventCounterRetries: 20,
  eventListDefaultLimit: 100,
  eventListMaxLimit: 10_000,
  ...etcdTxnLimits(ETCD_DEFAULT_MAX_TXN_OPS, ETCD_DEFAULT_MAX_REQUEST_BYTES),
  nodeCasAttempts: 5,
  configCasAttempts: 3,
  etcdProbeTimeoutMs: 2_000,
  etcdQuotaBytes: 2 * 1024 ** 3,
  grpcKeepaliveTimeMs: 30_000,
  grpcKeepaliveTimeoutMs: 10_000,
  tcpLivenessMs: 3_000,
  grpcMinPingIntervalMs: 10_000,
  shutdownGraceMs: 5_000,
  jobResyncIntervalMs: 10_000,
  jobConnectTimeoutMs: 60_000,
  jobCommandTimeoutMs: 3_600_000,
  jobResultGraceMs: 30_000,
  jobCancelGraceMs: 15_000,
  jobProgressFlushMs: 250,
  jobProgressWritesPerSecond: 200,
  jobRetention: 500,
  jobRetentionAgeMs: 30 * 24 * 3_600_000,
  jobTrimIntervalMs: 600_000,
  historyRetention: 500,
  historyRetentionAgeMs: 7 * 24 * 3_600_000,
  historyTrimIntervalMs: 600_000,
  jobExecTimeoutMs: 600_000,
  jobStartAttempts: 3,
  reconcileIntervalMs: 30_000,
  reconcileDebounceMs: DEFAULT_DEBOUNCE_MS,
  sweepDelayMs: 500,
  verifyResyncIntervalMs: 60_000,
  servingRenewCheckMs: 3_600_000,
  metricsFleetReadIntervalMs: 5_000,
  loopDelayWindowMs: 5_000,
  loopDelayLogThresholdMs: 100,
};

const SETTING_NAMES: ReadonlySet<string> = new Set([...Object.keys(DEFAULT_SETTINGS), 'electionKeepaliveIntervalMs', 'helloTimeoutMs']);

/** Settings where 0 turns the feature off. */
const ZERO_MEANS_OFF: ReadonlySet<string> = new Set<keyof CoordinatorSettings>(['tcpLivenessMs']);

/**
 * The settings with every default filled in. Only setting fields are read (a caller may pass
 * its whole options object), and `undefined` counts as not given. Throws InvalidArgumentError
 * on a value that cannot work (not a positive integer; not a whole number where 0 means off).
 */
export function compileSettings(given: Partial<CoordinatorSettings> = {}): CoordinatorSettings {
  const defined = Object.fromEntries(Object.entries(given).filter(([k, v]) => SETTING_NAMES.has(k) && v !== undefined)) as Partial<CoordinatorSettings>;
  const base = { ...DEFAULT_SETTINGS, ...defined };
  // Derived fields last, so a bad field they derive from is the one named.
  const settings: CoordinatorSettings = {
    ...base,
    electionKeepaliveIntervalMs: defined.electionKeepaliveIntervalMs ?? Math.max(200, Math.floor(base.electionTtlMs / 3)),
    helloTimeoutMs: defined.helloTimeoutMs ?? Math.min(30_000, 3 * base.pingIntervalMs),
  };
  for (const [name, value] of Object.entries(settings)) {
    const least = ZERO_MEANS_OFF.has(name) ? 0 : 1;
    if (!Number.isSafeInteger(value) || (value as number) < least) throw new InvalidArgumentError(`coordinator setting ${name} must be a ${least === 0 ? 'whole number (0 = off)' : 'positive integer'}, not ${String(value)}`);
  }
  return settings;
}

export const COORDINATOR_OPTIONS = {
  etcd: { kind: 'list', env: 'CLUSTER_ETCD', required: true, placeholder: 'HOST:PORT[,HOST:PORT...]', description: 'etcd endpoints' },
  listen: { kind: 'string', env: 'CLUSTER_LISTEN', default: '0.0.0.0:7400', placeholder: 'HOST:PORT', description: 'gRPC address for agents and clusterctl (port 0 = any free port)' },
  advertise: { kind: 'string', env: 'CLUSTER_ADVERTISE', placeholder: 'HOST:PORT', description: 'address agents dial when this replica leads [default: the listen address with the bound port]' },
  prefix: { kind: 'string', env: 'CLUSTER_PREFIX', default: DEFAULT_PREFIX, placeholder: '/PATH/', description: 'etcd key prefix of this cluster' },
  replicaId: { kind: 'string', env: 'CLUSTER_REPLICA_ID', placeholder: 'ID', description: 'this replica\'s name in the election [default: hostname-<random>]' },
  electionTtl: { kind: 'duration', env: 'CLUSTER_ELECTION_TTL', default: DEFAULT_SETTINGS.electionTtlMs / 1000, unit: 's', min: 2000, placeholder: 'SECONDS', description: 'leader lease TTL: failover time after a leader dies' },
  pingInterval: { kind: 'duration', env: 'CLUSTER_PING_INTERVAL', default: DEFAULT_SETTINGS.pingIntervalMs / 1000, unit: 's', min: 100, placeholder: 'SECONDS', description: 'how often the leader pings each agent stream' },
  streamGrace: {
    kind: 'duration', env: 'CLUSTER_STREAM_GRACE', default: DEFAULT_SETTINGS.streamGraceMs / 1000, unit: 's', min: 100, placeholder: 'SECONDS',
    description: 'a node whose agent stream is gone this long without a new one is Unreachable (signal "stream")',
  },
  reattachGrace: {
    kind: 'duration', env: 'CLUSTER_REATTACH_GRACE', default: DEFAULT_SETTINGS.reattachGraceMs / 1000, unit: 's', min: 100, placeholder: 'SECONDS',
    description: 'after becoming leader: time agents have to re-attach before a missing stream counts',
  },
  grpcKeepalive: {
    kind: 'duration', env: 'CLUSTER_GRPC_KEEPALIVE', default: DEFAULT_SETTINGS.grpcKeepaliveTimeMs / 1000, unit: 's', min: 100, placeholder: 'SECONDS',
    description: 'HTTP/2 keepalive PING period on every client connection: checks that the peer still reads its connection (costs the leader one PING per agent per period); with --tcp-liveness 0, set 2 to find a power cut or partition in seconds',
  },
  grpcKeepaliveTimeout: {
    kind: 'duration', env: 'CLUSTER_GRPC_KEEPALIVE_TIMEOUT', default: DEFAULT_SETTINGS.grpcKeepaliveTimeoutMs / 1000, unit: 's', min: 100, placeholder: 'SECONDS',
    description: 'a connection whose PING is unanswered this long is dropped (its node is Unreachable once --stream-grace has passed since its last answer)',
  },
  tcpLiveness: {
    kind: 'duration', env: 'CLUSTER_TCP_LIVENESS', default: DEFAULT_SETTINGS.tcpLivenessMs / 1000, unit: 's', min: 0, placeholder: 'SECONDS',
    description: 'the kernel closes a client connection that received nothing (no probe answered, no data acknowledged) for this long: a power cut or partition shows as Unreachable within it; 0 = off (Linux TCP keepalive + TCP_USER_TIMEOUT, set through the coordinator\'s native addon)',
  },
  resyncInterval: { kind: 'duration', env: 'CLUSTER_RESYNC_INTERVAL', default: DEFAULT_SETTINGS.resyncIntervalMs / 1000, unit: 's', min: 100, placeholder: 'SECONDS', description: 'period of the full inventory pass (watch events trigger passes too)' },
  eventRetention: { kind: 'int', env: 'CLUSTER_EVENT_RETENTION', default: DEFAULT_SETTINGS.eventRetention, min: 1, placeholder: 'N', description: 'number of events kept in etcd' },
  jobRetention: { kind: 'int', env: 'CLUSTER_JOB_RETENTION', default: DEFAULT_SETTINGS.jobRetention, min: 1, placeholder: 'N', description: 'finished jobs kept in etcd with their per-node records and output; the leader trims older ones' },
  jobRetentionAge: {
    kind: 'duration', env: 'CLUSTER_JOB_RETENTION_AGE', default: `${DEFAULT_SETTINGS.jobRetentionAgeMs / 3_600_000}h`, min: 1000, placeholder: 'DURATION',
    description: 'finished jobs older than this are trimmed whatever their number; 720h = 30 days',
  },
  historyRetention: {
    kind: 'int', env: 'CLUSTER_HISTORY_RETENTION', default: DEFAULT_SETTINGS.historyRetention, min: 1, placeholder: 'N',
    description: 'node history entries kept per node (`clusterctl node history`); the leader trims older ones',
  },
  historyRetentionAge: {
    kind: 'duration', env: 'CLUSTER_HISTORY_RETENTION_AGE', default: `${DEFAULT_SETTINGS.historyRetentionAgeMs / 3_600_000}h`, min: 1000, placeholder: 'DURATION',
    description: 'node history older than this is trimmed (the entry in effect at that age is kept); 168h = 7 days, ~38 KiB of etcd per node per day',
  },
  etcdQuotaBytes: {
    kind: 'int', env: 'CLUSTER_ETCD_QUOTA_BYTES', default: DEFAULT_SETTINGS.etcdQuotaBytes, min: 1, placeholder: 'BYTES',
    description: 'etcd\'s --quota-backend-bytes, shown by `clusterctl status` next to the database size (etcd does not report it)',
  },
  etcdMaxTxnOps: {
    kind: 'int', env: 'CLUSTER_ETCD_MAX_TXN_OPS', default: ETCD_DEFAULT_MAX_TXN_OPS, min: 1, placeholder: 'N',
    description: `etcd's --max-txn-ops: give the same value (at least ${MIN_ETCD_MAX_TXN_OPS}); no transaction of the coordinator then has more compares, writes or reads, or etcd refuses it (claims, group commits)`,
  },
  etcdMaxRequestBytes: {
    kind: 'int', env: 'CLUSTER_ETCD_MAX_REQUEST_BYTES', default: ETCD_DEFAULT_MAX_REQUEST_BYTES, min: 1, placeholder: 'BYTES',
    description: `etcd's --max-request-bytes: give the same value (at least ${MIN_ETCD_MAX_REQUEST_BYTES}); a group-committed transaction then writes at most two thirds of it`,
  },
  shutdownGrace: { kind: 'duration', env: 'CLUSTER_SHUTDOWN_GRACE', default: DEFAULT_SETTINGS.shutdownGraceMs / 1000, unit: 's', placeholder: 'SECONDS', description: 'on SIGTERM: time open calls get to finish' },
  shutdownForce: { kind: 'duration', env: 'CLUSTER_SHUTDOWN_FORCE', default: 15, unit: 's', placeholder: 'SECONDS', description: 'on SIGTERM: exit anyway after this long' },
  pkiDir: { kind: 'string', env: 'CLUSTER_PKI_DIR', default: DEFAULT_PKI_DIR, placeholder: 'DIR', description: 'where the first coordinator writes ca.crt, admin.yaml and join-token' },
  agentCertValidity: {
    kind: 'duration', env: 'CLUSTER_AGENT_CERT_VALIDITY', default: '2160h', min: 10_000, placeholder: 'DURATION',
    description: 'validity of the certificate an agent gets when it joins or renews (it renews at two thirds); 2160h = 90 days',
  },
  etcdCa: { kind: 'string', env: 'CLUSTER_ETCD_CA', placeholder: 'FILE', description: 'CA that issued etcd\'s certificate [default: <pki-dir>/ca.crt]' },
  etcdCert: {
    kind: 'string', env: 'CLUSTER_ETCD_CERT', placeholder: 'FILE',
    description: 'client certificate for etcd, CN=coordinator (cluster-coordinator init makes it) [default: <pki-dir>/etcd-coordinator.crt]',
  },
  etcdKey: { kind: 'string', env: 'CLUSTER_ETCD_KEY', placeholder: 'FILE', description: 'key of --etcd-cert [default: <pki-dir>/etcd-coordinator.key]' },
  clusterSecretFile: { kind: 'string', env: 'CLUSTER_SECRET_FILE', placeholder: 'FILE', description: 'the secret every replica shares, which encrypts the CA key in etcd; created when absent [default: <pki-dir>/cluster-secret]' },
  metricsListen: {
    kind: 'string', env: 'CLUSTER_METRICS_LISTEN', default: '127.0.0.1:7401', placeholder: 'HOST:PORT|off',
    description: 'plain-HTTP Prometheus endpoint (GET /metrics); off = none. Loopback by default: expose it deliberately. A port that cannot be bound is logged and the replica runs on without it',
  },
  logLevel: { kind: 'string', env: 'CLUSTER_LOG_LEVEL', default: 'info', choices: ['debug', 'info', 'warn', 'error', 'silent'], description: 'log level' },
  cpuProfile: {
    kind: 'string', env: 'CLUSTER_CPU_PROFILE', placeholder: 'WHEN:SECONDS:FILE',
    description: 'write a V8 CPU profile of SECONDS from the first moment WHEN (leader: this replica became leader; start-job: the first StartJob) to FILE (.cpuprofile, for DevTools and the benchmarks); off by default',
  },
  version: { kind: 'boolean', short: 'V', description: 'print the version and exit' },
} as const satisfies OptionSpecs;

export const USAGE = `Usage: cluster-coordinator --etcd HOST:PORT[,HOST:PORT...] [--listen HOST:PORT] [options]
       cluster-coordinator init [--pki-dir DIR] [--etcd-host NAME...]   (before etcd's first start: the CA and etcd's certificates)`;

export interface CoordinatorConfig {
  etcd: string[];
  listen: string;
  advertise?: string;
  prefix: string;
  replicaId: string;
  electionTtlMs: number;
  pingIntervalMs: number;
  streamGraceMs: number;
  reattachGraceMs: number;
  grpcKeepaliveTimeMs: number;
  grpcKeepaliveTimeoutMs: number;
  tcpLivenessMs: number;
  resyncIntervalMs: number;
  eventRetention: number;
  jobRetention: number;
  jobRetentionAgeMs: number;
  historyRetention: number;
  historyRetentionAgeMs: number;
  etcdQuotaBytes: number;
  /** etcd's --max-txn-ops, as the operator gave it (`etcdTxnLimits` turns it into settings). @default 128 */
  etcdMaxTxnOps: number;
  /** etcd's --max-request-bytes, as the operator gave it. @default 1_572_864 */
  etcdMaxRequestBytes: number;
  shutdownGraceMs: number;
  shutdownForceMs: number;
  /** Where the first start writes ca.crt, admin.yaml and join-token. */
  pkiDir: string;
  /** The cluster secret file (created when absent). */
  clusterSecretFile: string;
  /**
   * etcd client TLS files (flags, or the pki dir's defaults); each must exist.
   */
  etcdTls: { caFile: string; certFile: string; keyFile: string };
  /** Validity of agent certificates (join and renewal). @default 90 days */
  agentCertValidityMs: number;
  /** Where the Prometheus endpoint listens, or off. @default 127.0.0.1:7401 */
  metricsListen: MetricsListen;
  logLevel: LogLevel;
  /** A CPU profile of one phase (--cpu-profile). @default none */
  cpuProfile?: CpuProfileSpec;
}

export type ParsedCommandLine = { kind: 'help'; text: string } | { kind: 'version' } | { kind: 'run'; config: CoordinatorConfig };

export function defaultReplicaId(): string {
  const host = hostname().replace(/[^A-Za-z0-9._:-]/g, '-').replace(/^[^A-Za-z0-9]+/, '') || 'coordinator';
  return `${host.slice(0, 200)}-${randomBytes(3).toString('hex')}`;
}

function etcdTlsFiles(pkiDir: string, ca?: string, cert?: string, key?: string): Pick<CoordinatorConfig, 'etcdTls'> {
  const files = {
    caFile: ca ?? join(pkiDir, PKI_FILES.caCert),
    certFile: cert ?? join(pkiDir, PKI_FILES.etcdCoordinatorCert),
    keyFile: key ?? join(pkiDir, PKI_FILES.etcdCoordinatorKey),
  };
  // etcd is spoken to over TLS with a client certificate, always: there is no plaintext mode.
  for (const [flag, f] of [['--etcd-ca', files.caFile], ['--etcd-cert', files.certFile], ['--etcd-key', files.keyFile]] as const) {
    if (!existsSync(f)) {
      throw new InvalidArgumentError(`${flag} ${f}: no such file; the coordinator reaches etcd only over TLS with a client certificate: ` +
        `run \`cluster-coordinator init --pki-dir ${pkiDir}\` (before etcd's first start) or give --etcd-ca, --etcd-cert and --etcd-key`);
    }
  }
  return { etcdTls: files };
}

/** Parses and validates; throws InvalidArgumentError with a one-line fix. */
export function parseCoordinatorArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): ParsedCommandLine {
  // --version must work without the required options (and without a config file).
  if (argv.some((a) => a === '--version' || a === '-V') && !argv.some((a) => a === '--help' || a === '-h')) return { kind: 'version' };
  const parsed = parseOptions(COORDINATOR_OPTIONS, {
    argv, env, configEnv: 'CLUSTER_COORDINATOR_CONFIG', defaultConfigPath: '/etc/cluster/coordinator.yaml', allowPositionals: false,
  });
  if (parsed.help) return { kind: 'help', text: formatHelp(USAGE, COORDINATOR_OPTIONS) };
  const v = parsed.values;
  if (v.version) return { kind: 'version' };
  parseHostPort(v.listen, '--listen address');
  const metricsListen = parseMetricsListen(v.metricsListen);
  if (v.advertise !== undefined) {
    const { port } = parseHostPort(v.advertise, '--advertise address');
    if (port === 0) throw new InvalidArgumentError(`--advertise ${v.advertise}: agents need a real port, not 0`);
  }
  const replicaId = v.replicaId ?? defaultReplicaId();
  if (!isValidSegment(replicaId)) throw new InvalidArgumentError(`--replica-id ${JSON.stringify(replicaId)}: use 1-253 characters from A-Z a-z 0-9 . _ : -`);
  if (!isLogLevel(v.logLevel)) throw new InvalidArgumentError(`--log-level ${v.logLevel}: use debug, info, warn or error`);
  if (v.tcpLiveness !== 0 && (v.tcpLiveness < 2000 || v.tcpLiveness % 1000 !== 0 || v.tcpLiveness > 3_600_000)) {
    throw new InvalidArgumentError(`--tcp-liveness ${v.tcpLiveness / 1000}: use 0 (off) or whole seconds from 2 to 3600 (the kernel counts its probes in seconds)`);
  }
  if (v.pingInterval * 3 >= 600_000) throw new InvalidArgumentError('--ping-interval must be under 200 s');
  if (v.etcdMaxTxnOps < MIN_ETCD_MAX_TXN_OPS) {
    throw new InvalidArgumentError(`--etcd-max-txn-ops ${v.etcdMaxTxnOps}: must be at least ${MIN_ETCD_MAX_TXN_OPS}; some of the coordinator's transactions cannot be cut smaller (a plan reads 8 prefixes at one revision): run etcd with --max-txn-ops ${MIN_ETCD_MAX_TXN_OPS} or more (its default is ${ETCD_DEFAULT_MAX_TXN_OPS})`);
  }
  if (v.etcdMaxRequestBytes < MIN_ETCD_MAX_REQUEST_BYTES) {
    throw new InvalidArgumentError(`--etcd-max-request-bytes ${v.etcdMaxRequestBytes}: must be at least ${MIN_ETCD_MAX_REQUEST_BYTES} (1 MiB); a sealed secret file is written twice in one request: run etcd with --max-request-bytes ${MIN_ETCD_MAX_REQUEST_BYTES} or more (its default is ${ETCD_DEFAULT_MAX_REQUEST_BYTES})`);
  }
  return {
    kind: 'run',
    config: {
      etcd: v.etcd,
      listen: v.listen,
      ...(v.advertise !== undefined ? { advertise: v.advertise } : {}),
      prefix: v.prefix,
      replicaId,
      electionTtlMs: v.electionTtl,
      pingIntervalMs: v.pingInterval,
      streamGraceMs: v.streamGrace,
      reattachGraceMs: v.reattachGrace,
      grpcKeepaliveTimeMs: v.grpcKeepalive,
      grpcKeepaliveTimeoutMs: v.grpcKeepaliveTimeout,
      tcpLivenessMs: v.tcpLiveness,
      resyncIntervalMs: v.resyncInterval,
      eventRetention: v.eventRetention,
      jobRetention: v.jobRetention,
      jobRetentionAgeMs: v.jobRetentionAge,
      historyRetention: v.historyRetention,
      historyRetentionAgeMs: v.historyRetentionAge,
      etcdQuotaBytes: v.etcdQuotaBytes,
      etcdMaxTxnOps: v.etcdMaxTxnOps,
      etcdMaxRequestBytes: v.etcdMaxRequestBytes,
      shutdownGraceMs: v.shutdownGrace,
      shutdownForceMs: v.shutdownForce,
      pkiDir: v.pkiDir,
      clusterSecretFile: v.clusterSecretFile ?? join(v.pkiDir, 'cluster-secret'),
      ...etcdTlsFiles(v.pkiDir, v.etcdCa, v.etcdCert, v.etcdKey),
      agentCertValidityMs: v.agentCertValidity,
      metricsListen,
      logLevel: v.logLevel,
      ...(v.cpuProfile !== undefined ? { cpuProfile: parseCpuProfileSpec(v.cpuProfile) } : {}),
    },
  };
}
