/**
 * Watches that feed a reconcile loop. A loop's pass reads the whole state, so every watch
 * event — put, delete, and the watcher's (re)connection — only has to `trigger()` it:
 * a delete matters as much as a put (a removed group or node changes the plan), and after
 * the client reconnects events may have been missed, so a reconnect is a full resync.
 */
import type { Etcd3, Watcher } from 'etcd3';
import { errorMessage } from './errors';
import type { Logger } from './logger';

export interface PrefixWatch {
  /** Cancels every watcher; resolves when etcd has acknowledged the cancels (or failed to). */
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
 * of a watcher (without one: anything may have changed meanwhile).
 */
export function watchPrefixes(client: Etcd3, prefixes: readonly string[], onChange: (key?: string) => void, logger: Logger, options: WatchOptions = {}): PrefixWatch {
  const filter = options.keyFilter;
  const putFilter = options.putFilter;
  const onKey = (kv: { key: Buffer }): void => {
    const key = kv.key.toString();
    if (!filter || filter(key)) onChange(key);
  };
  const onPut = (kv: { key: Buffer; value: Buffer }, previous?: { value: Buffer }): void => {
    const key = kv.key.toString();
    if ((!filter || filter(key)) && (!putFilter || putFilter(key, kv.value, previous?.value))) onChange(key);
  };
  const watchers: Watcher[] = [];
  let stopped = false;
  for (const prefix of prefixes) {
    const builder = client.watch().prefix(prefix);
    const w = (putFilter && options.previousValues !== false ? builder.withPreviousKV() : builder).watcher();
    w.on('put', onPut);
    w.on('delete', onKey);
    w.on('connected', () => onChange());
    w.on('error', (err) => logger.warn('watch error; it reconnects, and the timer pass catches up meanwhile', { prefix, err: errorMessage(err) }));
    watchers.push(w);
  }
  return {
    async stop() {
      if (stopped) return;
      stopped = true;
      await Promise.all(watchers.map((w) => {
        w.removeAllListeners();
        w.on('error', () => undefined);
        return w.cancel().catch(() => undefined);
      }));
    },
  };
}
