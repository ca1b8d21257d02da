/**
 * End to end, real processes: the coordinator process reaches the TLS etcd as its user
 * `coordinator`, an agent that joins gets its etcd user and writes its presence with its own
 * certificate, and `clusterctl node revoke` deletes that user, so the node's key opens nothing
 * in etcd any more.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { hasAgentAccess } from '../../shared/etcd-auth';
import { waitFor } from '../helpers';
import { KEYSPACE } from './e2e-etcd';
import { e2eSuite } from './e2e-suite';

describe('e2e: etcd users of agents', function () {
  this.timeout(120_000);
  const suite = e2eSuite('etcd-users');

  it('join creates the agent user, its certificate writes only its own keys, revoke deletes the user', async () => {
    const cluster = await suite.startCluster();
    const agent = await cluster.startAgent('eu-1');
    const root = suite.etcd.client();
    expect(await hasAgentAccess(root, 'eu-1')).to.equal(true);
    expect(await root.get(KEYSPACE.member('eu-1')).string(), 'the agent registered through its own etcd user').to.be.a('string');

    // The agent's own files are its etcd credentials.
    const pki = (name: string): string => readFileSync(join(agent.stateDir, 'pki', name), 'utf8');
    const asAgent = suite.etcd.clientAs({ caPem: pki('ca.crt'), certPem: pki('node.crt'), keyPem: pki('node.key') });
    await asAgent.put(KEYSPACE.facts('eu-1')).value('{}');
    const forged = await asAgent.put(KEYSPACE.node('eu-1')).value('{"state":"Commissioned"}').then(() => undefined, (e: unknown) => e);
    expect((forged as Error | undefined)?.message).to.match(/permission denied/);

    const r = await cluster.ctl(['node', 'revoke', 'eu-1']);
    expect(r.code, r.stderr).to.equal(0);
    await waitFor('the agent user to be gone', async () => !(await hasAgentAccess(root, 'eu-1')), { timeoutMs: 10_000 });
    const after = await asAgent.put(KEYSPACE.facts('eu-1')).value('{}').then(() => undefined, (e: unknown) => e);
    expect(after, 'a revoked node key opens nothing in etcd').to.be.instanceOf(Error);
  });
});
