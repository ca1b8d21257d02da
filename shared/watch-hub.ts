/**
 * One etcd watcher per prefix per client, shared by every subscriber in the process
 * (`watchPrefixes` subscribes through it). The leader's loops watch the same prefixes: nodes/
 * three times, jobs/ four, groups/ three. With a watcher each, etcd sent every event once per
 * watcher and the coordinator decoded every copy, which in a 1,000-node fan-out (a put of
 * nodes/<id> and of jobs/<job>/nodes/<id> per node change) was a large share of both processes'
 * CPU (bench/README.md, fanout). Here etcd sends each event once and it is dispatched to every
 * subscriber, whose own filters decide.
 *
 * - Only the exact same prefix shares: one nested in another (jobs/<id>/nodes/ in jobs/, a single
 *   key such as the manager-config key watched as a prefix) is a watcher of its own, as it was.
 * - Previous values: a watcher asks etcd for them when a subscriber needs them. One that joins a
 *   watcher opened without them re-opens it with them, resuming from the revision the old one had
 *   reached, so nothing is missed and nobody else sees a resync. (The other choice, asking for
 *   them always, would double the bytes of jobs/ for the job runner and retention when no
 *   subscriber reads them; in the leader both orders happen once per leadership.) A watcher keeps
 *   them until its last subscriber stops.
 * - A (re)connect of the etcd watcher calls every subscriber's `resync` (etcd3 replays from the
 *   last revision seen, but the loops treat a reconnect as "anything may have changed"); a
 *   subscriber joining a connected watcher gets one `resync` soon after, as its own watcher's
 *   'connected' would have given it.
 * - A subscriber's removal is immediate (no callback afterwards); the last one's removes the
 *   watcher from the hub at once, so a subscriber arriving while etcd acknowledges the cancel
 *   opens a fresh watcher rather than joining a cancelled one.
 */
import type { Etcd3, IKeyValue, Watcher, WatchBuilder } from 'etcd3';
import { errorMessage } from './errors';
import type { Logger } from './logger';

/** What the hub calls for each event of a prefix; filtering is the subscriber's. */
export interface WatchSubscriber {
  /** Whether it reads each put's previous value (the watcher then asks etcd for them). */
  readonly previousValues: boolean;
  /** Where the watcher's errors are logged while this subscriber is its first. */
  readonly logger: Logger;
  /** `previous` is the value before the put; only given to a subscriber with `previousValues`. */
  put(key: string, value: Buffer, previous: Buffer | undefined): void;
  delete(key: string): void;
  /** The watcher (re)connected, or the subscriber joined a connected one: anything may have changed. */
  resync(): void;
}

/** A subscriber's handle: `stop()` removes it; the last one's also cancels the etcd watcher. */
export interface WatchSubscription {
  /** Resolves when etcd has acknowledged the cancel (or failed to), or at once if others remain. */
  stop(): Promise<void>;
}

interface Member {
  readonly subscriber: WatchSubscriber;
  /** It has had a `resync` for the watcher's current connection. */
  synced: boolean;
}

class SharedWatch {
  private readonly members = new Set<Member>();
  private watcher: Watcher;
  private withPrevious = false;
  private connected = false;
  /** The watcher was re-opened from the revision its predecessor had reached: its first connect is not news. */
  private resumed = false;
  /** etcd cancelled the watcher (error): no cancel of ours would be acknowledged. */
  private dead = false;
  /** Cancels of the watchers this one replaced (prevKV upgrade); the last stop awaits them too. */
  private readonly retiring: Promise<void>[] = [];

  constructor(private readonly watch: () => WatchBuilder, readonly prefix: string, private readonly forget: (w: SharedWatch) => void) {
    this.watcher = this.open();
  }

  subscribe(subscriber: WatchSubscriber): WatchSubscription {
    const member: Member = { subscriber, synced: false };
    this.members.add(member);
    if (subscriber.previousValues && !this.withPrevious) {
      this.reopenWithPrevious();
    } else if (this.connected) {
      setImmediate(() => {
        if (!this.members.has(member) || member.synced) return;
        member.synced = true;
        this.call(() => subscriber.resync());
      });
    }
    let stopped: Promise<void> | undefined;
    return { stop: () => (stopped ??= this.remove(member)) };
  }

  private open(startRevision?: string): Watcher {
    let builder = this.watch().prefix(this.prefix);
    if (this.withPrevious) builder = builder.withPreviousKV();
    if (startRevision !== undefined) builder = builder.startRevision(startRevision);
    const w = builder.watcher();
    w.on('put', (kv, previous) => this.onPut(kv, previous));
    w.on('delete', (kv) => this.onDelete(kv));
    w.on('connected', () => this.onConnected());
    w.on('disconnected', () => { this.connected = false; });
    w.on('error', (err) => this.onError(err));
    return w;
  }

  /**
   * A subscriber needs previous values this watcher does not ask for: a new watcher with them,
   * from the revision the old one reached if it is connected (its subscribers are synced up to
   * there), and the old one cancelled. Its events stop at once, so none reaches anyone twice.
   */
  private reopenWithPrevious(): void {
    const old = this.watcher;
    const revision = this.connected ? old.lastRevision() : null;
    this.withPrevious = true;
    this.resumed = revision !== null && revision !== undefined;
    this.connected = false;
    this.retiring.push(this.retire(old));
    this.watcher = this.open(this.resumed ? String(revision) : undefined);
  }

  private onPut(kv: IKeyValue, previous: IKeyValue | undefined): void {
    const key = kv.key.toString();
    // A Set's iteration skips members removed meanwhile: none is called after its stop().
    for (const m of this.members) {
      const s = m.subscriber;
      this.call(() => s.put(key, kv.value, s.previousValues ? previous?.value : undefined));
    }
  }

  private onDelete(kv: IKeyValue): void {
    const key = kv.key.toString();
    for (const m of this.members) {
      const s = m.subscriber;
      this.call(() => s.delete(key));
    }
  }

  private onConnected(): void {
    this.connected = true;
    const quiet = this.resumed;
    this.resumed = false;
    for (const m of this.members) {
      if (quiet && m.synced) continue;
      m.synced = true;
      const s = m.subscriber;
      this.call(() => s.resync());
    }
  }

  /**
   * etcd3 emits 'error' when etcd cancels the watcher (e.g. a revision compacted away, a permission
   * refused): it is then out of etcd3's manager and never reconnects. Logged once, for all its
   * subscribers; the hub forgets it so a later subscriber opens a new watcher, as it would have
   * opened its own.
   */
  private onError(err: Error): void {
    const first = this.members.values().next().value;
    first?.subscriber.logger.warn('watch error; the timer pass catches up meanwhile', {
      prefix: this.prefix, subscribers: this.members.size, err: errorMessage(err),
    });
    this.dead = true;
    this.connected = false;
    this.forget(this);
  }

  /** A subscriber's exception must not keep the event from the others: rethrown outside, as etcd3 does. */
  private call(f: () => void): void {
    try {
      f();
    } catch (err) {
      setImmediate(() => { throw err; });
    }
  }

  private async remove(member: Member): Promise<void> {
    if (!this.members.delete(member) || this.members.size > 0) return;
    this.forget(this);
    const cancels = [...this.retiring];
    if (!this.dead) cancels.push(this.retire(this.watcher));
    await Promise.all(cancels);
  }

  private retire(w: Watcher): Promise<void> {
    w.removeAllListeners();
    w.on('error', () => undefined);
    return w.cancel().catch(() => undefined);
  }
}

/** The shared watchers of one etcd client, by prefix. */
class WatchHub {
  private readonly watches = new Map<string, SharedWatch>();

  constructor(private readonly client: Etcd3) {}

  subscribe(prefix: string, subscriber: WatchSubscriber): WatchSubscription {
    let shared = this.watches.get(prefix);
    if (!shared) {
      // Bound now: through agent/renewing-etcd.ts's forwarding client this is the client of today,
      // the one this hub is keyed by (see hubs below), also for a re-open later.
      const watch = this.client.watch.bind(this.client);
      shared = new SharedWatch(watch, prefix, (w) => {
        if (this.watches.get(w.prefix) === w) this.watches.delete(w.prefix);
      });
      this.watches.set(prefix, shared);
    }
    return shared.subscribe(subscriber);
  }
}

/**
 * Hubs by the client's watch connection (`watchClient`, one per etcd3 client object) rather than
 * by the object handed in: the agent's `RenewingEtcd.client` is one object that forwards to
 * whichever client is current, and a watch re-made after a certificate renewal must go to the new
 * client, not join a watcher of the old one (closed a few seconds later). The coordinator's
 * instrumented client (etcd-metrics.ts) forwards it too, so its loops share with each other.
 */
const hubs = new WeakMap<object, WatchHub>();

export function watchHub(client: Etcd3): WatchHub {
  const key = client.watchClient;
  let hub = hubs.get(key);
  if (!hub) {
    hub = new WatchHub(client);
    hubs.set(key, hub);
  }
  return hub;
}
