/**
 * The pki directory made BEFORE etcd starts (`cluster-coordinator init`): etcd runs with TLS and
 * --client-cert-auth, trusting the cluster CA, so the CA has to exist before etcd does. The
 * first coordinator then stores this CA in etcd (ca-bootstrap.ts imports it) instead of making
 * another one.
 *
 *     cluster-secret            32 random bytes (hex), 0600: decrypts the CA key and the keys of
 *                               secret values (pki/secrets-keyring in etcd, docs/secrets.md)
 *     ca.crt                    the cluster CA certificate
 *     ca-key.json               the CA key, AES-256-GCM under the cluster secret (0600)
 *     etcd-server.crt/.key      etcd's serving (and peer) certificate
 *     etcd-coordinator.crt/.key the coordinators' etcd client certificate (CN=coordinator)
 *     etcd-root.crt/.key        etcd's root user (CN=root): bootstrap and break-glass
 *
 * Running it again keeps what exists and makes only what is missing.
 */
import { existsSync, promises as fs } from 'node:fs';
import { join } from 'node:path';
import { ETCD_COORDINATOR_USER, ETCD_ROOT_USER } from '../../shared/etcd-auth';
import type { EtcdTls } from '../../shared/etcd';
import { ClusterCa } from '../../shared/pki/cluster-ca';
import { decryptCaKey, encryptCaKey, loadOrCreateClusterSecret, type EncryptedKey } from '../../shared/pki/cluster-secret';

export const PKI_FILES = {
  clusterSecret: 'cluster-secret',
  caCert: 'ca.crt',
  caKey: 'ca-key.json',
  etcdServerCert: 'etcd-server.crt',
  etcdServerKey: 'etcd-server.key',
  etcdCoordinatorCert: 'etcd-coordinator.crt',
  etcdCoordinatorKey: 'etcd-coordinator.key',
  etcdRootCert: 'etcd-root.crt',
  etcdRootKey: 'etcd-root.key',
} as const;

async function writeFile(path: string, content: string, mode: number): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await fs.writeFile(tmp, content, { mode });
  await fs.chmod(tmp, mode);
  await fs.rename(tmp, path);
}

/** The CA stored in a pki dir (certificate and encrypted key), or undefined when it holds none. */
export async function readPkiDirCa(dir: string): Promise<{ certificate: string; encryptedKey: EncryptedKey } | undefined> {
  const cert = join(dir, PKI_FILES.caCert);
  const key = join(dir, PKI_FILES.caKey);
  if (!existsSync(cert) || !existsSync(key)) return undefined;
  return { certificate: await fs.readFile(cert, 'utf8'), encryptedKey: JSON.parse(await fs.readFile(key, 'utf8')) as EncryptedKey };
}

export interface InitPkiDirOptions {
  dir: string;
  /** @default <dir>/cluster-secret */
  clusterSecretFile?: string;
  /** Names and addresses etcd is reached at, besides localhost/127.0.0.1/::1. */
  etcdHosts?: readonly string[];
}

/** Makes what is missing of the pki dir; returns the paths it wrote. */
export async function initPkiDir(options: InitPkiDirOptions): Promise<string[]> {
  const dir = options.dir;
  await fs.mkdir(dir, { recursive: true, mode: 0o755 });
  const { secret } = await loadOrCreateClusterSecret(options.clusterSecretFile ?? join(dir, PKI_FILES.clusterSecret));
  const wrote: string[] = [];
  let ca: ClusterCa;
  const stored = await readPkiDirCa(dir);
  if (stored) {
    ca = await ClusterCa.load(stored.certificate, decryptCaKey(stored.encryptedKey, stored.certificate, secret));
  } else {
    const made = await ClusterCa.create();
    ca = made.ca;
    await writeFile(join(dir, PKI_FILES.caKey), `${JSON.stringify(encryptCaKey(made.keyPem, ca.certPem, secret))}\n`, 0o600);
    await writeFile(join(dir, PKI_FILES.caCert), ca.certPem, 0o644);
    wrote.push(join(dir, PKI_FILES.caKey), join(dir, PKI_FILES.caCert));
  }
  const pairs: [string, string, () => ReturnType<ClusterCa['issueEtcdCertificate']>][] = [
    [PKI_FILES.etcdServerCert, PKI_FILES.etcdServerKey, () => ca.issueEtcdCertificate({ kind: 'server', hosts: options.etcdHosts })],
    [PKI_FILES.etcdCoordinatorCert, PKI_FILES.etcdCoordinatorKey, () => ca.issueEtcdCertificate({ kind: 'client', user: ETCD_COORDINATOR_USER })],
    [PKI_FILES.etcdRootCert, PKI_FILES.etcdRootKey, () => ca.issueEtcdCertificate({ kind: 'client', user: ETCD_ROOT_USER })],
  ];
  for (const [certName, keyName, issue] of pairs) {
    if (existsSync(join(dir, certName)) && existsSync(join(dir, keyName))) continue;
    const issued = await issue();
    await writeFile(join(dir, keyName), issued.keyPem, 0o600);
    await writeFile(join(dir, certName), issued.certPem, 0o644);
    wrote.push(join(dir, keyName), join(dir, certName));
  }
  return wrote;
}

/** Reads an etcd client's CA, certificate and key files. */
export async function readEtcdTls(files: { caFile: string; certFile: string; keyFile: string }): Promise<EtcdTls> {
  const [caPem, certPem, keyPem] = await Promise.all([files.caFile, files.certFile, files.keyFile].map((f) => fs.readFile(f, 'utf8')));
  return { caPem, certPem, keyPem };
}
