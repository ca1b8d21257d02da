/**
 * Certificates for tests: one cluster CA per test process (made on first use), a certificate
 * per (role, name) issued once and reused, gRPC client credentials from them, and what a
 * coordinator needs to serve with that CA: `coordinatorPki(etcd, keyspace)` stores the CA in
 * the keyspace (its key encrypted under a cluster secret written to a temporary pki dir), so
 * the coordinator's own start-up path loads it instead of creating another.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Etcd3 } from 'etcd3';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Keyspace } from '../../shared/keyspace';
import { ClusterCa, type KeyAndCertificate } from '../../shared/pki/cluster-ca';
import { encryptCaKey } from '../../shared/pki/cluster-secret';
import { clientCredentials, formatCredentials, type Role } from '../../shared/pki';
import type { CoordinatorPkiOptions } from '../../coordinator';
import type { CaRecord } from '../../coordinator/pki/pki-records';
import { PKI_FILES } from '../../coordinator/pki/pki-dir';
import type { EtcdTls } from '../../shared/etcd';

export type TestIdentity = KeyAndCertificate & { serial: string; role: Role; name: string };

export class TestPki {
  private readonly issued = new Map<string, Promise<TestIdentity>>();
  private readonly etcdIssued = new Map<string, Promise<KeyAndCertificate>>();
  private readonly dirs: string[] = [];
  /** The cluster secret every coordinator of this process is given (hex, as the file holds it). */
  private readonly secretHex = randomBytes(32).toString('hex');

  constructor(readonly ca: ClusterCa, private readonly caKeyPem: string) {}

  get caPem(): string {
    return this.ca.certPem;
  }

  /** The certificate of `role` `name`, issued once per process. */
  identity(role: Role, name: string = role): Promise<TestIdentity> {
    const key = `${role}/${name}`;
    let made = this.issued.get(key);
    if (!made) {
      made = this.ca.issueKeyAndCertificate({ role, name }).then((c) => ({ ...c, role, name }));
      this.issued.set(key, made);
    }
    return made;
  }

  /** A fresh certificate (never cached): for tests that revoke it. */
  async freshIdentity(role: Role, name: string): Promise<TestIdentity> {
    return { ...(await this.ca.issueKeyAndCertificate({ role, name })), role, name };
  }

  /** etcd's serving certificate, or the etcd client certificate of `user` (root, coordinator), issued once per process. */
  etcdIdentity(kind: 'server' | 'client', user = 'etcd'): Promise<KeyAndCertificate> {
    const key = `etcd-${kind}/${user}`;
    let made = this.etcdIssued.get(key);
    if (!made) {
      made = this.ca.issueEtcdCertificate(kind === 'server' ? { kind } : { kind, user });
      this.etcdIssued.set(key, made);
    }
    return made;
  }

  /** What an etcd client of `user` presents: the CA and that user's certificate. */
  async etcdTls(user: string): Promise<EtcdTls> {
    const id = await this.etcdIdentity('client', user);
    return { caPem: this.caPem, certPem: id.certPem, keyPem: id.keyPem };
  }

  /** An agent's etcd credentials: its own certificate (CN agent:<nodeId>), as the daemon uses it. */
  async agentEtcdTls(nodeId: string): Promise<EtcdTls> {
    const id = await this.identity('agent', nodeId);
    return { caPem: this.caPem, certPem: id.certPem, keyPem: id.keyPem };
  }

  /**
   * Fills `dir` as `cluster-coordinator init` would, from this process's CA: the cluster secret,
   * ca.crt, ca-key.json and the coordinators' etcd client certificate, so a coordinator process
   * given --pki-dir dir stores this CA (the one the test etcd trusts) and speaks TLS to etcd.
   */
  async writePkiDir(dir: string): Promise<void> {
    mkdirSync(dir, { recursive: true });
    const secret = Buffer.from(this.secretHex, 'hex');
    const coordinator = await this.etcdIdentity('client', 'coordinator');
    const files: [string, string, number][] = [
      [PKI_FILES.clusterSecret, `${this.secretHex}\n`, 0o600],
      [PKI_FILES.caCert, this.caPem, 0o644],
      [PKI_FILES.caKey, `${JSON.stringify(encryptCaKey(this.caKeyPem, this.caPem, secret))}\n`, 0o600],
      [PKI_FILES.etcdCoordinatorCert, coordinator.certPem, 0o644],
      [PKI_FILES.etcdCoordinatorKey, coordinator.keyPem, 0o600],
    ];
    for (const [name, content, mode] of files) {
      writeFileSync(join(dir, name), content, { mode });
      chmodSync(join(dir, name), mode);
    }
  }

  /** mTLS channel credentials as `role` `name` (the admin, a viewer, `agent` node-1 ...). */
  async credentials(role: Role, name: string = role): Promise<grpc.ChannelCredentials> {
    const id = await this.identity(role, name);
    return clientCredentials({ caPem: this.caPem, certPem: id.certPem, keyPem: id.keyPem });
  }

  /** TLS with the cluster CA pinned but no client certificate (what an outsider has). */
  anonymousCredentials(): grpc.ChannelCredentials {
    return clientCredentials({ caPem: this.caPem });
  }

  /** A credentials file (clusterctl --credentials) for `id`, written to a temporary file; returns its path. */
  writeCredentialsFile(id: TestIdentity, endpoints: readonly string[]): string {
    const dir = this.tempDir('creds');
    const path = join(dir, `${id.name}.yaml`);
    writeFileSync(path, formatCredentials({ coordinator: [...endpoints], user: id.name, role: id.role, ca: this.caPem, certificate: id.certPem, key: id.keyPem }), { mode: 0o600 });
    return path;
  }

  /**
   * Stores this CA in `keyspace` (unless one is there) and returns the coordinator's pki
   * options: a temporary pki dir holding the cluster secret that decrypts it, and etcd RBAC on
   * (joining agents get their etcd user; `etcd` must be root or coordinator).
   */
  async coordinatorPki(etcd: Etcd3, keyspace: Keyspace): Promise<CoordinatorPkiOptions> {
    const dir = this.tempDir('pki');
    const clusterSecretFile = join(dir, 'cluster-secret');
    writeFileSync(clusterSecretFile, `${this.secretHex}\n`, { mode: 0o600 });
    chmodSync(clusterSecretFile, 0o600);
    const record: CaRecord = {
      certificate: this.caPem, encryptedKey: encryptCaKey(this.caKeyPem, this.caPem, Buffer.from(this.secretHex, 'hex')), createdAt: new Date().toISOString(),
    };
    const key = keyspace.pkiCa();
    await etcd.if(key, 'Create', '==', 0).then(etcd.put(key).value(JSON.stringify(record))).commit();
    // The test etcd has auth on: agents that join get their etcd user as in production.
    return { dir, clusterSecretFile, etcdRbac: true };
  }

  private tempDir(what: string): string {
    const dir = mkdtempSync(join(tmpdir(), `test-${what}-`));
    this.dirs.push(dir);
    return dir;
  }

  /** Removes the temporary directories (files of credentials and pki dirs). */
  cleanup(): void {
    for (const d of this.dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  }
}

let shared: Promise<TestPki> | undefined;
let made: TestPki | undefined;

/** The process's test CA and its certificates (made once; creating a CA costs ~50 ms). */
export function testPki(): Promise<TestPki> {
  shared ??= ClusterCa.create().then(({ ca, keyPem }) => {
    made = new TestPki(ca, keyPem);
    // Synchronous, so it runs on exit: the temporary pki and credentials directories go.
    process.once('exit', () => made?.cleanup());
    return made;
  });
  return shared;
}
