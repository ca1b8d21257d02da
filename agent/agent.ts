/**
 * One agent: identity + facts + lease membership + the coordinator link (mutual TLS with the
 * injected credentials). Everything it talks
 * to is injected (etcd client, logger, clock, facts, command handler, leader source), and it
 * holds no module state, so a benchmark can run thousands in one process sharing one etcd
 * client and one facts object.
 *
 * With `reverify` it also does "reload" (agent/applied-reload.ts): the applied record is
 * re-verified at start and after a reconnect that followed an outage; drift goes to the
 * coordinator as a DriftReport.
 */
import type { ChannelOptions } from '@grpc/grpc-js';
import type { Etcd3 } from 'etcd3';
import { systemClock, type Clock } from '../shared/clock';
import { DEFAULT_PREFIX, Keyspace } from '../shared/keyspace';
import type { Logger } from '../shared/logger';
import type { Facts } from '../shared/facts';
import { VERSION } from '../shared/version';
import { AppliedReload, type DriftFinding } from './applied-reload';
import { UnsupportedCommandHandler, type CommandHandler } from './command-handler';
import { CoordinatorLink, EMPTY_APPLIED, type AppliedStateProvider, type LinkTimings } from './coordinator-link';
import { EtcdLeaderSource, StaticLeaderSource, type LeaderSource } from './leader-discovery';
import type { CredentialSource } from './node-certificate';
import { AGENT_DEFAULTS, type WorkTimeouts } from './options';
import { childFactsProvider, type FactsProvider } from './facts-provider';
import { HardwareWatch, systemHardwareSignature } from './hardware-watch';
import { resolveIdentity, systemIdentityEnvironment, type IdentityEnvironment, type NodeIdentity } from './identity';
import { LeaseMembership, membershipTimings, type MembershipStatus } from './lease-membership';

/**
 * The part of the compiled AgentConfig (agent/options.ts) an Agent needs; main.ts passes the
 * whole config. Fields left out (tests, benchmarks) take the defaults documented there.
 */
export interface AgentSettings {
  /** Explicit node id; otherwise /etc/machine-id, else the DMI UUID. */
  nodeId?: string;
  bootId?: string;
  hostname?: string;
  leaseTtlMs: number;
  /** etcd key prefix. @default DEFAULT_PREFIX */
  prefix?: string;
  /** Fixed coordinator HOST:PORT instead of the elected leader. */
  coordinator?: string;
  /** Facts re-collection interval; 0 = only at start. @default AGENT_DEFAULTS.factsIntervalMs */
  factsIntervalMs?: number;
  /** Period of the cheap hardware comparison; 0 = off. @default AGENT_DEFAULTS.hardwareCheckIntervalMs */
  hardwareCheckIntervalMs?: number;
  /** @default AGENT_DEFAULTS.link */
  link?: LinkTimings;
  /** Only factsProbeTimeoutMs is read here. @default AGENT_DEFAULTS.work */
  work?: Pick<WorkTimeouts, 'factsProbeTimeoutMs'>;
  /** A new applied digest reaches the member key this long later (plus up to as much at random). @default APPLIED_REFRESH_DELAY_MS */
  appliedRefreshDelayMs?: number;
}

export interface AgentDependencies {
  etcd: Etcd3;
  /**
   * The agent's certificate, key and the cluster CA for the coordinator stream (mutual TLS):
   * main.ts's NodeCertificate (joined, stored, renewed); a benchmark's StaticCredentials.
   */
  credentials: CredentialSource;
  logger: Logger;
  clock?: Clock;
  /** Default: collect from this machine with systeminformation, in a child process (agent/facts-provider.ts). */
  factsProvider?: FactsProvider;
  /** The hardware fingerprint the watch compares (default: hardware-watch.ts systemHardwareSignature). */
  hardwareSignature?: () => string;
  /** Default: answers every command "this agent cannot run <kind> commands yet". */
  commandHandler?: CommandHandler;
  applied?: AppliedStateProvider;
  /** Default: follow the election in etcd (or the fixed --coordinator). A benchmark may share one. */
  leaderSource?: LeaderSource;
  identityEnvironment?: IdentityEnvironment;
  random?: () => number;
  /**
   * Extra gRPC channel options of the coordinator stream (bench/sim-fleet, thousands of agents in
   * one process, passes `grpc.use_local_subchannel_pool: 1`: each agent its own connection, as
   * its own certificate already makes it).
   */
  channelOptions?: ChannelOptions;
  /**
   * Re-verifies the applied record ("reload"; main.ts: reverifyStore with the daemon's unit
   * context). Default: none (a benchmark's in-memory agents have nothing on disk to check).
   */
  reverify?: (signal: AbortSignal) => Promise<DriftFinding | undefined>;
  /** A reconnect after an outage at least this long re-verifies (default: the coordinator's ping interval, at least 1 s). */
  reverifyAfterOutageMs?: number;
}

export class Agent {
  readonly identity: NodeIdentity;
  readonly keyspace: Keyspace;
  private readonly log: Logger;
  private readonly membership: LeaseMembership;
  private readonly hardware: HardwareWatch;
  private readonly link: CoordinatorLink;
  private readonly leaderSource: LeaderSource;
  private readonly ownsLeaderSource: boolean;
  private readonly reload?: AppliedReload;
  private started = false;

  /** Throws InvalidArgumentError when no valid node id can be found (a bad --node-id, no machine-id). */
  constructor(settings: AgentSettings, deps: AgentDependencies) {
    this.identity = resolveIdentity(settings, deps.identityEnvironment ?? systemIdentityEnvironment);
    this.keyspace = new Keyspace(settings.prefix ?? DEFAULT_PREFIX);
    this.log = deps.logger.child({ nodeId: this.identity.nodeId });
    const clock = deps.clock ?? systemClock;
    const applied = deps.applied ?? (() => EMPTY_APPLIED);

    if (deps.leaderSource) {
      this.leaderSource = deps.leaderSource;
      this.ownsLeaderSource = false;
    } else {
      this.leaderSource = settings.coordinator
        ? new StaticLeaderSource(settings.coordinator)
        : new EtcdLeaderSource({ etcd: deps.etcd, keyspace: this.keyspace, logger: this.log, clock, callTimeoutMs: membershipTimings(settings.leaseTtlMs).callTimeoutMs });
      this.ownsLeaderSource = true;
    }

    this.membership = new LeaseMembership({
      etcd: deps.etcd,
      keyspace: this.keyspace,
      identity: this.identity,
      logger: this.log,
      clock,
      ttlMs: settings.leaseTtlMs,
      factsProvider: deps.factsProvider ?? childFactsProvider({
        hostname: this.identity.hostname, logger: this.log, probeTimeoutMs: (settings.work ?? AGENT_DEFAULTS.work).factsProbeTimeoutMs,
      }),
      factsIntervalMs: settings.factsIntervalMs ?? AGENT_DEFAULTS.factsIntervalMs,
      details: () => ({ appliedDigest: applied().digest }),
      random: deps.random,
      ...(settings.appliedRefreshDelayMs !== undefined ? { appliedRefreshDelayMs: settings.appliedRefreshDelayMs } : {}),
    });
    this.hardware = new HardwareWatch({
      signature: deps.hardwareSignature ?? systemHardwareSignature, intervalMs: settings.hardwareCheckIntervalMs ?? AGENT_DEFAULTS.hardwareCheckIntervalMs,
      clock, logger: this.log, onChange: () => this.membership.refreshFacts(),
    });
    this.link = new CoordinatorLink({
      identity: this.identity,
      credentials: deps.credentials,
      leaderSource: this.leaderSource,
      handler: deps.commandHandler ?? new UnsupportedCommandHandler(),
      logger: this.log,
      timings: settings.link ?? AGENT_DEFAULTS.link,
      applied,
      random: deps.random,
      channelOptions: deps.channelOptions,
      clock,
      onConnected: (info) => this.reload?.onConnected(info),
      refreshFacts: () => this.membership.refreshFacts(true),
    });
    if (deps.reverify) {
      this.reload = new AppliedReload({
        reverify: deps.reverify,
        send: (drift) => this.link.sendDrift(drift),
        logger: this.log,
        reverifyAfterOutageMs: deps.reverifyAfterOutageMs,
      });
    }
  }

  /** The last re-verify's finding ("reload"); undefined before one finished or without `reverify`. */
  get lastDriftFinding(): DriftFinding | undefined {
    return this.reload?.lastFinding;
  }

  /** Resolves once no re-verify is running. */
  reverifyIdle(): Promise<void> {
    return this.reload?.idle() ?? Promise.resolve();
  }

  get membershipStatus(): MembershipStatus {
    return this.membership.status;
  }

  get connected(): boolean {
    return this.link.connected;
  }

  /** Starts membership and the coordinator link; returns at once (both retry on their own). */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.log.info('agent starting', {
      version: VERSION, nodeIdSource: this.identity.nodeIdSource, bootId: this.identity.bootId,
      hostname: this.identity.hostname, instanceId: this.identity.instanceId, prefix: this.keyspace.prefix,
    });
    this.membership.start();
    this.hardware.start();
    // Before the link: the finding is then ready (or on its way) when the first Welcome comes.
    this.reload?.start();
    if (this.ownsLeaderSource && this.leaderSource instanceof EtcdLeaderSource) await this.leaderSource.start();
    this.link.start();
  }

  /** This machine's facts from the cache (collected at start and on the slow schedule), for templates. */
  facts(): Promise<Facts> {
    return this.membership.currentFacts();
  }

  /** Collects the facts now (on demand); true when they changed (then they were written). */
  refreshFacts(): Promise<boolean> {
    return this.membership.refreshFacts();
  }

  /** Resolves once the member key is written. */
  whenRegistered(signal?: AbortSignal): Promise<void> {
    return this.membership.whenRegistered(signal);
  }

  /**
   * A command changed the applied record: forget an older drift finding; the member record takes
   * the new digest a little later (LeaseMembership.refreshSoon: one write per burst, off the job's path).
   */
  appliedChanged(): void {
    this.reload?.appliedChanged();
    this.membership.refreshSoon();
  }

  /** An apply or remove converged the node (record changed or not): an older drift finding is obsolete. */
  converged(): void {
    this.reload?.appliedChanged();
  }

  /**
   * Closes the stream (cancelling a running command), then revokes the lease so the node shows
   * Unreachable at once. The injected etcd client stays open: its owner closes it.
   */
  async stop(graceMs = 5000): Promise<void> {
    if (!this.started) return;
    this.started = false;
    await this.link.stop(graceMs);
    await this.reload?.stop();
    if (this.ownsLeaderSource) await this.leaderSource.close();
    this.hardware.stop();
    await this.membership.stop();
    this.log.info('agent stopped');
  }
}
