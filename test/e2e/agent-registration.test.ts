/**
 * End to end, real processes: an agent registers and its node appears Discovered with hardware
 * facts, in `clusterctl nodes -o json` and in `clusterctl node describe`.
 */
import { expect } from 'chai';
import { e2eSuite } from './e2e-suite';
import { KEYSPACE, readEvents, readNodes } from './e2e-etcd';
import type { Facts } from '../../shared/facts';

describe('e2e: agent registration', function () {
  this.timeout(120_000);
  const suite = e2eSuite('registration');

  it('an agent registers and appears Discovered with facts (clusterctl nodes -o json, node describe)', async () => {
    const cluster = await suite.startCluster({ name: 'registration' });
    await cluster.startAgent('n1', { hostname: 'rack1-host1' });

    const nodes = await cluster.waitForNodes('n1 Discovered and reachable', (ns) => ns.some((n) => n.id === 'n1' && n.state === 'Discovered' && n.reachable === true));
    expect(nodes.map((n) => n.id)).to.deep.equal(['n1']);
    const n1 = nodes[0];
    // Facts summary: what the agent's systeminformation saw on this very machine.
    expect(n1.facts, 'facts summary in the node list').to.be.an('object');
    const summary = n1.facts as Record<string, unknown>;
    expect(summary.cpuModel).to.be.a('string').and.not.equal('');
    expect(Number(summary.memoryBytes)).to.be.greaterThan(64 * 1024 * 1024);
    expect(n1.unreachableSince ?? '').to.equal('');

    // describe -o json: {node, facts} with the full facts document the agent stored.
    const described = await cluster.ctl(['node', 'describe', 'n1', '-o', 'json']);
    expect(described.code, described.stderr).to.equal(0);
    const detail = JSON.parse(described.stdout) as { node: { id: string; state: string; reachable: boolean }; facts: Facts };
    expect(detail.node).to.include({ id: 'n1', state: 'Discovered', reachable: true });
    expect(detail.facts.hostname).to.equal('rack1-host1');
    expect(detail.facts.cpu.cores).to.be.greaterThan(0);
    expect(detail.facts.memory.totalBytes).to.equal(Number(summary.memoryBytes));

    // The same facts are what etcd holds under facts/n1.
    const client = suite.etcd.client();
    const stored = JSON.parse((await client.get(KEYSPACE.facts('n1')).string()) ?? 'null') as Facts;
    expect(stored).to.deep.equal(detail.facts);
    expect(await client.get(KEYSPACE.member('n1')).string(), 'membership key').to.be.a('string');
    const records = await readNodes(client);
    expect(records.get('n1')).to.include({ state: 'Discovered', reachable: true });

    // The way there is in the audit trail: the node entered as New and moved to Discovered.
    const events = (await readEvents(client)).filter((e) => e.nodeId === 'n1');
    expect(events.some((e) => e.from === 'New' && e.to === 'Discovered'), JSON.stringify(events)).to.equal(true);

    // The human forms work too, and say the same thing.
    const table = await cluster.ctl(['nodes']);
    expect(table.code, table.stderr).to.equal(0);
    expect(table.stdout).to.match(/n1\s+.*Discovered/);
    const describeText = await cluster.ctl(['node', 'describe', 'n1']);
    expect(describeText.code, describeText.stderr).to.equal(0);
    expect(describeText.stdout).to.contain('Discovered').and.contain('rack1-host1');

    // A label selector goes through: the node has no role label yet.
    expect((await cluster.nodes(['-l', 'role=worker'])).map((n) => n.id)).to.deep.equal([]);
    expect((await cluster.nodes(['-l', '!role'])).map((n) => n.id)).to.deep.equal(['n1']);
  });
});
