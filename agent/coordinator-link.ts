/**
 * The agent's one stream to the coordinator leader (AgentService.Connect): the session and
 * its reconnect loop. Where the leader is comes from a LeaderSource (leader-discovery.ts);
 * what a Command does is the CommandRunner's (command-runner.ts).
 *
 * The stream: Hello first, Welcome back, Pong for every Ping; three ping intervals without a
 * message mean the stream is dead even if TCP says otherwise. Reconnects (stream failure or
 * leader change) wait a backoff with full jitter, so thousands of agents do not redial a new
 * leader in the same millisecond.
 *
 * Standby connections: while attached, the agent also holds an idle TLS connection to every
 * other candidate in the election (the followers). When one of them becomes leader the agent
 * opens its stream on that connection: no TCP and TLS handshake in the failover (issue 12 §2:
 * 1,000 agents re-attached ≤ 5 s; the handshakes were most of the re-attach time).
 *
 * Results are kept by command id (command-handler.ts CommandResults): a result whose delivery
 * is uncertain is listed in the next Hello and sent again after the next Welcome.
 *
 * Trust: the stream is mutual TLS with the agent's certificate (a CredentialSource), and the
 * server must present a certificate the cluster CA issued for the coordinator role, whatever
 * address the election record names: a rogue coordinator fails the handshake, is logged, and the
 * loop keeps looking (re-reading the election) as for any unreachable leader. A renewed
 * certificate ends the stream and the next one is opened with it at once.
 *
 * Drift: `sendDrift` puts a DriftReport (the agent's own re-verify, "reload") on the stream;
 * `onConnected` tells the owner of every Welcome and how long the agent was disconnected, so
 * it can re-send a finding or re-verify after an outage.
 */
import type * as grpc from '@grpc/grpc-js';
import type { AgentMessage } from '../generated/cluster/v1/AgentMessage';
import type { AgentServiceClient } from '../generated/cluster/v1/AgentService';
import type { CoordinatorMessage__Output } from '../generated/cluster/v1/CoordinatorMessage';
import type { DriftReport } from '../generated/cluster/v1/DriftReport';
import { Backoff } from '../shared/backoff';
import { systemClock, type Clock, type Timer } from '../shared/clock';
import { errorMessage } from '../shared/errors';
import type { Logger } from '../shared/logger';
import { loadServiceClient } from '../shared/proto';
import { VERSION } from '../shared/version';
import { CommandResults, type CommandHandler } from './command-handler';
import { CommandRunner } from './command-runner';
import type { NodeIdentity } from './identity';
import type { LeaderInfo, LeaderSource } from './leader-discovery';
import type { CredentialSource, TlsIdentity } from './node-certificate';
import { clientCredentials, CLUSTER_CHANNEL_OPTIONS } from '../shared/pki';

/** What the agent last applied (agent/applied-record.ts); empty strings while nothing is. */
export interface AppliedState {
  digest: string;
  bundle: string;
  version: string;
}

export type AppliedStateProvider = () => AppliedState;

export const EMPTY_APPLIED: AppliedState = { digest: '', bundle: '', version: '' };

/**
 * gRPC keepalive on the agent's channel, consistent with the membership TTL (45 s default,
 * see lease-membership.ts): a dead TCP connection is noticed within 15 + 10 = 25 s, well
 * inside one TTL. grpc-js servers accept pings at this rate (no too_many_pings policy);
 * a Go or C-core server would need its enforcement MinTime lowered to 15 s.
 */
export const AGENT_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  // The fixed TLS server name every cluster client uses (no IP address in SNI: Node's DEP0123).
  ...CLUSTER_CHANNEL_OPTIONS,
  'grpc.keepalive_time_ms': 15_000,
  'grpc.keepalive_timeout_ms': 10_000,
  'grpc.keepalive_permit_without_calls': 1,
  // Our own loop (with jitter) decides when to redial; keep the channel's own retries short.
  'grpc.initial_reconnect_backoff_ms': 500,
  'grpc.max_reconnect_backoff_ms': 5_000,
};

/** The link's knobs, compiled in agent/options.ts (AgentConfig.link). */
export interface LinkTimings {
  /** How long to wait for Welcome after Hello. */
  helloTimeoutMs: number;
  /** Reconnect backoff bounds (full jitter). */
  backoff: { initialMs: number; maxMs: number };
  /** Longest random pause before dialling a newly elected leader (spreads a fleet's re-attach). */
  newLeaderJitterMs: number;
  /** How many command results are remembered by id. */
  resultCapacity: number;
  /** Hold idle connections to the followers, so a failover needs no handshake. */
  standbyConnections: boolean;
}

export interface CoordinatorLinkOptions {
  identity: NodeIdentity;
  /** The agent's TLS identity (certificate, key, cluster CA); a new one (renewal) reconnects. */
  credentials: CredentialSource;
  leaderSource: LeaderSource;
  handler: CommandHandler;
  logger: Logger;
  timings: LinkTimings;
  applied?: AppliedStateProvider;
  random?: () => number;
  channelOptions?: grpc.ChannelOptions;
  /** Called after every Welcome (also the first), outside the stream's message handling. */
  onConnected?: (info: LinkConnected) => void;
  /**
   * Collects the facts now and stores them when they changed (RefreshFacts, `clusterctl node
   * refresh-facts`); resolves with whether they changed. Without it the agent answers with an error.
   */
  refreshFacts?: () => Promise<boolean>;
  /** Time and timers (watchdogs, backoff sleeps); also measures outages. @default systemClock */
  clock?: Clock;
}

export interface LinkConnected {
  address: string;
  /** How long no stream was welcomed before this one; undefined for the first connection. */
  outageMs?: number;
  /** The coordinator's ping interval from the Welcome (0: none). */
  pingIntervalMs: number;
}

interface Session {
  address: string;
  call: grpc.ClientDuplexStream<AgentMessage, CoordinatorMessage__Output>;
  welcomed: boolean;
  /** Results written on this stream and not yet followed by a message from the coordinator. */
  written: string[];
}

export class CoordinatorLink {
  private readonly log: Logger;
  private readonly backoff: Backoff;
  private readonly results: CommandResults;
  private abort?: AbortController;
  private loop?: Promise<void>;
  private client?: { address: string; identity: TlsIdentity; client: AgentServiceClient };
  /** Idle, connected clients of the other candidates, by address (see the file comment). */
  private readonly standby = new Map<string, { identity: TlsIdentity; client: AgentServiceClient }>();
  private unsubscribeStandbys?: () => void;
  /**
   * Credentials of the current identity, kept across leader changes: building them parses the
   * key and both certificates into a TLS context, which a new leader's address must not redo
   * (a renewed certificate is a new identity, and so new credentials).
   */
  private credentials?: { identity: TlsIdentity; credentials: grpc.ChannelCredentials };
  private session?: Session;
  private readonly runner: CommandRunner;
  private readonly clock: Clock;
  private unreachableLogged = false;
  /** The kind of the last trust refusal logged (logged again only when it changes). */
  private lastRefusal?: 'server' | 'client';
  /** When the last welcomed stream ended (for LinkConnected.outageMs). */
  private lastWelcomedEnd?: number;

  constructor(private readonly options: CoordinatorLinkOptions) {
    this.log = options.logger;
    this.clock = options.clock ?? systemClock;
    this.backoff = new Backoff({ ...options.timings.backoff, random: options.random });
    this.results = new CommandResults(options.timings.resultCapacity);
    this.runner = new CommandRunner({
      handler: options.handler, results: this.results, logger: this.log, clock: this.clock,
      send: (msg, resultOf) => this.write(this.session, msg, resultOf),
    });
  }

  /** Whether a stream is open and welcomed right now. */
  get connected(): boolean {
    return this.session?.welcomed === true;
  }

  get commandResults(): CommandResults {
    return this.results;
  }

  /**
   * Sends a DriftReport on the welcomed stream. Returns false when there is none (the message
   * is dropped: the caller sends again after the next Welcome, see onConnected).
   */
  sendDrift(drift: DriftReport): boolean {
    return this.write(this.session, { drift });
  }

  start(): void {
    if (this.abort) return;
    this.abort = new AbortController();
    this.unsubscribeStandbys = this.options.leaderSource.subscribeStandbys?.(() => { if (this.connected) this.warmStandbys(); });
    this.loop = this.run(this.abort.signal);
  }

  /** Cancels a running command, closes the stream, and waits (at most `graceMs`) for the command to end. */
  async stop(graceMs: number): Promise<void> {
    if (!this.abort) return;
    this.abort.abort();
    const commandEnded = this.runner.stop(graceMs);
    await this.loop;
    await commandEnded;
    this.client?.client.close();
    this.client = undefined;
    this.unsubscribeStandbys?.();
    for (const s of this.standby.values()) s.client.close();
    this.standby.clear();
    this.abort = undefined;
  }

  private async run(signal: AbortSignal): Promise<void> {
    const source = this.options.leaderSource;
    while (!signal.aborted) {
      const leader = source.current();
      if (!leader) {
        await this.waitForLeader(signal);
        continue;
      }
      const outcome = await this.connect(leader, signal);
      if (signal.aborted) break;
      if (outcome.welcomed) {
        this.backoff.reset();
        this.unreachableLogged = false;
        this.lastRefusal = undefined;
      }
      if (outcome.credentialsChanged) {
        // A renewed certificate: the next stream is opened with it now, not after a backoff.
        this.log.info('reconnecting with the renewed certificate', { address: leader.address });
        continue;
      }
      const delay = this.backoff.next();
      const refusal = trustRefusal(outcome.reason);
      if (refusal && refusal !== this.lastRefusal) {
        // Said every time it changes, at error level: an operator must look at this.
        this.lastRefusal = refusal;
        this.log.error(refusal === 'server' ? 'refused the coordinator named in the election record: its certificate is not a cluster coordinator\'s' : 'the coordinator refuses this agent\'s certificate',
          { address: leader.address, leaderId: leader.id, reason: outcome.reason, retryInMs: delay });
      } else if (outcome.welcomed || outcome.leaderChanged) {
        this.log.warn('disconnected from coordinator', { address: leader.address, reason: outcome.reason, retryInMs: delay });
      } else if (!this.unreachableLogged) {
        // Once per outage; every agent of a fleet retrying must not flood the journal.
        this.unreachableLogged = true;
        this.log.warn('coordinator unreachable', { address: leader.address, reason: outcome.reason, retryInMs: delay });
      } else {
        this.log.debug('coordinator still unreachable', { address: leader.address, reason: outcome.reason, retryInMs: delay });
      }
      // The leader may be gone before its election key expired; look again before redialling.
      if (!outcome.leaderChanged) void source.refresh();
      if (await this.sleepUntilNews(delay, leader, signal)) {
        // A new leader is known (or the same replica leads again, or etcd is back): dial now
        // rather than sleeping out a backoff grown against the dead one (bench/failover.ts:
        // p99 re-attach ~10 s at 100 agents; issue 12: 14-27 s after a 30 s etcd outage),
        // after a short random pause so a whole fleet does not arrive in the same instant.
        this.backoff.reset();
        await this.sleep(Math.round(this.options.timings.newLeaderJitterMs * (this.options.random ?? Math.random)()), signal);
      }
    }
    this.session = undefined;
  }

  /**
   * Sleeps `ms`; resolves true early when there is news worth dialling at once: another
   * leader than `from` (another address, or the same replica elected again: a new term), or
   * the leader source heard from etcd again after an outage (it then repeats the leader).
   */
  private async sleepUntilNews(ms: number, from: LeaderInfo, signal: AbortSignal): Promise<boolean> {
    const source = this.options.leaderSource;
    const isNew = (l: LeaderInfo | undefined): boolean => l !== undefined && (l.address !== from.address || l.createRevision !== from.createRevision);
    if (isNew(source.current())) return true;
    const moved = new AbortController();
    let news = false;
    const unsubscribe = source.subscribe((l) => { if (l) { news = true; moved.abort(); } });
    const onAbort = (): void => moved.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      await this.sleep(ms, moved.signal);
    } finally {
      unsubscribe();
      signal.removeEventListener('abort', onAbort);
    }
    return !signal.aborted && (news || isNew(source.current()));
  }

  /** Sleeps until the source reports a leader, re-reading now and then in case a watch event was missed. */
  private async waitForLeader(signal: AbortSignal): Promise<void> {
    const source = this.options.leaderSource;
    const changed = new AbortController();
    const unsubscribe = source.subscribe((l) => { if (l) changed.abort(); });
    const onAbort = (): void => changed.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      await this.sleep(this.backoff.next(), changed.signal);
      if (!source.current() && !changed.signal.aborted) await source.refresh();
    } finally {
      unsubscribe();
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** Resolves after `ms` on the clock, or early (without error) when `signal` aborts. */
  private sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const done = (): void => {
        timer.cancel();
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = this.clock.setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  private clientFor(address: string): AgentServiceClient {
    const identity = this.options.credentials.current();
    if (this.client?.address === address && this.client.identity === identity) return this.client.client;
    this.client?.client.close();
    // A standby connection to this address (made with the current identity) is already up.
    const warm = this.standby.get(address);
    this.standby.delete(address);
    if (warm && warm.identity !== identity) warm.client.close();
    const client = warm?.identity === identity ? warm.client : this.newClient(address, identity);
    this.client = { address, identity, client };
    return client;
  }

  private newClient(address: string, identity: TlsIdentity): AgentServiceClient {
    const AgentService = loadServiceClient('AgentService');
    if (this.credentials?.identity !== identity) {
      this.credentials = { identity, credentials: clientCredentials({ caPem: identity.caPem, certPem: identity.certPem, keyPem: identity.keyPem }) };
    }
    return new AgentService(address, this.credentials.credentials, {
      ...AGENT_CHANNEL_OPTIONS,
      ...this.options.channelOptions,
    });
  }

  /**
   * Connects (without a call) to every other candidate and to a newly named leader not dialled
   * yet, and closes the standby connections of addresses that are neither any more. Called on
   * every Welcome and Ping and when the candidates change.
   */
  private warmStandbys(): void {
    if (!this.options.timings.standbyConnections) return;
    const source = this.options.leaderSource;
    const identity = this.options.credentials.current();
    const current = this.client?.address;
    const wanted = new Set([...(source.standbys?.() ?? []), source.current()?.address].filter((a): a is string => a !== undefined && a !== current));
    for (const [address, s] of this.standby) {
      if (wanted.has(address) && s.identity === identity) continue;
      s.client.close();
      this.standby.delete(address);
    }
    for (const address of wanted) {
      if (this.standby.has(address)) continue;
      const client = this.newClient(address, identity);
      this.standby.set(address, { identity, client });
      this.keepStandbyUp(address, client);
    }
  }

  /**
   * Connects the standby channel, and again whenever it falls back to idle (the server dropped
   * the connection), for as long as it is this address's standby; a closed one stops.
   */
  private keepStandbyUp(address: string, client: AgentServiceClient): void {
    const channel = client.getChannel();
    // Starts connecting when idle; no-op when connecting or ready.
    const state = channel.getConnectivityState(true);
    channel.watchConnectivityState(state, Infinity, (err?: Error) => {
      if (!err && this.standby.get(address)?.client === client) this.keepStandbyUp(address, client);
    });
  }

  /** One stream, from Hello to its end. Never throws. */
  private connect(leader: LeaderInfo, signal: AbortSignal): Promise<{ welcomed: boolean; leaderChanged: boolean; credentialsChanged: boolean; reason: string }> {
    const id = this.options.identity;
    const client = this.clientFor(leader.address);
    const call = client.Connect();
    const session: Session = { address: leader.address, call, welcomed: false, written: [] };
    this.session = session;

    return new Promise((resolve) => {
      let finished = false;
      let leaderChanged = false;
      let credentialsChanged = false;
      let watchdog: Timer | undefined;
      let pingIntervalMs = 0;

      const finish = (reason: string): void => {
        if (finished) return;
        finished = true;
        watchdog?.cancel();
        unsubscribe();
        unsubscribeCredentials();
        signal.removeEventListener('abort', onAbort);
        if (this.session === session) this.session = undefined;
        if (session.welcomed) this.lastWelcomedEnd = this.clock.now();
        call.removeAllListeners('data');
        // Errors after this point (the CANCELLED of our own cancel) are expected.
        call.on('error', () => undefined);
        call.cancel();
        resolve({ welcomed: session.welcomed, leaderChanged, credentialsChanged, reason });
      };
      const arm = (ms: number, why: string): void => {
        watchdog?.cancel();
        watchdog = this.clock.setTimeout(() => finish(why), ms);
      };
      const onAbort = (): void => {
        // Shutdown: half-close so the coordinator sees a clean end, then cancel.
        call.end();
        finish('agent shutting down');
      };
      const unsubscribe = this.options.leaderSource.subscribe((l) => {
        if (l?.address === leader.address && l.createRevision === leader.createRevision) return;
        leaderChanged = true;
        finish(l ? `leader changed to ${l.id} at ${l.address}` : 'leader stepped down');
      });
      const unsubscribeCredentials = this.options.credentials.subscribe(() => {
        credentialsChanged = true;
        // Half-close first, so the coordinator sees this stream end before the next one's hello.
        call.end();
        finish('certificate renewed');
      });
      signal.addEventListener('abort', onAbort, { once: true });

      call.on('data', (msg: CoordinatorMessage__Output) => {
        // Any message proves the coordinator was there after our earlier writes.
        for (const cid of session.written.splice(0)) this.results.acknowledge(cid);
        if (session.welcomed && pingIntervalMs > 0) arm(3 * pingIntervalMs, `no message from the coordinator for 3 ping intervals (${3 * pingIntervalMs} ms)`);
        switch (msg.body) {
          case 'welcome': {
            if (session.welcomed) return;
            session.welcomed = true;
            pingIntervalMs = msg.welcome?.pingIntervalMs ?? 0;
            if (pingIntervalMs > 0) arm(3 * pingIntervalMs, `no message from the coordinator for 3 ping intervals (${3 * pingIntervalMs} ms)`);
            else watchdog?.cancel();
            this.log.info('connected to coordinator', { address: leader.address, coordinatorId: msg.welcome?.coordinatorId ?? '', pingIntervalMs });
            this.warmStandbys();
            for (const r of this.results.unacknowledged()) this.write(session, { result: r }, r.commandId);
            this.notifyConnected({
              address: leader.address, pingIntervalMs,
              ...(this.lastWelcomedEnd !== undefined ? { outageMs: Math.max(0, this.clock.now() - this.lastWelcomedEnd) } : {}),
            });
            return;
          }
          case 'ping':
            this.write(session, { pong: { seq: msg.ping?.seq ?? '0' } });
            this.warmStandbys();
            return;
          case 'command':
            if (!session.welcomed) return finish('coordinator sent a command before Welcome');
            if (msg.command) this.runner.onCommand(msg.command);
            return;
          case 'cancel':
            if (msg.cancel) this.runner.onCancel(msg.cancel.commandId, msg.cancel.reason);
            return;
          case 'refreshFacts':
            if (msg.refreshFacts) this.refreshFacts(session, msg.refreshFacts.requestId);
            return;
          default:
            this.log.warn('ignored unknown message from the coordinator', { body: String(msg.body) });
        }
      });
      call.on('error', (err: Error) => finish(errorMessage(err)));
      call.on('end', () => finish('coordinator closed the stream'));

      const helloTimeoutMs = this.options.timings.helloTimeoutMs;
      arm(helloTimeoutMs, `no Welcome within ${helloTimeoutMs} ms`);
      const applied = (this.options.applied ?? (() => EMPTY_APPLIED))();
      call.write({
        hello: {
          nodeId: id.nodeId,
          agentVersion: VERSION,
          bootId: id.bootId,
          hostname: id.hostname,
          instanceId: id.instanceId,
          appliedDigest: applied.digest,
          appliedBundle: applied.bundle,
          appliedVersion: applied.version,
          completedCommandIds: this.results.unacknowledged().map((r) => r.commandId ?? ''),
          runningCommandId: this.runner.runningId,
        },
      });
    });
  }

  /** Answers on the stream the request came on, once the facts are collected and stored. */
  private refreshFacts(session: Session, requestId: string): void {
    const refresh = this.options.refreshFacts;
    const answer = (changed: boolean, error: string): void => {
      if (!this.write(session, { factsRefreshed: { requestId, changed, error } })) {
        this.log.warn('facts refreshed but the stream that asked is gone', { requestId });
      }
    };
    if (!refresh) return answer(false, 'this agent has no facts collector');
    refresh().then((changed) => answer(changed, ''), (err: unknown) => answer(false, errorMessage(err)));
  }

  private notifyConnected(info: LinkConnected): void {
    const cb = this.options.onConnected;
    if (!cb) return;
    // Next tick: a listener's work (or its throw) must not run inside the stream's data handler.
    setImmediate(() => {
      try {
        cb(info);
      } catch (err) {
        this.log.warn('connected callback failed', { error: errorMessage(err) });
      }
    });
  }

  /** Writes when a welcomed stream is open; returns false otherwise (the message is dropped). */
  private write(session: Session | undefined, msg: AgentMessage, resultOf?: string): boolean {
    if (!session || session !== this.session || !session.welcomed) return false;
    try {
      session.call.write(msg, (err?: Error | null) => {
        if (!err && resultOf !== undefined) session.written.push(resultOf);
      });
      return true;
    } catch (err) {
      this.log.debug('write to coordinator failed', { error: errorMessage(err) });
      return false;
    }
  }
}

/**
 * Whether a stream failed on trust rather than reachability: 'server' when the server's
 * certificate was refused (checkServerCertificate: not from the cluster CA, or not a
 * coordinator's), 'client' when the coordinator refused ours (revoked, expired).
 */
export function trustRefusal(reason: string): 'server' | 'client' | undefined {
  // The first group is Node's own chain check against the cluster CA (a certificate of another CA), the second checkServerCertificate's.
  if (/self-signed certificate|unable to (verify the first certificate|get local issuer certificate|verify leaf signature)|unsuitable certificate purpose|certificate signature failure|certificate has expired|certificate is not yet valid/i.test(reason)) return 'server';
  if (/refusing to talk to it|was not issued by this cluster's CA|is a CA certificate, not a cluster identity|carries no cluster identity/.test(reason)) return 'server';
  if (/has been revoked|unauthenticated|certificate .* expired/i.test(reason)) return 'client';
  return undefined;
}
