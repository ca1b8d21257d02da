/**
 * etcd's own access control (RBAC), as the cluster uses it. etcd runs with --client-cert-auth:
 * the CN of a client's certificate is its etcd user, and no user has a password.
 *
 * - `root` (role root): bootstrap and break-glass only; etcd refuses `auth enable` without it.
 * - `coordinator` (roles `coordinator` = read/write over the cluster prefix, and `root`): etcd
 *   lets only holders of the root role add and delete users and roles, and a coordinator must
 *   do that for every agent it enrols or revokes, so the coordinator's user has it too.
 * - `agent:<nodeId>` (role of the same name): read/write of exactly its own `members/<id>` and
 *   `facts/<id>` keys, and read of the election prefix (to find the leader). Leases need no
 *   key permission; revoking one needs write on every key attached to it (its member key).
 *
 * Every function here is idempotent: a user or role that already exists (or is already gone)
 * is not an error, so a coordinator that crashed half-way simply runs it again.
 */
import type { Etcd3, IPermission } from 'etcd3';
import type { Keyspace } from './keyspace';

export const ETCD_ROOT_USER = 'root';
export const ETCD_COORDINATOR_USER = 'coordinator';
const ROOT_ROLE = 'root';
const COORDINATOR_ROLE = 'coordinator';

/** The etcd user (and role) of an agent: the CN of its certificate (shared/pki/peer-certificate.ts). */
export function agentEtcdUser(nodeId: string): string {
  return `agent:${nodeId}`;
}

/** The range end that makes [prefix, end) every key starting with `prefix` (etcd's prefix rule). */
export function prefixRangeEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

function exactKey(permType: IPermission['permType'], key: string): IPermission {
  return { permType, key: Buffer.from(key), range_end: Buffer.alloc(0) };
}

function prefixRange(permType: IPermission['permType'], prefix: string): IPermission {
  return { permType, key: Buffer.from(prefix), range_end: prefixRangeEnd(prefix) };
}

/** What an agent may touch, as etcd permissions. */
export function agentPermissions(keyspace: Keyspace, nodeId: string): IPermission[] {
  return [
    exactKey('Readwrite', keyspace.member(nodeId)),
    exactKey('Readwrite', keyspace.facts(nodeId)),
    prefixRange('Read', keyspace.electionPrefix()),
  ];
}

function already(err: unknown, what: RegExp): boolean {
  return err instanceof Error && what.test(err.message);
}

async function ignoring(call: Promise<unknown>, what: RegExp): Promise<void> {
  try {
    await call;
  } catch (err) {
    if (!already(err, what)) throw err;
  }
}

const EXISTS = /already exists/;
const MISSING = /not found/;

async function ensureUser(etcd: Etcd3, user: string, roles: readonly string[], deadline: () => Date): Promise<void> {
  await ignoring(etcd.auth.userAdd({ name: user, password: '', options: { no_password: true } }, { deadline: deadline() }), EXISTS);
  for (const role of roles) await etcd.auth.userGrantRole({ user, role }, { deadline: deadline() });
}

async function ensureRole(etcd: Etcd3, role: string, perms: readonly IPermission[], deadline: () => Date): Promise<void> {
  await ignoring(etcd.auth.roleAdd({ name: role }, { deadline: deadline() }), EXISTS);
  for (const perm of perms) await etcd.auth.roleGrantPermission({ name: role, perm }, { deadline: deadline() });
}

export interface EtcdAuthOptions {
  /** Deadline of each call. @default 5000 */
  callTimeoutMs?: number;
}

/**
 * Makes `root` and `coordinator` (with its role over `keyspace`'s prefix) and enables
 * authentication. Run with a client whose certificate is `root` or `coordinator`, against an
 * etcd with --client-cert-auth; once auth is on only such a client can run it again.
 */
export async function enableEtcdAuth(etcd: Etcd3, keyspace: Keyspace, options: EtcdAuthOptions = {}): Promise<void> {
  const deadline = (): Date => new Date(Date.now() + (options.callTimeoutMs ?? 5000));
  await ensureRole(etcd, COORDINATOR_ROLE, [prefixRange('Readwrite', keyspace.prefix)], deadline);
  await ensureUser(etcd, ETCD_ROOT_USER, [ROOT_ROLE], deadline);
  await ensureUser(etcd, ETCD_COORDINATOR_USER, [COORDINATOR_ROLE, ROOT_ROLE], deadline);
  await etcd.auth.authEnable({ deadline: deadline() });
}

/** The user and role of agent `nodeId` (made at its enrolment). */
export async function grantAgentAccess(etcd: Etcd3, keyspace: Keyspace, nodeId: string, options: EtcdAuthOptions = {}): Promise<void> {
  const deadline = (): Date => new Date(Date.now() + (options.callTimeoutMs ?? 5000));
  const name = agentEtcdUser(nodeId);
  await ensureRole(etcd, name, agentPermissions(keyspace, nodeId), deadline);
  await ensureUser(etcd, name, [name], deadline);
}

/**
 * Deletes agent `nodeId`'s user and role (at revocation): its certificate no longer opens
 * etcd, even before it expires. Deleting the user first closes access at once.
 */
export async function removeAgentAccess(etcd: Etcd3, nodeId: string, options: EtcdAuthOptions = {}): Promise<void> {
  const deadline = (): Date => new Date(Date.now() + (options.callTimeoutMs ?? 5000));
  const name = agentEtcdUser(nodeId);
  await ignoring(etcd.auth.userDelete({ name }, { deadline: deadline() }), MISSING);
  await ignoring(etcd.auth.roleDelete({ role: name }, { deadline: deadline() }), MISSING);
}

/** Whether agent `nodeId` has an etcd user. */
export async function hasAgentAccess(etcd: Etcd3, nodeId: string): Promise<boolean> {
  try {
    await etcd.auth.userGet({ name: agentEtcdUser(nodeId) });
    return true;
  } catch (err) {
    if (already(err, MISSING)) return false;
    throw err;
  }
}
