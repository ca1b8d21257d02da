/**
 * The audit trail (events/<seq>). Every change the coordinator makes is ONE etcd transaction
 * that also writes its event: the sequence number comes from the counter key
 * `meta/event-seq`, guarded by its mod revision and bumped in the same transaction, so there
 * is no change without its event and no event without its change, and sequence numbers
 * have no gaps or duplicates even across leaders.
 *
 * The counter is a hot key: concurrent commits would all race for it and retry O(n²) times
 * when 1,000 agents say hello at once. So an EventLog runs one transaction at a time and
 * caches the counter's (value, mod revision): with one writer (the leader) a transaction is
 * one round trip. Commits that arrive while one is in flight are group-committed: the next
 * transaction carries as many of them as etcd's limits allow (txn-batch.ts), each with its
 * own guards and its own event and sequence number. A fan-out to 10,000 nodes is then ~160
 * transactions instead of 20,000. Another writer moving the counter costs one refresh and a
 * retry.
 */
import { currentBinding, deadlineError, unbound, type RequestBinding } from './request-binding';
import { ConflictError, decodeEvent, encodeHistoryEntry, errorMessage, type Clock, type EventRecord, type Keyspace, type Logger } from '../shared';
import { Range, type Etcd3 } from 'etcd3';
import { readKeys, readPrefixes, runTxn, type Compare, type KeyState, type TxnOp } from './etcd-txn';
import { DEFAULT_SETTINGS } from './options';
import { failedGuards, isTooLarge, mergedCompares, packBatch, PACK_WINDOW_FACTOR, partBytes, type TxnLimits } from './txn-batch';

export type EventInput = Omit<EventRecord, 'seq' | 'at' | 'actor'> & { actor?: string };

export interface CommitRequest {
  compares: readonly Compare[];
  ops: readonly TxnOp[];
  event: EventInput;
  /**
   * The node record this commit writes, for its history (history/<nodeId>/<seq>-<ms>): written in
   * the same transaction, under the event's sequence number, so history never disagrees with the
   * record and costs no extra round trip (shared/node-history.ts).
   */
  history?: HistoryWrite;
}

export interface HistoryWrite {
  nodeId: string;
  /** The record exactly as put to nodes/<id> (its JSON is reused, not re-serialised). */
  recordJson: string;
  /** The full facts when the record's facts digest changed with this commit (history-facts/). */
  factsJson?: string;
}

/** The history puts of one commit (its event's seq and time). */
function historyOps(keyspace: Keyspace, h: HistoryWrite, event: EventRecord): TxnOp[] {
  const atMs = Date.parse(event.at);
  const { seq, at, type, actor, jobId, message } = event;
  const ops: TxnOp[] = [{ kind: 'put', key: keyspace.history(h.nodeId, seq, atMs), value: encodeHistoryEntry({ seq, at, type, actor, ...(jobId ? { jobId } : {}), message }, h.recordJson) }];
  if (h.factsJson !== undefined) ops.push({ kind: 'put', key: keyspace.historyFacts(h.nodeId, seq, atMs), value: h.factsJson });
  return ops;
}

/** Writes a commit adds besides its own ops: the event, and its history entries. */
function extraOps(r: CommitRequest): number {
  return 1 + (r.history ? (r.history.factsJson !== undefined ? 2 : 1) : 0);
}

function extraBytes(r: CommitRequest): number {
  const h = r.history;
  return 512 + r.event.message.length + (h ? 640 + r.event.message.length + h.recordJson.length + (h.factsJson?.length ?? 0) : 0);
}

export type CommitOutcome =
  | { succeeded: true; revision: string; seq: number }
  | { succeeded: false; revision: string; failed: Compare[]; current: Map<string, KeyState> };

export interface EventLogOptions {
  client: Etcd3;
  keyspace: Keyspace;
  clock: Clock;
  logger: Logger;
  /** Keep the last N events (default: settings.eventRetention). */
  retention?: number;
  /** The number in force at each trim (`clusterctl config set eventRetention=N`); without it, `retention`. */
  retentionNow?: () => Promise<number>;
  /** Default actor of events (`coordinator/<replicaId>`). */
  actor: string;
  /** Background trim period (default: settings.eventTrimIntervalMs); trims also follow every retention/10 appends. */
  trimIntervalMs?: number;
  /** Retries when only the counter moved (default: settings.eventCounterRetries). */
  maxCounterRetries?: number;
  /** Size of one group-committed transaction (default: settings.txnMaxOps, settings.txnMaxBytes). */
  limits?: TxnLimits;
}

interface Queued {
  request: CommitRequest;
  /** Transactions this commit lost only because another writer moved the counter. */
  counterRetries: number;
  resolve(outcome: CommitOutcome): void;
  reject(err: unknown): void;
  /** The request this commit is for (its deadline), when it came from a call. */
  binding?: RequestBinding;
}

interface Counter {
  value: number;
  modRevision: string;
}

export class EventLog {
  private readonly client: Etcd3;
  private readonly keyspace: Keyspace;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly actor: string;
  readonly retention: number;
  private readonly retentionNow?: () => Promise<number>;
  private readonly trimIntervalMs: number;
  private readonly maxCounterRetries: number;
  private readonly limits: TxnLimits;
  private counter?: Counter;
  /** Commits not yet sent, in order of arrival. */
  private pending: Queued[] = [];
  /** The drain loop while it runs: one transaction at a time. */
  private draining?: Promise<void>;
  /** Most commits per transaction until one goes through (halved when etcd refuses a size). */
  private batchCap = Infinity;
  private appendsSinceTrim = 0;
  private trimTimer?: NodeJS.Timeout;
  private trimming?: Promise<number>;

  constructor(options: EventLogOptions) {
    this.client = options.client;
    this.keyspace = options.keyspace;
    this.clock = options.clock;
    this.log = options.logger.child({ component: 'event-log' });
    this.actor = options.actor;
    this.retention = options.retention ?? DEFAULT_SETTINGS.eventRetention;
    if (options.retentionNow) this.retentionNow = options.retentionNow;
    this.trimIntervalMs = options.trimIntervalMs ?? DEFAULT_SETTINGS.eventTrimIntervalMs;
    this.maxCounterRetries = options.maxCounterRetries ?? DEFAULT_SETTINGS.eventCounterRetries;
    this.limits = options.limits ?? { maxOps: DEFAULT_SETTINGS.txnMaxOps, maxBytes: DEFAULT_SETTINGS.txnMaxBytes };
  }

  /** Starts background trimming. */
  start(): void {
    if (this.trimTimer) return;
    this.trimTimer = setInterval(() => this.trimSoon(), this.trimIntervalMs);
    this.trimTimer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.trimTimer);
    this.trimTimer = undefined;
    await this.draining?.catch(() => undefined);
    await this.trimming?.catch(() => undefined);
  }

  /**
   * Runs `compares → ops` plus the event atomically (possibly in one transaction with other
   * commits, never mixing their outcomes). A failed guard of the caller is returned (with what
   * the guarded keys held) for the caller to judge; a moved counter is handled here.
   */
  commit(request: CommitRequest): Promise<CommitOutcome> {
    return new Promise<CommitOutcome>((resolve, reject) => {
      const binding = currentBinding();
      this.pending.push({ request, counterRetries: 0, resolve, reject, ...(binding ? { binding } : {}) });
      this.kick();
    });
  }

  /** Starts the drain loop unless it runs; a commit queued as it ended starts it again. */
  private kick(): void {
    if (this.draining) return;
    // The drain serves every queued writer: it must not run in (and be refused by) the binding
    // of whichever request happened to start it. Each writer's own deadline is checked below.
    this.draining = unbound(() => this.drain()).finally(() => {
      this.draining = undefined;
      if (this.pending.length > 0) this.kick();
    });
  }

  private async drain(): Promise<void> {
    // One turn of the event loop first, so the commits a caller issues together (a batch of
    // nodes, Promise.all) share the first transaction; later ones gather while it is in flight.
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.pending.length > 0) {
      // The next transaction is packed from the front of the queue only: a window a few times
      // what one transaction holds (room to step over commits that touch a key already taken).
      // Looking at the whole queue each time made a fan-out quadratic: at 10,000 nodes, 20,000
      // queued commits were filtered, mapped and copied for each of ~650 transactions.
      const window = this.pending.splice(0, Math.min(this.pending.length, PACK_WINDOW_FACTOR * this.limits.maxOps));
      const live = window.filter((q) => {
        const late = deadlineError(q.binding, 'the etcd transaction');
        if (late) q.reject(late);
        return !late;
      });
      if (live.length === 0) continue;
      const parts = live.map((q) => q.request);
      const seqKey = this.keyspace.eventSeq();
      const taken = packBatch(parts, this.limits, { compares: 1, ops: 1, bytes: 64 }, (i) => extraOps(parts[i]), (i) => partBytes(parts[i], extraBytes(parts[i])), this.batchCap);
      const batch = taken.map((i) => live[i]);
      const takenSet = new Set(taken);
      this.pending.unshift(...live.filter((_, i) => !takenSet.has(i)));
      try {
        const retry = await this.commitBatch(batch, seqKey);
        this.pending.unshift(...retry);
      } catch (err) {
        if (batch.length > 1 && isTooLarge(err)) {
          // Our size estimate was off for this content: split and go again.
          this.batchCap = Math.max(1, Math.floor(batch.length / 2));
          this.pending.unshift(...batch);
          continue;
        }
        for (const q of batch) q.reject(err);
      }
    }
  }

  /** One transaction for `batch`; returns the commits to run again (only the counter or a neighbour failed). */
  private async commitBatch(batch: Queued[], seqKey: string): Promise<Queued[]> {
    const counter = this.counter ?? (await this.readCounter());
    const ops: TxnOp[] = [];
    const seqs: number[] = [];
    batch.forEach((q, i) => {
      const seq = counter.value + 1 + i;
      seqs.push(seq);
      const e = q.request.event;
      const record: EventRecord = { seq, at: this.clock.iso(), ...e, actor: e.actor ?? this.actor };
      ops.push(...q.request.ops, { kind: 'put', key: this.keyspace.event(seq), value: JSON.stringify(record) });
      if (q.request.history) ops.push(...historyOps(this.keyspace, q.request.history, record));
    });
    const last = counter.value + batch.length;
    const counterGuard: Compare = { key: seqKey, target: 'Mod', op: '==', value: counter.modRevision, reason: 'event-seq' };
    const outcome = await runTxn(this.client, [...mergedCompares(batch.map((q) => q.request)), counterGuard], [
      ...ops,
      { kind: 'put', key: seqKey, value: String(last) },
    ]);
    if (outcome.succeeded) {
      this.counter = { value: last, modRevision: outcome.revision };
      this.batchCap = Infinity;
      batch.forEach((q, i) => q.resolve({ succeeded: true, revision: outcome.revision, seq: seqs[i] }));
      this.appendsSinceTrim += batch.length;
      if (this.appendsSinceTrim >= Math.max(1, Math.floor(this.retention / 10))) this.trimSoon();
      return [];
    }
    this.counter = counterFrom(outcome.current.get(seqKey));
    const counterMoved = outcome.failed.includes(counterGuard);
    const retry: Queued[] = [];
    for (const q of batch) {
      const failed = failedGuards(q.request, outcome.current);
      if (failed.length > 0) {
        q.resolve({ succeeded: false, revision: outcome.revision, failed, current: outcome.current });
      } else if (counterMoved && ++q.counterRetries > this.maxCounterRetries) {
        q.reject(new ConflictError(`could not record event ${q.request.event.type}: the event counter kept moving (another writer?); retry`));
      } else {
        retry.push(q); // its own guards held: the counter (refreshed above) or another commit failed the batch
      }
    }
    return retry;
  }

  private async readCounter(): Promise<Counter> {
    const { kvs } = await readKeys(this.client, [this.keyspace.eventSeq()]);
    const kv = kvs[0];
    return counterFrom(kv ? { createRevision: kv.create_revision, modRevision: kv.mod_revision, version: kv.version, value: kv.value.toString() } : undefined);
  }

  /** Events in sequence order, after `afterSeq`, at most `limit` (newest last). */
  async list(options: { afterSeq?: number; limit?: number } = {}): Promise<EventRecord[]> {
    const { kvs } = await readPrefixes(this.client, [{ prefix: this.keyspace.eventsPrefix() }]);
    const out: EventRecord[] = [];
    for (const kv of kvs[0]) {
      const key = kv.key.toString();
      const seq = this.keyspace.parseEvent(key);
      if (seq === undefined || seq <= (options.afterSeq ?? 0)) continue;
      try {
        out.push(decodeEvent(key, kv.value.toString()));
      } catch (err) {
        this.log.warn('skipping unreadable event', { key, err: errorMessage(err) });
      }
    }
    return options.limit !== undefined ? out.slice(-options.limit) : out;
  }

  /** Deletes all but the newest `retention` events; returns how many were deleted. */
  trim(): Promise<number> {
    // Queued behind a trim in flight, never joined to it: that one read the counter earlier
    // and would leave events this caller expects gone.
    const run = (this.trimming ?? Promise.resolve(0)).catch(() => 0).then(() => this.trimNow());
    const tracked: Promise<number> = run.finally(() => {
      if (this.trimming === tracked) this.trimming = undefined;
    });
    tracked.catch(() => undefined); // the caller gets `run`'s rejection; this copy is bookkeeping
    this.trimming = tracked;
    return run;
  }

  /** Background trims coalesce: one in flight is enough, the next append triggers another. */
  private trimSoon(): void {
    this.appendsSinceTrim = 0;
    if (this.trimming) return;
    // Housekeeping, not part of the request whose append triggered it: not bound to its deadline.
    unbound(() => this.trim()).catch((err: unknown) => this.log.warn('trimming events failed', { err: errorMessage(err) }));
  }

  private async trimNow(): Promise<number> {
    const retention = this.retentionNow ? await this.retentionNow() : this.retention;
    const last = (await this.readCounter()).value;
    const keepFrom = last - retention + 1;
    if (keepFrom <= 1) return 0;
    // Not fenced: deleting events older than the retention window is idempotent and safe
    // for any replica, and the counter is not touched.
    const res = await this.client.delete().range(new Range(this.keyspace.event(0), this.keyspace.event(keepFrom))).exec();
    const deleted = Number(res.deleted);
    if (deleted > 0) this.log.debug('trimmed events', { deleted, keepFrom });
    return deleted;
  }
}

function counterFrom(state: KeyState | undefined): Counter {
  if (!state) return { value: 0, modRevision: '0' };
  const value = Number(state.value);
  return { value: Number.isSafeInteger(value) && value >= 0 ? value : 0, modRevision: state.modRevision };
}
