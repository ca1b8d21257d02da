/** The cluster secret file and the CA key encrypted under it. */
import { expect } from 'chai';
import { mkdtempSync, rmSync, statSync, writeFileSync, chmodSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadOrCreateClusterSecret, encryptCaKey, decryptCaKey } from '../../shared/pki/cluster-secret';
import { ClusterCa } from '../../shared/pki/cluster-ca';
import { FailedPreconditionError } from '../../shared/errors';
import { expectReject } from '../helpers';

describe('trust: cluster secret and the CA key at rest', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'trust-secret-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('creates a 32-byte secret with mode 0600 when absent, and reads the same one back', async () => {
    const path = join(dir, 'sub', 'cluster-secret');
    const first = await loadOrCreateClusterSecret(path);
    expect(first.created).to.equal(true);
    expect(first.secret.length).to.equal(32);
    expect(statSync(path).mode & 0o777).to.equal(0o600);
    expect(readFileSync(path, 'utf8')).to.match(/^[0-9a-f]{64}\n$/);
    const second = await loadOrCreateClusterSecret(path);
    expect(second.created).to.equal(false);
    expect(second.secret.equals(first.secret)).to.equal(true);
  });

  it('two concurrent first starts agree on one secret', async () => {
    const path = join(dir, 'cluster-secret');
    const [a, b] = await Promise.all([loadOrCreateClusterSecret(path), loadOrCreateClusterSecret(path)]);
    expect(a.secret.equals(b.secret)).to.equal(true);
    expect([a.created, b.created].filter(Boolean)).to.have.length(1);
  });

  it('refuses a secret file others can read, and one that is too short', async () => {
    const open = join(dir, 'open');
    writeFileSync(open, 'ab'.repeat(32));
    chmodSync(open, 0o644);
    await expectReject(loadOrCreateClusterSecret(open), /readable by others \(mode 644\): chmod 600/);
    const short = join(dir, 'short');
    writeFileSync(short, 'tiny', { mode: 0o600 });
    await expectReject(loadOrCreateClusterSecret(short), /holds 4 bytes; it needs at least 32/);
  });

  it('encrypts and decrypts the CA key; a wrong secret or another CA certificate is refused clearly', async () => {
    const { ca, keyPem } = await ClusterCa.create();
    const secret = (await loadOrCreateClusterSecret(join(dir, 's1'))).secret;
    const enc = encryptCaKey(keyPem, ca.certPem, secret);
    expect(JSON.stringify(enc)).to.not.include('PRIVATE KEY');
    expect(decryptCaKey(enc, ca.certPem, secret)).to.equal(keyPem);
    const wrong = (await loadOrCreateClusterSecret(join(dir, 's2'))).secret;
    expect(() => decryptCaKey(enc, ca.certPem, wrong)).to.throw(FailedPreconditionError, /^cannot decrypt the cluster CA key: this replica's cluster secret differs from the one the CA was created with/);
    const other = (await ClusterCa.create()).ca;
    expect(() => decryptCaKey(enc, other.certPem, secret)).to.throw(FailedPreconditionError, /cannot decrypt the cluster CA key/);
    const tampered = { ...enc, ciphertext: Buffer.from(Buffer.from(enc.ciphertext, 'base64').map((b, i) => (i === 0 ? b ^ 1 : b))).toString('base64') };
    expect(() => decryptCaKey(tampered, ca.certPem, secret)).to.throw(FailedPreconditionError);
  });
});
