/**
 * Single lookups made in the same turn of the event loop, loaded together. A job's batch of
 * thousands of nodes each asks for its facts as its command is built; one etcd read per node was
 * one round trip (and one gRPC call to encode and decode on the leader) each. The lookups of
 * one turn go out as one read per `maxKeys` keys (a read-only transaction of that many ranges:
 * etcd's `--max-txn-ops` bounds it), and each caller gets its own key's value.
 */
export class BatchLoader<K, V> {
  private pending = new Map<K, { resolve(v: V | undefined): void; reject(err: unknown): void }[]>();
  private scheduled = false;

  /** `loadMany`: the values of the keys found (a key absent from the map has none). */
  constructor(private readonly loadMany: (keys: K[]) => Promise<ReadonlyMap<K, V>>, private readonly maxKeys: number) {}

  load(key: K): Promise<V | undefined> {
    return new Promise<V | undefined>((resolve, reject) => {
      const waiters = this.pending.get(key);
      if (waiters) waiters.push({ resolve, reject });
      else this.pending.set(key, [{ resolve, reject }]);
      if (!this.scheduled) {
        this.scheduled = true;
        // One turn: the lookups a batch's nodes make together (Promise.all) share the reads.
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const entries = [...this.pending];
    this.pending = new Map();
    for (let i = 0; i < entries.length; i += this.maxKeys) {
      const chunk = entries.slice(i, i + this.maxKeys);
      this.loadMany(chunk.map(([k]) => k)).then(
        (found) => { for (const [k, waiters] of chunk) for (const w of waiters) w.resolve(found.get(k)); },
        (err: unknown) => { for (const [, waiters] of chunk) for (const w of waiters) w.reject(err); },
      );
    }
  }
}
