/**
 * Revoked certificate serials (pki/revoked/<serial>), mirrored in memory from a watch so the
 * servers can ask `isRevoked(serial)` synchronously at the start of every call, and told at
 * once (`onRevoked`) so a live stream of a revoked agent can be closed.
 */
import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import type { Keyspace } from '../../shared/keyspace';
import type { Role } from '../../shared/pki/roles';
import type { TxnOp } from '../etcd-txn';
import { decodeRevokedRecord, type RevokedRecord } from './pki-records';

/** The write that revokes one certificate; goes into the caller's transaction. */
export function revokeOp(keyspace: Keyspace, entry: { serial: string; role: Role; name: string; notAfter: string }, reason: string, now: Date): TxnOp {
  const record: RevokedRecord = { serial: entry.serial, role: entry.role, name: entry.name, notAfter: entry.notAfter, revokedAt: now.toISOString(), reason };
  return { kind: 'put', key: keyspace.pkiRevoked(entry.serial), value: JSON.stringify(record) };
}

export type RevocationListener = (record: RevokedRecord) => void;

export class RevocationSet {
  private readonly revoked = new Map<string, RevokedRecord>();
  private readonly listeners = new Set<RevocationListener>();
  private watcher?: Watcher;

  private constructor(private readonly keyspace: Keyspace) {}

  /** Loads every revocation, then follows changes from the revision it loaded at (nothing is missed). */
  static async start(etcd: Etcd3, keyspace: Keyspace): Promise<RevocationSet> {
    const set = new RevocationSet(keyspace);
    const prefix = keyspace.pkiRevokedPrefix();
    const res = await etcd.getAll().prefix(prefix).exec();
    for (const kv of res.kvs) set.apply(kv);
    const next = (BigInt(res.header.revision) + 1n).toString();
    const watcher = await etcd.watch().prefix(prefix).startRevision(next).create();
    watcher.on('put', (kv) => set.apply(kv));
    watcher.on('delete', (kv) => {
      const serial = keyspace.parsePkiRevoked(kv.key.toString());
      if (serial) set.revoked.delete(serial);
    });
    set.watcher = watcher;
    return set;
  }

  private apply(kv: IKeyValue): void {
    const serial = this.keyspace.parsePkiRevoked(kv.key.toString());
    if (!serial) return;
    let record: RevokedRecord;
    try {
      record = decodeRevokedRecord(kv.value.toString());
    } catch {
      // A record we cannot read still revokes its serial: the key alone is the revocation.
      record = { serial, role: 'agent', name: '?', revokedAt: '', notAfter: '', reason: 'unreadable revocation record' };
    }
    const isNew = !this.revoked.has(serial);
    this.revoked.set(serial, record);
    if (isNew) for (const l of this.listeners) l(record);
  }

  isRevoked(serial: string): boolean {
    return this.revoked.has(serial);
  }

  get(serial: string): RevokedRecord | undefined {
    return this.revoked.get(serial);
  }

  get size(): number {
    return this.revoked.size;
  }

  /** Calls `listener` for every serial revoked from now on; returns the unsubscribe. */
  onRevoked(listener: RevocationListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.listeners.clear();
    await this.watcher?.cancel();
  }
}
