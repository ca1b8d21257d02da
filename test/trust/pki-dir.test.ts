/**
 * `cluster-coordinator init`: the pki dir etcd needs before its first start. Files and modes,
 * who the certificates name, a second run that keeps everything, and the built command itself.
 */
import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initPkiDir, PKI_FILES, readPkiDirCa } from '../../coordinator/pki/pki-dir';
import { BIN, run } from '../helpers';

describe('cluster-coordinator init (pki dir before etcd)', function () {
  this.timeout(60_000);
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'pki-dir-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('writes the CA, etcd\'s certificate and the root and coordinator etcd users\' certificates; a second run keeps them', async () => {
    const wrote = await initPkiDir({ dir, etcdHosts: ['etcd1.example', '10.0.0.5'] });
    expect(wrote.map((p) => p.slice(dir.length + 1)).sort()).to.deep.equal([
      PKI_FILES.caCert, PKI_FILES.caKey, PKI_FILES.etcdCoordinatorCert, PKI_FILES.etcdCoordinatorKey, PKI_FILES.etcdRootCert, PKI_FILES.etcdRootKey,
      PKI_FILES.etcdServerCert, PKI_FILES.etcdServerKey,
    ].sort());
    for (const f of [PKI_FILES.clusterSecret, PKI_FILES.caKey, PKI_FILES.etcdServerKey, PKI_FILES.etcdCoordinatorKey, PKI_FILES.etcdRootKey]) {
      expect(statSync(join(dir, f)).mode & 0o777, f).to.equal(0o600);
    }
    const ca = new X509Certificate(readFileSync(join(dir, PKI_FILES.caCert)));
    const cert = (f: string): X509Certificate => new X509Certificate(readFileSync(join(dir, f)));
    const server = cert(PKI_FILES.etcdServerCert);
    expect(server.checkIssued(ca)).to.equal(true);
    expect(server.subjectAltName).to.equal('DNS:etcd, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, DNS:etcd1.example, IP Address:10.0.0.5');
    // etcd reads the CN as the user; no cluster identity, so no gRPC peer of ours accepts these.
    expect(cert(PKI_FILES.etcdCoordinatorCert).subject).to.equal('CN=coordinator\nO=etcd');
    expect(cert(PKI_FILES.etcdRootCert).subject).to.equal('CN=root\nO=etcd');
    expect(cert(PKI_FILES.etcdRootCert).subjectAltName).to.equal(undefined);
    expect((await readPkiDirCa(dir))?.certificate).to.equal(ca.toString());

    const before = readFileSync(join(dir, PKI_FILES.etcdServerCert), 'utf8');
    expect(await initPkiDir({ dir })).to.deep.equal([]);
    expect(readFileSync(join(dir, PKI_FILES.etcdServerCert), 'utf8')).to.equal(before);
  });

  it('the command prints what it wrote, then that the dir is complete', async () => {
    const first = await run(process.execPath, [BIN.coordinator, 'init', '--pki-dir', dir], { timeoutMs: 30_000 });
    expect(first.code, first.stderr).to.equal(0);
    expect(first.stdout).to.include(`wrote ${join(dir, PKI_FILES.etcdServerCert)}`);
    const second = await run(process.execPath, [BIN.coordinator, 'init', '--pki-dir', dir], { timeoutMs: 30_000 });
    expect(second.stdout).to.equal(`${dir} is complete; nothing written\n`);
    const help = await run(process.execPath, [BIN.coordinator, 'init', '--help'], { timeoutMs: 30_000 });
    expect(help.stdout).to.match(/--etcd-host/);
  });
});
