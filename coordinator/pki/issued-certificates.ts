/**
 * The issued-certificate lists kept per agent (pki/agents/<id>) and per user (pki/users/<name>):
 * adding a serial keeps the list short (entries past their notAfter are dropped), and
 * revoking marks every live entry and writes its pki/revoked/<serial> in the same transaction.
 */
import type { Keyspace } from '../../shared/keyspace';
import type { Role } from '../../shared/pki/roles';
import type { TxnOp } from '../etcd-txn';
import type { IssuedSerial } from './pki-records';
import { revokeOp } from './revocation-set';

/** Entries still worth keeping at `now`: unexpired ones (revoked or not). */
export function withIssued(list: readonly IssuedSerial[], issued: { serial: string; notAfter: Date }, now: Date): IssuedSerial[] {
  return [
    ...list.filter((e) => Date.parse(e.notAfter) > now.getTime()),
    { serial: issued.serial, issuedAt: now.toISOString(), notAfter: issued.notAfter.toISOString(), revoked: false },
  ];
}

/** Live = neither revoked nor expired at `now`. */
export function liveEntries(list: readonly IssuedSerial[], now: Date): IssuedSerial[] {
  return list.filter((e) => !e.revoked && Date.parse(e.notAfter) > now.getTime());
}

/** Marks every live entry revoked; returns the new list and the pki/revoked writes. */
export function revokeAll(
  keyspace: Keyspace, list: readonly IssuedSerial[], who: { role: Role; name: string }, reason: string, now: Date,
): { list: IssuedSerial[]; ops: TxnOp[]; serials: string[] } {
  const live = new Set(liveEntries(list, now).map((e) => e.serial));
  const ops = list.filter((e) => live.has(e.serial)).map((e) => revokeOp(keyspace, { serial: e.serial, role: who.role, name: who.name, notAfter: e.notAfter }, reason, now));
  return { list: list.map((e) => (live.has(e.serial) ? { ...e, revoked: true } : e)), ops, serials: [...live] };
}
