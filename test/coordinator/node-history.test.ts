/**
 * Node history against a real etcd, with a driven clock (days pass in a test): every change of
 * a record writes its history entry in the same transaction (same revision as the record), the
 * reader answers "the node at T" with the record and facts of then, an etcd compaction to the
 * current revision changes none of it, and retention trims by count and age while keeping what
 * `--at` needs inside the window.
 */
import { expect } from 'chai';
import { expectReject, useEtcd } from '../helpers';
import { EventLog } from '../../coordinator/event-log';
import { HistoryRetention } from '../../coordinator/history-retention';
import { NodeHistoryReader } from '../../coordinator/node-history';
import { NodeStore, newNodeRecord, type Fence } from '../../coordinator/node-store';
import { createLogger, FailedPreconditionError, factsDigest, ManualClock, type Facts, type NodeRecord } from '../../shared';
import { SANDBOX_FACTS } from '../helpers/facts';

const logger = createLogger({ level: 'silent' });
const DAY = 24 * 3_600_000;

describe('node history (real etcd)', function () {
  this.timeout(60_000);
  const suite = useEtcd('node-history');

  function parts(clock: ManualClock): { nodes: NodeStore; events: EventLog; reader: NodeHistoryReader; fence: Fence } {
    const events = new EventLog({ client: suite.client, keyspace: suite.ks, clock, logger, actor: 'coordinator/test' });
    // The fence compares a key this test wrote: a real etcd compare that holds.
    const fence: Fence = {
      fenceCompare: () => ({ key: suite.ks.node('leader-fence'), target: 'Create', op: '>', value: '0', reason: 'fence' }),
      fenceFailed: () => { throw new Error('fence failed'); },
    };
    return { nodes: new NodeStore({ client: suite.client, keyspace: suite.ks, events, clock }), events, reader: new NodeHistoryReader(suite.client, suite.ks, clock), fence };
  }
  const set = (patch: Partial<NodeRecord>, type = 'node.labels') => (cur: NodeRecord | undefined) => {
    if (!cur) throw new Error('no node');
    return { next: { ...cur, ...patch }, event: { type, message: type, actor: 'user:alice', jobId: patch.currentJob } };
  };

  it('writes each change with its record (one transaction), answers --at with the record and facts of then, and survives compaction', async () => {
    const clock = new ManualClock(Date.parse('2026-11-01T00:00:00Z'));
    const { nodes, reader } = parts(clock);
    const facts16 = { ...SANDBOX_FACTS, memory: { totalBytes: 16 * 1024 ** 3, layout: [] } } as unknown as Facts;
    await nodes.mutate('n1', () => ({ next: newNodeRecord('n1', clock.iso()), event: { type: 'node.created', message: 'first contact' } }), { known: null });
    const tCreated = clock.now();
    await clock.advance(60_000);
    await nodes.mutate('n1', (cur) => cur && { next: { ...cur, state: 'Discovered', factsDigest: factsDigest(facts16) }, event: { type: 'node.discovered', message: 'facts' } }, { facts: facts16 });
    const tDiscovered = clock.now();
    await clock.advance(DAY);
    const res = await nodes.mutate('n1', set({ state: 'Commissioning', currentJob: 'j-1' }, 'node.state'));
    await clock.advance(60_000);
    await nodes.mutate('n1', set({ state: 'Commissioned', currentJob: undefined, appliedConfig: 'demo@1' }, 'node.state'));
    const facts32 = { ...SANDBOX_FACTS, memory: { totalBytes: 32 * 1024 ** 3, layout: [] } } as unknown as Facts;
    await clock.advance(DAY);
    await nodes.mutate('n1', (cur) => cur && { next: { ...cur, factsDigest: factsDigest(facts32) }, event: { type: 'node.facts-changed', message: 'memory' } }, { facts: facts32 });

    // Same transaction: the history entry was created at the revision that wrote the record.
    if (!res.changed) throw new Error('not written');
    const entryKey = suite.ks.history('n1', res.seq, tDiscovered + DAY);
    const kv = (await suite.client.get(entryKey).exec()).kvs[0];
    expect(kv?.create_revision.toString(), 'history entry written with its record').to.equal(res.node.modRevision);

    const check = async (): Promise<void> => {
      const list = await reader.list('n1');
      expect(list.entries.map((e) => [e.entry.type, e.entry.record.state, e.entry.actor])).to.deep.equal([
        ['node.created', 'New', 'coordinator/test'], ['node.discovered', 'Discovered', 'coordinator/test'],
        ['node.state', 'Commissioning', 'user:alice'], ['node.state', 'Commissioned', 'user:alice'], ['node.facts-changed', 'Commissioned', 'coordinator/test'],
      ]);
      expect(list.entries[2]).to.deep.include({ changes: ['state Discovered → Commissioning', 'job (none) → j-1'] });
      expect(list.entries[2].entry.jobId).to.equal('j-1');
      expect(list.entries.map((e) => e.factsRecorded)).to.deep.equal([false, true, false, false, true]);
      // Between discovered and commissioning: Discovered, 16 GiB.
      const then = await reader.at('n1', tDiscovered + DAY / 2);
      expect(then.entry.record.state).to.equal('Discovered');
      expect((JSON.parse(then.factsJson) as Facts).memory.totalBytes).to.equal(16 * 1024 ** 3);
      const now = await reader.at('n1', clock.now());
      expect([now.entry.record.state, now.entry.record.appliedConfig]).to.deep.equal(['Commissioned', 'demo@1']);
      expect((JSON.parse(now.factsJson) as Facts).memory.totalBytes).to.equal(32 * 1024 ** 3);
      expect(await expectReject(reader.at('n1', tCreated - 1000), /did not exist yet at .*created at 2026-11-01T00:00:00/)).to.be.instanceOf(FailedPreconditionError);
    };
    await check();
    // Compact etcd to its current revision: old revisions are gone, history is not.
    const revision = (await suite.client.get(suite.ks.node('n1')).exec()).header.revision;
    await suite.client.kv.compact({ revision, physical: true });
    await expectReject(suite.client.get(suite.ks.node('n1')).revision(String(Number(revision) - 1)).exec(), /compacted/);
    await check();
  });

  it('retention trims by count and age, keeps the entry in effect at the cutoff and its facts, refuses --at before the window', async () => {
    const clock = new ManualClock(Date.parse('2026-11-01T00:00:00Z'));
    const { nodes, reader, events, fence } = parts(clock);
    await suite.client.put(suite.ks.node('leader-fence')).value('{}').exec();
    const facts = { ...SANDBOX_FACTS };
    await nodes.mutate('n1', () => ({ next: { ...newNodeRecord('n1', clock.iso()), factsDigest: factsDigest(facts) }, event: { type: 'node.created', message: 'c' } }), { known: null, facts });
    await nodes.mutate('gone', () => ({ next: newNodeRecord('gone', clock.iso()), event: { type: 'node.created', message: 'c' } }), { known: null });
    await suite.client.delete().key(suite.ks.node('gone')).exec();
    // One label change a day for ten days.
    for (let day = 1; day <= 10; day++) {
      await clock.advance(DAY);
      await nodes.mutate('n1', set({ labels: { day: String(day) } }));
    }
    const retention = new HistoryRetention({
      client: suite.client, keyspace: suite.ks, events, fence, policy: { keep: 100, maxAgeMs: 3 * DAY + 3_600_000 }, intervalMs: 60_000, maxOps: 16,
      isLeader: () => true, clock, logger,
    });
    const trimmed = await retention.trim();
    // Cutoff 3 d 1 h ago: days 7..10 are within it; day 6 (in effect at the cutoff) stays; created + days 1..5 and all of "gone" go.
    expect(trimmed).to.deep.equal({ records: 7, facts: 0, nodes: 2 });
    const kept = await reader.list('n1');
    expect(kept.entries.map((e) => e.entry.record.labels.day)).to.deep.equal(['6', '7', '8', '9', '10']);
    expect(kept.entries[0].changes).to.deep.equal(['(oldest entry kept: changes before it were trimmed)']);
    expect(await reader.list('gone')).to.deep.include({ total: 0 });
    // The facts recorded at creation are still the ones in effect: kept, and shown for a time in the window.
    const inWindow = await reader.at('n1', clock.now() - 3 * DAY);
    expect(inWindow.entry.record.labels.day).to.equal('7');
    expect((JSON.parse(inWindow.factsJson) as Facts).hostname).to.equal('sandbox');
    expect(await expectReject(reader.at('n1', clock.now() - 8 * DAY), /before the oldest history kept for node n1 .*--history-retention-age/)).to.be.instanceOf(FailedPreconditionError);

    // The count bound: 2 per node.
    const byCount = new HistoryRetention({
      client: suite.client, keyspace: suite.ks, events, fence, policy: { keep: 2, maxAgeMs: 100 * DAY }, intervalMs: 60_000, maxOps: 16, isLeader: () => true, clock, logger,
    });
    expect(await byCount.trim()).to.deep.equal({ records: 3, facts: 0, nodes: 1 });
    expect((await reader.list('n1')).entries.map((e) => e.entry.record.labels.day)).to.deep.equal(['9', '10']);
    expect((await reader.keys('n1')).facts, 'the facts in effect at the oldest kept entry').to.have.length(1);
    expect(await byCount.trim(), 'a second pass finds nothing more').to.deep.equal({ records: 0, facts: 0, nodes: 0 });
  });
});
