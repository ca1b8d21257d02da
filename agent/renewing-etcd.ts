/**
 * The agent's etcd client across certificate renewals. etcd3's client (and grpc-js under it)
 * fixes its TLS credentials when it is built, and a connection keeps working after its
 * certificate expires (TLS checks it only at the handshake): an agent that renewed at two
 * thirds of 90 days but kept its first client could not open a new etcd connection after day 90
 * (etcd restarted, a member replaced), and its lease then expired.
 *
 * So the agent holds one stable client object (`client`) that forwards every call to the
 * current etcd3 client, and `replace` makes a new one with the renewed certificate. Calls made
 * afterwards use it; the membership's lease is a lease id in etcd, not an object of the old
 * client, so its next keepalive renews the same lease through the new client (no re-grant, the
 * member key never goes away). Watches are re-made by their owner (`onReplaced`). The old client
 * is closed after `closeAfterMs`, once every call in flight on it has met its deadline.
 */
import type { Etcd3 } from 'etcd3';

export interface RenewingEtcdOptions {
  /** How long the replaced client stays open for calls in flight. @default 5_000 */
  closeAfterMs?: number;
}

export class RenewingEtcd {
  /** Forwards to the current client: give this to everything that calls etcd. */
  readonly client: Etcd3;
  private current: Etcd3;
  private readonly retired = new Set<{ client: Etcd3; timer: NodeJS.Timeout }>();
  private readonly listeners = new Set<() => void | Promise<void>>();
  private closed = false;

  constructor(first: Etcd3, private readonly options: RenewingEtcdOptions = {}) {
    this.current = first;
    this.client = new Proxy(first, {
      get: (_target, prop) => {
        const c = this.current;
        const value: unknown = Reflect.get(c, prop, c);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(c) : value;
      },
    });
  }

  /** Hears every replacement, after calls already use the new client (re-make watches here). */
  onReplaced(listener: () => void | Promise<void>): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Makes `next` the client every later call uses; the old one is closed after the grace. */
  async replace(next: Etcd3): Promise<void> {
    if (this.closed) {
      next.close();
      return;
    }
    const old = this.current;
    this.current = next;
    for (const l of [...this.listeners]) await l();
    const entry = { client: old, timer: setTimeout(() => { this.retired.delete(entry); old.close(); }, this.options.closeAfterMs ?? 5_000) };
    entry.timer.unref();
    this.retired.add(entry);
  }

  close(): void {
    this.closed = true;
    for (const r of this.retired) {
      clearTimeout(r.timer);
      r.client.close();
    }
    this.retired.clear();
    this.current.close();
  }
}
