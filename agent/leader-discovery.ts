/**
 * Where the coordinator leader is: the election rule of shared/leader-record.ts applied to the
 * keys under `keyspace.electionPrefix()`, followed with a watch; or a fixed `--coordinator`
 * address.
 */
import type { Etcd3 } from 'etcd3';
import { systemClock, type Clock } from '../shared/clock';
import { errorMessage } from '../shared/errors';
import { watchPrefixes, type PrefixWatch } from '../shared/etcd-watch';
import type { Keyspace } from '../shared/keyspace';
import { isHostPort, pickLeader } from '../shared/leader-record';
import type { Logger } from '../shared/logger';
import { ReconcileLoop } from '../shared/reconcile-loop';

export interface LeaderInfo {
  id: string;
  address: string;
  /** etcd create revision of the candidate key (decimal text): identifies one term. */
  createRevision: string;
}

/** Source of the current leader: etcd in production, a fixed address with --coordinator. Shareable. */
export interface LeaderSource {
  current(): LeaderInfo | undefined;
  /**
   * Called with every change of leader (undefined: none), and with the same leader again when
   * etcd answers after an outage (a reconnecting agent then redials without waiting out its
   * backoff). Returns an unsubscribe function.
   */
  subscribe(listener: (leader: LeaderInfo | undefined) => void): () => void;
  /** Re-reads now (after a failed dial: the leader may be gone before its key expired). */
  refresh(): Promise<void>;
  close(): Promise<void>;
  /**
   * Addresses of the other candidates (followers that may lead next), for standby connections;
   * a source that knows none leaves both out.
   */
  standbys?(): readonly string[];
  /** Called whenever `standbys()` changed. Returns an unsubscribe function. */
  subscribeStandbys?(listener: () => void): () => void;
}

export class StaticLeaderSource implements LeaderSource {
  private readonly leader: LeaderInfo;
  constructor(address: string) {
    if (!isHostPort(address)) throw new Error(`invalid --coordinator ${JSON.stringify(address)}: use HOST:PORT, e.g. 127.0.0.1:7400`);
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

export interface EtcdLeaderSourceOptions {
  etcd: Etcd3;
  keyspace: Keyspace;
  logger: Logger;
  /** Deadline of one read of the election keys. */
  callTimeoutMs: number;
  clock?: Clock;
}

/**
 * Follows the election prefix on the shared reconcile loop: a watch event (put, delete, the
 * watcher's reconnect) says *that* something changed, a read of the candidates says who leads.
 * The loop's single flight coalesces a burst of events into one read. No debounce: a new
 * leader should be dialled at once (the link adds its own jitter), and no timer: the link
 * re-reads (`refresh`) whenever it cannot reach the leader it knows.
 */
export class EtcdLeaderSource implements LeaderSource {
  private leader?: LeaderInfo;
  private readonly listeners = new Set<(leader: LeaderInfo | undefined) => void>();
  private standbyAddresses: readonly string[] = [];
  private readonly standbyListeners = new Set<() => void>();
  private readonly loop: ReconcileLoop;
  private watch?: PrefixWatch;
  private closed = false;
  private lastProblem?: string;
  private firstRead?: () => void;
  /** The last read failed (etcd unreachable): the next good one is news even with the same leader. */
  private readFailed = false;

  constructor(private readonly o: EtcdLeaderSourceOptions) {
    this.loop = new ReconcileLoop({
      name: 'leader discovery', pass: () => this.readOnce().finally(() => this.firstRead?.()), clock: o.clock ?? systemClock, logger: o.logger,
      intervalMs: 0, debounceMs: 0,
    });
  }

  /** Starts watching; resolves after the first read (which may have failed: see refresh). */
  async start(): Promise<void> {
    if (this.closed || this.watch) return;
    // With etcd down, etcd3 keeps retrying the watch and its reconnect triggers a fresh read.
    this.watch = watchPrefixes(this.o.etcd, [this.o.keyspace.electionPrefix()], () => this.loop.trigger(), this.o.logger);
    const first = new Promise<void>((resolve) => { this.firstRead = resolve; });
    void this.loop.start(); // its first pass is the first read
    await first;
  }

  /**
   * A new watch through the client as it is now (the agent's etcd client was replaced after a
   * certificate renewal: agent/renewing-etcd.ts), then the old one stopped; a read follows.
   */
  async rewatch(): Promise<void> {
    if (this.closed || !this.watch) return;
    const old = this.watch;
    this.watch = watchPrefixes(this.o.etcd, [this.o.keyspace.electionPrefix()], () => this.loop.trigger(), this.o.logger);
    await old.stop();
    this.loop.trigger();
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
    return this.loop.runNow();
  }

  standbys(): readonly string[] {
    return this.standbyAddresses;
  }

  subscribeStandbys(listener: () => void): () => void {
    this.standbyListeners.add(listener);
    return () => this.standbyListeners.delete(listener);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.listeners.clear();
    this.standbyListeners.clear();
    await this.loop.stop();
    await this.watch?.stop();
    this.watch = undefined;
  }

  private async readOnce(): Promise<void> {
    if (this.closed) return;
    const prefix = this.o.keyspace.electionPrefix();
    let raws: { key: string; createRevision: string; value: string }[];
    try {
      // All candidates, not only the lowest: a malformed lowest record is skipped (leader-record.ts).
      const res = await this.o.etcd.getAll().prefix(prefix).sort('Create', 'Ascend')
        .options({ deadline: new Date(Date.now() + this.o.callTimeoutMs) }).exec();
      raws = res.kvs.map((kv) => ({ key: kv.key.toString(), createRevision: kv.create_revision, value: kv.value.toString() }));
    } catch (err) {
      // Keep the last known leader: the stream to it may well be fine while etcd is away.
      this.o.logger.debug('cannot read the coordinator election', { error: errorMessage(err) });
      this.readFailed = true;
      return;
    }
    const etcdBack = this.readFailed;
    this.readFailed = false;
    const pick = pickLeader(raws, this.o.keyspace);
    const problem = [
      ...pick.skipped.map((s) => s.problem),
      ...(pick.leader ? [] : ['no coordinator has been elected (no usable candidate in etcd)']),
    ].join('; ') || undefined;
    if (problem && problem !== this.lastProblem) this.o.logger.warn(pick.leader ? 'malformed election record skipped' : 'no coordinator leader', { reason: problem });
    this.lastProblem = problem;
    const next = pick.leader ? { id: pick.leader.id, address: pick.leader.address, createRevision: pick.leader.createRevision } : undefined;
    if (this.closed) return;
    const standbys = [...new Set(pick.candidates.slice(1).map((c) => c.address))].filter((a) => a !== next?.address).sort();
    const standbysChanged = standbys.join(',') !== this.standbyAddresses.join(',');
    this.standbyAddresses = standbys;
    try {
      this.follow(next, etcdBack);
    } finally {
      // After the leader's listeners: a link then still has the new leader's standby connection to use.
      if (standbysChanged) for (const l of [...this.standbyListeners]) l();
    }
  }

  /** Takes `next` as the leader and tells the listeners when it changed (or etcd came back). */
  private follow(next: LeaderInfo | undefined, etcdBack: boolean): void {
    if (sameLeader(next, this.leader)) {
      if (etcdBack && next) {
        this.o.logger.info('etcd answers again', { leaderId: next.id, address: next.address });
        for (const l of [...this.listeners]) l(next);
      }
      return;
    }
    this.leader = next;
    if (next) this.o.logger.info('coordinator leader', { leaderId: next.id, address: next.address });
    for (const l of [...this.listeners]) l(next);
  }
}
