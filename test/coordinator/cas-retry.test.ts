/**
 * The compare-and-swap loops on shared/retry's retryOnConflict, against a real etcd: a lost
 * CAS re-reads and decides again, attempts run out with the store's own ConflictError, and a
 * lost fence or a counter moved by another writer is handled as before (fence: at once).
 */
import { expect } from 'chai';
import { expectReject, useEtcd } from '../helpers';
import { EventLog } from '../../coordinator/event-log';
import { NodeStore, newNodeRecord, type VersionedNode } from '../../coordinator/node-store';
import { ConflictError, createLogger, NotLeaderError, systemClock, type NodeRecord } from '../../shared';

const logger = createLogger({ level: 'silent' });

describe('compare-and-swap retries (real etcd)', function () {
  this.timeout(30_000);
  const suite = useEtcd('cas');
  let events: EventLog;
  beforeEach(() => {
    events = new EventLog({ client: suite.client, keyspace: suite.ks, clock: systemClock, logger, actor: 'test' });
  });

  async function seed(id: string, store: NodeStore): Promise<VersionedNode> {
    const r = await store.mutate(id, () => ({ next: newNodeRecord(id, systemClock.iso()), event: { type: 'node.created', message: 'seed' } }));
    if (!r.changed) throw new Error('seed failed');
    return r.node;
  }

  const label = (current: NodeRecord | undefined): { next: NodeRecord; event: { type: string; message: string } } => {
    if (!current) throw new Error('no node');
    return { next: { ...current, labels: { ...current.labels, rack: 'r1' } }, event: { type: 'node.labels', message: 'rack=r1' } };
  };

  // [attempts, stale first read?, mutator calls expected, outcome]
  const rows: [number, boolean, number, 'written' | 'ConflictError'][] = [
    [5, false, 1, 'written'],
    [5, true, 2, 'written'],
    [2, true, 2, 'written'],
    [1, true, 1, 'ConflictError'],
  ];
  for (const [attempts, stale, wantCalls, want] of rows) {
    it(`node store, ${attempts} attempt(s), ${stale ? 'stale' : 'fresh'} first read → ${want} after ${wantCalls} decision(s)`, async () => {
      const store = new NodeStore({ client: suite.client, keyspace: suite.ks, events, clock: systemClock, maxAttempts: attempts });
      const seeded = await seed('n1', store);
      // A stale `known` (an older mod revision) loses the CAS on the first attempt only.
      const known: VersionedNode = stale ? { ...seeded, modRevision: String(BigInt(seeded.modRevision) - 1n) } : seeded;
      let calls = 0;
      const run = store.mutate('n1', (current) => { calls++; return label(current); }, { known });
      if (want === 'written') {
        const r = await run;
        expect(r.changed).to.equal(true);
        expect((await store.get('n1'))?.record.labels).to.deep.equal({ rack: 'r1' });
      } else {
        const err = await expectReject(run, /node n1 kept changing while being updated \(1 attempts\); retry/);
        expect(err).to.be.instanceOf(ConflictError);
        expect((await store.get('n1'))?.record.labels).to.deep.equal({});
      }
      expect(calls).to.equal(wantCalls);
    });
  }

  it('node store: a lost fence is thrown at once, not retried', async () => {
    await seed('n2', new NodeStore({ client: suite.client, keyspace: suite.ks, events, clock: systemClock }));
    let fenceChecks = 0;
    const store = new NodeStore({
      client: suite.client, keyspace: suite.ks, events, clock: systemClock, maxAttempts: 5,
      fence: {
        // A fence on a key that does not exist: etcd refuses the write.
        fenceCompare: () => { fenceChecks++; return { key: suite.ks.node('no-such-leader-key'), target: 'Create', op: '>', value: '0', reason: 'fence' }; },
        fenceFailed: () => new NotLeaderError('not the leader (test)'),
      },
    });
    const err = await expectReject(store.mutate('n2', label), /not the leader \(test\)/);
    expect(err).to.be.instanceOf(NotLeaderError);
    expect(fenceChecks).to.equal(1);
  });

  // [counter retries, outcome when another writer moved the counter first]
  for (const [retries, want] of [[0, 'ConflictError'], [1, 'written']] as const) {
    it(`event log, ${retries} counter retr${retries === 1 ? 'y' : 'ies'}: another writer moved the counter → ${want}`, async () => {
      const mine = new EventLog({ client: suite.client, keyspace: suite.ks, clock: systemClock, logger, actor: 'mine', maxCounterRetries: retries });
      const other = new EventLog({ client: suite.client, keyspace: suite.ks, clock: systemClock, logger, actor: 'other' });
      const put = (log: EventLog, n: number): ReturnType<EventLog['commit']> =>
        log.commit({ compares: [], ops: [{ kind: 'put', key: suite.ks.node(`e${n}`), value: '{}' }], event: { type: 'test', message: `m${n}` } });
      expect((await put(mine, 1)).succeeded).to.equal(true); // caches the counter
      expect((await put(other, 2)).succeeded).to.equal(true); // moves it behind mine's back
      if (want === 'written') {
        const r = await put(mine, 3);
        expect(r.succeeded && r.seq).to.equal(3);
      } else {
        await expectReject(put(mine, 3), /the event counter kept moving/);
      }
      expect((await mine.list()).map((e) => e.message)).to.deep.equal(want === 'written' ? ['m1', 'm2', 'm3'] : ['m1', 'm2']);
    });
  }
});
