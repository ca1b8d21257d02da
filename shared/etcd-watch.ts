/**
 * Watches that feed a reconcile loop. A loop's pass reads the whole state, so every watch
 * event — put, delete, and the watcher's (re)connection — only has to `trigger()` it:
 * a delete matters as much as a put (a removed group or node changes the plan), and after
 * the client reconnects events may have been missed, so a reconnect is a full resync.
 */
import type { Etcd3 } from 'etcd3';
import type { Logger } from './logger';
import { watchHub, type WatchSubscriber } from './watch-hub';

export interface PrefixWatch {
  /**
   * Stops its callbacks at once; resolves when etcd has acknowledged the cancels of the watchers
   * it was the last subscriber of (or failed to).
   */
  stop(): Promise<void>;
}

export interface WatchOptions {
  /**
   * Only puts and deletes of keys it accepts call `onChange` (a reconnect always does). E.g.
   * the job runner follows job records, not the per-node progress records under them, which
   * change with every progress flush. @default every key
   */
  keyFilter?: (key: string) => boolean;
  /**
   * Of the puts the key filter accepts, only those it accepts call `onChange`; it sees the value
   * before the put (absent: the key was created), so a rewrite that changes nothing the loop
   * reads can be passed over. Setting it makes the watchers ask etcd for previous values.
   * @default every put
   */
  putFilter?: (key: string, value: Buffer, previous: Buffer | undefined) => boolean;
  /**
   * Whether the put filter needs the previous values (etcd then sends each put's old value
   * too); false for a filter that decides from the new value alone. @default true
   */
  previousValues?: boolean;
}

/**
 * Calls `onChange` on every put/delete under each prefix (with the key) and on every (re)connect
 * of a watcher (without one: anything may have changed meanwhile). The etcd watchers are shared
 * with every other caller on the same client and prefix (watch-hub.ts): etcd sends each event once.
 */
export function watchPrefixes(client: Etcd3, prefixes: readonly string[], onChange: (key?: string) => void, logger: Logger, options: WatchOptions = {}): PrefixWatch {
  const filter = options.keyFilter;
  const putFilter = options.putFilter;
  const subscriber: WatchSubscriber = {
    previousValues: putFilter !== undefined && options.previousValues !== false,
    logger,
    put(key, value, previous) {
      if ((!filter || filter(key)) && (!putFilter || putFilter(key, value, previous))) onChange(key);
    },
    delete(key) {
      if (!filter || filter(key)) onChange(key);
    },
    resync() {
      onChange();
    },
  };
  const hub = watchHub(client);
  const subscriptions = prefixes.map((prefix) => hub.subscribe(prefix, subscriber));
  return {
    async stop() {
      await Promise.all(subscriptions.map((s) => s.stop()));
    },
  };
}
