/**
 * Group commit against a real etcd (default --max-txn-ops 128): concurrent commits share
 * transactions (etcd's revision moves once per transaction), each keeps its own guards and
 * event, a failed guard or a lost fence is reported to its own writer only, and the job
 * store's per-node puts are batched, fenced and coalesced the same way.
 */
import { expect } from 'chai';
import type { Etcd3 } from 'etcd3';
import { EtcdServer, expectReject, useEtcd } from '../helpers';
import { EtcdSpaceError } from '../../coordinator/etcd-txn';
import { isTooLarge } from '../../coordinator/txn-batch';
import { Keyspace } from '../../shared/keyspace';
import { createEtcdClient, isRetriedOnAnotherEndpoint } from '../../shared/etcd';
import { isRecoverableError } from 'etcd3';
import { LeaderElection } from '../../coordinator/leader-election';
import { EventLog } from '../../coordinator/event-log';
import { NodeStore, newNodeRecord, type Fence } from '../../coordinator/node-store';
import { JobStore } from '../../coordinator/jobs/job-store';
import { pendingNode } from '../../coordinator/jobs/job-record';
import { runBound } from '../../coordinator/request-binding';
import { createLogger, decodeEvent, DeadlineExceededError, errorMessage, NotLeaderError, systemClock, type NodeRecord } from '../../shared';

const logger = createLogger({ level: 'silent' });

describe('group commit (real etcd)', function () {
  this.timeout(60_000);
  const suite = useEtcd('group-commit');

  const create = (id: string) => (cur: NodeRecord | undefined) => cur ? undefined : { next: newNodeRecord(id, systemClock.iso()), event: { type: 'node.created', message: `created ${id}` } };
  const label = (value: string) => (cur: NodeRecord | undefined) => {
    if (!cur) throw new Error('no node');
    return { next: { ...cur, labels: { ...cur.labels, v: value } }, event: { type: 'node.labels', message: `v=${value}` } };
  };
  async function revision(): Promise<bigint> {
    const r = await suite.client.kv.range({ key: Buffer.from(suite.ks.eventSeq()) });
    return BigInt(r.header.revision);
  }
  function stores(fence?: Fence, maxOps = 128): { events: EventLog; nodes: NodeStore } {
    const events = new EventLog({ client: suite.client, keyspace: suite.ks, clock: systemClock, logger, actor: 'test', limits: { maxOps, maxBytes: 1024 * 1024 } });
    return { events, nodes: new NodeStore({ client: suite.client, keyspace: suite.ks, events, clock: systemClock, ...(fence ? { fence } : {}) }) };
  }

  for (const maxOps of [128, 16]) {
    it(`500 concurrent node creations (max ${maxOps} ops per txn): all written, 500 gapless events, far fewer transactions`, async () => {
      const { nodes } = stores(undefined, maxOps);
      const before = await revision();
      const ids = Array.from({ length: 500 }, (_, i) => `n${i}`);
      const results = await Promise.all(ids.map((id) => nodes.mutate(id, create(id), { known: null })));
      expect(results.every((r) => r.changed)).to.equal(true);
      const txns = Number((await revision()) - before);
      // Each transaction writes at most (maxOps - 1) / 3 nodes with their events and history entries.
      expect(txns).to.be.at.least(Math.ceil(500 / Math.floor((maxOps - 1) / 3)));
      expect(txns).to.be.below(125);
      // Each node's history entry went in with its record, under its event's sequence number.
      const history = (await suite.client.getAll().prefix(suite.ks.historyPrefix()).keys()).map((k) => suite.ks.parseHistory(k));
      expect(history.map((h) => h?.seq).sort((a, b) => (a ?? 0) - (b ?? 0))).to.deep.equal(Array.from({ length: 500 }, (_, i) => i + 1));
      const evs = (await suite.client.getAll().prefix(suite.ks.eventsPrefix()).strings());
      const seqs = Object.entries(evs).map(([k, v]) => decodeEvent(k, v).seq).sort((a, b) => a - b);
      expect(seqs).to.deep.equal(Array.from({ length: 500 }, (_, i) => i + 1));
      expect(await suite.client.get(suite.ks.eventSeq()).string()).to.equal('500');
      const stored = await nodes.list();
      expect(stored.nodes.map((n) => n.record.id).sort()).to.deep.equal([...ids].sort());
    });
  }

  it('one stale CAS and one failed guard in a batch: the others are written, the stale one re-decides, the guarded one is told', async () => {
    const { nodes } = stores();
    const ids = Array.from({ length: 40 }, (_, i) => `m${i}`);
    await Promise.all(ids.map((id) => nodes.mutate(id, create(id), { known: null })));
    const fresh = await nodes.getMany(ids);
    const stale = { ...fresh.get('m3')!, modRevision: '1' };
    const missing = { key: suite.ks.node('nobody'), target: 'Create' as const, op: '>' as const, value: '0', reason: 'needs-nobody' };
    const runs = ids.map((id) => nodes.mutate(id, label('x'), {
      known: id === 'm3' ? stale : fresh.get(id)!,
      ...(id === 'm7' ? { guards: [missing] } : {}),
    }));
    const results = await Promise.all(runs);
    results.forEach((r, i) => {
      if (ids[i] === 'm7') {
        expect(r.changed ? 'written' : r.guardFailed?.map((c) => c.reason)).to.deep.equal(['needs-nobody']);
      } else {
        expect(r.changed, ids[i]).to.equal(true);
      }
    });
    const after = await nodes.getMany(ids);
    for (const id of ids) expect(after.get(id)?.record.labels, id).to.deep.equal(id === 'm7' ? {} : { v: 'x' });
  });

  it('commits issued one after another, each as the previous resolves, never stall', async () => {
    // The next commit arrives in the microtask gap between the drain loop's end and its cleanup.
    const { nodes, events } = stores();
    const store = new JobStore({ client: suite.client, keyspace: suite.ks, events, logger });
    for (let i = 0; i < 20; i++) {
      await nodes.mutate(`s${i}`, create(`s${i}`), { known: null });
      await store.putNode('job-s', pendingNode(`s${i}`, 0));
      await store.putNode('job-s', { ...pendingNode(`s${i}`, 0), attempt: 1 });
    }
    expect((await store.nodes('job-s')).size).to.equal(20);
  });

  it('two changes of one node issued together both land, one after the other (never in one transaction)', async () => {
    // Each change appends to what it read: two writes of one key in one transaction, or a
    // change applied to a stale read, would lose one of them. Which lands first is the CAS race's.
    const append = (value: string) => (cur: NodeRecord | undefined) => {
      if (!cur) throw new Error('no node');
      const v = [cur.labels?.v, value].filter(Boolean).join(',');
      return { next: { ...cur, labels: { ...cur.labels, v } }, event: { type: 'node.labels', message: `v=${v}` } };
    };
    const { nodes } = stores();
    await nodes.mutate('d1', create('d1'), { known: null });
    await Promise.all([nodes.mutate('d1', append('first')), nodes.mutate('d1', append('second'))]);
    expect((await nodes.get('d1'))?.record.labels?.v?.split(',').sort()).to.deep.equal(['first', 'second']);
  });

  it('a writer whose request deadline has passed is refused alone; the transaction it would have started carries the others', async () => {
    const { nodes } = stores();
    const expired = { method: '/test.Service/Expired', deadlineMs: Date.now() - 1 };
    // The expired writer queues first, so the drain starts from its call: it must not be bound to it.
    const [late, ok] = await Promise.allSettled([
      runBound(expired, () => nodes.mutate('late', create('late'), { known: null })),
      nodes.mutate('on-time', create('on-time'), { known: null }),
    ]);
    expect(late.status).to.equal('rejected');
    if (late.status === 'rejected') expect(late.reason).to.be.instanceOf(DeadlineExceededError);
    expect(ok.status).to.equal('fulfilled');
    expect(await nodes.get('late')).to.equal(undefined);
    expect((await nodes.get('on-time'))?.record.id).to.equal('on-time');
  });

  it('a lost fence fails every writer of the batch with NotLeaderError and writes nothing', async () => {
    const { nodes: open } = stores();
    const ids = Array.from({ length: 30 }, (_, i) => `f${i}`);
    await Promise.all(ids.map((id) => open.mutate(id, create(id), { known: null })));
    const fence: Fence = {
      fenceCompare: () => ({ key: suite.ks.node('no-such-leader-key'), target: 'Create', op: '>', value: '0', reason: 'fence' }),
      fenceFailed: () => new NotLeaderError('not the leader (test)'),
    };
    const { nodes } = stores(fence);
    const before = await revision();
    const outcomes = await Promise.allSettled(ids.map((id) => nodes.mutate(id, label('late'))));
    for (const o of outcomes) {
      expect(o.status).to.equal('rejected');
      if (o.status === 'rejected') expect(o.reason).to.be.instanceOf(NotLeaderError);
    }
    expect(await revision()).to.equal(before);
  });

  it('job node records: batched, fenced, and a queued put of a key is replaced by a newer one', async () => {
    const { events } = stores();
    let leading = true;
    const leaderKey = suite.ks.node('leader-key');
    await suite.client.put(leaderKey).value('x');
    const fence: Fence = {
      fenceCompare: () => ({ key: leaderKey, target: 'Create', op: leading ? '>' : '==', value: '0', reason: 'fence' }),
      fenceFailed: () => new NotLeaderError('not the leader (test)'),
    };
    const store = new JobStore({ client: suite.client, keyspace: suite.ks, events, logger }).fenced(fence);
    const before = await revision();
    const recs = Array.from({ length: 300 }, (_, i) => pendingNode(`p${i}`, 0));
    await Promise.all([
      ...recs.map((r) => store.putNode('job-1', r)),
      store.putNode('job-1', { ...recs[0], state: 'running', attempt: 1 }),
    ]);
    const txns = Number((await revision()) - before);
    expect(txns).to.be.at.least(3).and.below(30);
    const stored = await store.nodes('job-1');
    expect(stored.size).to.equal(300);
    expect(stored.get('p0')?.state).to.equal('running');
    leading = false;
    await expectReject(store.putNode('job-1', { ...recs[1], state: 'running', attempt: 1 }), /not the leader \(test\)/);
    expect((await store.nodes('job-1')).get('p1')?.state).to.equal('pending');
  });
});

describe('group commit on a full etcd (its NOSPACE alarm, real etcd at --quota-backend-bytes 4 MiB)', function () {
  this.timeout(60_000);
  let etcd: EtcdServer;
  let client: Etcd3;
  before(async () => {
    etcd = await EtcdServer.start('group-commit-nospace', { extraArgs: ['--quota-backend-bytes', String(4 * 1024 * 1024)] });
    // The coordinator's own client (no circuit breaker: it would answer for etcd after the filler's refusals).
    client = createEtcdClient({ endpoints: [etcd.endpoint], tls: etcd.rootTls, dialTimeoutMs: 2000 });
    const filler = etcd.client();
    const big = 'x'.repeat(100 * 1024);
    let full = false;
    for (let i = 0; i < 200 && !full; i++) {
      await filler.put(`/filler/${i}`).value(big).then(() => undefined, (err: unknown) => { full = /database space exceeded/.test(errorMessage(err)); });
    }
    expect(full, 'etcd reached its quota').to.equal(true);
  });
  after(async () => {
    client?.close();
    await etcd?.destroy();
  });

  it('a replica campaigning on it says etcd is full, not unreachable', async () => {
    const lines: string[] = [];
    const election = new LeaderElection({
      client, keyspace: new Keyspace('/t-nospace-election/'), replicaId: 'r1', address: '127.0.0.1:1', ttlMs: 3000, clock: systemClock,
      logger: createLogger({ level: 'info', sink: (line) => lines.push(line) }),
    });
    await election.start();
    try {
      const t0 = Date.now();
      while (!lines.some((l) => l.includes('election: cannot campaign')) && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 50));
      expect(lines.find((l) => l.includes('election: cannot campaign'))).to.match(/database is full/);
      expect(lines.some((l) => l.includes('election: etcd error')), 'not logged as an etcd outage').to.equal(false);
      expect(election.etcdReachable()).to.equal(true);
      expect(election.isLeader()).to.equal(false);
    } finally {
      await election.stop();
    }
  });

  it('20 concurrent writes are refused in one transaction, not split, each with what to do', async () => {
    const ks = new Keyspace('/t-nospace/');
    const events = new EventLog({ client, keyspace: ks, clock: systemClock, logger, actor: 'test', limits: { maxOps: 128, maxBytes: 1024 * 1024 } });
    const nodes = new NodeStore({ client, keyspace: ks, events, clock: systemClock });
    let txns = 0;
    const txn = client.kv.txn.bind(client.kv);
    client.kv.txn = (...args: Parameters<typeof txn>) => { txns++; return txn(...args); };
    try {
      const ids = Array.from({ length: 20 }, (_, i) => `n${i}`);
      const create = (id: string) => (cur: NodeRecord | undefined) => cur ? undefined : { next: newNodeRecord(id, systemClock.iso()), event: { type: 'node.created', message: `created ${id}` } };
      const outcomes = await Promise.all(ids.map((id) => nodes.mutate(id, create(id), { known: null }).then(() => undefined, (err: unknown) => err)));
      for (const err of outcomes) {
        expect(err).to.be.instanceOf(EtcdSpaceError);
        expect(errorMessage(err)).to.match(/database is full .*--quota-backend-bytes.*etcdctl defrag.*alarm disarm/);
        expect(isTooLarge(err)).to.equal(false);
      }
      // The counter read and one transaction for the batch; splitting made ~40.
      expect(txns, 'transactions tried').to.be.at.most(3);
      // etcd3 counts etcd's refusal recoverable; a client of several endpoints does not try it on the others.
      const cause = (outcomes[0] as EtcdSpaceError).cause;
      expect(isRecoverableError(cause as Error)).to.equal(true);
      expect(isRetriedOnAnotherEndpoint(cause)).to.equal(false);
    } finally {
      client.kv.txn = txn;
    }
  });
});
