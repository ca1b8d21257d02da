/**
 * coordinator/pki against a real etcd: the CA bootstrap race, join tokens, agent join /
 * renewal / revocation, users, and the watched revocation set.
 */
import { expect } from 'chai';
import type { Etcd3 } from 'etcd3';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Keyspace } from '../../shared/keyspace';
import { createKeyAndCsr, type ClusterCa } from '../../shared/pki/cluster-ca';
import { parseCredentials } from '../../shared/pki/credentials-file';
import { parseJoinToken, formatJoinToken } from '../../shared/pki/join-token';
import { UnauthenticatedError } from '../../shared/pki/errors';
import { FailedPreconditionError } from '../../shared/errors';
import { bootstrapPki, TokenStore, AgentEnrolment, UserStore, RevocationSet, DEFAULT_TOKEN_TTL_MS, type PkiBootstrapResult } from '../../coordinator/pki';
import { EtcdServer, expectReject, waitFor } from '../helpers';
import { manualClock } from './fixtures';
import type { ManualClock } from '../../shared/clock';

const HOUR = 60 * 60 * 1000;

describe('trust: coordinator PKI on a real etcd', function () {
  this.timeout(60_000);
  let etcd: EtcdServer;
  let client: Etcd3;
  let dir: string;
  let n = 0;
  const freshKeyspace = (): Keyspace => new Keyspace(`/trust-${++n}/`);

  before(async () => {
    etcd = await EtcdServer.start('trust');
    client = etcd.client();
    dir = mkdtempSync(join(tmpdir(), 'trust-pki-'));
  });
  after(async () => {
    await etcd?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  const pkiDirOf = (ks: Keyspace, name: string): string => join(dir, `${ks.prefix.replace(/\//g, '')}-${name}`);

  async function bootstrap(
    ks: Keyspace, name: string, secretFile = join(dir, `secret-${ks.prefix.replace(/\//g, '')}`), clock?: ManualClock, etcdClient = client,
  ): Promise<PkiBootstrapResult> {
    return bootstrapPki({
      etcd: etcdClient, keyspace: ks, pkiDir: pkiDirOf(ks, name), clusterSecretFile: secretFile,
      coordinatorName: name, hosts: [`${name}.example`], endpoints: ['127.0.0.1:7000'], clock,
    });
  }

  describe('bootstrap', () => {
    it('two replicas racing on an empty cluster: exactly one CA wins, both serve with it, only the winner writes files', async () => {
      const ks = freshKeyspace();
      // Separate etcd clients, as two replicas would have.
      const [a, b] = await Promise.all([bootstrap(ks, 'c1', undefined, undefined, etcd.client()), bootstrap(ks, 'c2', undefined, undefined, etcd.client())]);
      expect([a.created, b.created].sort()).to.deep.equal([false, true]);
      expect(a.ca.certPem).to.equal(b.ca.certPem);
      const stored = JSON.parse((await client.get(ks.pkiCa()).string())!) as { certificate: string; encryptedKey: { ciphertext: string } };
      expect(stored.certificate).to.equal(a.ca.certPem);
      expect(JSON.stringify(stored)).to.not.include('PRIVATE KEY');
      for (const [r, name] of [[a, 'c1'], [b, 'c2']] as const) {
        const id = r.ca.verify(r.serving.certPem);
        expect(id).to.include({ role: 'coordinator', name });
        expect(new X509Certificate(r.serving.certPem).subjectAltName).to.include(`DNS:${name}.example`);
      }
      const winner = a.created ? a : b;
      const loser = a.created ? b : a;
      expect(loser.wrote).to.deep.equal([]);
      expect(winner.wrote.map((p) => p.split('/').pop())).to.deep.equal(['ca.crt', 'admin.yaml', 'join-token']);
      const [caPath, adminPath, tokenPath] = winner.wrote;
      expect(readFileSync(caPath, 'utf8')).to.equal(winner.ca.certPem);
      expect(statSync(adminPath).mode & 0o777).to.equal(0o600);
      expect(statSync(tokenPath).mode & 0o777).to.equal(0o600);
      const admin = parseCredentials(readFileSync(adminPath, 'utf8'));
      expect(admin).to.include({ user: 'admin', role: 'admin' });
      expect(admin.coordinator).to.deep.equal(['127.0.0.1:7000']);
      expect(admin.ca).to.equal(winner.ca.certPem);
      expect(winner.ca.verify(admin.certificate)).to.include({ role: 'admin', name: 'admin' });
      const token = parseJoinToken(readFileSync(tokenPath, 'utf8'));
      expect(token.caHash).to.equal(winner.ca.publicKeyHash);
      const rec = await new TokenStore(client, ks, winner.ca.publicKeyHash).get(token.id);
      expect(rec).to.include({ usesLeft: null, revoked: false });
      expect(Date.parse(rec!.expiresAt!) - Date.parse(rec!.createdAt)).to.equal(DEFAULT_TOKEN_TTL_MS);
      expect(existsSync(join(pkiDirOf(ks, a.created ? 'c2' : 'c1'), 'ca.crt'))).to.equal(false);
    });

    it('a later replica reads the CA; one with another cluster secret gets a clear error', async () => {
      const ks = freshKeyspace();
      const first = await bootstrap(ks, 'c1');
      const again = await bootstrap(ks, 'c3');
      expect(again.created).to.equal(false);
      expect(again.ca.publicKeyHash).to.equal(first.ca.publicKeyHash);
      const err = await expectReject(bootstrap(ks, 'c4', join(dir, 'another-secret')), /^cannot decrypt the cluster CA key: this replica's cluster secret differs from the one the CA was created with/);
      expect(err).to.be.instanceOf(FailedPreconditionError);
    });
  });

  describe('join tokens', () => {
    let ks: Keyspace;
    let ca: ClusterCa;
    let clock: ManualClock;
    let tokens: TokenStore;
    before(async () => {
      ks = freshKeyspace();
      clock = manualClock();
      ca = (await bootstrap(ks, 'c1', undefined, clock)).ca;
      tokens = new TokenStore(client, ks, ca.publicKeyHash, clock);
    });

    it('stores only the hash of the secret, and lists tokens without secrets', async () => {
      const { token, record } = await tokens.create({ ttlMs: HOUR, uses: 2, description: 'rack 4' });
      const t = parseJoinToken(token);
      const raw = (await client.get(ks.pkiToken(t.id)).string())!;
      expect(raw).to.not.include(t.secret);
      expect(record).to.include({ id: t.id, usesLeft: 2, description: 'rack 4', revoked: false });
      const listed = await tokens.list();
      expect(listed.map((r) => r.id)).to.include(t.id);
      expect(JSON.stringify(listed)).to.not.include(t.secret);
    });

    it('a used-up token is refused with a message saying what to do', async () => {
      const { token } = await tokens.create({ uses: 2 });
      expect((await tokens.consume(token)).usesLeft).to.equal(1);
      expect((await tokens.consume(token)).usesLeft).to.equal(0);
      const id = parseJoinToken(token).id;
      await expectReject(tokens.consume(token), new RegExp(`^join token ${id} is used up: create a new one with clusterctl token create`));
    });

    it('an expired token is refused, naming when it expired', async () => {
      const { token, record } = await tokens.create({ ttlMs: HOUR });
      await tokens.consume(token);
      await clock.advance(HOUR);
      const err = await expectReject(tokens.consume(token));
      expect(err).to.be.instanceOf(UnauthenticatedError);
      expect(err.message).to.equal(`join token ${record.id} expired at ${record.expiresAt}: create a new one with clusterctl token create`);
    });

    it('a revoked token is refused; an unknown id, a wrong secret and another cluster’s CA hash too', async () => {
      const { token, record } = await tokens.create();
      await tokens.revoke(record.id);
      await expectReject(tokens.consume(token), /was revoked: create a new one/);
      const t = parseJoinToken(token);
      await expectReject(tokens.consume(formatJoinToken({ ...t, id: 'zzzzzz' })), /join token zzzzzz is unknown or its secret is wrong/);
      const ok = parseJoinToken((await tokens.create()).token);
      await expectReject(tokens.consume(formatJoinToken({ ...ok, secret: 'f'.repeat(32) })), /is unknown or its secret is wrong/);
      await expectReject(tokens.consume(formatJoinToken({ ...ok, caHash: 'e'.repeat(64) })), /pins CA eeeeeeeeeeeeeeee…, but this cluster's CA is .*: the token is for another cluster/);
      await expectReject(tokens.revoke('nope00'), /join token nope00 does not exist/);
    });

    it('concurrent uses never exceed the count', async () => {
      const { token } = await tokens.create({ uses: 3 });
      const results = await Promise.allSettled(Array.from({ length: 8 }, () => tokens.consume(token)));
      expect(results.filter((r) => r.status === 'fulfilled')).to.have.length(3);
      for (const r of results) if (r.status === 'rejected') expect((r.reason as Error).message).to.match(/used up/);
    });

    it('refuses a bad ttl or use count', async () => {
      await expectReject(tokens.create({ ttlMs: 0 }), /invalid token ttl/);
      await expectReject(tokens.create({ uses: 0 }), /invalid token uses/);
    });
  });

  describe('agents: join, renew, revoke', () => {
    let ks: Keyspace;
    let ca: ClusterCa;
    let tokens: TokenStore;
    let enrol: AgentEnrolment;
    let revocations: RevocationSet;
    before(async () => {
      ks = freshKeyspace();
      ca = (await bootstrap(ks, 'c1')).ca;
      tokens = new TokenStore(client, ks, ca.publicKeyHash);
      enrol = new AgentEnrolment(client, ks, ca, tokens, { validityMs: 2 * HOUR });
      revocations = await RevocationSet.start(client, ks);
    });
    after(async () => revocations?.close());

    it('a valid token and a CSR give an agent certificate for the node id; the token use is spent', async () => {
      const { token, record } = await tokens.create({ uses: 5 });
      const { csrPem } = await createKeyAndCsr('n1');
      const res = await enrol.join(token, 'n1', csrPem);
      expect(res.caPem).to.equal(ca.certPem);
      expect(ca.verify(res.certPem)).to.include({ role: 'agent', name: 'n1', serial: res.serial });
      expect(res.notAfter.getTime() - Date.now()).to.be.within(2 * HOUR - 10_000, 2 * HOUR + 1000);
      expect((await tokens.get(record.id))?.usesLeft).to.equal(4);
    });

    it('a bad CSR is refused without spending a token use', async () => {
      const { token, record } = await tokens.create({ uses: 1 });
      await expectReject(enrol.join(token, 'n2', 'not a csr'), /not a certificate signing request/);
      expect((await tokens.get(record.id))?.usesLeft).to.equal(1);
    });

    it('a node id that holds a live certificate cannot be joined again until it is revoked', async () => {
      const { token } = await tokens.create();
      const first = await enrol.join(token, 'n3', (await createKeyAndCsr('n3')).csrPem);
      await expectReject(enrol.join(token, 'n3', (await createKeyAndCsr('n3')).csrPem), /^node n3 already holds a certificate .*run clusterctl node revoke n3 first/);
      const seen: string[] = [];
      revocations.onRevoked((r) => seen.push(`${r.role}/${r.name}/${r.serial}`));
      expect(await enrol.revokeNode('n3')).to.deep.equal([first.serial]);
      await waitFor('the revocation set to see the revoked serial', () => revocations.isRevoked(first.serial));
      expect(seen).to.deep.equal([`agent/n3/${first.serial}`]);
      const again = await enrol.join(token, 'n3', (await createKeyAndCsr('n3')).csrPem);
      expect(again.serial).to.not.equal(first.serial);
      expect(revocations.isRevoked(again.serial)).to.equal(false);
    });

    it('two concurrent joins for one node id: exactly one wins', async () => {
      const { token } = await tokens.create();
      const csrs = await Promise.all([createKeyAndCsr('n4'), createKeyAndCsr('n4')]);
      const results = await Promise.allSettled(csrs.map((c) => enrol.join(token, 'n4', c.csrPem)));
      expect(results.filter((r) => r.status === 'fulfilled')).to.have.length(1);
    });

    it('renewal: a valid agent certificate gets a new one for the same identity without a token', async () => {
      const { token } = await tokens.create({ uses: 1 });
      const joined = await enrol.join(token, 'n5', (await createKeyAndCsr('n5')).csrPem);
      const peer = ca.verify(joined.certPem);
      const renewed = await enrol.renew(peer, (await createKeyAndCsr('n5')).csrPem);
      expect(ca.verify(renewed.certPem)).to.include({ role: 'agent', name: 'n5' });
      expect(renewed.serial).to.not.equal(joined.serial);
      // The renewed certificate can renew in turn; a revoked one cannot.
      await enrol.renew(ca.verify(renewed.certPem), (await createKeyAndCsr('n5')).csrPem);
      await enrol.revokeNode('n5');
      await expectReject(enrol.renew(peer, (await createKeyAndCsr('n5')).csrPem), /has been revoked: join again with a token/);
    });

    it('renewal refuses users and certificates this cluster did not record for the node', async () => {
      const viewer = await ca.issueKeyAndCertificate({ role: 'viewer', name: 'v' });
      await expectReject(enrol.renew(ca.verify(viewer.certPem), (await createKeyAndCsr('v')).csrPem), /only agents renew/);
      const stray = await ca.issueKeyAndCertificate({ role: 'agent', name: 'n6' });
      await expectReject(enrol.renew(ca.verify(stray.certPem), (await createKeyAndCsr('n6')).csrPem), /is not a live certificate of agent n6/);
    });
  });

  describe('users and the revocation set', () => {
    it('add writes a working credentials file; a live name is refused; revoke reaches the watching set', async () => {
      const ks = freshKeyspace();
      const { ca } = await bootstrap(ks, 'c1');
      const users = new UserStore(client, ks, ca);
      const revocations = await RevocationSet.start(client, ks);
      try {
        const added = await users.add('alice', 'operator', { endpoints: ['10.0.0.1:7000', '10.0.0.2:7000'] });
        const creds = parseCredentials(added.credentials);
        expect(creds).to.include({ user: 'alice', role: 'operator', ca: ca.certPem });
        expect(creds.coordinator).to.deep.equal(['10.0.0.1:7000', '10.0.0.2:7000']);
        expect(ca.verify(creds.certificate)).to.include({ role: 'operator', name: 'alice', serial: added.serial });
        expect(creds.key).to.match(/^-----BEGIN PRIVATE KEY-----/);
        await expectReject(users.add('alice', 'admin', { endpoints: ['x:1'] }), /user alice exists \(role operator\): revoke it first/);
        expect((await users.list()).map((u) => `${u.name}:${u.role}`)).to.deep.equal(['admin:admin', 'alice:operator']);

        const { serials } = await users.revoke('alice');
        expect(serials).to.deep.equal([added.serial]);
        await waitFor('the revocation set to see alice revoked', () => revocations.isRevoked(added.serial));
        expect(revocations.get(added.serial)).to.include({ role: 'operator', name: 'alice' });
        // A second revocation set loads what is already revoked.
        const later = await RevocationSet.start(client, ks);
        expect(later.isRevoked(added.serial)).to.equal(true);
        await later.close();

        const readded = await users.add('alice', 'viewer', { endpoints: ['x:1'] });
        expect(revocations.isRevoked(readded.serial)).to.equal(false);
        await expectReject(users.revoke('bob'), /user bob does not exist/);
        await expectReject(users.add('a/b', 'viewer', { endpoints: ['x:1'] }), /invalid user name/);
      } finally {
        await revocations.close();
      }
    });
  });
});
