/**
 * What every leader-side reconciler is built from: the etcd it reads, the leadership it runs
 * under, and the timing of its ReconcileLoop. Each reconciler adds what it acts through.
 */
import type { Etcd3 } from 'etcd3';
import type { Clock, Keyspace, Logger } from '../../shared';

export interface ReconcilerOptions {
  client: Etcd3;
  keyspace: Keyspace;
  isLeader: () => boolean;
  clock: Clock;
  logger: Logger;
  /** Period of the timer pass (each reconciler states its default). */
  intervalMs?: number;
  /** @default DEFAULT_DEBOUNCE_MS */
  debounceMs?: number;
}
