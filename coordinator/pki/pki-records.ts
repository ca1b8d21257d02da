/**
 * The records under pki/ in etcd, with the one decoder each that every reader uses. Times are
 * ISO strings; a decoder refuses a record of the wrong shape rather than guessing.
 */
import { InternalError } from '../../shared/errors';
import { isRole, isUserRole, type Role, type UserRole } from '../../shared/pki/roles';
import type { EncryptedKey } from '../../shared/pki/cluster-secret';

/** pki/ca */
export interface CaRecord {
  certificate: string;
  encryptedKey: EncryptedKey;
  createdAt: string;
}

/** pki/tokens/<id>: the secret is kept only as its sha256. */
export interface TokenRecord {
  id: string;
  hash: string;
  createdAt: string;
  /** null: never expires. */
  expiresAt: string | null;
  /** null: unlimited. */
  usesLeft: number | null;
  description: string;
  revoked: boolean;
}

export interface IssuedSerial {
  serial: string;
  issuedAt: string;
  notAfter: string;
  revoked: boolean;
}

/** pki/agents/<nodeId>: what was issued to a node, so it can be revoked by node id. */
export interface AgentRecord {
  nodeId: string;
  certificates: IssuedSerial[];
}

/** pki/users/<name> */
export interface UserRecord {
  name: string;
  role: UserRole;
  createdAt: string;
  certificates: IssuedSerial[];
  revoked: boolean;
}

/** pki/revoked/<serial> */
export interface RevokedRecord {
  serial: string;
  role: Role;
  name: string;
  revokedAt: string;
  /** After this the certificate is dead anyway and the record may be dropped. */
  notAfter: string;
  reason: string;
}

type Obj = Record<string, unknown>;

function obj(text: string, what: string): Obj {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new InternalError(`${what} in etcd is not JSON`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InternalError(`${what} in etcd is not an object`);
  return v as Obj;
}

function str(o: Obj, k: string, what: string): string {
  if (typeof o[k] !== 'string') throw new InternalError(`${what} in etcd: field ${k} is not text`);
  return o[k];
}

function serials(o: Obj, what: string): IssuedSerial[] {
  const list = o.certificates;
  if (!Array.isArray(list)) throw new InternalError(`${what} in etcd: certificates is not a list`);
  return list.map((x: unknown) => {
    if (typeof x !== 'object' || x === null) throw new InternalError(`${what} in etcd: a certificate entry is not an object`);
    const e = x as Obj;
    return { serial: str(e, 'serial', what), issuedAt: str(e, 'issuedAt', what), notAfter: str(e, 'notAfter', what), revoked: e.revoked === true };
  });
}

export function decodeCaRecord(text: string): CaRecord {
  const o = obj(text, 'pki/ca');
  const k = o.encryptedKey;
  if (typeof k !== 'object' || k === null) throw new InternalError('pki/ca in etcd: encryptedKey is missing');
  const e = k as Obj;
  const alg = str(e, 'alg', 'pki/ca');
  const kdf = str(e, 'kdf', 'pki/ca');
  if (alg !== 'aes-256-gcm' || kdf !== 'hkdf-sha256') throw new InternalError(`pki/ca in etcd: unknown key encryption ${alg}/${kdf}`);
  return {
    certificate: str(o, 'certificate', 'pki/ca'),
    createdAt: str(o, 'createdAt', 'pki/ca'),
    encryptedKey: { alg, kdf, salt: str(e, 'salt', 'pki/ca'), iv: str(e, 'iv', 'pki/ca'), tag: str(e, 'tag', 'pki/ca'), ciphertext: str(e, 'ciphertext', 'pki/ca') },
  };
}

export function decodeTokenRecord(text: string): TokenRecord {
  const what = 'a join token record';
  const o = obj(text, what);
  const expiresAt = o.expiresAt === null ? null : str(o, 'expiresAt', what);
  const usesLeft = o.usesLeft === null ? null : typeof o.usesLeft === 'number' && Number.isInteger(o.usesLeft) && o.usesLeft >= 0 ? o.usesLeft : undefined;
  if (usesLeft === undefined) throw new InternalError(`${what} in etcd: usesLeft is not a count`);
  return {
    id: str(o, 'id', what), hash: str(o, 'hash', what), createdAt: str(o, 'createdAt', what), expiresAt, usesLeft,
    description: typeof o.description === 'string' ? o.description : '', revoked: o.revoked === true,
  };
}

export function decodeAgentRecord(text: string): AgentRecord {
  const o = obj(text, 'an agent certificate record');
  return { nodeId: str(o, 'nodeId', 'an agent certificate record'), certificates: serials(o, 'an agent certificate record') };
}

export function decodeUserRecord(text: string): UserRecord {
  const what = 'a user record';
  const o = obj(text, what);
  const role = str(o, 'role', what);
  if (!isUserRole(role)) throw new InternalError(`${what} in etcd: unknown role ${role}`);
  return { name: str(o, 'name', what), role, createdAt: str(o, 'createdAt', what), certificates: serials(o, what), revoked: o.revoked === true };
}

export function decodeRevokedRecord(text: string): RevokedRecord {
  const what = 'a revocation record';
  const o = obj(text, what);
  const role = str(o, 'role', what);
  if (!isRole(role)) throw new InternalError(`${what} in etcd: unknown role ${role}`);
  return { serial: str(o, 'serial', what), role, name: str(o, 'name', what), revokedAt: str(o, 'revokedAt', what), notAfter: str(o, 'notAfter', what), reason: str(o, 'reason', what) };
}
