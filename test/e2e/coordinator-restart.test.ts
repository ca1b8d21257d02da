/**
 * End to end, real processes: the coordinator is SIGKILLed and started again (Contiv #66, #76:
 * a manager restart lost node states). Every node keeps its state, and the restart writes no
 * lifecycle event and no reachability flap — the agents never went away.
 */
import { expect } from 'chai';
import { waitFor } from '../helpers';
import { e2eSuite } from './e2e-suite';
import { isStateEvent, readEvents, readNodes, statesOf } from './e2e-etcd';

const IDS = ['n1', 'n2', 'n3'];

describe('e2e: coordinator restart', function () {
  this.timeout(180_000);
  const suite = e2eSuite('coordinator-restart');

  it('coordinator SIGKILL and restart: same state for every node, no spurious state events', async () => {
    const cluster = suite.cluster({ name: 'coordinator-restart', leaseTtlSec: 3 });
    const coordinator = await cluster.startCoordinator();
    await Promise.all(IDS.map((id) => cluster.startAgent(id)));
    const before = await cluster.waitForNodes('3 nodes Discovered and reachable', (ns) => ns.length === 3 && ns.every((n) => n.state === 'Discovered' && n.reachable));
    const client = suite.etcd.client();
    const statesBefore = statesOf(await readNodes(client));
    expect(Object.fromEntries(before.map((n) => [n.id, n.state]))).to.deep.equal(statesBefore);
    const lastSeqBefore = (await readEvents(client)).length;

    await coordinator.kill();
    const restartedAt = new Date().toISOString();
    // Same address, so agents and clusterctl find it again; it must win the election once the
    // dead replica's candidate key has expired.
    await coordinator.restart();
    const after = await cluster.waitForNodes('3 nodes listed after the restart', (ns) => ns.length === 3 && ns.every((n) => n.reachable), 60_000);

    // Every agent dialled the new leader again (its stream is recorded on the node).
    await waitFor('every agent connected to the new leader', async () => {
      const nodes = await readNodes(client);
      return nodes.size === 3 && [...nodes.values()].every((n) => n.connected && (n.connectedAt ?? '') > restartedAt);
    }, { timeoutMs: 60_000, intervalMs: 250 });

    expect(Object.fromEntries(after.map((n) => [n.id, n.state])), 'states seen by clusterctl').to.deep.equal(statesBefore);
    expect(statesOf(await readNodes(client)), 'states in etcd').to.deep.equal(statesBefore);
    // Give the new leader time to reconcile everything it saw at start, then look at what it wrote.
    await new Promise((r) => setTimeout(r, 3000));
    const newEvents = (await readEvents(client)).slice(lastSeqBefore);
    expect(newEvents.filter(isStateEvent), 'no lifecycle events from a coordinator restart').to.deep.equal([]);
    expect(newEvents.filter((e) => e.type === 'node.unreachable'), 'no reachability flap').to.deep.equal([]);
    expect(statesOf(await readNodes(client)), 'states still the same after reconciling').to.deep.equal(statesBefore);
  });
});
