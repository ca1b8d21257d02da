/**
 * `clusterctl node refresh-facts ID` end to end, real processes (the built clusterctl, a real
 * coordinator, etcd and agent): the leader asks the agent over its stream, the agent collects
 * and stores its facts, and the command returns once they are stored. The stored facts are
 * made stale first (as if written before a memory upgrade), so the refresh has to replace them,
 * and the leader reports the difference as node.facts-changed both times.
 */
import { expect } from 'chai';
import { Keyspace } from '../../shared';
import { waitFor } from '../helpers';
import { e2eSuite } from '../e2e/e2e-suite';

interface EventJson { type: string; nodeId: string; message: string }

describe('cli-e2e: node refresh-facts', function () {
  this.timeout(180_000);
  const suite = e2eSuite('cli-refresh-facts');

  it('replaces stale facts with a fresh collection, returns once stored; the leader records the change as one event each way', async () => {
    const cluster = suite.cluster({ name: 'cli-refresh-facts' });
    await cluster.startCoordinator();
    await cluster.startAgent('n1');
    await cluster.waitForNodes('n1 Discovered', (ns) => ns.length === 1 && ns[0].state === 'Discovered' && ns[0].reachable);

    const client = suite.etcd.client();
    const key = new Keyspace().facts('n1');
    const real = JSON.parse((await client.get(key).string()) ?? '{}') as { memory: { totalBytes: number } };
    expect(real.memory.totalBytes).to.be.greaterThan(1);
    await client.put(key).value(JSON.stringify({ ...real, memory: { ...real.memory, totalBytes: 1 } })).exec();
    const factsEvents = async (): Promise<EventJson[]> => {
      const r = await cluster.ctl(['events', '--node', 'n1', '-o', 'json']);
      expect(r.code, r.stderr).to.equal(0);
      return (JSON.parse(r.stdout) as EventJson[]).filter((e) => e.type === 'node.facts-changed');
    };
    await waitFor('the stale facts seen by the leader', async () => (await factsEvents()).length === 1, { timeoutMs: 30_000, intervalMs: 300 });
    expect((await factsEvents())[0].message).to.match(/^memory .* → 1 B$/);

    const r = await cluster.ctl(['node', 'refresh-facts', 'n1', '-o', 'json']);
    expect(r.code, r.stderr).to.equal(0);
    const out = JSON.parse(r.stdout) as { changed: boolean; node: { id: string }; facts: { memory: { totalBytes: number } } };
    expect(out.node.id).to.equal('n1');
    // Stored before the command returned: etcd and the answer hold the real memory again.
    expect(out.facts.memory.totalBytes).to.equal(real.memory.totalBytes);
    const stored = JSON.parse((await client.get(key).string()) ?? '{}') as { memory: { totalBytes: number } };
    expect(stored.memory.totalBytes).to.equal(real.memory.totalBytes);

    await waitFor('the refresh seen by the leader', async () => (await factsEvents()).length === 2, { timeoutMs: 30_000, intervalMs: 300 });
    expect((await factsEvents())[1].message).to.match(/^memory 1 B → /);

    const text = await cluster.ctl(['node', 'refresh-facts', 'n1']);
    expect(text.code, text.stderr).to.equal(0);
    expect(text.stdout).to.match(/^node n1: facts (unchanged|changed)/);

    const missing = await cluster.ctl(['node', 'refresh-facts', 'n9']);
    expect(missing.code).to.equal(1);
    expect(missing.stderr).to.match(/n9 is not connected/);
  });
});
