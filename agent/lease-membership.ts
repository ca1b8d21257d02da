/**
 * Membership: the agent's presence in etcd. `members/<id>` (a MemberRecord) is bound to a
 * lease the agent keeps alive; when the agent dies the lease expires and the key goes away,
 * which is how the coordinator learns a node is Unreachable. `facts/<id>` is written next to
 * it without a lease (facts of an unreachable node are still worth showing).
 *
 * Why our own keepalive loop: the etcd3 client's `Lease` reports a lost lease only after
 * 2×TTL (node_modules/etcd3/lib/lease.js `keepalive()`), while etcd expires it after 1×TTL,
 * and it hides the outage from us. Here each keepalive is one short LeaseKeepAlive stream with
 * a deadline, every TTL/3 (what etcd's Go client does); a reply with TTL <= 0 means etcd
 * forgot the lease, and we re-grant and re-register at once instead of waiting.
 *
 * Default TTL: 45 s. The TTL is how long a node may go without a successful renewal before it
 * shows Unreachable, so it must cover the slowest *healthy-but-unlucky* renewal, or nodes flap
 * (Kubernetes raised node-monitor-grace-period from 40 s to 50 s because its HTTP/2 health
 * check, 30 s idle + 15 s ping timeout, could exceed 40 s). Our worst case with the defaults:
 *   - renewals every TTL/3 = 15 s;
 *   - a renewal that hits a silently dead connection waits its deadline, 5 s
 *     (ETCD_CALL_TIMEOUT_MAX_MS); etcd3 then drops the channel (DEADLINE_EXCEEDED is
 *     "recoverable" there) and redials within its dialTimeout, 3 s (shared/etcd.ts);
 *   - a retry, with backoff, up to 2 s later;
 *   so 15 + 2 × (5 + 3) + 2 ≈ 33 s < 45 s: two full failed renewals plus a retry fit inside
 *   one TTL, also across an etcd leader election (1-3 s with etcd's defaults; a new etcd
 *   leader also extends every lease by its TTL).
 *   - The lease is not the fast signal: the leader sees a dead agent by its stream in about
 *     2 s (coordinator/agent-streams.ts, --stream-grace), so the TTL can stay long and calm;
 *     it still marks a node whose agent lost etcd, and one no leader holds a stream of.
 * Tests use TTLs of 2-3 s: every timing below is derived from the TTL, not hard-coded.
 */
import type { Etcd3 } from 'etcd3';
import { Backoff, sleep } from '../shared/backoff';
import type { Clock, Timer } from '../shared/clock';
import { UnavailableError, errorMessage } from '../shared/errors';
import type { Facts } from '../shared/facts';
import type { Keyspace } from '../shared/keyspace';
import type { Logger } from '../shared/logger';
import type { MemberRecord } from '../shared/records';
import { VERSION } from '../shared/version';
import { factsFingerprint, primaryAddress, type FactsProvider } from './facts-provider';
import type { NodeIdentity } from './identity';

export const DEFAULT_LEASE_TTL_SECONDS = 45;
/** Per-call deadline ceiling for etcd calls made here (see the TTL reasoning above). */
export const ETCD_CALL_TIMEOUT_MAX_MS = 5000;

export interface MembershipTimings {
  /** TTL requested from etcd, whole seconds. */
  ttlSeconds: number;
  /** Pause between successful keepalives. */
  keepaliveIntervalMs: number;
  /** Deadline of each etcd call. */
  callTimeoutMs: number;
  /** Retry backoff after a failure (full jitter). */
  retryInitialMs: number;
  retryMaxMs: number;
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v));
}

/** Every timing derived from the TTL, so a 2 s test lease and a 45 s production lease behave alike. */
export function membershipTimings(ttlMs: number): MembershipTimings {
  const ttlSeconds = Math.max(1, Math.ceil(ttlMs / 1000));
  const ttl = ttlSeconds * 1000;
  // After a failed renewal the retries come fast (a short deadline, a short backoff), so a
  // partition shorter than the TTL ends with a renewal that lands before etcd expires the
  // lease: with TTL 3 s a renewal fails within 0.75 s and is retried within 0.4 s, so a cut
  // that heals by about TTL - 1.2 s is ridden out (issue 12: a 2 s cut made a TTL-3 node flap
  // when a hung renewal waited 1.5 s and its retry up to 1 s more).
  return {
    ttlSeconds,
    keepaliveIntervalMs: Math.round(ttl / 3),
    callTimeoutMs: Math.round(clamp(ttl / 4, 500, ETCD_CALL_TIMEOUT_MAX_MS)),
    retryInitialMs: Math.round(clamp(ttl / 20, 100, 500)),
    retryMaxMs: Math.round(clamp(ttl / 8, 250, 2000)),
  };
}

/** What goes into the member record besides identity; read each time the record is written. */
export interface MemberDetails {
  appliedDigest: string;
}

export interface LeaseMembershipOptions {
  etcd: Etcd3;
  keyspace: Keyspace;
  identity: NodeIdentity;
  logger: Logger;
  clock: Clock;
  ttlMs: number;
  factsProvider: FactsProvider;
  /** Re-collect facts this often and write them when they changed (0 = never). */
  factsIntervalMs: number;
  details?: () => MemberDetails;
  random?: () => number;
  /**
   * `refreshSoon()` writes the member record this long after the first change of a burst, plus
   * up to as much again at random. @default APPLIED_REFRESH_DELAY_MS
   */
  appliedRefreshDelayMs?: number;
}

/**
 * How long after a command changed the applied record its digest reaches the member key (plus
 * up to as much again, at random). Nothing decides from that copy (the coordinator has the
 * digest from the command's result and from the agent's hello); written at once, a fleet-wide
 * fan-out's N member rewrites (one raft entry each, and a watch event to the leader) landed in
 * the middle of the job's own writes. 10 s was too short for a large fleet: a 10,000-node
 * commission runs longer than that, and about 9,400 of the agents' rewrites landed inside it
 * (etcd counted 10,687 write revisions in the job phase, 1,244 of them the leader's). After a
 * minute, spread over the next, they come after the job, at about N/60 a second.
 */
export const APPLIED_REFRESH_DELAY_MS = 60_000;

export interface MembershipStatus {
  leaseId?: string;
  /** The member key is written with the current lease, and the last etcd call succeeded. */
  registered: boolean;
  etcdReachable: boolean;
  registrations: number;
}

/** The lease went away on the server (expired or revoked): re-grant now, no backoff. */
class LeaseGoneError extends Error {}

export class LeaseMembership {
  private readonly timings: MembershipTimings;
  private readonly log: Logger;
  private readonly backoff: Backoff;
  private abort?: AbortController;
  private loop?: Promise<void>;
  private factsLoop?: Promise<void>;
  private leaseId?: string;
  private recordsOnLease = false;
  private reachable = true;
  private unreachableSince = 0;
  private registrations = 0;
  private facts?: Facts;
  private factsPrint = '';
  /** The collection in flight, shared by everyone who needs facts meanwhile. */
  private collecting?: Promise<Facts>;
  private readonly registeredWaiters: (() => void)[] = [];
  /** When the member key was written on the current lease (kept by later rewrites of it). */
  private registeredAt?: string;
  /** A deferred member rewrite (`refreshSoon`). */
  private refreshTimer?: Timer;

  constructor(private readonly options: LeaseMembershipOptions) {
    this.timings = membershipTimings(options.ttlMs);
    this.log = options.logger;
    this.backoff = new Backoff({ initialMs: this.timings.retryInitialMs, maxMs: this.timings.retryMaxMs, random: options.random });
  }

  get status(): MembershipStatus {
    return { leaseId: this.leaseId, registered: this.recordsOnLease && this.reachable, etcdReachable: this.reachable, registrations: this.registrations };
  }

  /** Starts the keepalive loop in the background; registration happens as soon as etcd answers. */
  start(): void {
    if (this.abort) return;
    this.abort = new AbortController();
    const signal = this.abort.signal;
    this.loop = this.run(signal);
    if (this.options.factsIntervalMs > 0) this.factsLoop = this.refreshFactsLoop(signal);
  }

  /** Resolves once the member key has been written (the first time, or again after a loss). */
  whenRegistered(signal?: AbortSignal): Promise<void> {
    if (this.recordsOnLease && this.reachable) return Promise.resolve();
    return new Promise((resolve) => {
      this.registeredWaiters.push(resolve);
      signal?.addEventListener('abort', () => resolve(), { once: true });
    });
  }

  /**
   * Stops renewing and revokes the lease so the member key disappears now (the node shows
   * Unreachable at once instead of after a TTL). Best effort: with etcd down the lease
   * simply expires.
   */
  async stop(): Promise<void> {
    if (!this.abort) return;
    this.refreshTimer?.cancel();
    this.refreshTimer = undefined;
    this.abort.abort();
    await Promise.all([this.loop, this.factsLoop]);
    this.abort = undefined;
    const leaseId = this.leaseId;
    this.leaseId = undefined;
    this.recordsOnLease = false;
    for (const w of this.registeredWaiters.splice(0)) w();
    if (leaseId === undefined) return;
    try {
      await this.options.etcd.leaseClient.leaseRevoke({ ID: leaseId }, { deadline: this.deadline() });
      this.log.info('lease revoked', { leaseId });
    } catch (err) {
      this.log.warn('could not revoke lease; it will expire', { leaseId, ttlSeconds: this.timings.ttlSeconds, error: errorMessage(err) });
    }
  }

  /**
   * Writes the member record again a little later (the applied digest changed): one write for a
   * burst of changes, with the digest as it is then (APPLIED_REFRESH_DELAY_MS).
   */
  refreshSoon(): void {
    if (this.refreshTimer || !this.abort) return;
    const base = this.options.appliedRefreshDelayMs ?? APPLIED_REFRESH_DELAY_MS;
    this.refreshTimer = this.options.clock.setTimeout(() => {
      this.refreshTimer = undefined;
      void this.refresh();
    // In steps of 100 ms: Node keeps one timer list per distinct duration, and 1,250 agents of
    // a simulated fleet would otherwise make 1,250 lists.
    }, Math.round((base * (1 + (this.options.random ?? Math.random)())) / 100) * 100);
  }

  /** Writes the member record again now (e.g. the applied digest changed). No-op while unregistered. */
  async refresh(): Promise<void> {
    if (!this.recordsOnLease || this.leaseId === undefined) return;
    try {
      await this.putMember(this.leaseId);
    } catch (err) {
      this.log.debug('member refresh failed; the keepalive loop will re-register', { error: errorMessage(err) });
      this.recordsOnLease = false;
    }
  }

  private deadline(): Date {
    return new Date(Date.now() + this.timings.callTimeoutMs);
  }

  private async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        await this.step();
        this.markReachable();
        this.backoff.reset();
        await sleep(this.timings.keepaliveIntervalMs, signal);
      } catch (err) {
        if (signal.aborted) break;
        if (err instanceof LeaseGoneError) {
          this.log.warn('lease lost', { leaseId: this.leaseId, reason: err.message });
          this.leaseId = undefined;
          this.recordsOnLease = false;
          continue;
        }
        this.markUnreachable(err);
        // Whatever happened, the records are re-checked and re-written once etcd answers.
        this.recordsOnLease = false;
        await sleep(this.backoff.next(), signal);
      }
    }
  }

  /** One pass: make sure there is a live lease and the records are on it, else renew. */
  private async step(): Promise<void> {
    let newLease = false;
    if (this.leaseId === undefined) {
      const res = await this.options.etcd.leaseClient.leaseGrant({ TTL: this.timings.ttlSeconds }, { deadline: this.deadline() });
      this.leaseId = res.ID;
      this.recordsOnLease = false;
      newLease = true;
    } else if (!this.recordsOnLease) {
      // After an outage the old lease may still be alive (a restarted etcd extends leases):
      // keep it, so the member key never disappears for a node that never went away.
      await this.keepalive(this.leaseId);
    }
    if (!this.recordsOnLease) {
      await this.register(this.leaseId, newLease);
      return;
    }
    await this.keepalive(this.leaseId);
  }

  /**
   * The cached facts (collected at the first need, then on the slow schedule and on
   * `refreshFacts`): what commands render templates from. Collecting all hardware facts takes
   * 0.2–0.3 s of CPU here and seconds on real servers; doing it per command dominated a no-op.
   */
  async currentFacts(): Promise<Facts> {
    return this.facts ?? this.collect();
  }

  /**
   * Collects the facts now and, when they changed, writes them (`facts updated`). Returns
   * whether they changed. Called by the slow schedule and on a hardware change; an operator's
   * request (`clusterctl node refresh-facts`) sets `always`, so that what etcd holds is this
   * collection even when the cached copy was the same.
   */
  async refreshFacts(always = false): Promise<boolean> {
    const before = this.factsPrint;
    const facts = await this.collect(true);
    const changed = this.factsPrint !== before;
    if (!changed && !always) return false;
    // While unregistered the facts go out with the next registration.
    if (this.recordsOnLease) {
      await this.putFacts(facts);
      this.log.info(changed ? 'facts updated' : 'facts written again on request', { nodeId: this.options.identity.nodeId });
    }
    return changed;
  }

  private collect(fresh = false): Promise<Facts> {
    if (this.collecting && !fresh) return this.collecting;
    const run = this.options.factsProvider().then((facts) => {
      const print = factsFingerprint(facts);
      if (print !== this.factsPrint || !this.facts) {
        this.facts = facts;
        this.factsPrint = print;
      }
      return this.facts;
    });
    this.collecting = run;
    void run.finally(() => { if (this.collecting === run) this.collecting = undefined; }).catch(() => undefined);
    return run;
  }

  private async register(leaseId: string, newLease: boolean): Promise<void> {
    const facts = await this.currentFacts();
    this.registeredAt = this.options.clock.iso();
    await this.putMember(leaseId);
    await this.putFacts(facts);
    this.recordsOnLease = true;
    this.registrations++;
    const fields = { nodeId: this.options.identity.nodeId, leaseId, ttlSeconds: this.timings.ttlSeconds, newLease };
    if (this.registrations === 1) this.log.info('registered', fields);
    else this.log.info('re-registered', fields);
    for (const w of this.registeredWaiters.splice(0)) w();
  }

  private memberRecord(): MemberRecord {
    const id = this.options.identity;
    return {
      nodeId: id.nodeId,
      hostname: id.hostname,
      agentVersion: VERSION,
      bootId: id.bootId,
      instanceId: id.instanceId,
      address: this.facts ? primaryAddress(this.facts) : '',
      appliedDigest: this.options.details?.().appliedDigest ?? '',
      // The registration's time, not this write's: a rewrite for a new applied digest then
      // changes nothing the coordinator's inventory reads (memberPutMatters), so starts no pass.
      registeredAt: this.registeredAt ?? this.options.clock.iso(),
    };
  }

  private async putMember(leaseId: string): Promise<void> {
    const key = this.options.keyspace.member(this.options.identity.nodeId);
    await this.options.etcd.put(key).value(JSON.stringify(this.memberRecord())).lease(leaseId).options({ deadline: this.deadline() });
  }

  private async putFacts(facts: Facts): Promise<void> {
    const key = this.options.keyspace.facts(this.options.identity.nodeId);
    await this.options.etcd.put(key).value(JSON.stringify(facts)).options({ deadline: this.deadline() });
  }

  /**
   * One keepalive on its own short stream, bounded by the call timeout. Throws LeaseGoneError
   * when etcd answers TTL <= 0 (it no longer knows the lease).
   */
  private async keepalive(leaseId: string): Promise<void> {
    const timeoutMs = this.timings.callTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new UnavailableError(`etcd keepalive got no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      const stream = await Promise.race([this.options.etcd.leaseClient.leaseKeepAlive({ deadline: this.deadline() }), timedOut]);
      let answered = false;
      const ttl = await Promise.race([
        new Promise<number>((resolve, reject) => {
          stream.on('data', (res) => { answered = true; resolve(Number(res.TTL)); });
          stream.on('error', reject);
          stream.on('end', () => reject(new UnavailableError('etcd closed the keepalive stream')));
          stream.write({ ID: leaseId });
        }),
        timedOut,
      ]).finally(() => {
        // A half-close ends the call cleanly. cancel() only for a hung call: etcd3 treats the
        // CANCELLED error of an open stream as a broken connection and redials every service
        // of the shared client (connection-pool.js markFailed), which is right only then.
        if (answered) stream.end();
        else stream.cancel();
      });
      if (!(ttl > 0)) throw new LeaseGoneError(`etcd answered the keepalive of lease ${leaseId} with TTL ${ttl}`);
    } finally {
      clearTimeout(timer);
    }
  }

  private markReachable(): void {
    if (this.reachable) return;
    this.reachable = true;
    this.log.info('etcd reachable', { downForMs: this.options.clock.now() - this.unreachableSince });
  }

  private markUnreachable(err: unknown): void {
    if (!this.reachable) {
      this.log.debug('etcd still unreachable', { error: errorMessage(err) });
      return;
    }
    this.reachable = false;
    this.unreachableSince = this.options.clock.now();
    // Once per outage: a fleet of agents retrying every second must not flood the journal.
    this.log.warn('etcd unreachable', { nodeId: this.options.identity.nodeId, error: errorMessage(err) });
  }

  private async refreshFactsLoop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await sleep(this.options.factsIntervalMs, signal);
      if (signal.aborted) break;
      try {
        await this.refreshFacts();
      } catch (err) {
        this.log.warn('facts refresh failed', { error: errorMessage(err) });
      }
    }
  }
}
