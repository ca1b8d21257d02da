/**
 * A coordinator's first step: make sure the cluster has a CA, and get this replica a serving
 * certificate from it.
 *
 * The first replica to start against an empty cluster stores the CA (the one `cluster-coordinator
 * init` left in the pki dir, which etcd's own certificates come from, or a new one; key
 * encrypted under the cluster secret) in ONE transaction that requires pki/ca to be absent: of
 * replicas racing, exactly one CA wins and the others read it. The winner alone writes ca.crt,
 * admin.yaml and join-token into the pki directory and returns their paths to be logged.
 */
import type { Etcd3 } from 'etcd3';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { systemClock, type Clock } from '../../shared/clock';
import { InternalError } from '../../shared/errors';
import type { Keyspace } from '../../shared/keyspace';
import { ClusterCa, type IssuedCertificate, type KeyAndCertificate } from '../../shared/pki/cluster-ca';
import { decryptCaKey, encryptCaKey, loadOrCreateClusterSecret } from '../../shared/pki/cluster-secret';
import { runTxn } from '../etcd-txn';
import { decodeCaRecord, type CaRecord } from './pki-records';
import { readPkiDirCa } from './pki-dir';
import { DEFAULT_TOKEN_TTL_MS, TokenStore } from './token-store';
import { UserStore } from './user-store';

export { DEFAULT_PKI_DIR } from '../../shared/pki/credentials-file';
import { ADMIN_CREDENTIALS_FILE, DEFAULT_PKI_DIR } from '../../shared/pki/credentials-file';
export const ADMIN_USER = 'admin';

export interface PkiBootstrapOptions {
  etcd: Etcd3;
  keyspace: Keyspace;
  /** Where ca.crt, admin.yaml and join-token are written on first creation. @default DEFAULT_PKI_DIR */
  pkiDir?: string;
  /** The cluster secret file; created (32 random bytes, mode 0600) when absent. */
  clusterSecretFile: string;
  /** This replica's name in its serving certificate (CN and cluster://coordinator/<name>). */
  coordinatorName: string;
  /** DNS names and IP addresses this replica is reached at, besides localhost/127.0.0.1/::1. */
  hosts?: readonly string[];
  /** Coordinator endpoint(s) written into admin.yaml. */
  endpoints: readonly string[];
  /** Lifetime of the first join token; null = never expires. @default DEFAULT_TOKEN_TTL_MS (24 h) */
  firstTokenTtlMs?: number | null;
  clock?: Clock;
}

export interface PkiBootstrapResult {
  ca: ClusterCa;
  /** Whether this replica created the CA (and wrote the files). */
  created: boolean;
  /** This replica's serving key and certificate (kept in memory). */
  serving: KeyAndCertificate & IssuedCertificate;
  /** Paths written (ca.crt, admin.yaml, join-token), only when created. */
  wrote: string[];
  /** Whether the cluster secret file was created now. */
  secretCreated: boolean;
}

async function writePrivate(path: string, content: string, mode: number): Promise<void> {
  // Write then rename: a reader never sees half a file, and an existing file's wider mode is not kept.
  const tmp = `${path}.tmp-${process.pid}`;
  await fs.writeFile(tmp, content, { mode });
  await fs.chmod(tmp, mode);
  await fs.rename(tmp, path);
}

export interface LoadedCa {
  ca: ClusterCa;
  /** Whether this replica created the CA (and so must write the first-start files). */
  created: boolean;
  /** Whether the cluster secret file was created now. */
  secretCreated: boolean;
  /** The cluster secret itself: it also wraps the keys of secret values (coordinator/secrets/secret-keyring.ts). */
  clusterSecret: Buffer;
}

/**
 * Reads the cluster CA from etcd; when the cluster has none, stores the one `cluster-coordinator
 * init` left in the pki dir (the CA etcd's own certificates come from), or creates one (an etcd
 * without TLS). Of replicas racing, one wins and the others read its CA.
 */
export async function loadOrCreateCa(options: Pick<PkiBootstrapOptions, 'etcd' | 'keyspace' | 'clusterSecretFile' | 'pkiDir' | 'clock'>): Promise<LoadedCa> {
  const clock = options.clock ?? systemClock;
  const { secret, created: secretCreated } = await loadOrCreateClusterSecret(options.clusterSecretFile);
  const key = options.keyspace.pkiCa();
  const existing = await options.etcd.get(key).string();
  if (existing !== null) return { ca: await loadCa(decodeCaRecord(existing), secret), created: false, secretCreated, clusterSecret: secret };
  const inDir = options.pkiDir !== undefined ? await readPkiDirCa(options.pkiDir) : undefined;
  let record: CaRecord;
  let ca: ClusterCa;
  if (inDir) {
    record = { ...inDir, createdAt: new Date(clock.now()).toISOString() };
    ca = await loadCa(record, secret);
  } else {
    const made = await ClusterCa.create({ now: new Date(clock.now()) });
    record = { certificate: made.ca.certPem, encryptedKey: encryptCaKey(made.keyPem, made.ca.certPem, secret), createdAt: new Date(clock.now()).toISOString() };
    ca = made.ca;
  }
  const out = await runTxn(options.etcd, [{ key, target: 'Create', op: '==', value: '0', reason: 'no CA yet' }], [{ kind: 'put', key, value: JSON.stringify(record) }]);
  if (out.succeeded) return { ca, created: true, secretCreated, clusterSecret: secret };
  // Another replica's CA won the race; the failure branch read it at the same revision.
  const winner = out.current.get(key);
  if (!winner) throw new InternalError('creating the cluster CA lost a race, yet pki/ca is absent');
  return { ca: await loadCa(decodeCaRecord(winner.value), secret), created: false, secretCreated, clusterSecret: secret };
}

/**
 * What the replica that created the CA leaves for people and scripts: ca.crt, admin.yaml (the
 * admin's credentials, naming `endpoints`) and join-token (the first token). Returns the paths.
 */
export async function writeFirstStartFiles(
  options: Pick<PkiBootstrapOptions, 'etcd' | 'keyspace' | 'pkiDir' | 'endpoints' | 'firstTokenTtlMs' | 'clock'> & { ca: ClusterCa },
): Promise<string[]> {
  const clock = options.clock ?? systemClock;
  const { ca } = options;
  const dir = options.pkiDir ?? DEFAULT_PKI_DIR;
  await fs.mkdir(dir, { recursive: true, mode: 0o755 });
  const admin = await new UserStore(options.etcd, options.keyspace, ca, clock).add(ADMIN_USER, 'admin', { endpoints: options.endpoints });
  const token = await new TokenStore(options.etcd, options.keyspace, ca.publicKeyHash, clock).create({
    ttlMs: options.firstTokenTtlMs === undefined ? DEFAULT_TOKEN_TTL_MS : options.firstTokenTtlMs,
    description: 'created by the first coordinator',
  });
  const files: [string, string, number][] = [
    ['ca.crt', ca.certPem, 0o644],
    [ADMIN_CREDENTIALS_FILE, admin.credentials, 0o600],
    ['join-token', `${token.token}\n`, 0o600],
  ];
  const wrote: string[] = [];
  for (const [name, content, mode] of files) {
    const path = join(dir, name);
    await writePrivate(path, content, mode);
    wrote.push(path);
  }
  return wrote;
}

export async function bootstrapPki(options: PkiBootstrapOptions): Promise<PkiBootstrapResult> {
  const clock = options.clock ?? systemClock;
  const { ca, created, secretCreated } = await loadOrCreateCa(options);
  const serving = await ca.issueKeyAndCertificate({ role: 'coordinator', name: options.coordinatorName, hosts: options.hosts, now: new Date(clock.now()) });
  const wrote = created ? await writeFirstStartFiles({ ...options, ca }) : [];
  return { ca, created, serving, wrote, secretCreated };
}

async function loadCa(record: CaRecord, secret: Buffer): Promise<ClusterCa> {
  return ClusterCa.load(record.certificate, decryptCaKey(record.encryptedKey, record.certificate, secret));
}
