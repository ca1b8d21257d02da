/**
 * etcd behind TLS with a user per component, enforced by the real etcd: a plaintext client
 * and a client without a certificate are refused; an agent's own certificate (CN agent:<id>)
 * opens exactly its member and facts keys and the election prefix; a coordinator's enrolment
 * makes that user and its revocation deletes it.
 */
import { expect } from 'chai';
import { Etcd3 } from 'etcd3';
import { AgentEnrolment, TokenStore } from '../../coordinator/pki';
import { createEtcdClient } from '../../shared/etcd';
import { agentEtcdUser, grantAgentAccess, hasAgentAccess, removeAgentAccess } from '../../shared/etcd-auth';
import { createKeyAndCsr } from '../../shared/pki/cluster-ca';
import { testPki, useEtcd } from '../helpers';

describe('etcd access: TLS, client certificates and a role per agent', function () {
  this.timeout(60_000);
  const suite = useEtcd('etcd-access');

  it('a plaintext client and a TLS client without a certificate are refused', async () => {
    const plain = createEtcdClient({ endpoints: [suite.etcd.endpoint], dialTimeoutMs: 2000 });
    try {
      const err = await plain.get(suite.ks.node('n1')).string().then(() => undefined, (e: unknown) => e);
      expect(err, 'a plaintext read must fail').to.be.instanceOf(Error);
    } finally {
      plain.close();
    }
    const pki = await testPki();
    // TLS with the CA pinned but no client certificate: what an outsider who found the port has.
    const anonymous = new Etcd3({
      hosts: `https://${suite.etcd.endpoint}`, dialTimeout: 2000, grpcOptions: { 'grpc.ssl_target_name_override': 'etcd' },
      credentials: { rootCertificate: Buffer.from(pki.caPem) },
    });
    try {
      const err = await anonymous.get(suite.ks.node('n1')).string().then(() => undefined, (e: unknown) => e);
      expect(err, 'a read without a client certificate must fail').to.be.instanceOf(Error);
    } finally {
      anonymous.close();
    }
  });

  it("an agent's certificate opens its own member and facts keys and the election, nothing else", async () => {
    const { ks, client: root } = suite;
    const pki = await testPki();
    await grantAgentAccess(root, ks, 'n1');
    await root.put(ks.electionCandidate('c1')).value('{"address":"127.0.0.1:7400"}');
    await root.put(ks.member('n2')).value('{}');
    const agent = suite.etcd.clientAs(await pki.agentEtcdTls('n1'));

    // What the agent does: a lease, its member key on it, its facts, the election read; a revoke.
    const lease = await agent.leaseClient.leaseGrant({ TTL: 5 });
    await agent.put(ks.member('n1')).value('{"nodeId":"n1"}').lease(lease.ID);
    await agent.put(ks.facts('n1')).value('{}');
    expect(await agent.getAll().prefix(ks.electionPrefix()).keys()).to.deep.equal([ks.electionCandidate('c1')]);
    expect(await agent.get(ks.member('n1')).string()).to.equal('{"nodeId":"n1"}');

    const refused = async (what: string, op: () => Promise<unknown>): Promise<void> => {
      const err = await op().then(() => undefined, (e: unknown) => e);
      expect(err, `${what} must be refused`).to.be.instanceOf(Error);
      expect((err as Error).message, what).to.match(/permission denied/);
    };
    await refused("writing another node's member key", () => agent.put(ks.member('n2')).value('{"forged":true}').exec());
    await refused("deleting another node's member key", () => agent.delete().key(ks.member('n2')).exec());
    await refused("writing another node's facts", () => agent.put(ks.facts('n2')).value('{}').exec());
    await refused('writing a node record', () => agent.put(ks.node('n1')).value('{}').exec());
    await refused('writing a job', () => agent.put(ks.job('j1')).value('{}').exec());
    await refused('writing a config bundle', () => agent.put(ks.config('base', '1')).value('{}').exec());
    await refused('reading node records', () => agent.getAll().prefix(ks.nodesPrefix()).keys());
    await refused('reading the cluster CA', () => agent.get(ks.pkiCa()).string());
    await refused('writing the election', () => agent.put(ks.electionCandidate('evil')).value('{"address":"10.6.6.6:1"}').exec());
    // etcd itself kept n2's record.
    expect(await root.get(ks.member('n2')).string()).to.equal('{}');

    await agent.leaseClient.leaseRevoke({ ID: lease.ID });
    expect(await root.get(ks.member('n1')).string()).to.equal(null);

    await removeAgentAccess(root, 'n1');
    const after = await agent.put(ks.facts('n1')).value('{}').then(() => undefined, (e: unknown) => e);
    expect(after, 'a deleted user opens nothing').to.be.instanceOf(Error);
  });

  it("the coordinator's user is the coordinator role over the prefix (and root, to manage agents' users)", async () => {
    const coordinator = suite.etcd.clientAs(await suite.etcd.tls('coordinator'));
    await coordinator.put(suite.ks.node('n1')).value('{}');
    await grantAgentAccess(coordinator, suite.ks, 'n9');
    expect(await hasAgentAccess(coordinator, 'n9')).to.equal(true);
    await removeAgentAccess(coordinator, 'n9');
    expect(await hasAgentAccess(coordinator, 'n9')).to.equal(false);
  });

  it('writes racing agents\' joins: etcd refuses them unapplied ("revision of auth store is old") and the client sends them again', async () => {
    const coordinator = createEtcdClient({ endpoints: [suite.etcd.endpoint], tls: await suite.etcd.tls('coordinator'), dialTimeoutMs: 2000 });
    try {
      const ids = Array.from({ length: 24 }, (_, i) => `rush-${i}`);
      const writes = Array.from({ length: 400 }, (_, i) => coordinator.put(`${suite.ks.prefix}rush/${i}`).value(String(i)).exec());
      const [granted, written] = await Promise.allSettled([
        Promise.all(ids.map((id) => grantAgentAccess(coordinator, suite.ks, id))),
        Promise.all(writes),
      ]);
      expect(granted.status, granted.status === 'rejected' ? String(granted.reason) : '').to.equal('fulfilled');
      expect(written.status, written.status === 'rejected' ? String(written.reason) : '').to.equal('fulfilled');
      for (const id of ids) expect(await hasAgentAccess(suite.client, id), id).to.equal(true);
      await Promise.all(ids.map((id) => removeAgentAccess(coordinator, id)));
    } finally {
      coordinator.close();
    }
  });

  it('joining creates the agent user, revoking deletes it', async () => {
    const { ks, client: root } = suite;
    const pki = await testPki();
    const tokens = new TokenStore(root, ks, pki.ca.publicKeyHash);
    const enrolment = new AgentEnrolment(root, ks, pki.ca, tokens, { etcdRbac: true });
    const token = await tokens.create({ ttlMs: 60_000, description: 'test' });
    const { keyPem, csrPem } = await createKeyAndCsr('n5');
    const issued = await enrolment.join(token.token, 'n5', csrPem);
    expect(await hasAgentAccess(root, 'n5')).to.equal(true);
    const agent = suite.etcd.clientAs({ caPem: issued.caPem, certPem: issued.certPem, keyPem });
    await agent.put(ks.facts('n5')).value('{"ok":true}');
    expect(await root.get(ks.facts('n5')).string()).to.equal('{"ok":true}');
    expect(agentEtcdUser('n5')).to.equal('agent:n5');

    await enrolment.revokeNode('n5');
    expect(await hasAgentAccess(root, 'n5')).to.equal(false);
    const err = await agent.put(ks.facts('n5')).value('{}').then(() => undefined, (e: unknown) => e);
    expect(err, 'a revoked agent opens nothing in etcd').to.be.instanceOf(Error);
  });
});
