/**
 * Operators and their credentials (pki/users/<name>): `user add` issues a key and certificate
 * for NAME with a role and returns the credentials file; `user revoke` revokes every live
 * certificate of the user in the same transaction that marks the user revoked.
 */
import type { Etcd3 } from 'etcd3';
import { systemClock, type Clock } from '../../shared/clock';
import { AlreadyExistsError, ConflictError, InvalidArgumentError, NotFoundError } from '../../shared/errors';
import { isValidSegment, type Keyspace } from '../../shared/keyspace';
import type { ClusterCa } from '../../shared/pki/cluster-ca';
import { formatCredentials } from '../../shared/pki/credentials-file';
import { isUserRole, type UserRole } from '../../shared/pki/roles';
import { runTxn, type Compare } from '../etcd-txn';
import { liveEntries, revokeAll, withIssued } from './issued-certificates';
import { decodeUserRecord, type UserRecord } from './pki-records';

const CAS_ATTEMPTS = 10;

export interface AddUserOptions {
  /** Coordinator endpoint(s) written into the credentials file. */
  endpoints: readonly string[];
  /** @default DEFAULT_VALIDITY_MS[role] (one year) */
  validityMs?: number;
}

export class UserStore {
  constructor(
    private readonly etcd: Etcd3,
    private readonly keyspace: Keyspace,
    private readonly ca: ClusterCa,
    private readonly clock: Clock = systemClock,
  ) {}

  private key(name: string): string {
    if (!isValidSegment(name)) throw new InvalidArgumentError(`invalid user name ${JSON.stringify(name)}: use 1-253 characters from A-Z a-z 0-9 . _ : - starting with a letter or digit`);
    return this.keyspace.pkiUser(name);
  }

  /** Issues NAME a key and certificate; refuses a name that has a live certificate. */
  async add(name: string, role: UserRole, options: AddUserOptions): Promise<{ credentials: string; record: UserRecord; serial: string; notAfter: Date }> {
    if (!isUserRole(role)) throw new InvalidArgumentError(`invalid role ${JSON.stringify(role)}: use viewer, operator or admin`);
    const key = this.key(name);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const kv = (await this.etcd.get(key).exec()).kvs[0];
      const prev = kv ? decodeUserRecord(kv.value.toString()) : undefined;
      const now = new Date(this.clock.now());
      if (prev && !prev.revoked && liveEntries(prev.certificates, now).length > 0) {
        throw new AlreadyExistsError(`user ${name} exists (role ${prev.role}): revoke it first (clusterctl user revoke ${name}) or pick another name`);
      }
      const issued = await this.ca.issueKeyAndCertificate({ role, name, validityMs: options.validityMs, now });
      const record: UserRecord = { name, role, createdAt: now.toISOString(), certificates: withIssued(prev?.certificates ?? [], issued, now), revoked: false };
      const guard: Compare = kv
        ? { key, target: 'Mod', op: '==', value: kv.mod_revision, reason: 'cas' }
        : { key, target: 'Create', op: '==', value: '0', reason: 'user is new' };
      const out = await runTxn(this.etcd, [guard], [{ kind: 'put', key, value: JSON.stringify(record) }]);
      if (out.succeeded) {
        const credentials = formatCredentials({
          coordinator: [...options.endpoints], user: name, role, ca: this.ca.certPem, certificate: issued.certPem, key: issued.keyPem,
        });
        return { credentials, record, serial: issued.serial, notAfter: issued.notAfter };
      }
    }
    throw new ConflictError(`user ${name} changed while being added; try again`);
  }

  async list(): Promise<UserRecord[]> {
    const kvs = await this.etcd.getAll().prefix(this.keyspace.pkiUsersPrefix()).strings();
    return Object.values(kvs).map(decodeUserRecord).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Marks the user revoked and revokes its live certificates; returns the serials revoked. */
  async revoke(name: string, reason = 'user revoked by an operator'): Promise<{ record: UserRecord; serials: string[] }> {
    const key = this.key(name);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const kv = (await this.etcd.get(key).exec()).kvs[0];
      if (!kv) throw new NotFoundError(`user ${name} does not exist (clusterctl user list shows the users)`);
      const prev = decodeUserRecord(kv.value.toString());
      const { list, ops, serials } = revokeAll(this.keyspace, prev.certificates, { role: prev.role, name }, reason, new Date(this.clock.now()));
      const record: UserRecord = { ...prev, certificates: list, revoked: true };
      const out = await runTxn(this.etcd, [{ key, target: 'Mod', op: '==', value: kv.mod_revision, reason: 'cas' }], [...ops, { kind: 'put', key, value: JSON.stringify(record) }]);
      if (out.succeeded) return { record, serials };
    }
    throw new ConflictError(`user ${name} changed while being revoked; try again`);
  }
}
