/**
 * One coordinator replica: composes election, event log, node store, agent streams,
 * inventory reconciler and the gRPC server. Everything is injected (etcd client, logger,
 * clock), nothing is module state, so tests and benchmarks can run several in one process.
 *
 * Leadership drives the leader-only parts: on `gained` the reconciler starts and the
 * AgentService health turns SERVING; on `lost` the reconciler stops and every agent stream is
 * closed with "not the leader; the leader is ..." so agents redial the new leader at once.
 *
 * Trust comes first in start(): with etcd RBAC on, etcd authentication is enabled (idempotent);
 * the cluster CA is loaded from etcd (or, on an empty cluster, stored from the pki directory
 * or created, which writes ca.crt, admin.yaml and join-token to the pki directory), this replica
 * issues itself a serving certificate, and the revocation list is loaded and followed, all
 * before the port is bound; the port then serves mutual TLS only (shared/pki).
 */
import { hostname } from 'node:os';
import { isIP } from 'node:net';
import { constants as fsConstants, promises as fs } from 'node:fs';
import type { Etcd3 } from 'etcd3';
import { enableEtcdAuth } from '../shared/etcd-auth';
import type { EtcdTls } from '../shared/etcd';
import { errorMessage, FailedPreconditionError, loadProto, NotLeaderError, systemClock, UnavailableError, type Clock, type Keyspace, type Logger } from '../shared';
import { AgentStreams } from './agent-streams';
import { createAgentServiceHandlers } from './agent-service';
import { createClusterServiceHandlers } from './cluster-service';
import { createNodeHistoryHandlers, NodeHistoryReader } from './node-history';
import { HistoryRetention } from './history-retention';
import { createFactsRefreshHandlers } from './facts-refresh';
import { createEventServiceHandlers } from './event-service';
import { Declarative } from './declarative/apply';
import { createDeclarativeServiceHandlers } from './declarative/declarative-service';
import { createFileServiceHandlers } from './files/file-service';
import { FileStore } from './files/file-store';
import { SecretKeyring } from './secrets/secret-keyring';
import { SecretStore } from './secrets/secret-store';
import { SecretRotation } from './secrets/secret-rotation';
import { createSecretServiceHandlers } from './secrets/secret-service';
import { EventLog } from './event-log';
import { BundleStore } from './config/bundle-store';
import { createConfigServiceHandlers } from './config/config-service';
import { GroupStore } from './config/group-store';
import { GlobalsStore } from './config/globals-store';
import { ManagerConfigStore } from './config/manager-config-store';
import { effectiveRetention, type RetentionSettings } from '../shared/manager-config';
import { createJobs, type Jobs } from './jobs';
import { AutoCommissioner } from './reconcile/auto-commission';
import { DriftWatcher } from './reconcile/drift-watcher';
import { StuckNodeSweeper } from './reconcile/stuck-node-sweeper';
import { VerifyScheduler } from './reconcile/verify-scheduler';
import { AGENT_SERVICE_NAME, CLUSTER_SERVICE_NAME, GrpcServer, parseHostPort } from './grpc-server';
import { oversizeRefusal } from './call-guard';
import { MAX_GRPC_REQUEST_BYTES } from '../shared/grpc-limits';
import { InventoryReconciler } from './inventory-reconciler';
import { LeaderElection } from './leader-election';
import { LoopDelayLog } from './loop-delay';
import { CoordinatorMetrics } from './metrics';
import { instrumentEtcd } from './etcd-metrics';
import { createNodeAdminHandlers } from './node-admin';
import { NodeStore } from './node-store';
import { compileSettings, type CoordinatorSettings } from './options';
import { createStatusServiceHandlers } from './status-service';
import { renewalTime, serverCredentials, UnauthenticatedError } from '../shared/pki';
import type { ClusterCa } from '../shared/pki/cluster-ca';
import { AgentEnrolment, createPkiServiceHandlers, loadOrCreateCa, RevocationSet, TokenStore, UserStore, writeFirstStartFiles, type PkiParts } from './pki';

/** The clients and identity of a replica, plus any of its settings (options.ts) to override. */
export interface CoordinatorOptions extends Partial<CoordinatorSettings> {
  etcd: Etcd3;
  /**
   * A client for the election alone (default: `etcd`). Its keepalives must not queue behind a
   * storm of hello and job writes, or the leader loses leadership under load
   * (bench/fanout.ts at 5,000 agents: the keepalive timed out after 21 s on a shared client).
   */
  electionEtcd?: Etcd3;
  /**
   * The program file a worker thread runs to send the election keepalives (main.ts passes its
   * own: it serves when started as that worker). The worker is used whenever `etcdEndpoints`
   * are given and the clock is the system clock. @default coordinator/lease-keeper.js
   */
  electionWorkerFile?: string;
  keyspace: Keyspace;
  /** The etcd endpoints the client was given (named by `status` when etcd does not answer). */
  etcdEndpoints?: readonly string[];
  /** The TLS credentials `etcd` was built with (status probes each member with them). @default none */
  etcdTls?: EtcdTls;
  logger: Logger;
  clock?: Clock;
  replicaId: string;
  /** HOST:PORT to bind (port 0 = any). */
  listen: string;
  /** HOST:PORT agents dial; default the listen address with the bound port. */
  advertise?: string;
  pki: CoordinatorPkiOptions;
}

export interface CoordinatorPkiOptions {
  /** Where the replica that creates the CA writes ca.crt, admin.yaml and join-token. */
  dir: string;
  /** The cluster secret every replica shares (created when absent). */
  clusterSecretFile: string;
  /** Lifetime of the first join token; null = never expires. @default DEFAULT_TOKEN_TTL_MS (24 h) */
  firstTokenTtlMs?: number | null;
  /** Validity of agent certificates (join and renewal). @default DEFAULT_VALIDITY_MS.agent (90 days) */
  agentCertValidityMs?: number;
  /** Validity of this replica's serving certificate (renewed at two thirds). @default DEFAULT_VALIDITY_MS.coordinator (one year) */
  servingValidityMs?: number;
  /**
   * etcd runs with TLS and client-certificate auth, and this replica's etcd user may manage
   * users: enable etcd authentication at start, give each agent its etcd user and role at
   * join, delete them at revocation (shared/etcd-auth.ts). Off for an etcd without TLS, where
   * enabling auth would lock out every client (none has a password).
   * @default false
   */
  etcdRbac?: boolean;
}

/** A name that can go into a certificate's subjectAltName (an IP address or a DNS name). */
function isValidHost(h: string): boolean {
  return isIP(h) !== 0 || /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}))*$/.test(h);
}

async function checkWritableDir(dir: string): Promise<void> {
  try {
    await fs.mkdir(dir, { recursive: true, mode: 0o755 });
    await fs.access(dir, fsConstants.W_OK);
  } catch (err) {
    throw new FailedPreconditionError(`the pki dir ${dir} is not a writable directory (${errorMessage(err)}): give --pki-dir DIR (CLUSTER_PKI_DIR) that this user can write`);
  }
}

/** The open method: a joining agent has no certificate yet (its token is checked instead). */
const OPEN_METHODS = ['/cluster.v1.PkiService/Join'] as const;

export interface StopOptions {
  /** Time open calls get to finish before they are cut (default: settings.shutdownGraceMs). */
  graceMs?: number;
  /**
   * How long stop waits for each part (the leader loops, the job runs, the election's resign,
   * the event log, the revocation watch) before it logs what it still waits for and goes on:
   * one part stuck (a run waiting for an absent agent, an etcd call without an answer) must not
   * hold the whole shutdown. A part left behind cannot write as leader: its writes are fenced
   * and the election is resigned after it.
   * @default 10000 (10 s)
   */
  stepTimeoutMs?: number;
}

const STOP_STEP_TIMEOUT_MS = 10_000;

export class Coordinator {
  readonly streams: AgentStreams;
  readonly events: EventLog;
  readonly nodes: NodeStore;
  readonly reconciler: InventoryReconciler;
  readonly jobs: Jobs;
  readonly bundles: BundleStore;
  readonly groups: GroupStore;
  readonly globals: GlobalsStore;
  readonly managerConfig: ManagerConfigStore;
  readonly files: FileStore;
  /** The leader's trim of node history (history-retention.ts). */
  readonly historyRetention: HistoryRetention;
  /** The keys of secret values (docs/secrets.md), usable once start() has read the cluster secret. */
  readonly keyring: SecretKeyring;
  /** This replica's Prometheus metrics; main.ts serves `metrics.render()` on --metrics-listen. */
  readonly metrics: CoordinatorMetrics;
  /** options.etcd, its transactions timed for the metrics. */
  private readonly client: Etcd3;
  /** Leader-only loops besides inventory and jobs: started on `gained`, stopped on `lost`. */
  private readonly leaderLoops: { start(): void; stop(): Promise<unknown> }[];
  readonly grpc: GrpcServer;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly options: CoordinatorOptions;
  /** Every knob, defaults filled in once (options.ts); passed down to the components. */
  readonly settings: CoordinatorSettings;
  private advertised?: string;
  private pki?: PkiParts & { ca: ClusterCa; revocations: RevocationSet };
  private started = false;
  private servingRenewal?: NodeJS.Timeout;
  private stopping?: Promise<void>;
  private readonly loopDelay: LoopDelayLog;

  constructor(options: CoordinatorOptions) {
    this.options = options;
    const settings = compileSettings(options);
    this.settings = settings;
    const clock = options.clock ?? systemClock;
    this.clock = clock;
    const { keyspace } = options;
    this.streams = new AgentStreams(clock);
    this.log = options.logger.child({ replicaId: options.replicaId });
    this.loopDelay = new LoopDelayLog({ logger: this.log, windowMs: settings.loopDelayWindowMs, thresholdMs: settings.loopDelayLogThresholdMs });
    // Every transaction of this replica's parts is timed (etcd-metrics.ts); the election keeps its own client.
    const client = instrumentEtcd(options.etcd, (seconds, failed) => this.metrics.etcdTxn(seconds, failed));
    this.client = client;
    this.metrics = new CoordinatorMetrics({
      client, keyspace, logger: this.log, replicaId: options.replicaId, isLeader: () => this.isLeader(), streamsAttached: () => this.streams.size,
      fleetReadIntervalMs: settings.metricsFleetReadIntervalMs, now: () => clock.now(),
    });
    // Retention: this replica's options, unless an operator set the cluster's (`clusterctl config set`), read at each trim.
    const retentionOptions: RetentionSettings = {
      eventRetention: settings.eventRetention, jobRetention: settings.jobRetention, jobRetentionAgeMs: settings.jobRetentionAgeMs,
      historyRetention: settings.historyRetention, historyRetentionAgeMs: settings.historyRetentionAgeMs,
    };
    const retentionNow = async (): Promise<RetentionSettings> => effectiveRetention((await this.managerConfig.get()).record, retentionOptions);
    this.events = new EventLog({ client, keyspace, clock, logger: this.log, retention: settings.eventRetention, trimIntervalMs: settings.eventTrimIntervalMs,
      retentionNow: async () => (await retentionNow()).eventRetention,
      maxCounterRetries: settings.eventCounterRetries, actor: `coordinator/${options.replicaId}`,
      limits: { maxOps: settings.txnMaxOps, maxBytes: settings.txnMaxBytes } });
    // The election needs the advertised address, known only once the port is bound (start()).
    const notStarted = (): NotLeaderError => new NotLeaderError('not the leader; this coordinator is still starting');
    const fence = {
      fenceCompare: () => { if (!this.election) throw notStarted(); return this.election.fenceCompare(); },
      fenceFailed: () => this.election?.fenceFailed() ?? notStarted(),
    };
    this.nodes = new NodeStore({ client, keyspace, events: this.events, clock, fence, maxAttempts: settings.nodeCasAttempts, maxOps: settings.txnMaxOps });
    const leadership = { isLeader: () => this.election?.isLeader() ?? false, notLeaderError: () => this.election?.notLeaderError() ?? notStarted() };
    this.reconciler = new InventoryReconciler({
      client, keyspace, nodes: this.nodes, streams: this.streams, isLeader: leadership.isLeader, clock, logger: this.log,
      resyncIntervalMs: settings.resyncIntervalMs, debounceMs: settings.inventoryDebounceMs, concurrency: settings.inventoryConcurrency, maxOps: settings.txnMaxOps,
      streamGraceMs: settings.streamGraceMs, reattachGraceMs: settings.reattachGraceMs,
    });
    // The stream signal is time-based: a pass when a stream's grace ends, and when a stream
    // comes back for a node found Unreachable (the timer pass is 30 s away).
    this.streams.on('disconnected', (s) => this.passAfter(this.streams.graceLeft(s.nodeId, settings.streamGraceMs)));
    this.streams.on('connected', (s) => { if (this.streams.markedUnreachable(s.nodeId)) this.reconciler.schedule(); });
    this.keyring = new SecretKeyring({ client, keyspace, clock });
    this.jobs = createJobs({
      client, keyspace, events: this.events, keyring: this.keyring, nodes: this.nodes, streams: this.streams, fence, isLeader: leadership.isLeader, clock, logger: this.log,
      observer: this.metrics, limits: { maxOps: settings.txnMaxOps, maxBytes: settings.txnMaxBytes },
      runner: {
        connectTimeoutMs: settings.jobConnectTimeoutMs, commandTimeoutMs: settings.jobCommandTimeoutMs, resultGraceMs: settings.jobResultGraceMs,
        cancelGraceMs: settings.jobCancelGraceMs, progressFlushMs: settings.jobProgressFlushMs, progressWritesPerSecond: settings.jobProgressWritesPerSecond, resyncIntervalMs: settings.jobResyncIntervalMs,
      },
      retention: {
        policy: { keep: settings.jobRetention, maxAgeMs: settings.jobRetentionAgeMs }, intervalMs: settings.jobTrimIntervalMs, maxOps: settings.txnMaxOps,
        policyNow: async () => { const r = await retentionNow(); return { keep: r.jobRetention, maxAgeMs: r.jobRetentionAgeMs }; },
      },
    });
    this.bundles = new BundleStore({ client, keyspace, events: this.events, clock, maxAttempts: settings.configCasAttempts, keyring: this.keyring });
    this.groups = new GroupStore({ client, keyspace, events: this.events, clock, bundles: this.bundles });
    this.globals = new GlobalsStore({ client, keyspace, events: this.events, clock, bundles: this.bundles, groups: this.groups });
    this.managerConfig = new ManagerConfigStore({ client, keyspace, events: this.events, clock });
    this.files = new FileStore({ client, keyspace, events: this.events, clock, keyring: this.keyring });
    const startJob = (request: Parameters<Jobs['starter']['start']>[0]): ReturnType<Jobs['starter']['start']> => this.jobs.starter.start(request);
    const loop = { intervalMs: settings.reconcileIntervalMs, debounceMs: settings.reconcileDebounceMs };
    const sweeper = new StuckNodeSweeper({
      client, keyspace, nodes: this.nodes, isLeader: leadership.isLeader, clock, logger: this.log, intervalMs: settings.reconcileIntervalMs, debounceMs: settings.sweepDelayMs,
    });
    // An agent that comes back may have rebooted mid-job (Contiv #158): sweep once its hello is recorded.
    this.streams.on('connected', () => sweeper.schedule());
    this.historyRetention = new HistoryRetention({
      client, keyspace, events: this.events, fence, isLeader: leadership.isLeader, clock, logger: this.log, maxOps: settings.txnMaxOps,
      policy: { keep: settings.historyRetention, maxAgeMs: settings.historyRetentionAgeMs }, intervalMs: settings.historyTrimIntervalMs,
      policyNow: async () => { const r = await retentionNow(); return { keep: r.historyRetention, maxAgeMs: r.historyRetentionAgeMs }; },
    });
    this.leaderLoops = [
      sweeper,
      this.jobs.retention,
      this.historyRetention,
      new AutoCommissioner({ client, keyspace, startJob, isLeader: leadership.isLeader, clock, logger: this.log, ...loop, maxOps: settings.txnMaxOps }),
      new VerifyScheduler({
        client, keyspace, startJob, isLeader: leadership.isLeader, clock, logger: this.log, intervalMs: settings.verifyResyncIntervalMs, debounceMs: settings.reconcileDebounceMs,
      }),
      new DriftWatcher({ client, keyspace, nodes: this.nodes, startJob, streams: this.streams, isLeader: leadership.isLeader, clock, logger: this.log, ...loop, maxOps: settings.txnMaxOps }),
    ];
    const pkiParts = (): PkiParts => {
      if (!this.pki) throw new UnavailableError('this coordinator is still loading the cluster CA; retry');
      return this.pki;
    };
    const history = new NodeHistoryReader(client, keyspace, clock);
    const clusterReads = createClusterServiceHandlers({ client, keyspace, logger: this.log, history });
    this.grpc = new GrpcServer({
      logger: this.log,
      settings,
      now: () => clock.now(),
      agentService: createAgentServiceHandlers({
        replicaId: options.replicaId, leadership, nodes: this.nodes, streams: this.streams, clock, logger: this.log,
        pingIntervalMs: settings.pingIntervalMs, helloTimeoutMs: settings.helloTimeoutMs,
        silentSince: (peer) => this.grpc.keepalive.silentSince(peer),
      }),
      clusterService: {
        ListNodes: clusterReads.ListNodes, GetNode: clusterReads.GetNode, WatchNodes: clusterReads.WatchNodes,
        ...createNodeHistoryHandlers(history),
        ...createFactsRefreshHandlers({ streams: this.streams, readNode: clusterReads.readNodeDetail, clock, logger: this.log }),
        // Operator writes are not leader-only: an unfenced store (CAS + event still apply).
        ...createNodeAdminHandlers({
          client, keyspace, logger: this.log, events: this.events, clock, txnMaxOps: settings.txnMaxOps,
          nodes: new NodeStore({ client, keyspace, events: this.events, clock, maxAttempts: settings.nodeCasAttempts, maxOps: settings.txnMaxOps }),
        }),
        ...createEventServiceHandlers({ client, keyspace, events: this.events, logger: this.log, settings }),
        ...createStatusServiceHandlers({ client, keyspace, settings, replicaId: options.replicaId, etcdEndpoints: options.etcdEndpoints, ...(options.etcdTls ? { etcdTls: options.etcdTls } : {}) }),
      },
      // Files and declarative config are data any replica serves from etcd (no leader needed).
      services: [
        { definition: loadProto().api.cluster.v1.JobService.service, handlers: this.jobs.handlers },
        {
          definition: loadProto().api.cluster.v1.ConfigService.service,
          handlers: createConfigServiceHandlers({ bundles: this.bundles, groups: this.groups, globals: this.globals, managerConfig: this.managerConfig, retention: retentionOptions, files: this.files, keyring: this.keyring, logger: this.log }),
        },
        {
          definition: loadProto().api.cluster.v1.FileService.service,
          handlers: createFileServiceHandlers({ files: this.files, logger: this.log }),
        },
        {
          definition: loadProto().api.cluster.v1.SecretService.service,
          handlers: createSecretServiceHandlers({
            secrets: new SecretStore({ client, keyspace, events: this.events, clock, keyring: this.keyring }),
            rotation: new SecretRotation({ client, keyspace, keyring: this.keyring, events: this.events }),
            logger: this.log,
          }),
        },
        {
          definition: loadProto().api.cluster.v1.PkiService.service,
          handlers: createPkiServiceHandlers({ parts: pkiParts, events: this.events, logger: this.log }),
        },
        {
          definition: loadProto().api.cluster.v1.DeclarativeService.service,
          handlers: createDeclarativeServiceHandlers({
            declarative: new Declarative({
              client, keyspace, events: this.events, clock, maxAttempts: settings.configCasAttempts,
              txnLimits: { maxOps: settings.applyTxnMaxOps, maxBytes: settings.applyTxnMaxBytes }, startJob,
            }),
            logger: this.log,
          }),
        },
      ],
    });
  }

  private election?: LeaderElection;

  /** The address agents are told to dial (after start). */
  get address(): string {
    if (!this.advertised) throw new Error('coordinator not started');
    return this.advertised;
  }

  /** The election (after start): currentLeader(), events gained/lost. */
  get leaderElection(): LeaderElection {
    if (!this.election) throw new Error('coordinator not started');
    return this.election;
  }

  isLeader(): boolean {
    return this.election?.isLeader() ?? false;
  }

  /** Binds the port (logs "listening"), then campaigns; returns once bound. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.loopDelay.start();
    const o = this.options;
    const clock = o.clock ?? systemClock;
    const { host } = parseHostPort(o.listen, '--listen address');
    // Checked before a CA can be created: the replica that creates it is the only one that
    // writes admin.yaml, so a pki dir it cannot write would leave the cluster without an admin.
    await checkWritableDir(o.pki.dir);
    if (o.pki.etcdRbac) {
      // Idempotent: the first replica on a new etcd enables authentication, later ones find it on.
      await enableEtcdAuth(o.etcd, o.keyspace);
    }
    const loaded = await loadOrCreateCa({ etcd: this.client, keyspace: o.keyspace, clusterSecretFile: o.pki.clusterSecretFile, pkiDir: o.pki.dir, clock });
    this.keyring.setClusterSecret(loaded.clusterSecret);
    if (loaded.secretCreated) this.log.info('created the cluster secret; give the same file to every further replica', { file: o.pki.clusterSecretFile });
    const hosts = [host, ...(o.advertise ? [parseHostPort(o.advertise, '--advertise address').host] : []), hostname()]
      .map((h) => h.replace(/^\[|\]$/g, ''))
      .filter((h) => h !== '0.0.0.0' && h !== '::' && isValidHost(h));
    const issueServing = (): ReturnType<ClusterCa['issueKeyAndCertificate']> => loaded.ca.issueKeyAndCertificate({
      role: 'coordinator', name: o.replicaId, hosts: [...new Set(hosts)], validityMs: o.pki.servingValidityMs, now: new Date(clock.now()),
    });
    const serving = await issueServing();
    const revocations = await RevocationSet.start(this.client, o.keyspace);
    const tokens = new TokenStore(this.client, o.keyspace, loaded.ca.publicKeyHash, clock);
    this.pki = {
      ca: loaded.ca, revocations, tokens,
      enrolment: new AgentEnrolment(this.client, o.keyspace, loaded.ca, tokens, { clock, validityMs: o.pki.agentCertValidityMs, etcdRbac: o.pki.etcdRbac === true }),
      users: new UserStore(this.client, o.keyspace, loaded.ca, clock),
      endpoints: () => [this.address],
    };
    // A revoked agent's live stream ends at once, not at its next reconnect.
    revocations.onRevoked((r) => {
      const closed = this.streams.closeCertificate(r.serial, new UnauthenticatedError(`certificate ${r.serial} of ${r.role} ${r.name} has been revoked`));
      if (closed) this.log.warn('closed the stream of a revoked certificate', { nodeId: closed, serial: r.serial });
    });
    const credentials = serverCredentials({
      caPem: loaded.ca.certPem, certPem: serving.certPem, keyPem: serving.keyPem, openMethods: OPEN_METHODS, isRevoked: (serial) => revocations.isRevoked(serial),
      innermostInterceptors: [oversizeRefusal(MAX_GRPC_REQUEST_BYTES)],
    });

    // A replica may run for longer than its certificate: renew at two thirds, for new connections.
    let renewAt = renewalTime(serving.certPem).getTime();
    this.servingRenewal = setInterval(() => {
      if (clock.now() < renewAt) return;
      renewAt = Number.POSITIVE_INFINITY; // one renewal at a time
      issueServing().then((next) => {
        credentials.rotate(next.certPem, next.keyPem);
        renewAt = renewalTime(next.certPem).getTime();
        this.log.info('renewed the serving certificate', { serial: next.serial, notAfter: next.notAfter.toISOString() });
      }, (err: unknown) => {
        renewAt = clock.now() + this.settings.servingRenewCheckMs;
        this.log.warn('could not renew the serving certificate; retrying', { err: errorMessage(err) });
      });
    }, this.settings.servingRenewCheckMs);
    this.servingRenewal.unref();
    const port = await this.grpc.bind(o.listen, credentials);
    const listening = `${host}:${port}`;
    this.advertised = o.advertise ?? (host === '0.0.0.0' || host === '[::]' ? `${hostname()}:${port}` : listening);
    this.log.info('listening', { address: listening, advertise: this.advertised, tls: 'TLSv1.3, client certificates of the cluster CA' });
    if (loaded.created) {
      await writeFirstStartFiles({ etcd: this.client, keyspace: o.keyspace, ca: loaded.ca, pkiDir: o.pki.dir, endpoints: [this.advertised], firstTokenTtlMs: o.pki.firstTokenTtlMs, clock });
      this.log.info(`wrote ca.crt, admin.yaml, join-token to ${o.pki.dir}`, { pkiDir: o.pki.dir });
    }
    this.grpc.setHealth(CLUSTER_SERVICE_NAME, 'SERVING');

    const election = new LeaderElection({
      client: o.electionEtcd ?? o.etcd, keyspace: o.keyspace, replicaId: o.replicaId, address: this.advertised, ttlMs: this.settings.electionTtlMs,
      keepaliveIntervalMs: this.settings.electionKeepaliveIntervalMs, retryInitialMs: this.settings.electionRetryInitialMs,
      clock: o.clock ?? systemClock, logger: this.log,
      // Off the main loop, so a re-attach storm does not cost the lease (lease-keeper.ts); an
      // injected clock keeps the keepalives on its own timeline instead.
      ...(o.etcdEndpoints && o.etcdEndpoints.length > 0 && !o.clock ? {
        keepaliveWorker: {
          endpoints: o.etcdEndpoints, ...(o.etcdTls ? { tls: o.etcdTls } : {}), stallLimitMs: this.settings.electionStallLimitMs,
          ...(o.electionWorkerFile ? { file: o.electionWorkerFile } : {}),
        },
      } : {}),
    });
    this.election = election;
    election.on('gained', () => {
      this.streams.beginTerm();
      this.passAfter(this.settings.reattachGraceMs);
      this.grpc.setHealth(AGENT_SERVICE_NAME, 'SERVING');
      this.events.start();
      this.reconciler.start();
      this.jobs.runner.start().catch((err: unknown) => this.log.error('job runner failed to start', { err: errorMessage(err) }));
      for (const loop of this.leaderLoops) loop.start();
    });
    election.on('lost', () => {
      this.grpc.setHealth(AGENT_SERVICE_NAME, 'NOT_SERVING');
      this.reconciler.stop().catch((err: unknown) => this.log.warn('stopping reconciler failed', { err: errorMessage(err) }));
      this.jobs.runner.stop().catch((err: unknown) => this.log.warn('stopping job runner failed', { err: errorMessage(err) }));
      for (const loop of this.leaderLoops) loop.stop().catch((err: unknown) => this.log.warn('stopping a leader loop failed', { err: errorMessage(err) }));
      this.streams.closeAll(election.notLeaderError());
    });
    election.on('etcd', (up) => this.grpc.setHealth('', up ? 'SERVING' : 'NOT_SERVING'));
    // The first leader seen after start is not a change of leader; every later one is.
    let firstLeaderSeen = false;
    election.on('leader', () => {
      if (firstLeaderSeen) this.metrics.leaderChanged();
      firstLeaderSeen = true;
    });
    await election.start();
  }

  /** Asks for an inventory pass once `ms` have passed (a grace of the stream signal ended). */
  private passAfter(ms: number): void {
    // A little past the grace, so the pass finds it over (timers may fire a tick early).
    this.clock.setTimeout(() => this.reconciler.schedule(), ms + 20);
  }

  /** SIGTERM path: resign (so another replica leads at once), close agent streams, stop serving. */
  stop(options: StopOptions = {}): Promise<void> {
    const limitMs = options.stepTimeoutMs ?? STOP_STEP_TIMEOUT_MS;
    const step = (what: string, work: () => Promise<unknown>, detail?: () => Record<string, unknown>): Promise<void> =>
      this.stopStep(what, work, limitMs, detail);
    this.stopping ??= (async () => {
      this.grpc.setHealth('', 'NOT_SERVING');
      this.grpc.setHealth(AGENT_SERVICE_NAME, 'NOT_SERVING');
      await step('the inventory reconciler', () => this.reconciler.stop());
      await step('the leader loops', () => Promise.all(this.leaderLoops.map((loop) => loop.stop())));
      await step('the job runner', () => this.jobs.runner.stop(), () => ({ runningJobs: this.jobs.runner.activeJobIds() }));
      await step('the election (resign)', async () => this.election?.stop());
      this.streams.closeAll(new UnavailableError('coordinator shutting down; reconnect to the new leader'));
      await this.grpc.shutdown(options.graceMs ?? this.settings.shutdownGraceMs);
      await step('the event log', () => this.events.stop());
      clearInterval(this.servingRenewal);
      await step('the revocation watch', async () => this.pki?.revocations.close());
      this.loopDelay.stop();
      this.log.info('stopped');
    })();
    return this.stopping;
  }

  /**
   * One part of stop(), bounded by `limitMs` of real time (not the injected clock: a test's
   * manual clock must not hold a shutdown). A failure is logged, not thrown: the parts after it
   * still stop.
   */
  private async stopStep(what: string, work: () => Promise<unknown>, limitMs: number, detail?: () => Record<string, unknown>): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => { timer = setTimeout(() => resolve('late'), limitMs); });
    const ended = (async (): Promise<'ended'> => {
      try {
        await work();
      } catch (err) {
        this.log.warn(`stop: ${what} failed`, { err: errorMessage(err) });
      }
      return 'ended';
    })();
    const outcome = await Promise.race([ended, late]);
    clearTimeout(timer);
    if (outcome === 'late') {
      this.log.warn(`stop: ${what} did not end within ${limitMs} ms; going on without it`, { ...detail?.() });
      void ended.then(() => this.log.info(`stop: ${what} ended late`));
    }
  }
}
