/**
 * End to end, real processes: SIGKILL of an agent makes its node Unreachable within TTL + 1 s
 * of the kill, and restarting the agent brings the node back Reachable with the same id and
 * the same lifecycle state.
 */
import { expect } from 'chai';
import { e2eSuite } from './e2e-suite';
import { readEvents } from './e2e-etcd';
import { watchNode } from './e2e-watch';

const TTL_SEC = 3;

describe('e2e: agent failure detection', function () {
  this.timeout(120_000);
  const suite = e2eSuite('failure-detection');

  it(`SIGKILL of an agent: Unreachable within TTL + 1 s (TTL ${TTL_SEC} s); its restart: Reachable again, same id, same state`, async () => {
    const cluster = await suite.startCluster({ name: 'failure-detection', leaseTtlSec: TTL_SEC });
    const agent = await cluster.startAgent('n1');
    await cluster.startAgent('n2'); // a bystander, which must stay Reachable throughout
    const before = await cluster.waitForNodes('n1 and n2 Discovered and reachable', (ns) =>
      ns.length === 2 && ns.every((n) => n.state === 'Discovered' && n.reachable));
    const stateBefore = before.find((n) => n.id === 'n1')?.state;

    const client = suite.etcd.client();
    const watch = await watchNode(client, 'n1');
    try {
      const killedAt = Date.now();
      await agent.kill();
      const { at, node } = await watch.until((n) => !n.reachable, (TTL_SEC + 10) * 1000, 'n1 unreachable');
      const detectionMs = at - killedAt;
      console.log(`      detection: ${detectionMs} ms after SIGKILL (TTL ${TTL_SEC} s)`);
      expect(detectionMs, 'kill → Unreachable').to.be.at.most(TTL_SEC * 1000 + 1000);
      expect(node.state, 'lifecycle state is a separate dimension').to.equal(stateBefore);
      expect(node.unreachableSince, 'unreachableSince set').to.be.a('string').and.not.equal('');
      // The stream closes at once; the lease runs out later: the record names both by then.
      expect(['stream', 'both'], 'the signal that fired first').to.include(node.unreachableSignal);
      const both = await watch.until((n) => n.unreachableSignal === 'both', (TTL_SEC + 10) * 1000, 'n1 unreachable by stream and lease');
      expect(both.node.unreachableSince, 'since kept when the second signal fires').to.equal(node.unreachableSince);

      // What the operator sees agrees with etcd.
      const seen = await cluster.nodes();
      expect(seen.find((n) => n.id === 'n1')).to.include({ reachable: false, state: stateBefore });
      expect(seen.find((n) => n.id === 'n1')?.unreachableSince).to.be.a('string').and.not.equal('');
      expect(seen.find((n) => n.id === 'n2'), 'the bystander').to.include({ reachable: true, state: 'Discovered' });
      const events = (await readEvents(client)).filter((e) => e.nodeId === 'n1');
      expect(events.map((e) => e.type), 'an unreachable event').to.include('node.unreachable');

      // Same machine comes back: same node id, same state dir.
      await agent.restart();
      await watch.until((n) => n.reachable, 30_000, 'n1 reachable again');
      const after = await cluster.waitForNodes('n1 reachable in clusterctl', (ns) => ns.some((n) => n.id === 'n1' && n.reachable));
      expect(after.map((n) => n.id).sort(), 'no duplicate node for the same machine').to.deep.equal(['n1', 'n2']);
      const back = after.find((n) => n.id === 'n1');
      expect(back).to.include({ id: 'n1', state: stateBefore, reachable: true });
      expect(back?.unreachableSince ?? '', 'unreachableSince cleared').to.equal('');
      const later = (await readEvents(client)).filter((e) => e.nodeId === 'n1');
      expect(later.map((e) => e.type), 'a reachable event').to.include('node.reachable');
      expect(later.filter((e) => e.from !== undefined || e.to !== undefined).length, 'no lifecycle change from the kill and restart')
        .to.equal(events.filter((e) => e.from !== undefined || e.to !== undefined).length);
    } finally {
      await watch.close();
    }
  });
});
