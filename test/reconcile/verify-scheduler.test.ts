/**
 * Scheduled verification: the pure parts by table, and the scheduler against a real etcd with
 * a cron of every second, starting verify jobs through the jobs engine, skipping maintenance
 * and claimed nodes, following group changes and stopping with leadership.
 */
import { expect } from 'chai';
import { waitFor, delay } from '../helpers';
import { planSchedules, verifyTargets, VerifyScheduler } from '../../coordinator/reconcile/verify-scheduler';
import { systemClock, type LifecycleState, type NodeRecord } from '../../shared';
import { logger, useHarness, type Harness } from './harness';

function node(id: string, state: LifecycleState, over: Partial<NodeRecord> = {}): NodeRecord {
  return { id, state, stateChangedAt: '', reachable: true, labels: {}, maintenance: false, connected: true, createdAt: '', updatedAt: '', group: 'w', ...over };
}

describe('verify scheduler: plan (tables)', () => {
  it('adds, removes and replaces tasks to follow the groups', () => {
    const table: { running: [string, string][]; groups: { name: string; verifySchedule?: string }[]; add: [string, string][]; remove: string[] }[] = [
      { running: [], groups: [{ name: 'a', verifySchedule: '* * * * *' }, { name: 'b' }], add: [['a', '* * * * *']], remove: [] },
      { running: [['a', '* * * * *']], groups: [{ name: 'a', verifySchedule: '* * * * *' }], add: [], remove: [] },
      { running: [['a', '* * * * *']], groups: [{ name: 'a', verifySchedule: '0 3 * * *' }], add: [['a', '0 3 * * *']], remove: ['a'] },
      { running: [['a', '* * * * *']], groups: [{ name: 'a' }], add: [], remove: ['a'] },
      { running: [['a', '* * * * *']], groups: [], add: [], remove: ['a'] },
    ];
    for (const row of table) {
      expect(planSchedules(new Map(row.running), row.groups), JSON.stringify(row)).to.deep.equal({ add: row.add, remove: row.remove });
    }
  });

  it('targets in-service nodes of the group, not in maintenance, not claimed by a live job', () => {
    const nodes = [
      node('a', 'Commissioned'), node('b', 'Upgraded'), node('c', 'Upgrading'), node('d', 'Commissioned', { maintenance: true }),
      node('e', 'Commissioned', { currentJob: 'live' }), node('f', 'Commissioned', { currentJob: 'old' }), node('g', 'Commissioned', { group: 'x' }),
      node('h', 'Failed'), node('i', 'Discovered'),
    ];
    expect(verifyTargets('w', nodes, new Set(['live']))).to.deep.equal(['a', 'b', 'f']);
  });
});

describe('verify scheduler (real etcd, jobs engine)', function () {
  this.timeout(60_000);
  const suite = useHarness('verifysched');
  let h: Harness;
  let vs: VerifyScheduler;

  beforeEach(() => {
    h = suite.h;
    vs = h.adopt(new VerifyScheduler({ client: h.client, keyspace: h.ks, startJob: (req) => h.starter.start(req), isLeader: h.isLeader, clock: systemClock, logger }));
  });

  it('a cron of every second starts a verify job on the quiet in-service nodes, and follows group changes', async () => {
    await h.withGroup({ verifySchedule: '* * * * * *' });
    const applied = { group: 'worker', appliedConfig: 'base@1' };
    await h.putNode({ id: 'n1', state: 'Commissioned', ...applied });
    await h.putNode({ id: 'n2', state: 'Commissioned', ...applied, maintenance: true });
    await h.putNode({ id: 'n3', state: 'Discovered' });
    vs.start();
    await waitFor('the schedule', () => vs.scheduled().get('worker') === '* * * * * *');
    const jobId = await waitFor('a scheduled verify job on n1', async () => (await h.node('n1')).currentJob, { timeoutMs: 10_000 });
    const job = (await h.jobs.require(jobId)).record;
    expect(job).to.deep.include({ kind: 'verify', nodeIds: ['n1'], requestedBy: 'verify-schedule/worker' });
    expect((await h.node('n2')).currentJob).to.equal(undefined);
    // n1 is held by that (still pending) job: later ticks leave it alone.
    await delay(2500);
    expect(await h.jobs.list()).to.have.length(1);

    // The group drops its schedule → the task goes.
    const g = await h.groups.require('worker');
    await h.groups.set({ ...g.record, verifySchedule: '' }, g.modRevision);
    await waitFor('the schedule to be removed', () => vs.scheduled().size === 0);
  });

  it('stops every task when stopped (leadership lost)', async () => {
    await h.withGroup({ verifySchedule: '* * * * * *' });
    await h.putNode({ id: 'n1', state: 'Commissioned', group: 'worker', appliedConfig: 'base@1' });
    await h.election.stop();
    vs.start();
    await waitFor('the schedule', () => vs.scheduled().size === 1);
    await delay(1500);
    expect(await h.jobs.list(), 'a follower starts no job').to.have.length(0);
    await vs.stop();
    expect(vs.scheduled().size).to.equal(0);
  });
});
