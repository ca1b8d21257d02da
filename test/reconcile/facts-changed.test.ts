/**
 * A change of a node's facts is its own event (issue 12 §6), written by the leader's inventory
 * pass when the facts key holds facts whose digest differs from the one on the node record;
 * the same facts written again (an agent reconnecting) are no event.
 */
import { expect } from 'chai';
import { AgentStreams } from '../../coordinator/agent-streams';
import { applyFactsDigest, InventoryReconciler } from '../../coordinator/inventory-reconciler';
import { newNodeRecord } from '../../coordinator/node-store';
import { factsDigest, ManualClock, type Facts } from '../../shared';
import { SANDBOX_FACTS } from '../helpers';
import { logger, useHarness, type Harness } from './harness';

const GIB = 1024 ** 3;
const disk = (name: string, gib: number): Facts['disks'][number] => ({
  device: `/dev/${name}`, name, type: 'SSD', interfaceType: 'SATA', vendor: 'ATA', model: 'M', serial: name, sizeBytes: gib * GIB,
});
const BASE: Facts = { ...SANDBOX_FACTS, memory: { totalBytes: 16 * GIB, layout: [] }, disks: [disk('sda', 100)] };

describe('applyFactsDigest (pure)', () => {
  const rec = newNodeRecord('n1', '2030-01-01T00:00:00.000Z');
  const d = factsDigest(BASE);

  it('the first digest is recorded as node.facts-recorded', () => {
    expect(applyFactsDigest(rec, d)?.event.type).to.equal('node.facts-recorded');
  });
  it('the same facts collected again (another collectedAt) are no change', () => {
    expect(applyFactsDigest({ ...rec, factsDigest: d }, factsDigest({ ...BASE, collectedAt: '2031-01-01T00:00:00.000Z' }))).to.equal(undefined);
  });
  it('a new disk and more memory: one message naming both', () => {
    const c = applyFactsDigest({ ...rec, factsDigest: d }, factsDigest({ ...BASE, memory: { totalBytes: 32 * GIB, layout: [] }, disks: [disk('sda', 100), disk('sdb', 500)] }));
    expect(c?.event).to.deep.equal({ type: 'node.facts-changed', message: 'disks: +sdb 500 GiB; memory 16 GiB → 32 GiB' });
  });
  it('no node record: nothing', () => {
    expect(applyFactsDigest(undefined, d)).to.equal(undefined);
  });
});

describe('inventory reconciler: node.facts-changed (real etcd)', function () {
  this.timeout(60_000);
  const suite = useHarness('facts-changed');

  function reconciler(h: Harness): InventoryReconciler {
    const clock = new ManualClock();
    return h.adopt(new InventoryReconciler({
      client: h.client, keyspace: h.ks, nodes: h.nodes, streams: new AgentStreams(clock), streamGraceMs: 1_500, reattachGraceMs: 10_000, isLeader: h.isLeader, clock, logger,
    }));
  }
  const putFacts = async (h: Harness, facts: Facts): Promise<void> => {
    await h.client.put(h.ks.facts('n1')).value(JSON.stringify(facts)).exec();
  };
  const factsEvents = (h: Harness): Promise<{ type: string; message: string }[]> =>
    h.eventList((e) => e.type.startsWith('node.facts-')).then((es) => es.map((e) => ({ type: e.type, message: e.message ?? '' })));

  it('facts written twice equal: no event; then a new disk: exactly one node.facts-changed', async () => {
    const h = suite.h;
    const inv = reconciler(h);
    await h.putNode({ id: 'n1', state: 'New' });
    await putFacts(h, BASE);
    await inv.runOnce();
    await inv.runOnce();
    // The first facts are recorded with the discovery, in its event.
    const discovered = await h.eventList((e) => e.type === 'node.discovered');
    expect(discovered.map((e) => e.message)).to.deep.equal(['hardware facts reported: disks sda 100 GiB; memory 16 GiB; cpu Xeon, 2 cores / 4 threads; interfaces (none); os Rocky Linux 9.3, kernel 5.14']);
    expect(await factsEvents(h)).to.deep.equal([]);

    // The agent reconnects and writes the same hardware again (a new collectedAt, a new revision).
    await putFacts(h, { ...BASE, collectedAt: '2031-01-01T00:00:00.000Z' });
    await inv.runOnce();
    expect(await factsEvents(h)).to.deep.equal([]);

    await putFacts(h, { ...BASE, disks: [disk('sda', 100), disk('sdb', 500)] });
    await inv.runOnce();
    await inv.runOnce();
    expect(await factsEvents(h)).to.deep.equal([{ type: 'node.facts-changed', message: 'disks: +sdb 500 GiB' }]);
    expect((await h.node('n1')).factsDigest?.disks).to.deep.equal(['sda 100 GiB', 'sdb 500 GiB']);
  });

  it('a node discovered before digests were kept: its facts recorded once; a new leader (a fresh reconciler) writes nothing for unchanged facts', async () => {
    const h = suite.h;
    await h.putNode({ id: 'n1', state: 'Discovered' });
    await putFacts(h, BASE);
    await reconciler(h).runOnce();
    await reconciler(h).runOnce();
    expect((await factsEvents(h)).map((e) => e.type)).to.deep.equal(['node.facts-recorded']);
  });
});
