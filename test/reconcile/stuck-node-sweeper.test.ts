/**
 * The stuck-state sweeper (Contiv #158, #114): the pure plan by table, and the sweeper against a
 * real etcd with real fencing — a stuck node goes to Failed with the reason in one txn + event,
 * and from Failed the way back (commission, decommission) is open.
 */
import { expect } from 'chai';
import { planSweep, StuckNodeSweeper, type BootMemory, type JobView } from '../../coordinator/reconcile/stuck-node-sweeper';
import { ManualClock, type LifecycleState, type NodeRecord } from '../../shared';
import { NodeStore, type MutateOptions, type MutationResult, type NodeMutator } from '../../coordinator/node-store';
import { logger, until, useHarness, type Harness } from './harness';

function node(id: string, state: LifecycleState, over: Partial<NodeRecord> = {}): NodeRecord {
  return { id, state, stateChangedAt: '', reachable: true, labels: {}, maintenance: false, connected: true, createdAt: '', updatedAt: '', bootId: 'b1', ...over };
}

describe('stuck-node sweeper: plan (table)', () => {
  const jobs = new Map<string, JobView>([
    ['j-run', { state: 'Running', modRevision: '5' }],
    ['j-done', { state: 'Succeeded', modRevision: '6' }],
    ['j-failed', { state: 'Failed', modRevision: '7' }],
  ]);
  const table: { name: string; n: NodeRecord; want: RegExp | undefined; clear?: boolean }[] = [
    { name: 'commissioning without a job', n: node('a', 'Commissioning'), want: /no job is commissioning it/, clear: true },
    { name: 'commissioning, job gone', n: node('a', 'Commissioning', { currentJob: 'j-gone' }), want: /job j-gone no longer exists/, clear: true },
    { name: 'upgrading, job succeeded', n: node('a', 'Upgrading', { currentJob: 'j-done' }), want: /ended \(Succeeded\)/, clear: true },
    { name: 'decommissioning, job failed', n: node('a', 'Decommissioning', { currentJob: 'j-failed' }), want: /ended \(Failed\)/, clear: true },
    { name: 'commissioning, job running', n: node('a', 'Commissioning', { currentJob: 'j-run' }), want: undefined },
    { name: 'commissioned with a stale claim (not busy)', n: node('a', 'Commissioned', { currentJob: 'j-gone' }), want: undefined },
    { name: 'failed', n: node('a', 'Failed'), want: undefined },
    { name: 'discovered', n: node('a', 'Discovered'), want: undefined },
  ];
  for (const row of table) {
    it(row.name, () => {
      const actions = planSweep([row.n], jobs, new Map());
      if (!row.want) {
        expect(actions).to.deep.equal([]);
        return;
      }
      expect(actions).to.have.length(1);
      expect(actions[0].reason).to.match(row.want);
      expect(actions[0].clearClaim).to.equal(row.clear);
    });
  }

  it('remembers the boot id per job and fails the node when it changes under a running job', () => {
    const memory: BootMemory = new Map();
    expect(planSweep([node('a', 'Commissioning', { currentJob: 'j-run', bootId: 'b1' })], jobs, memory)).to.deep.equal([]);
    expect(planSweep([node('a', 'Commissioning', { currentJob: 'j-run', bootId: 'b1' })], jobs, memory)).to.deep.equal([]);
    const actions = planSweep([node('a', 'Commissioning', { currentJob: 'j-run', bootId: 'b2' })], jobs, memory);
    expect(actions).to.have.length(1);
    expect(actions[0].reason).to.match(/new boot id \(b1 → b2\) while job j-run's command was running/);
    expect(actions[0].clearClaim).to.equal(false);
    // Not busy any more → forgotten.
    planSweep([node('b', 'Commissioning', { currentJob: 'j-run' })], jobs, memory);
    expect([...memory.keys()]).to.deep.equal(['b']);
  });
});

describe('stuck-node sweeper (real etcd, fenced)', function () {
  this.timeout(60_000);
  const suite = useHarness('sweeper');
  let h: Harness;
  let sweeper: StuckNodeSweeper;
  let clock: ManualClock;

  beforeEach(() => {
    h = suite.h;
    clock = new ManualClock();
    sweeper = h.adopt(new StuckNodeSweeper({ client: h.client, keyspace: h.ks, nodes: h.nodes, isLeader: h.isLeader, clock, logger, intervalMs: 60_000 }));
  });

  it('Contiv #158: a node stuck in Commissioning with no job → Failed with the reason, and can be commissioned again', async () => {
    await h.withGroup();
    // Left behind by a leader that died mid-commission and whose job record is gone.
    await h.putNode({ id: 'n1', state: 'Commissioning', currentJob: 'j-20240101000000-dead00' });
    await h.putNode({ id: 'n2', state: 'Commissioned', group: 'worker' });
    const done = await sweeper.runOnce();
    expect(done.map((a) => a.nodeId)).to.deep.equal(['n1']);
    const n1 = await h.node('n1');
    expect(n1.state).to.equal('Failed');
    expect(n1.lastError).to.match(/stuck in Commissioning: its job j-20240101000000-dead00 no longer exists/);
    expect(n1.currentJob).to.equal(undefined);
    expect((await h.node('n2')).state).to.equal('Commissioned');
    const evs = await h.eventList((e) => e.nodeId === 'n1');
    expect(evs).to.have.length(1);
    expect(evs[0]).to.include({ type: 'node.state', from: 'Commissioning', to: 'Failed' });
    // A second pass changes nothing.
    expect(await sweeper.runOnce()).to.deep.equal([]);
    // From Failed the way back is open: a commission job is accepted and claims the node.
    const job = await h.startJob({ kind: 'commission', nodeIds: ['n1'], group: 'worker' });
    expect((await h.node('n1')).currentJob).to.equal(job.record.id);
  });

  it('Contiv #114: decommission stuck behind a finished job → Failed, and decommission is possible again', async () => {
    await h.withGroup();
    await h.putNode({ id: 'n1', state: 'Commissioned', group: 'worker', appliedConfig: 'base@1' });
    const job = await h.startJob({ kind: 'decommission', nodeIds: ['n1'] });
    // The runner died after moving the node, and the job was later marked failed (e.g. cancelled by an operator).
    await h.putNode({ ...(await h.node('n1')), state: 'Decommissioning' });
    await h.jobs.commit({ ...job.record, state: 'Failed', message: 'runner lost' }, job.modRevision, { type: 'job.failed', message: 'runner lost' });
    const done = await sweeper.runOnce();
    expect(done).to.have.length(1);
    const n1 = await h.node('n1');
    expect(n1.state).to.equal('Failed');
    expect(n1.lastError).to.match(new RegExp(`stuck in Decommissioning: its job ${job.record.id} ended \\(Failed\\)`));
    const again = await h.startJob({ kind: 'decommission', nodeIds: ['n1'] });
    expect((await h.node('n1')).currentJob).to.equal(again.record.id);
  });

  it('a node whose agent came back with a new boot id while its command ran → Failed, claim kept for the job', async () => {
    await h.withGroup();
    await h.putNode({ id: 'n1', state: 'Discovered' });
    const job = await h.startJob({ kind: 'commission', nodeIds: ['n1'], group: 'worker' });
    await h.putNode({ ...(await h.node('n1')), state: 'Commissioning', bootId: 'boot-1' });
    expect(await sweeper.runOnce()).to.deep.equal([]);
    await h.putNode({ ...(await h.node('n1')), bootId: 'boot-2' }); // the hello after the reboot
    const done = await sweeper.runOnce();
    expect(done).to.have.length(1);
    const n1 = await h.node('n1');
    expect(n1.state).to.equal('Failed');
    expect(n1.lastError).to.match(/new boot id \(boot-1 → boot-2\)/);
    expect(n1.currentJob).to.equal(job.record.id);
  });

  it('does nothing when not the leader', async () => {
    await h.putNode({ id: 'n1', state: 'Commissioning' });
    await h.election.stop();
    expect(await sweeper.runOnce()).to.deep.equal([]);
    expect((await h.node('n1')).state).to.equal('Commissioning');
  });

  it('a pass asked for while a pass is in flight runs exactly once after it (it used to be dropped)', async () => {
    /** The real store, whose writes wait for the test to let them through: holds a pass in flight. */
    class HeldStore extends NodeStore {
      release?: () => void;
      held = false;
      override async mutate(id: string, mutator: NodeMutator, options?: MutateOptions): Promise<MutationResult> {
        this.held = true;
        await new Promise<void>((resolve) => { this.release = resolve; });
        return super.mutate(id, mutator, options);
      }
    }
    const store = new HeldStore({ client: h.client, keyspace: h.ks, events: h.events, clock: clock, fence: h.election });
    let passes = 0;
    const held = new StuckNodeSweeper({
      client: h.client, keyspace: h.ks, nodes: store, isLeader: () => { passes++; return h.isLeader(); }, clock, logger, intervalMs: 60_000,
    });
    try {
      await h.putNode({ id: 'n1', state: 'Commissioning' });
      held.start();
      await until(clock, 'the first pass writing', async () => store.held);
      expect(passes).to.equal(1);
      held.schedule(); // e.g. an agent reconnected meanwhile
      await clock.advance(10_000); // well past the debounce: the pass is still in flight
      expect(passes).to.equal(1);
      store.release?.();
      await until(clock, 'n1 failed', async () => (await h.node('n1')).state === 'Failed');
      await clock.advance(10_000);
      expect(passes).to.equal(2);
    } finally {
      store.release?.();
      await held.stop();
    }
  });
});
