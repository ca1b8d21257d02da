/**
 * Auto-commission: the pure plan by table, and the reconciler against a real etcd creating
 * commission jobs through the jobs engine's StartJob path (claims apply), skipping nodes in
 * maintenance, idempotent across passes, and reacting to changes through its watch.
 */
import { expect } from 'chai';
import { AutoCommissioner, nodePutMatters, planAutoCommission, selectorLabels } from '../../coordinator/reconcile/auto-commission';
import { waitFor } from '../helpers';
import type { GroupRecord } from '../../coordinator/config/group-store';
import { ManualClock, type Facts, type LifecycleState, type NodeRecord } from '../../shared';
import { logger, until, useHarness, type Harness } from './harness';

const FACTS = (cores: number): Partial<Facts> => ({
  hostname: 'h', system: { manufacturer: 'Dell Inc.', model: 'R650', serial: 'SN1', uuid: 'u', sku: '', virtual: false },
  cpu: { manufacturer: 'Intel', brand: 'Xeon', model: '', cores: cores * 2, physicalCores: cores, threads: cores * 2, sockets: 1, speedGHz: 2 },
  disks: [], network: [], gpus: [],
});

function node(id: string, state: LifecycleState, over: Partial<NodeRecord> = {}): NodeRecord {
  return { id, state, stateChangedAt: '', reachable: true, labels: {}, maintenance: false, connected: true, createdAt: '', updatedAt: '', ...over };
}

describe('auto-commission: plan (table)', () => {
  const groups: GroupRecord[] = [
    { name: 'gpu', bundle: 'b', version: '1', variables: {}, autoCommission: [{ selector: 'facts.gpuCount=2' }] },
    { name: 'worker', bundle: 'b', version: '1', variables: {}, autoCommission: [{ selector: 'rack=r1,facts.cpuCores=16' }, { selector: 'role=worker' }] },
    { name: 'control', bundle: 'b', version: '1', variables: {} },
  ];
  const table: { name: string; n: NodeRecord; facts?: Partial<Facts>; active?: string[]; want?: string }[] = [
    { name: 'labels + facts match', n: node('a', 'Discovered', { labels: { rack: 'r1' } }), facts: FACTS(16), want: 'worker' },
    { name: 'facts do not match', n: node('a', 'Discovered', { labels: { rack: 'r1' } }), facts: FACTS(8) },
    { name: 'no facts at all', n: node('a', 'Discovered', { labels: { rack: 'r1' } }) },
    { name: 'second rule matches', n: node('a', 'Discovered', { labels: { role: 'worker' } }), want: 'worker' },
    { name: 'in maintenance', n: node('a', 'Discovered', { labels: { role: 'worker' }, maintenance: true }) },
    { name: 'held by a live job', n: node('a', 'Discovered', { labels: { role: 'worker' }, currentJob: 'j1' }), active: ['j1'] },
    { name: 'stale claim of a finished job', n: node('a', 'Discovered', { labels: { role: 'worker' }, currentJob: 'j0' }), want: 'worker' },
    { name: 'New, not yet discovered', n: node('a', 'New', { labels: { role: 'worker' } }) },
    { name: 'already commissioned', n: node('a', 'Commissioned', { labels: { role: 'worker' } }) },
    { name: 'Failed is left to the operator', n: node('a', 'Failed', { labels: { role: 'worker' } }) },
  ];
  for (const row of table) {
    it(row.name, () => {
      const plan = planAutoCommission({ nodes: [{ record: row.n, facts: row.facts }], groups, activeJobs: new Set(row.active ?? []) });
      expect(plan).to.deep.equal(row.want ? new Map([[row.want, ['a']]]) : new Map());
    });
  }

  it('a node record written as Discovered may give a rule a candidate; one in any other state cannot', () => {
    expect(nodePutMatters(JSON.stringify(node('a', 'Discovered')))).to.equal(true);
    for (const state of ['New', 'Commissioning', 'Commissioned', 'Failed'] as const) expect(nodePutMatters(JSON.stringify(node('a', state))), state).to.equal(false);
    expect(nodePutMatters('{not json'), 'unreadable').to.equal(true);
  });

  it('exposes facts summary fields as facts.<field> labels', () => {
    const labels = selectorLabels({ rack: 'r1' }, FACTS(16));
    expect(labels).to.include({ rack: 'r1', 'facts.cpuCores': '16', 'facts.manufacturer': 'Dell Inc.', 'facts.gpuCount': '0' });
  });
});

describe('auto-commission (real etcd, jobs engine)', function () {
  this.timeout(60_000);
  const suite = useHarness('autocommission');
  let h: Harness;
  let ac: AutoCommissioner;
  let clock: ManualClock;

  beforeEach(() => {
    h = suite.h;
    clock = new ManualClock();
    ac = h.adopt(new AutoCommissioner({
      client: h.client, keyspace: h.ks, startJob: (req) => h.starter.start(req), isLeader: h.isLeader, clock, logger, intervalMs: 60_000,
    }));
  });

  async function putFacts(id: string, cores: number): Promise<void> {
    await h.client.put(h.ks.facts(id)).value(JSON.stringify(FACTS(cores))).exec();
  }

  it('picks a Discovered node matching a selector, skips a node in maintenance, and is idempotent', async () => {
    await h.withGroup({ autoCommission: [{ selector: 'rack=r1,facts.cpuCores=16' }] });
    await h.putNode({ id: 'n1', labels: { rack: 'r1' } });
    await h.putNode({ id: 'n2', labels: { rack: 'r1' }, maintenance: true });
    await h.putNode({ id: 'n3', labels: { rack: 'r2' } });
    await h.putNode({ id: 'n4', state: 'New', labels: { rack: 'r1' } });
    for (const id of ['n1', 'n2', 'n3', 'n4']) await putFacts(id, 16);

    ac.start();
    const job = await until(clock, 'a commission job for n1', async () => (await h.node('n1')).currentJob);
    const stored = await h.jobs.require(job);
    expect(stored.record).to.deep.include({ kind: 'commission', group: 'worker', nodeIds: ['n1'], requestedBy: 'auto-commission', bundle: 'base@1' });
    expect((await h.node('n2')).currentJob).to.equal(undefined);
    expect((await h.node('n3')).currentJob).to.equal(undefined);
    expect((await h.node('n4')).currentJob).to.equal(undefined);

    // Level-triggered and idempotent: another pass creates nothing new.
    expect(await ac.runOnce()).to.deep.equal([]);
    expect(await h.jobs.list()).to.have.length(1);

    // Maintenance off (through the watch) → its turn comes.
    await h.putNode({ ...(await h.node('n2')), maintenance: false });
    const job2 = await until(clock, 'a commission job for n2', async () => (await h.node('n2')).currentJob);
    expect(job2).to.not.equal(job);
    expect((await h.jobs.require(job2)).record.nodeIds).to.deep.equal(['n2']);
  });

  it('autoCommission=paused (manager config) starts nothing; enabled again, the change of the setting itself triggers the pass', async () => {
    await h.withGroup({ autoCommission: [{ selector: 'rack=r1' }] });
    await h.client.put(h.ks.managerConfig()).value(JSON.stringify({ values: { autoCommission: 'paused' } })).exec();
    await h.putNode({ id: 'n1', labels: { rack: 'r1' } });
    await putFacts('n1', 16);
    ac.start();
    expect(await ac.runOnce()).to.deep.equal([]);
    expect(await h.jobs.list()).to.have.length(0);
    await h.client.put(h.ks.managerConfig()).value(JSON.stringify({ values: {} })).exec();
    const job = await until(clock, 'a commission job for n1', async () => (await h.node('n1')).currentJob);
    expect((await h.jobs.require(job)).record).to.deep.include({ kind: 'commission', nodeIds: ['n1'] });
  });

  it('a delete triggers a pass: the job holding a node is deleted → the node is commissioned again', async () => {
    await h.withGroup({ autoCommission: [{ selector: 'rack=r1' }] });
    await h.putNode({ id: 'n1', labels: { rack: 'r1' } });
    ac.start();
    const job1 = await until(clock, 'a commission job for n1', async () => (await h.node('n1')).currentJob);
    // Quiet: the passes the claim's write asked for have run, and found n1 held.
    await clock.advance(1000);
    expect(await ac.runOnce()).to.deep.equal([]);
    // The job is deleted while its claim is still on the node: nothing holds n1 any more.
    await h.client.delete().key(h.ks.job(job1)).exec();
    const job2 = await until(clock, 'a second commission job for n1', async () => {
      const j = (await h.node('n1')).currentJob;
      return j && j !== job1 ? j : undefined;
    });
    expect((await h.jobs.require(job2)).record).to.deep.include({ kind: 'commission', nodeIds: ['n1'], requestedBy: 'auto-commission' });
  });

  it('writes that cannot give a rule a candidate start no pass: a node leaving Discovered, a job\'s per-node record', async () => {
    await h.withGroup({ autoCommission: [{ selector: 'rack=r9' }] });
    await h.putNode({ id: 'n1', labels: { rack: 'r1' } });
    // Counts passes started (each begins with the leadership check).
    let started = 0;
    const counted = h.adopt(new AutoCommissioner({
      client: h.client, keyspace: h.ks, startJob: (req) => h.starter.start(req), isLeader: () => { started++; return h.isLeader(); }, clock, logger, intervalMs: 3_600_000,
    }));
    counted.start();
    let last = -1;
    await waitFor('the loop to be quiet', async () => {
      await clock.advance(1000);
      const quiet = counted.passes > 0 && started === last;
      last = started;
      return quiet;
    }, { intervalMs: 100 });
    const before = started;
    // What a fan-out writes: the node into Commissioning, the job's per-node record.
    await h.putNode({ ...(await h.node('n1')), state: 'Commissioning', currentJob: 'j1' });
    await h.client.put(h.ks.jobNode('j1', 'n1')).value(JSON.stringify({ nodeId: 'n1', state: 'running', batch: 0, attempt: 1, units: [] })).exec();
    // Time for the watch to deliver them (the put below shows that it does, the same way).
    await new Promise((r) => setTimeout(r, 1000));
    await clock.advance(1000);
    expect(started, 'passes started by the fan-out\'s writes').to.equal(before);
    // A node written as Discovered does start one.
    await h.putNode({ ...(await h.node('n1')), state: 'Discovered' });
    await until(clock, 'a pass for the node back in Discovered', () => Promise.resolve(started > before));
  });

  it('does nothing when not the leader', async () => {
    await h.withGroup({ autoCommission: [{ selector: 'rack=r1' }] });
    await h.putNode({ id: 'n1', labels: { rack: 'r1' } });
    await h.election.stop();
    expect(await ac.runOnce()).to.deep.equal([]);
    expect(await h.jobs.list()).to.have.length(0);
  });
});
