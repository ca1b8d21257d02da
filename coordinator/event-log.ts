/**
 * The audit trail (events/<seq>). Every change the coordinator makes is ONE etcd transaction
 * that also writes its event: the sequence number comes from the counter key
 * `meta/event-seq`, guarded by its mod revision and bumped in the same transaction, so there
 * is no change without its event and no event without its change, and sequence numbers
 * have no gaps or duplicates even across leaders.
 *
 * The counter is a hot key: concurrent commits would all race for it and retry O(n²) times
 * when 1,000 agents say hello at once. So commits of one EventLog run one at a time, and the
 * counter's (value, mod revision) is cached: with one writer (the leader) each commit is
 * exactly one round trip. Another writer moving the counter costs one refresh and a retry.
 */
import { unbound } from './request-binding';
import { CAS_LOST, ConflictError, decodeEvent, errorMessage, retryOnConflict, type Clock, type EventRecord, type Keyspace, type Logger } from '../shared';
import { Range, type Etcd3 } from 'etcd3';
import { readKeys, readPrefixes, runTxn, type Compare, type KeyState, type TxnOp } from './etcd-txn';
import { DEFAULT_SETTINGS } from './options';

export type EventInput = Omit<EventRecord, 'seq' | 'at' | 'actor'> & { actor?: string };

export interface CommitRequest {
  compares: readonly Compare[];
  ops: readonly TxnOp[];
  event: EventInput;
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
  /** Default actor of events (`coordinator/<replicaId>`). */
  actor: string;
  /** Background trim period (default: settings.eventTrimIntervalMs); trims also follow every retention/10 appends. */
  trimIntervalMs?: number;
  /** Retries when only the counter moved (default: settings.eventCounterRetries). */
  maxCounterRetries?: number;
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
  private readonly trimIntervalMs: number;
  private readonly maxCounterRetries: number;
  private counter?: Counter;
  /** Tail of the commit queue: commits run one after another. */
  private queue: Promise<unknown> = Promise.resolve();
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
    this.trimIntervalMs = options.trimIntervalMs ?? DEFAULT_SETTINGS.eventTrimIntervalMs;
    this.maxCounterRetries = options.maxCounterRetries ?? DEFAULT_SETTINGS.eventCounterRetries;
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
    await this.queue.catch(() => undefined);
    await this.trimming?.catch(() => undefined);
  }

  /**
   * Runs `compares → ops` plus the event as one transaction. A failed guard of the caller is
   * returned (with what the guarded keys held) for the caller to judge; a moved counter is
   * handled here.
   */
  commit(request: CommitRequest): Promise<CommitOutcome> {
    const run = this.queue.then(() => this.commitNow(request));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async commitNow(request: CommitRequest): Promise<CommitOutcome> {
    const seqKey = this.keyspace.eventSeq();
    return retryOnConflict(this.maxCounterRetries + 1, async (): Promise<CommitOutcome | typeof CAS_LOST> => {
      const counter = this.counter ?? (await this.readCounter());
      const seq = counter.value + 1;
      const record: EventRecord = { seq, at: this.clock.iso(), ...request.event, actor: request.event.actor ?? this.actor };
      const counterGuard: Compare = { key: seqKey, target: 'Mod', op: '==', value: counter.modRevision, reason: 'event-seq' };
      const outcome = await runTxn(this.client, [...request.compares, counterGuard], [
        ...request.ops,
        { kind: 'put', key: seqKey, value: String(seq) },
        { kind: 'put', key: this.keyspace.event(seq), value: JSON.stringify(record) },
      ]);
      if (outcome.succeeded) {
        this.counter = { value: seq, modRevision: outcome.revision };
        if (++this.appendsSinceTrim >= Math.max(1, Math.floor(this.retention / 10))) this.trimSoon();
        return { succeeded: true, revision: outcome.revision, seq };
      }
      this.counter = counterFrom(outcome.current.get(seqKey));
      const others = outcome.failed.filter((c) => c !== counterGuard);
      if (others.length > 0) return { succeeded: false, revision: outcome.revision, failed: others, current: outcome.current };
      return CAS_LOST; // only the counter moved: refreshed above, try again
    }, () => new ConflictError(`could not record event ${request.event.type}: the event counter kept moving (another writer?); retry`));
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
    const last = (await this.readCounter()).value;
    const keepFrom = last - this.retention + 1;
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
