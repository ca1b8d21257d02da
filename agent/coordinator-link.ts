/**
 * The agent's one stream to the coordinator leader (AgentService.Connect).
 *
 * Where the leader is: the election record under `keyspace.electionPrefix()` with the lowest
 * create revision (the format agreed with the coordinator: JSON `{id, address, startedAt}`),
 * found by a sorted range read and followed with a watch; or a fixed `--coordinator` address.
 *
 * The stream: Hello first, Welcome back, Pong for every Ping; three ping intervals without a
 * message mean the stream is dead even if TCP says otherwise. Reconnects (stream failure or
 * leader change) wait a backoff with full jitter, so thousands of agents do not redial a new
 * leader in the same millisecond.
 *
 * Commands: one runs at a time (the Hello reports it as runningCommandId). Results are kept by
 * command id (command-handler.ts CommandResults): a Command seen before is answered from there,
 * and a result whose delivery is uncertain is sent again after the next Welcome.
 *
 * Drift: `sendDrift` puts a DriftReport (the agent's own re-verify, "reload") on the stream;
 * `onConnected` tells the owner of every Welcome and how long the agent was disconnected, so
 * it can re-send a finding or re-verify after an outage.
 */
import * as grpc from '@grpc/grpc-js';
import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import type { AgentMessage } from '../generated/cluster/v1/AgentMessage';
import type { AgentServiceClient } from '../generated/cluster/v1/AgentService';
import type { Command__Output } from '../generated/cluster/v1/Command';
import type { CommandResult } from '../generated/cluster/v1/CommandResult';
import type { CoordinatorMessage__Output } from '../generated/cluster/v1/CoordinatorMessage';
import type { DriftReport } from '../generated/cluster/v1/DriftReport';
import { Backoff, sleep } from '../shared/backoff';
import { errorMessage } from '../shared/errors';
import type { Keyspace } from '../shared/keyspace';
import type { Logger } from '../shared/logger';
import { loadProto } from '../shared/proto';
import { VERSION } from '../shared/version';
import {
  CommandResults, cancelReason, commandKindName, runCommand,
  type CommandHandler, type ProgressUpdate,
} from './command-handler';
import type { NodeIdentity } from './identity';

// --- where the leader is ------------------------------------------------------------------

export interface LeaderInfo {
  id: string;
  address: string;
  /** etcd create revision of the candidate key (decimal text): identifies one term. */
  createRevision: string;
}

export interface ElectionCandidate {
  key: string;
  createRevision: string;
  value: string;
}

export interface LeaderChoice {
  leader?: LeaderInfo;
  /** Why there is no usable leader (no candidates, or the leader's record is malformed). */
  problem?: string;
}

const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;

/**
 * The leader is the candidate with the lowest create revision. When its record cannot be
 * read the answer is "no usable leader", not the next candidate: that one is a follower and
 * would refuse the stream.
 */
export function chooseLeader(candidates: readonly ElectionCandidate[], keyspace: Keyspace): LeaderChoice {
  const valid = candidates.filter((c) => keyspace.parseElectionCandidate(c.key) !== undefined && /^\d+$/.test(c.createRevision));
  if (valid.length === 0) return { problem: 'no coordinator has been elected (no candidates in etcd)' };
  const first = valid.reduce((a, b) => (BigInt(b.createRevision) < BigInt(a.createRevision) ? b : a));
  let record: unknown;
  try {
    record = JSON.parse(first.value);
  } catch {
    return { problem: `election record ${first.key} is not JSON` };
  }
  const r = record as { id?: unknown; address?: unknown };
  if (typeof record !== 'object' || record === null || typeof r.address !== 'string' || !HOST_PORT.test(r.address)) {
    return { problem: `election record ${first.key} has no valid "address" (HOST:PORT)` };
  }
  const id = typeof r.id === 'string' && r.id ? r.id : (keyspace.parseElectionCandidate(first.key) ?? '');
  return { leader: { id, address: r.address, createRevision: first.createRevision } };
}

/** Source of the current leader: etcd in production, a fixed address with --coordinator. Shareable. */
export interface LeaderSource {
  current(): LeaderInfo | undefined;
  /** Called with every change of leader (undefined: none). Returns an unsubscribe function. */
  subscribe(listener: (leader: LeaderInfo | undefined) => void): () => void;
  /** Re-reads now (after a failed dial: the leader may be gone before its key expired). */
  refresh(): Promise<void>;
  close(): Promise<void>;
}

export class StaticLeaderSource implements LeaderSource {
  private readonly leader: LeaderInfo;
  constructor(address: string) {
    if (!HOST_PORT.test(address)) throw new Error(`invalid --coordinator ${JSON.stringify(address)}: use HOST:PORT, e.g. 127.0.0.1:7400`);
    this.leader = { id: 'static', address, createRevision: '0' };
  }
  current(): LeaderInfo { return this.leader; }
  subscribe(): () => void { return () => undefined; }
  refresh(): Promise<void> { return Promise.resolve(); }
  close(): Promise<void> { return Promise.resolve(); }
}

function sameLeader(a: LeaderInfo | undefined, b: LeaderInfo | undefined): boolean {
  return a?.address === b?.address && a?.createRevision === b?.createRevision && a?.id === b?.id;
}

/**
 * Follows the election prefix: a watch says *that* something changed, a sorted read (limit 1,
 * lowest create revision) says who leads. Reads are coalesced, so a burst of events costs one.
 */
export class EtcdLeaderSource implements LeaderSource {
  private leader?: LeaderInfo;
  private readonly listeners = new Set<(leader: LeaderInfo | undefined) => void>();
  private watcher?: Watcher;
  private closed = false;
  private reading?: Promise<void>;
  private again = false;
  private lastProblem?: string;

  constructor(private readonly etcd: Etcd3, private readonly keyspace: Keyspace, private readonly logger: Logger, private readonly callTimeoutMs = 5000) {}

  /** Starts watching; resolves after the first read (which may have failed: see refresh). */
  async start(): Promise<void> {
    // The watch is created in the background: with etcd down, etcd3 keeps retrying it and
    // emits 'connected' when it is back, which triggers a fresh read.
    this.etcd.watch().prefix(this.keyspace.electionPrefix()).create().then((w) => {
      if (this.closed) { void w.cancel(); return; }
      this.watcher = w;
      w.on('put', () => void this.refresh());
      w.on('delete', () => void this.refresh());
      w.on('connected', () => void this.refresh());
      w.on('error', (err) => this.logger.debug('election watch error', { error: errorMessage(err) }));
    }).catch((err: unknown) => this.logger.warn('cannot watch the coordinator election', { error: errorMessage(err) }));
    await this.refresh();
  }

  current(): LeaderInfo | undefined {
    return this.leader;
  }

  subscribe(listener: (leader: LeaderInfo | undefined) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  refresh(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.reading) {
      this.again = true;
      return this.reading;
    }
    this.reading = (async () => {
      do {
        this.again = false;
        await this.readOnce();
      } while (this.again && !this.closed);
    })().finally(() => { this.reading = undefined; });
    return this.reading;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.listeners.clear();
    const w = this.watcher;
    this.watcher = undefined;
    if (w) await w.cancel().catch(() => undefined);
  }

  private async readOnce(): Promise<void> {
    let kvs: IKeyValue[];
    try {
      const res = await this.etcd.getAll().prefix(this.keyspace.electionPrefix()).sort('Create', 'Ascend').limit(1)
        .options({ deadline: new Date(Date.now() + this.callTimeoutMs) }).exec();
      kvs = res.kvs;
    } catch (err) {
      // Keep the last known leader: the stream to it may well be fine while etcd is away.
      this.logger.debug('cannot read the coordinator election', { error: errorMessage(err) });
      return;
    }
    const choice = chooseLeader(kvs.map((kv) => ({ key: kv.key.toString(), createRevision: kv.create_revision, value: kv.value.toString() })), this.keyspace);
    if (choice.problem && choice.problem !== this.lastProblem) this.logger.warn('no coordinator leader', { reason: choice.problem });
    this.lastProblem = choice.problem;
    if (sameLeader(choice.leader, this.leader)) return;
    this.leader = choice.leader;
    if (choice.leader) this.logger.info('coordinator leader', { leaderId: choice.leader.id, address: choice.leader.address });
    for (const l of [...this.listeners]) l(choice.leader);
  }
}

// --- the stream ---------------------------------------------------------------------------

/** What the agent last applied (issue 3's applied record); empty strings while nothing is. */
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
/** Longest random pause before dialling a newly elected leader (spreads a fleet's re-attach). */
const NEW_LEADER_JITTER_MS = 1000;

export const AGENT_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.keepalive_time_ms': 15_000,
  'grpc.keepalive_timeout_ms': 10_000,
  'grpc.keepalive_permit_without_calls': 1,
  // Our own loop (with jitter) decides when to redial; keep the channel's own retries short.
  'grpc.initial_reconnect_backoff_ms': 500,
  'grpc.max_reconnect_backoff_ms': 5_000,
};

export interface CoordinatorLinkOptions {
  identity: NodeIdentity;
  leaderSource: LeaderSource;
  handler: CommandHandler;
  logger: Logger;
  applied?: AppliedStateProvider;
  /** How long to wait for Welcome after Hello (default 10 s). */
  helloTimeoutMs?: number;
  /** Reconnect backoff (default 1 s .. 30 s, full jitter). */
  backoff?: { initialMs: number; maxMs: number };
  random?: () => number;
  channelOptions?: grpc.ChannelOptions;
  resultCapacity?: number;
  /** Called after every Welcome (also the first), outside the stream's message handling. */
  onConnected?: (info: LinkConnected) => void;
  /** Milliseconds now (default Date.now); only measures outages. */
  now?: () => number;
}

export interface LinkConnected {
  address: string;
  /** How long no stream was welcomed before this one; undefined for the first connection. */
  outageMs?: number;
  /** The coordinator's ping interval from the Welcome (0: none). */
  pingIntervalMs: number;
}

interface RunningCommand {
  id: string;
  controller: AbortController;
  done: Promise<void>;
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
  private client?: { address: string; client: AgentServiceClient };
  private session?: Session;
  private running?: RunningCommand;
  private unreachableLogged = false;
  /** When the last welcomed stream ended (for LinkConnected.outageMs). */
  private lastWelcomedEnd?: number;

  constructor(private readonly options: CoordinatorLinkOptions) {
    this.log = options.logger;
    const b = options.backoff ?? { initialMs: 1000, maxMs: 30_000 };
    this.backoff = new Backoff({ ...b, random: options.random });
    this.results = new CommandResults(options.resultCapacity);
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
    this.loop = this.run(this.abort.signal);
  }

  /** Cancels a running command, closes the stream, and waits (at most `graceMs`) for the command to end. */
  async stop(graceMs = 5000): Promise<void> {
    if (!this.abort) return;
    this.abort.abort();
    const running = this.running;
    running?.controller.abort(cancelReason('agent shutting down'));
    await this.loop;
    if (running) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([running.done, new Promise<void>((r) => { timer = setTimeout(r, graceMs); })]);
      clearTimeout(timer);
    }
    this.client?.client.close();
    this.client = undefined;
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
      }
      const delay = this.backoff.next();
      if (outcome.welcomed || outcome.leaderChanged) {
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
      if (await this.sleepUnlessLeaderMoves(delay, leader.address, signal)) {
        // A new leader is known: dial it now rather than sleeping out a backoff grown against
        // the dead one (bench/failover.ts: p99 re-attach ~10 s at 100 agents), after a short
        // random pause so a whole fleet does not arrive in the same instant.
        this.backoff.reset();
        await sleep(Math.round(NEW_LEADER_JITTER_MS * (this.options.random ?? Math.random)()), signal);
      }
    }
    this.session = undefined;
  }

  /** Sleeps `ms`; resolves true early when the leader's address becomes another than `from`. */
  private async sleepUnlessLeaderMoves(ms: number, from: string, signal: AbortSignal): Promise<boolean> {
    const source = this.options.leaderSource;
    const movedAway = (): boolean => { const l = source.current(); return l !== undefined && l.address !== from; };
    if (movedAway()) return true;
    const moved = new AbortController();
    const unsubscribe = source.subscribe((l) => { if (l && l.address !== from) moved.abort(); });
    const onAbort = (): void => moved.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      await sleep(ms, moved.signal);
    } finally {
      unsubscribe();
      signal.removeEventListener('abort', onAbort);
    }
    return !signal.aborted && movedAway();
  }

  /** Sleeps until the source reports a leader, re-reading now and then in case a watch event was missed. */
  private async waitForLeader(signal: AbortSignal): Promise<void> {
    const source = this.options.leaderSource;
    const changed = new AbortController();
    const unsubscribe = source.subscribe((l) => { if (l) changed.abort(); });
    const onAbort = (): void => changed.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      await sleep(this.backoff.next(), changed.signal);
      if (!source.current() && !changed.signal.aborted) await source.refresh();
    } finally {
      unsubscribe();
      signal.removeEventListener('abort', onAbort);
    }
  }

  private clientFor(address: string): AgentServiceClient {
    if (this.client?.address === address) return this.client.client;
    this.client?.client.close();
    const { api } = loadProto();
    const client = new api.cluster.v1.AgentService(address, grpc.credentials.createInsecure(), {
      ...AGENT_CHANNEL_OPTIONS,
      ...this.options.channelOptions,
    });
    this.client = { address, client };
    return client;
  }

  /** One stream, from Hello to its end. Never throws. */
  private connect(leader: LeaderInfo, signal: AbortSignal): Promise<{ welcomed: boolean; leaderChanged: boolean; reason: string }> {
    const id = this.options.identity;
    const client = this.clientFor(leader.address);
    const call = client.Connect();
    const session: Session = { address: leader.address, call, welcomed: false, written: [] };
    this.session = session;

    return new Promise((resolve) => {
      let finished = false;
      let leaderChanged = false;
      let watchdog: NodeJS.Timeout | undefined;
      let pingIntervalMs = 0;

      const finish = (reason: string): void => {
        if (finished) return;
        finished = true;
        clearTimeout(watchdog);
        unsubscribe();
        signal.removeEventListener('abort', onAbort);
        if (this.session === session) this.session = undefined;
        if (session.welcomed) this.lastWelcomedEnd = (this.options.now ?? Date.now)();
        call.removeAllListeners('data');
        // Errors after this point (the CANCELLED of our own cancel) are expected.
        call.on('error', () => undefined);
        call.cancel();
        resolve({ welcomed: session.welcomed, leaderChanged, reason });
      };
      const arm = (ms: number, why: string): void => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => finish(why), ms);
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
            else clearTimeout(watchdog);
            this.log.info('connected to coordinator', { address: leader.address, coordinatorId: msg.welcome?.coordinatorId ?? '', pingIntervalMs });
            for (const r of this.results.unacknowledged()) this.write(session, { result: r }, r.commandId);
            this.notifyConnected({
              address: leader.address, pingIntervalMs,
              ...(this.lastWelcomedEnd !== undefined ? { outageMs: Math.max(0, (this.options.now ?? Date.now)() - this.lastWelcomedEnd) } : {}),
            });
            return;
          }
          case 'ping':
            this.write(session, { pong: { seq: msg.ping?.seq ?? '0' } });
            return;
          case 'command':
            if (!session.welcomed) return finish('coordinator sent a command before Welcome');
            if (msg.command) this.onCommand(msg.command);
            return;
          case 'cancel':
            if (msg.cancel) this.onCancel(msg.cancel.commandId, msg.cancel.reason);
            return;
          default:
            this.log.warn('ignored unknown message from the coordinator', { body: String(msg.body) });
        }
      });
      call.on('error', (err: Error) => finish(errorMessage(err)));
      call.on('end', () => finish('coordinator closed the stream'));

      arm(this.options.helloTimeoutMs ?? 10_000, `no Welcome within ${this.options.helloTimeoutMs ?? 10_000} ms`);
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
          runningCommandId: this.running?.id ?? '',
        },
      });
    });
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

  private onCommand(cmd: Command__Output): void {
    const kind = commandKindName(cmd.kind);
    const known = this.results.get(cmd.id);
    if (known) {
      this.log.info('duplicate command answered with its recorded result', { commandId: cmd.id, kind, outcome: known.outcome });
      this.write(this.session, { result: known }, cmd.id);
      return;
    }
    if (this.running?.id === cmd.id) {
      this.log.info('duplicate command ignored: it is running', { commandId: cmd.id, kind });
      return;
    }
    if (this.running) {
      const busy: CommandResult = { commandId: cmd.id, outcome: 'failed', error: `agent is busy with command ${this.running.id}; one command runs at a time` };
      this.log.warn('command refused: busy', { commandId: cmd.id, kind, running: this.running.id });
      this.write(this.session, { result: busy });
      return;
    }
    if (!cmd.id) {
      this.log.warn('command without id ignored', { kind });
      return;
    }
    this.log.info('command received', { commandId: cmd.id, jobId: cmd.jobId, kind });
    const controller = new AbortController();
    const progress = (u: ProgressUpdate): void => {
      // Progress is live output only; while disconnected it is dropped, the result is not.
      this.write(this.session, { progress: { ...u, commandId: cmd.id } });
    };
    const done = runCommand(this.options.handler, cmd, progress, controller).then((result) => {
      this.results.record(result);
      if (this.running?.id === cmd.id) this.running = undefined;
      this.log.info('command finished', { commandId: cmd.id, kind, outcome: result.outcome, error: result.error || undefined });
      this.write(this.session, { result }, cmd.id);
    });
    this.running = { id: cmd.id, controller, done };
  }

  private onCancel(commandId: string, reason: string): void {
    if (this.running?.id !== commandId) {
      this.log.info('cancel for a command that is not running ignored', { commandId });
      return;
    }
    this.log.info('cancelling command', { commandId, reason });
    this.running.controller.abort(cancelReason(reason));
  }
}
