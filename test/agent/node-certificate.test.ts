/**
 * The agent's certificate files in <state-dir>/pki (real files, certificates from the test CA):
 * what counts as usable, the modes, the atomic replacement and its crash recovery, and when a
 * certificate is due for renewal.
 */
import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeCertificateFiles, renewalDue, type TlsIdentity } from '../../agent/node-certificate';
import { ClusterCa } from '../../shared/pki/cluster-ca';
import { testPki } from '../helpers';

describe('agent certificate files', () => {
  let dir: string;
  let files: NodeCertificateFiles;

  async function identity(role: 'agent' | 'admin', name: string, validityMs?: number, now?: Date): Promise<TlsIdentity> {
    const pki = await testPki();
    const c = await pki.ca.issueKeyAndCertificate({ role, name, validityMs, now });
    return { caPem: pki.caPem, certPem: c.certPem, keyPem: c.keyPem };
  }

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'node-cert-'));
    files = new NodeCertificateFiles(dir);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('stores key 0600 in a 0700 pki dir and reads back a usable identity', async () => {
    const id = await identity('agent', 'n1');
    await files.write(id);
    expect(statSync(files.dir).mode & 0o777).to.equal(0o700);
    expect(statSync(files.keyFile).mode & 0o777).to.equal(0o600);
    const read = await files.read('n1', new Date());
    expect('identity' in read && read.identity).to.deep.equal(id);
  });

  it('refuses what cannot be used, saying why (table)', async () => {
    const other = (await ClusterCa.create()).ca;
    const foreign = await other.issueKeyAndCertificate({ role: 'agent', name: 'n1' });
    const good = await identity('agent', 'n1');
    const cases: [string, () => Promise<TlsIdentity>, string, RegExp][] = [
      ['nothing stored', () => Promise.resolve(good), 'skip', /no certificate in /],
      ['another node', () => identity('agent', 'n2'), 'n1', /it is for node n2, not n1/],
      ['not an agent', () => identity('admin', 'n1'), 'n1', /it is a admin certificate, not an agent's/],
      ['expired', () => identity('agent', 'n1', 60_000, new Date(Date.now() - 3_600_000)), 'n1', /expired at/],
      ['another CA', () => Promise.resolve({ caPem: good.caPem, certPem: foreign.certPem, keyPem: foreign.keyPem }), 'n1', /not issued by this cluster's CA/],
      ['key of another certificate', async () => ({ ...good, keyPem: (await identity('agent', 'n3')).keyPem }), 'n1', /the key does not belong to the certificate/],
    ];
    for (const [what, make, node, reason] of cases) {
      rmSync(files.dir, { recursive: true, force: true });
      if (node !== 'skip') await files.write(await make());
      const read = await files.read(node === 'skip' ? 'n1' : node, new Date());
      expect('problem' in read && read.problem, what).to.match(reason);
    }
  });

  it('a replacement cut off between the key and the certificate renames is completed on the next read', async () => {
    const first = await identity('agent', 'n1');
    await files.write(first);
    const second = await identity('agent', 'n1');
    // What write() leaves when the process dies after renaming the CA and the key.
    for (const [path, content] of [[files.caFile, second.caPem], [files.keyFile, second.keyPem], [files.certFile, second.certPem]]) writeFileSync(`${path}.tmp`, content, { mode: 0o600 });
    renameSync(`${files.caFile}.tmp`, files.caFile);
    renameSync(`${files.keyFile}.tmp`, files.keyFile);
    const read = await files.read('n1', new Date());
    expect('identity' in read && read.identity).to.deep.equal(second);
    expect(readFileSync(files.certFile, 'utf8')).to.equal(second.certPem);
  });

  it('renewal is due at two thirds of the life counted from when it was stored (the CA back-dates notBefore)', async () => {
    const id = await identity('agent', 'n1', 30_000);
    const storedAt = Date.now();
    const due = renewalDue(id.certPem, storedAt);
    const notAfter = Date.parse(new X509Certificate(id.certPem).validTo);
    expect(due).to.be.greaterThan(storedAt + 15_000);
    expect(due).to.be.lessThan(notAfter);
    // 90 days: within minutes of plain two thirds.
    const long = await identity('agent', 'n1');
    const longDue = renewalDue(long.certPem, Date.now());
    expect(longDue - Date.now()).to.be.within(59.9 * 86_400_000, 60.1 * 86_400_000);
  });
});
