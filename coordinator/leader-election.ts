/**
 * Leader election on etcd primitives (the standard recipe; DESIGN.md "Leadership and
 * fencing", TESTBED.md "Known trap": etcd3's Election helper reported the wrong leader and
 * its Lease notices a lost lease only after 2×TTL, see microsoft/etcd3 #158, #176).
 *
 * - One lease per campaign, kept alive by OUR loop (`keepaliveOnce` every TTL/3), so we know
 *   when the last keepalive that etcd acknowledged was *sent*: etcd cannot expire the lease
 *   before send-time + TTL, hence leadership timed from the send is never longer than the
 *   lease itself.
 * - A candidate key `election/coordinator/<replicaId>`, bound to the lease, created in a txn
 *   only if absent; value {id, address, startedAt}.
 * - Leader = the candidate with the lowest create revision. Every candidate watches the whole
 *   prefix (a handful of replicas, so no herd) and re-reads it after every keepalive too, so a
 *   missed watch event costs at most one keepalive interval.
 * - With `keepaliveWorker`, the keepalives are sent from a worker thread (lease-keeper.ts) and
 *   acknowledged send times are read from shared memory: a main event loop blocked for longer
 *   than the TTL (a re-attach storm on a loaded box) keeps its lease, while one blocked past the
 *   stall limit loses it. Without it (an injected clock, in-process tests) this loop sends them.
 * - `isLeader()` turns false once the last acknowledged keepalive is older than the TTL (clock
 *   injected), and `fenceCompare()` gives the guard "my candidate key still has create
 *   revision R" that every leader-only transaction carries: a deposed leader's write fails
 *   in etcd even if this process has not noticed yet.
 */
import { EventEmitter } from 'node:events';
import { EtcdLeaseInvalidError, type Etcd3, type Lease, type Watcher } from 'etcd3';
import { Backoff, errorMessage, NotLeaderError, ReconcileLoop, sleep, type Clock, type Keyspace, type Logger } from '../shared';
import { pickLeader, type CandidateRecord, type ElectionCandidate } from '../shared/leader-record';
import { ETCD_SPACE_MESSAGE, readPrefixes, runTxn, type Compare } from './etcd-txn';
import { isEtcdFull } from '../shared/etcd';
import { markCpuProfile } from './cpu-profile';
import { LeaseKeeper, type LeaseKeeperOptions } from './lease-keeper';

/** The leader as the election rule picks it (shared/leader-record.ts, the one rule). */
export type LeaderInfo = ElectionCandidate;

export interface LeaderElectionOptions {
  client: Etcd3;
  keyspace: Keyspace;
  replicaId: string;
  /** host:port agents dial when this replica leads. */
  address: string;
  /** Lease TTL; leadership ends this long after the last acknowledged keepalive was sent. */
  ttlMs: number;
  clock: Clock;
  logger: Logger;
  /** Default TTL/3: two keepalives may fail before leadership lapses. */
  keepaliveIntervalMs?: number;
  /** First wait before campaigning again after a failure (doubles up to the keepalive interval). @default 200 */
  retryInitialMs?: number;
  /**
   * Send the keepalives from a worker thread with its own etcd connection (lease-keeper.ts).
   * Times are then real time (Date.now()): only for the system clock. @default none: this loop sends them
   */
  keepaliveWorker?: Pick<LeaseKeeperOptions, 'endpoints' | 'tls' | 'stallLimitMs' | 'file' | 'heartbeatMs'>;
}

export interface LeaderElectionEvents {
  gained: [LeaderInfo];
  lost: [reason: string];
  /** The leader seen by this replica changed (or became unknown). */
  leader: [LeaderInfo | undefined];
  /** etcd answered (true) or stopped answering (false) our keepalives. */
  etcd: [boolean];
}

/** Thrown inside the loop when the lease or our candidate key is gone: campaign again. */
class CandidacyLost extends Error {}

export class LeaderElection extends EventEmitter<LeaderElectionEvents> {
  private readonly client: Etcd3;
  private readonly keyspace: Keyspace;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly ttlMs: number;
  private readonly intervalMs: number;
  private readonly key: string;
  private readonly record: CandidateRecord;

  private lease?: Lease;
  /** Create revision of our candidate key while we hold one. */
  private myRevision?: string;
  /** Clock time at which the last acknowledged keepalive (or the grant) was sent. */
  private lastKeepaliveSentAt = Number.NEGATIVE_INFINITY;
  private leader?: LeaderInfo;
  private leading = false;
  private etcdUp = false;
  private watcher?: Watcher;
  private expiryTimer?: NodeJS.Timeout;
  private loop?: Promise<void>;
  private readonly stopSignal = new AbortController();
  /** Wakes the keepalive sleep early when our key vanished. */
  private wake = new AbortController();
  /** Reads of the candidates: single flight, a read asked for during one runs once more after it. */
  private readonly evaluator: ReconcileLoop;
  /** Why the last read of the candidates failed (campaign() acts on it); undefined after a good read. */
  private readError?: Error;

  private readonly retryInitialMs: number;
  /** Sends the keepalives when the options ask for a worker thread. */
  private readonly keeper?: LeaseKeeper;
  /** The keeper heard from etcd that our lease is gone. */
  private leaseExpired = false;

  constructor(options: LeaderElectionOptions) {
    super();
    this.client = options.client;
    this.keyspace = options.keyspace;
    this.clock = options.clock;
    this.ttlMs = options.ttlMs;
    this.intervalMs = options.keepaliveIntervalMs ?? Math.max(200, Math.floor(options.ttlMs / 3));
    this.retryInitialMs = options.retryInitialMs ?? 200;
    this.key = options.keyspace.electionCandidate(options.replicaId);
    this.record = { id: options.replicaId, address: options.address, startedAt: options.clock.iso() };
    this.log = options.logger.child({ component: 'leader-election' });
    if (options.keepaliveWorker) {
      this.keeper = new LeaseKeeper({ ...options.keepaliveWorker, ttlMs: this.ttlMs, intervalMs: this.intervalMs });
      this.keeper.on('ok', () => this.setEtcd(true));
      this.keeper.on('failed', (err) => {
        // etcd unreachable: the worker keeps trying; leadership lapses by itself after the TTL (refresh timer).
        this.setEtcd(false);
        this.log.warn('keepalive failed', { err });
        this.refresh('keepalive failed');
      });
      this.keeper.on('expired', () => {
        this.leaseExpired = true;
        this.wake.abort();
      });
      this.keeper.on('stalled', (heartbeatAgeMs) => {
        this.log.warn('election keepalives paused: the main event loop has not run for longer than the stall limit', { heartbeatAgeMs });
      });
    }
    this.evaluator = new ReconcileLoop({
      name: 'candidates read', clock: options.clock, logger: this.log, intervalMs: 0,
      pass: async () => {
        this.readError = undefined;
        try {
          await this.readCandidates();
        } catch (err) {
          this.readError = err instanceof Error ? err : new Error(errorMessage(err));
          throw err;
        }
      },
    });
  }

  get replicaId(): string {
    return this.record.id;
  }

  get address(): string {
    return this.record.address;
  }

  /** Starts campaigning in the background; watch `gained` / `isLeader()`. */
  async start(): Promise<void> {
    if (this.loop) return;
    await this.keeper?.start();
    void this.evaluator.start();
    await this.startWatch();
    this.loop = this.run();
  }

  /** True while this replica is the leader AND its last acknowledged keepalive is younger than the TTL. */
  isLeader(): boolean {
    return (
      this.myRevision !== undefined &&
      this.leader?.createRevision === this.myRevision &&
      this.clock.now() - this.lastAckSentAt() < this.ttlMs
    );
  }

  /** Send time of the last keepalive etcd acknowledged (or of the grant), by this loop or the worker. */
  private lastAckSentAt(): number {
    return Math.max(this.lastKeepaliveSentAt, this.keeper?.lastAckSentAt() ?? Number.NEGATIVE_INFINITY);
  }

  /** The leader as last seen by this replica (any replica can answer this). */
  currentLeader(): LeaderInfo | undefined {
    return this.leader;
  }

  etcdReachable(): boolean {
    return this.etcdUp;
  }

  /**
   * The guard to add to EVERY leader-only transaction. Throws NotLeaderError when this replica
   * does not believe it leads; etcd refuses the txn if the candidate key was replaced or deleted.
   */
  fenceCompare(): Compare {
    if (!this.isLeader() || this.myRevision === undefined) throw this.notLeaderError();
    return { key: this.key, target: 'Create', op: '==', value: this.myRevision, reason: 'fence' };
  }

  /**
   * etcd refused a write fenced by us: our key is gone or replaced although we have not seen it
   * yet. Re-read the candidates now (that steps us down) and explain.
   */
  fenceFailed(): NotLeaderError {
    this.evaluateSoon();
    return new NotLeaderError('write refused: this coordinator is no longer the leader (its election key was deleted or replaced); retry against the new leader');
  }

  /** "not the leader; the leader is <address>", for refusals. */
  notLeaderError(): NotLeaderError {
    const leader = this.leader;
    if (leader && leader.id !== this.record.id) return new NotLeaderError(`not the leader; the leader is ${leader.address}`);
    return new NotLeaderError('not the leader; no leader is elected right now, retry in a few seconds');
  }

  /** Resigns: deletes our candidate key (only if it is still ours), revokes the lease. */
  async stop(): Promise<void> {
    if (this.stopSignal.signal.aborted) return;
    this.stopSignal.abort();
    this.wake.abort();
    clearTimeout(this.expiryTimer);
    this.watcher?.removeAllListeners();
    await this.watcher?.cancel().catch(() => undefined);
    await this.evaluator.stop();
    await this.loop;
    await this.resign();
    await this.keeper?.stop();
    this.refresh('stopped');
  }

  // ---------------------------------------------------------------------------------------

  private async run(): Promise<void> {
    const backoff = new Backoff({ initialMs: this.retryInitialMs, maxMs: Math.max(1000, this.intervalMs) });
    while (!this.stopSignal.signal.aborted) {
      try {
        if (await this.campaign()) {
          backoff.reset();
          await this.keepAlive();
        } else {
          await sleep(backoff.next(), this.stopSignal.signal);
        }
      } catch (err) {
        if (err instanceof CandidacyLost) {
          this.log.warn('candidacy lost; campaigning again', { reason: err.message });
        } else if (isEtcdFull(err)) {
          // etcd answered, but grants no lease and takes no write: not "unreachable".
          this.setEtcd(true);
          this.log.error('election: cannot campaign', { err: ETCD_SPACE_MESSAGE });
        } else {
          this.setEtcd(false);
          this.log.warn('election: etcd error', { err: errorMessage(err) });
        }
        await this.resign();
        this.refresh(errorMessage(err));
        await sleep(backoff.next(), this.stopSignal.signal);
      }
    }
  }

  /** Grants a lease and creates our candidate key if absent. False when the key exists already. */
  private async campaign(): Promise<boolean> {
    const sentAt = this.clock.now();
    const lease = this.client.lease(Math.max(1, Math.ceil(this.ttlMs / 1000)), { autoKeepAlive: false });
    // etcd3 emits 'lost' on a failed grant; grant() rejects too and that is what we act on.
    lease.on('lost', () => undefined);
    this.lease = lease;
    const leaseId = await lease.grant();
    const outcome = await runTxn(
      this.client,
      [{ key: this.key, target: 'Create', op: '==', value: '0', reason: 'candidate-absent' }],
      [{ kind: 'put', key: this.key, value: JSON.stringify(this.record), lease: leaseId }],
    );
    this.setEtcd(true);
    if (!outcome.succeeded) {
      // Same replica id still registered: a previous run whose lease has not expired yet, or
      // (misconfiguration) a second live replica with our id. Never take it over; it expires.
      this.log.warn('candidate key exists; waiting for it to expire (is another replica running with this --replica-id?)', { key: this.key });
      this.lease = undefined;
      await lease.revoke().catch(() => undefined);
      return false;
    }
    this.myRevision = outcome.revision;
    this.lastKeepaliveSentAt = sentAt;
    this.wake = new AbortController();
    this.leaseExpired = false;
    this.keeper?.keep(leaseId, sentAt);
    this.log.info('candidate registered', { revision: outcome.revision, lease: leaseId });
    await this.evaluate();
    if (this.readError !== undefined) throw this.readError;
    return true;
  }

  private async keepAlive(): Promise<void> {
    if (this.keeper) return this.followKeeper();
    const lease = this.lease;
    if (!lease) return;
    // Pacing is in real time, like the sleep itself (leadership is timed by the injected clock).
    let lastSentAt = Date.now();
    while (!this.stopSignal.signal.aborted) {
      // One keepalive per interval from the previous send: a slow answer does not push the next one out.
      await sleep(Math.max(0, lastSentAt + this.intervalMs - Date.now()), this.wake.signal);
      if (this.stopSignal.signal.aborted) return;
      if (this.myRevision === undefined) throw new CandidacyLost('our candidate key was deleted');
      lastSentAt = Date.now();
      const sentAt = this.clock.now();
      // Wait for a slow answer as long as it can still extend our leadership (at most two
      // intervals, so a dead connection is given up in time to redial): with the 2 s default
      // TTL a busy leader (hundreds of agents' TLS handshakes) answered late, and a deadline
      // of one interval deposed it for nothing.
      const left = this.lastKeepaliveSentAt + this.ttlMs - sentAt;
      const waitMs = Math.max(this.intervalMs, Math.min(2 * this.intervalMs, left));
      try {
        const res = await lease.keepaliveOnce({ deadline: new Date(Date.now() + waitMs) });
        if (res.TTL === '0') throw new CandidacyLost('lease expired');
      } catch (err) {
        if (err instanceof CandidacyLost) throw err;
        if (err instanceof EtcdLeaseInvalidError) throw new CandidacyLost('lease expired');
        // etcd unreachable: keep trying; leadership lapses by itself after the TTL (refresh timer).
        this.setEtcd(false);
        this.log.warn('keepalive failed', { err: errorMessage(err) });
        this.refresh('keepalive failed');
        continue;
      }
      this.lastKeepaliveSentAt = sentAt;
      this.setEtcd(true);
      await this.evaluate();
    }
  }

  /**
   * While the worker keeps the lease alive: re-read the candidates every interval (a missed watch
   * event costs at most that), and campaign again when the lease or our key is gone.
   */
  private async followKeeper(): Promise<void> {
    while (!this.stopSignal.signal.aborted) {
      await sleep(this.intervalMs, this.wake.signal);
      if (this.stopSignal.signal.aborted) return;
      if (this.leaseExpired) throw new CandidacyLost('lease expired');
      if (this.myRevision === undefined) throw new CandidacyLost('our candidate key was deleted');
      await this.evaluate();
    }
  }

  /** Deletes our key if it is still ours and revokes the lease; errors are logged, not thrown. */
  private async resign(): Promise<void> {
    this.keeper?.drop();
    const revision = this.myRevision;
    const lease = this.lease;
    this.myRevision = undefined;
    this.lease = undefined;
    if (revision !== undefined) {
      await runTxn(this.client, [{ key: this.key, target: 'Create', op: '==', value: revision, reason: 'own-key' }], [{ kind: 'delete', key: this.key }])
        .catch((err: unknown) => this.log.warn('could not delete candidate key', { err: errorMessage(err) }));
    }
    if (lease) await lease.revoke({ deadline: new Date(Date.now() + 2000) }).catch(() => undefined);
  }

  private async startWatch(): Promise<void> {
    const watcher = this.client.watch().prefix(this.keyspace.electionPrefix()).watcher();
    watcher.on('put', () => this.evaluateSoon());
    watcher.on('delete', () => this.evaluateSoon());
    // After a reconnect the watcher resumes from its last revision; re-read anyway.
    watcher.on('connected', () => this.evaluateSoon());
    watcher.on('error', (err) => this.log.warn('election watch error', { err: errorMessage(err) }));
    this.watcher = watcher;
  }

  private evaluateSoon(): void {
    if (this.stopSignal.signal.aborted) return;
    void this.evaluator.runNow();
  }

  /** Re-reads the candidates now (coalesced: one read in flight, at most one more after it). Never rejects. */
  private evaluate(): Promise<void> {
    return this.evaluator.runNow();
  }

  private async readCandidates(): Promise<void> {
    const { revision, kvs } = await readPrefixes(this.client, [{ prefix: this.keyspace.electionPrefix() }]);
    const raws = kvs[0].map((kv) => ({ key: kv.key.toString(), createRevision: kv.create_revision, value: kv.value.toString() }));
    const mineSeen = raws.some((r) => r.key === this.key && r.createRevision === this.myRevision);
    const pick = pickLeader(raws, this.keyspace);
    for (const bad of pick.skipped) this.log.warn('ignoring malformed election record', { key: bad.key, problem: bad.problem });
    const lowest = pick.leader;
    // A read older than our key's creation cannot tell whether the key is gone.
    if (this.myRevision !== undefined && BigInt(revision) >= BigInt(this.myRevision) && !mineSeen) {
      // Deleted behind our back (operator, or lease expired while we were cut off): step
      // down now and campaign again with a fresh lease.
      this.log.warn('our candidate key is gone', { key: this.key });
      this.myRevision = undefined;
      this.wake.abort();
    }
    const before = this.leader;
    this.leader = lowest;
    if (before?.id !== lowest?.id || before?.createRevision !== lowest?.createRevision) {
      this.log.info('leader observed', { leader: lowest?.id ?? null, address: lowest?.address ?? null });
      this.emit('leader', lowest);
    }
    this.refresh('another candidate leads');
  }

  /** Emits gained/lost when `isLeader()` changed, and arms the timer that ends leadership on time. */
  private refresh(reason: string): void {
    clearTimeout(this.expiryTimer);
    const now = this.isLeader();
    if (now) {
      const left = this.lastAckSentAt() + this.ttlMs - this.clock.now();
      this.expiryTimer = setTimeout(() => this.refresh('no keepalive acknowledged within the TTL'), Math.max(1, left + 1));
      this.expiryTimer.unref();
    }
    if (now === this.leading) return;
    this.leading = now;
    if (now && this.leader) {
      this.log.info('became leader', { replicaId: this.record.id, address: this.record.address, revision: this.myRevision });
      markCpuProfile('leader');
      this.emit('gained', this.leader);
    } else if (!now) {
      // When its leadership ended by its own clock (isLeader() turned false then, whatever this
      // line's time): a busy loop runs this timer late, and the line alone would say it stopped later.
      const lapsedMsAgo = Math.max(0, this.clock.now() - (this.lastAckSentAt() + this.ttlMs));
      this.log.warn('lost leadership', { replicaId: this.record.id, reason, lapsedMsAgo });
      this.emit('lost', reason);
    }
  }

  private setEtcd(up: boolean): void {
    if (up === this.etcdUp) return;
    this.etcdUp = up;
    this.emit('etcd', up);
  }
}
