/**
 * Times every etcd transaction a replica makes: the client handed to the coordinator's parts
 * is this view of the real one, whose `kv.txn` reports its latency and errors. Every guarded
 * write (etcd-txn.ts runTxn) and every snapshot read (readPrefixes, readKeys) is a `txn`, so
 * this one method covers the coordinator's own etcd work; leases and watches pass through.
 *
 * A Proxy rather than a subclass: etcd3's builders reach the KV client through `this.kv` of
 * whatever object they were called on, so reads built with `client.getAll()` go through the
 * wrapped method too, and nothing of the client is copied or re-created.
 */
import type { Etcd3 } from 'etcd3';

export type TxnObserver = (seconds: number, failed: boolean) => void;

export function instrumentEtcd(client: Etcd3, observe: TxnObserver): Etcd3 {
  const kv = client.kv;
  const txn: typeof kv.txn = async (...args) => {
    const started = process.hrtime.bigint();
    let failed = true;
    try {
      const response = await kv.txn(...args);
      failed = false;
      return response;
    } finally {
      observe(Number(process.hrtime.bigint() - started) / 1e9, failed);
    }
  };
  const timedKv = new Proxy(kv, {
    get: (target, prop, receiver) => (prop === 'txn' ? txn : Reflect.get(target, prop, receiver) as unknown),
  });
  const proxy: Etcd3 = new Proxy(client, {
    get: (target, prop) => {
      if (prop === 'kv') return timedKv;
      const value = Reflect.get(target, prop, target) as unknown;
      // Methods run with the proxy as `this`, so what they build reads `this.kv` above.
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(proxy) : value;
    },
  });
  return proxy;
}
