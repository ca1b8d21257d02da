/**
 * End to end, real processes: etcd stopped for 10 s and started again. Every agent (3) notices,
 * re-registers when etcd is back, and nothing is lost: node records, facts and events are all
 * still there and no lifecycle state changed.
 */
import { expect } from 'chai';
import { delay, etcdSnapshot, waitFor } from '../helpers';
import { e2eSuite } from './e2e-suite';
import { KEYSPACE, isStateEvent, readEvents, readNodes, statesOf } from './e2e-etcd';

const OUTAGE_MS = 10_000;
const IDS = ['n1', 'n2', 'n3'];

describe('e2e: etcd outage', function () {
  this.timeout(180_000);
  const suite = e2eSuite('etcd-outage');

  it('etcd stopped for 10 s and restarted: every agent (3) re-registers, nothing lost, states unchanged', async () => {
    const cluster = await suite.startCluster({ name: 'etcd-outage', leaseTtlSec: 3 });
    const agents = await Promise.all(IDS.map((id) => cluster.startAgent(id)));
    await cluster.waitForNodes('3 nodes Discovered and reachable', (ns) => ns.length === 3 && ns.every((n) => n.state === 'Discovered' && n.reachable));

    let client = suite.etcd.client();
    const statesBefore = statesOf(await readNodes(client));
    const factsBefore = await etcdSnapshot(client, KEYSPACE.factsPrefix());
    const eventsBefore = await etcdSnapshot(client, KEYSPACE.eventsPrefix());
    const stateEventsBefore = (await readEvents(client)).filter(isStateEvent).length;
    expect(Object.keys(factsBefore)).to.have.length(3);
    expect(Object.keys(eventsBefore).length).to.be.greaterThan(0);

    await suite.etcd.stop();
    const stoppedAt = Date.now();
    // Each agent sees etcd go away (its keepalive runs every TTL/3) and keeps running.
    for (const a of agents) await a.proc.waitForLog(/"msg":"etcd unreachable"/, OUTAGE_MS);
    await delay(Math.max(0, OUTAGE_MS - (Date.now() - stoppedAt)));
    for (const a of agents) expect(a.proc.alive, `agent ${a.nodeId} survived the outage`).to.equal(true);
    expect(cluster.coordinators[0].proc.alive, 'coordinator survived the outage').to.equal(true);
    await suite.etcd.start();

    for (const a of agents) await a.proc.waitForLog(/"msg":"re-registered"/, 30_000);
    client = suite.etcd.client();
    const c = client;
    await waitFor('3 member keys back', async () => Object.keys(await etcdSnapshot(c, KEYSPACE.membersPrefix())).length === 3, { timeoutMs: 30_000 });
    const after = await cluster.waitForNodes('3 nodes reachable after the outage', (ns) => ns.length === 3 && ns.every((n) => n.reachable), 60_000);

    expect(Object.fromEntries(after.map((n) => [n.id, n.state]))).to.deep.equal(statesBefore);
    expect(statesOf(await readNodes(client))).to.deep.equal(statesBefore);
    expect(await etcdSnapshot(client, KEYSPACE.factsPrefix()), 'facts unchanged').to.deep.equal(factsBefore);
    const eventsAfter = await etcdSnapshot(client, KEYSPACE.eventsPrefix());
    for (const [key, value] of Object.entries(eventsBefore)) expect(eventsAfter[key], `event ${key} kept`).to.equal(value);
    expect((await readEvents(client)).filter(isStateEvent).length, 'no lifecycle event from the outage').to.equal(stateEventsBefore);
  });
});
