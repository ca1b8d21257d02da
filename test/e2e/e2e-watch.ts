/**
 * Waiting on a node record through an etcd watch rather than by polling: failure-detection
 * tests and the benchmark time the moment the coordinator writes the change, not the moment a
 * poll happened to look.
 */
import type { Etcd3, Watcher } from 'etcd3';
import { decodeNode, type NodeRecord } from '../../shared/records';
import { KEYSPACE } from './e2e-etcd';

export interface NodeWatch {
  /** Resolves with the wall time (Date.now()) of the first record matching `predicate`. */
  until(predicate: (n: NodeRecord) => boolean, timeoutMs: number, what: string): Promise<{ at: number; node: NodeRecord }>;
  close(): Promise<void>;
}

export async function watchNode(client: Etcd3, nodeId: string): Promise<NodeWatch> {
  const key = KEYSPACE.node(nodeId);
  const watcher: Watcher = await client.watch().key(key).create();
  let latest: NodeRecord | undefined;
  let waiters: { predicate: (n: NodeRecord) => boolean; resolve: (v: { at: number; node: NodeRecord }) => void }[] = [];
  watcher.on('put', (kv) => {
    const at = Date.now();
    latest = decodeNode(key, kv.value.toString());
    const node = latest;
    waiters = waiters.filter((w) => {
      if (!w.predicate(node)) return true;
      w.resolve({ at, node });
      return false;
    });
  });
  // The current value, in case it already matches when someone starts waiting.
  const now = await client.get(key).string();
  if (now !== null && latest === undefined) latest = decodeNode(key, now);
  return {
    until(predicate, timeoutMs, what) {
      return new Promise((resolve, reject) => {
        if (latest && predicate(latest)) return resolve({ at: Date.now(), node: latest });
        const timer = setTimeout(() => {
          waiters = waiters.filter((w) => w.resolve !== done);
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last record: ${JSON.stringify(latest)})`));
        }, timeoutMs);
        const done = (v: { at: number; node: NodeRecord }): void => {
          clearTimeout(timer);
          resolve(v);
        };
        waiters.push({ predicate, resolve: done });
      });
    },
    close: () => watcher.cancel(),
  };
}
